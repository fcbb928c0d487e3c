"""Upper bounds on ε from dp-accounting, for the built-in mechanisms' claims.

Nothing here is hand-derived: single additive-noise mechanisms use
dp-accounting's exact privacy-loss objects
(:mod:`dp_accounting.pld.privacy_loss_mechanism`, no discretization, so pure
ε-DP comes out exactly), compositions and randomized response use its PLD
accountant, and zero-concentrated DP uses its RDP accountant.  dp-accounting is
imported lazily (it is an ``audit`` extra).

All ε are in nats; δ in [0, 1).  ``inf`` means "not (ε, δ)-DP for any finite ε".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from secquant.errors import ConfigError

__all__ = [
    "check_delta",
    "discrete_gaussian_epsilon",
    "epsilon_for_event",
    "epsilon_from_privacy_loss",
]

_EPS_MAX = 200.0


def check_delta(delta: float) -> float:
    """Return δ as a float after checking ``0 <= δ < 1``.

    Raises:
        ConfigError: δ is negative, at least 1, or not a number.
    """
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)):
        raise ConfigError(f"delta must be a number in [0, 1), got {delta!r}")
    value = float(delta)
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"delta must satisfy 0 <= delta < 1, got {value}")
    return value


def epsilon_from_privacy_loss(privacy_loss: Any, delta: float) -> float:
    """Smallest ε with ``privacy_loss.get_delta_for_epsilon(ε) <= δ`` (tolerance 1e-9).

    Args:
        privacy_loss: A :class:`dp_accounting.pld.privacy_loss_mechanism.AdditiveNoisePrivacyLoss`.
        delta: δ in [0, 1).

    Returns:
        ε in nats; ``inf`` if no ε up to 200 reaches δ (e.g. Gaussian at δ = 0).

    Raises:
        ConfigError: δ outside [0, 1).
    """
    from dp_accounting.pld import common

    delta = check_delta(delta)
    if privacy_loss.get_delta_for_epsilon(_EPS_MAX) > delta:
        return math.inf
    params = common.BinarySearchParameters(0.0, _EPS_MAX, tolerance=1e-9)
    eps = common.inverse_monotone_function(privacy_loss.get_delta_for_epsilon, delta, params)
    return math.inf if eps is None else float(eps)


def discrete_gaussian_epsilon(sigma: float, sensitivity: int, delta: float) -> float:
    """ε of adding discrete Gaussian N_Z(0, σ²) noise to an integer query of sensitivity Δ.

    dp-accounting has no ``DpEvent`` for the discrete Gaussian; this uses its
    ``DiscreteGaussianPrivacyLoss`` (exact hockey-stick divergence).

    Raises:
        ConfigError: σ not positive, sensitivity not a positive int, δ outside [0, 1).
    """
    from dp_accounting.pld import privacy_loss_mechanism as plm

    if not sigma > 0 or not math.isfinite(sigma):
        raise ConfigError(f"sigma must be finite and positive, got {sigma}")
    if int(sensitivity) != sensitivity or sensitivity < 1:
        raise ConfigError(f"sensitivity must be a positive int, got {sensitivity}")
    return epsilon_from_privacy_loss(plm.DiscreteGaussianPrivacyLoss(float(sigma), sensitivity=int(sensitivity)), delta)


def _pure_epsilon(event: Any) -> float | None:
    """Exact ε at δ = 0 for events whose privacy loss is bounded, else None."""
    import dp_accounting as dpa
    from dp_accounting.pld import privacy_loss_mechanism as plm

    if isinstance(event, dpa.LaplaceDpEvent):
        return epsilon_from_privacy_loss(plm.LaplacePrivacyLoss(event.noise_multiplier), 0.0)
    if isinstance(event, dpa.dp_event.DiscreteLaplaceDpEvent):
        loss = plm.DiscreteLaplacePrivacyLoss(event.noise_parameter, sensitivity=event.sensitivity)
        return epsilon_from_privacy_loss(loss, 0.0)
    if isinstance(event, dpa.GaussianDpEvent):
        return math.inf
    if isinstance(event, dpa.NonPrivateDpEvent):
        return math.inf
    if isinstance(event, dpa.NoOpDpEvent):
        return 0.0
    if isinstance(event, dpa.SelfComposedDpEvent):
        inner = _pure_epsilon(event.event)
        return None if inner is None else inner * event.count
    if isinstance(event, dpa.ComposedDpEvent):
        parts = [_pure_epsilon(e) for e in event.events]
        return None if any(p is None for p in parts) else float(sum(parts))  # type: ignore[arg-type]
    return None


def epsilon_for_event(event: Any, delta: float) -> float:
    """ε at δ that dp-accounting certifies for a ``DpEvent``.

    * Laplace / discrete Laplace / Gaussian: exact privacy-loss objects
      (neighbours: the query moves by at most its sensitivity).
    * δ = 0 and compositions of pure events: basic composition of the exact parts
      (tight at δ = 0).
    * Randomized response: PLD accountant, ``REPLACE_ONE`` neighbours.
    * ``ZCDpEvent``: RDP accountant.
    * Anything else: PLD accountant (``ADD_OR_REMOVE_ONE``), else RDP accountant.

    Args:
        event: A :class:`dp_accounting.DpEvent`.
        delta: δ in [0, 1).

    Returns:
        ε in nats (``inf`` when no finite ε holds at this δ).

    Raises:
        ConfigError: δ invalid, or no dp-accounting accountant supports the event.
    """
    import dp_accounting as dpa
    from dp_accounting.pld import privacy_loss_mechanism as plm
    from dp_accounting.rdp import rdp_privacy_accountant

    delta = check_delta(delta)
    if isinstance(event, dpa.NonPrivateDpEvent):
        return math.inf
    if delta == 0.0:
        pure = _pure_epsilon(event)
        if pure is not None:
            return pure
    if isinstance(event, dpa.LaplaceDpEvent):
        return epsilon_from_privacy_loss(plm.LaplacePrivacyLoss(event.noise_multiplier), delta)
    if isinstance(event, dpa.dp_event.DiscreteLaplaceDpEvent):
        loss = plm.DiscreteLaplacePrivacyLoss(event.noise_parameter, sensitivity=event.sensitivity)
        return epsilon_from_privacy_loss(loss, delta)
    if isinstance(event, dpa.GaussianDpEvent):
        return epsilon_from_privacy_loss(plm.GaussianPrivacyLoss(event.noise_multiplier), delta)
    if isinstance(event, dpa.ZCDpEvent):
        rdp = rdp_privacy_accountant.RdpAccountant()
        rdp.compose(event)
        return float(rdp.get_epsilon(delta)) if delta > 0 else math.inf
    relation = (
        dpa.NeighboringRelation.REPLACE_ONE
        if isinstance(event, dpa.RandomizedResponseDpEvent)
        else dpa.NeighboringRelation.ADD_OR_REMOVE_ONE
    )
    pld = dpa.pld.PLDAccountant(relation)
    if pld.supports(event):
        pld.compose(event)
        return float(pld.get_epsilon(delta))
    rdp = rdp_privacy_accountant.RdpAccountant(neighboring_relation=relation)
    if rdp.supports(event):
        rdp.compose(event)
        return float(rdp.get_epsilon(delta)) if delta > 0 else math.inf
    raise ConfigError(f"dp-accounting has no accountant for {type(event).__name__}")
