"""SEAL contexts for BFV and CKKS: one builder, one error type for refused parameters.

SEAL's Python bindings ship with TenSEAL 0.3.18 (``tenseal.sealapi``); this
module is the only place that imports them for the backends, on first use, so
``import secquant`` never loads TenSEAL.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from secquant.errors import ConfigError, ParameterError

__all__ = ["Level", "SealScheme", "coeff_primes", "levels", "make_context", "sealapi"]


class SealScheme(enum.Enum):
    """The SEAL schemes secquant builds contexts for."""

    BFV = "bfv"
    CKKS = "ckks"


def sealapi() -> Any:
    """The SEAL bindings bundled with TenSEAL (imported on first use).

    Raises:
        ConfigError: TenSEAL is not installed (``pip install 'secquant[he]'``).
    """
    try:
        import tenseal.sealapi as sa  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("the SEAL backends need TenSEAL 0.3.18: pip install 'secquant[he]'") from exc
    return sa


def coeff_primes(poly_degree: int, bit_sizes: Sequence[int]) -> list[int]:
    """The primes SEAL's ``CoeffModulus.Create`` picks for these sizes (deterministic; no key).

    Raises:
        ParameterError: SEAL finds no such primes.
    """
    sa = sealapi()
    try:
        return [int(m.value()) for m in sa.CoeffModulus.Create(int(poly_degree), [int(b) for b in bit_sizes])]
    except (ValueError, RuntimeError) as exc:
        raise ParameterError(f"SEAL finds no primes of {list(bit_sizes)} bits for N={poly_degree}: {exc}") from exc


def make_context(scheme: SealScheme, poly_degree: int, primes: Sequence[int], security: int,
                 plain_modulus: int | None = None) -> Any:
    """A ``SEALContext`` (with its modulus-switching chain) that SEAL accepts at ``security`` bits.

    Args:
        scheme: BFV or CKKS.
        poly_degree: N, a power of two in [4096, 32768].
        primes: The coefficient modulus, the special prime last.
        security: 128, 192 or 256 (SEAL's HomomorphicEncryption.org table).
        plain_modulus: The plaintext prime t (BFV only).

    Raises:
        ParameterError: SEAL refuses the parameters (modulus past the security
            bound, a prime that is not NTT-friendly, an unknown level...).
    """
    sa = sealapi()
    levels_ = {128: sa.SEC_LEVEL_TYPE.TC128, 192: sa.SEC_LEVEL_TYPE.TC192, 256: sa.SEC_LEVEL_TYPE.TC256}
    if security not in levels_:
        raise ParameterError(f"security must be 128, 192 or 256 bits, got {security!r}")
    kind = sa.SCHEME_TYPE.BFV if scheme is SealScheme.BFV else sa.SCHEME_TYPE.CKKS
    parms = sa.EncryptionParameters(kind)
    parms.set_poly_modulus_degree(int(poly_degree))
    parms.set_coeff_modulus([sa.Modulus(int(p)) for p in primes])
    if plain_modulus is not None:
        parms.set_plain_modulus(sa.Modulus(int(plain_modulus)))
    ctx = sa.SEALContext(parms, True, levels_[security])
    if not ctx.parameters_set():
        bits = [int(p).bit_length() for p in primes]
        raise ParameterError(f"SEAL refuses {scheme.value.upper()} parameters N={poly_degree}, moduli {bits} bits"
                             f"{f', t={plain_modulus}' if plain_modulus else ''}: {ctx.parameters_error_message()}")
    return ctx


@dataclass(frozen=True)
class Level:
    """One level of a context's modulus-switching chain.

    Attributes:
        parms_id: SEAL's identifier of the level (4 x u64).
        moduli: Its coefficient primes, in SEAL's order.
    """

    parms_id: tuple[int, ...]
    moduli: tuple[int, ...]


def levels(context: Any) -> list[Level]:
    """Every data level of ``context``, top (all data primes) first."""
    out = []
    data = context.first_context_data()
    while data is not None:
        out.append(Level(tuple(int(v) for v in data.parms_id()),
                         tuple(int(m.value()) for m in data.parms().coeff_modulus())))
        data = data.next_context_data()
    return out
