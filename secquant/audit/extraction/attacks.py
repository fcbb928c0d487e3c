"""Model-extraction attacks that see only a :class:`~secquant.audit.extraction.oracle.QueryOracle`.

* :func:`equation_solving` (Tramèr et al., USENIX Security 2016, Sec. 4.1):
  a linear or logistic model's logits are affine in the input integers
  ``u``, ``z = W u + b``, so ``d + 1`` queries at independent points give a
  square system whose solution is the model, exactly when the logits are
  exact.  The attacker picks the points: uniform integers in the input range
  (the client spec publishes it), mapped back to floats.  With more queries
  the least-squares solution averages noise down; with fewer, the
  minimum-norm one is returned.
* :func:`learning_attack`: train a surrogate network on the answers to
  queries at unlabeled inputs the attacker holds (regression on released
  logits, soft cross-entropy on probabilities, cross-entropy on labels).
  The default surrogate is an MLP on flattened inputs, whatever the victim
  (MLP or CNN); pass ``surrogate=`` to choose another.

Both return a surrogate with ``scores(x)`` (float scores for float inputs).
torch is imported inside the functions.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.audit.extraction.oracle import QueryOracle
from secquant.dp.release import ReleaseForm
from secquant.errors import ConfigError

__all__ = ["AttackKind", "LinearSurrogate", "NetSurrogate", "equation_solving", "learning_attack"]


class AttackKind(enum.Enum):
    """Which extraction attack."""

    EQUATION = "equation"
    LEARNING = "learning"


@dataclass(frozen=True, eq=False)
class LinearSurrogate:
    """A recovered affine model on input integers: ``scores = u @ weight.T + bias`` (logits).

    Attributes:
        weight: Shape ``(classes, features)``, logits per input integer step.
        bias: Shape ``(classes,)``, logits.
        interface: The victim's public interface (to quantize inputs as the client does).
    """

    weight: NDArray[np.float64]
    bias: NDArray[np.float64]
    interface: Any

    @property
    def parameters(self) -> NDArray[np.float64]:
        """``[weight | bias]``, shape ``(classes, features + 1)``."""
        return np.concatenate([self.weight, self.bias[:, None]], axis=1)

    def scores(self, x: ArrayLike) -> NDArray[np.float64]:
        """Logits for float inputs ``(n, *input_shape)``."""
        u = np.asarray(self.interface.quantize_input(np.asarray(x, dtype=np.float64)), dtype=np.float64)
        return u.reshape(len(u), -1) @ self.weight.T + self.bias


def _check_queries(queries: int) -> int:
    if isinstance(queries, bool) or not isinstance(queries, (int, np.integer)) or queries < 1:
        raise ConfigError(f"queries must be an int >= 1, got {queries!r}")
    return int(queries)


def box_inputs(interface: Any, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``n`` float inputs whose quantized integers are uniform over the input range."""
    iq = interface.input_quant
    d = int(np.prod(interface.input_shape))
    u = rng.integers(int(iq.lo), int(iq.hi) + 1, size=(n, d))
    return ((u - float(iq.offset)) / float(iq.scale)).reshape(n, *interface.input_shape)


def fit_affine(u: NDArray[Any], z: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Least-squares (minimum-norm when underdetermined) ``z ~ u @ W.T + b``; returns ``(W, b)``."""
    a = np.concatenate([np.asarray(u, dtype=np.float64), np.ones((len(u), 1))], axis=1)
    theta, *_ = np.linalg.lstsq(a, np.asarray(z, dtype=np.float64), rcond=None)
    return theta[:-1].T.copy(), theta[-1].copy()


def equation_solving(oracle: QueryOracle, queries: int, rng: np.random.Generator) -> LinearSurrogate:
    """Recover an affine model from ``queries`` answers (Tramèr et al. 2016, equation solving).

    Raises:
        ConfigError: the oracle releases labels or probabilities (no equations
            in the logits), or ``queries < 1``.
    """
    n = _check_queries(queries)
    if oracle.form is not ReleaseForm.LOGITS:
        raise ConfigError(f"equation solving needs released logits; this oracle releases {oracle.form.value}")
    x = box_inputs(oracle.interface, n, rng)
    z = np.asarray(oracle.query(x), dtype=np.float64).reshape(n, -1)
    u = np.asarray(oracle.interface.quantize_input(x)).reshape(n, -1)  # what the client computes anyway
    w, b = fit_affine(u, z)
    return LinearSurrogate(weight=w, bias=b, interface=oracle.interface)


@dataclass(frozen=True, eq=False)
class NetSurrogate:
    """A trained surrogate network.

    Attributes:
        module: torch module mapping a float32 batch of flat inputs to scores.
        losses: Training loss per epoch.
    """

    module: Any
    losses: tuple[float, ...]

    def scores(self, x: ArrayLike) -> NDArray[np.float64]:
        """Scores for float inputs ``(n, *input_shape)``."""
        import torch

        xt = torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
        with torch.no_grad():
            return self.module(xt).double().numpy()


def default_surrogate(features: int, classes: int, hidden: int = 64) -> Any:
    """``Linear(features, hidden) -> ReLU -> Linear(hidden, classes)``."""
    from torch import nn

    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def _loss_fn(form: ReleaseForm) -> Callable[[Any, Any], Any]:
    from torch import nn

    if form is ReleaseForm.LOGITS:
        return nn.functional.mse_loss
    if form is ReleaseForm.PROBABILITIES:
        return lambda out, p: -(p * nn.functional.log_softmax(out, dim=1)).sum(dim=1).mean()
    return nn.functional.cross_entropy


def _fit(module: Any, x: NDArray[np.float32], targets: Any, form: ReleaseForm, steps: int, seed: int) -> tuple[float, ...]:
    """Adam for about ``steps`` mini-batch steps (batches of up to 128, reshuffled each epoch)."""
    import torch

    xt = torch.as_tensor(x)
    batch = min(128, len(x))
    epochs = max(1, math.ceil(steps * batch / len(x)))
    loss_fn = _loss_fn(form)
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    module.train()
    for _ in range(epochs):
        order, total = torch.randperm(len(xt), generator=gen), 0.0
        for start in range(0, len(xt), batch):
            idx = order[start : start + batch]
            loss = loss_fn(module(xt[idx]), targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(xt))
    module.eval()
    return tuple(losses)


def learning_attack(
    oracle: QueryOracle,
    pool: ArrayLike,
    queries: int,
    *,
    surrogate: Callable[[int, int], Any] | None = None,
    hidden: int = 64,
    steps: int = 1500,
    seed: int = 0,
) -> NetSurrogate:
    """Query the first ``queries`` rows of ``pool`` and train a surrogate on the answers.

    Args:
        oracle: The victim behind its release policy.
        pool: Unlabeled inputs the attacker holds, ``(n, *input_shape)``, in the order used.
        queries: Rows of ``pool`` to query, 1 <= queries <= len(pool).
        surrogate: ``(features, classes) -> torch module``; default :func:`default_surrogate`.
        hidden: Hidden width of the default surrogate.
        steps: About how many optimizer steps to train for.
        seed: Seeds the surrogate's initial weights and batch order.

    Raises:
        ConfigError: ``queries`` outside ``[1, len(pool)]``.
    """
    import torch

    x = np.asarray(pool, dtype=np.float32)
    n = _check_queries(queries)
    if n > len(x):
        raise ConfigError(f"queries={n} exceeds the {len(x)} pool inputs the attacker holds")
    answers = np.asarray(oracle.query(x[:n]))
    classes = int(np.prod(oracle.interface.output_shape))
    flat = x[:n].reshape(n, -1)
    if oracle.form is ReleaseForm.LABELS:
        targets = torch.as_tensor(answers.astype(np.int64))
    else:
        targets = torch.as_tensor(answers.reshape(n, classes).astype(np.float32))
    torch.manual_seed(seed)
    module = (surrogate or (lambda f, c: default_surrogate(f, c, hidden)))(flat.shape[1], classes)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of <= 128 small rows: threads only add contention (restored below)
    try:
        losses = _fit(module, flat, targets, oracle.form, steps, seed)
    finally:
        torch.set_num_threads(threads)
    return NetSurrogate(module=module, losses=losses)
