"""The client's own security floor: what a client spec from the network may ask for, and what not.

A client spec arrives from the server, so a malicious server could ask the
client for a weak key (a 256-bit Paillier modulus, factored in minutes) or an
RLWE ring too small for its coefficient modulus.  The client never takes such
a choice from the network: :class:`SecurityFloor` is the client's own minimum,
and :func:`client_role_from_spec` checks the spec against it *before* any key
is made, raising :class:`~secquant.protocol.errors.InsecureParametersError`.

Security estimates:

* Paillier: NIST SP 800-57 Part 1, Table 2 (factoring n): 2048 bits ≈ 112,
  3072 ≈ 128, 7680 ≈ 192 (:func:`~secquant.backends.paillier.keys.security_bits`).
* BFV/CKKS: the HomomorphicEncryption.org table for ternary secrets
  (:mod:`secquant.backends.seal.security`): ring degree N and the total bits of
  the coefficient modulus, special prime included.  The level the spec *claims*
  counts too: a spec whose claimed level is below the floor is refused even if
  its modulus would pass.
* plain: no encryption at all, refused unless ``allow_insecure``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from secquant.backends.base import ClientRole, Scheme, decode_client_spec
from secquant.errors import ConfigError
from secquant.protocol.errors import InsecureParametersError

__all__ = ["InsecureParametersWarning", "SecurityFloor", "client_role_from_spec", "spec_security"]


class InsecureParametersWarning(UserWarning):
    """A client accepted parameters below its floor because it opted out (``allow_insecure=True``)."""


@dataclass(frozen=True)
class SecurityFloor:
    """A client's minimum security, independent of anything the server sends.

    Attributes:
        min_security_bits: Least classical security accepted (default 128;
            112 admits 2048-bit Paillier keys).
        allow_insecure: Explicit, loud opt-out (test rigs only): accept any
            parameters, including the plain backend and toy Paillier keys,
            with an :class:`InsecureParametersWarning`.

    Raises:
        ConfigError: a value of the wrong type or out of range.
    """

    min_security_bits: int = 128
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        bits = self.min_security_bits
        if isinstance(bits, bool) or not isinstance(bits, int) or not 80 <= bits <= 256:
            raise ConfigError(f"min_security_bits must be an int in [80, 256], got {bits!r}")
        if not isinstance(self.allow_insecure, bool):
            raise ConfigError(f"allow_insecure must be True or False, got {self.allow_insecure!r}")


def _rlwe_security(meta: dict[str, Any], scheme: Scheme) -> tuple[int, str]:
    from secquant.backends.seal.security import estimate_security

    params = meta.get("params") if scheme is Scheme.BFV else meta.get("plan")
    if not isinstance(params, dict):
        raise ConfigError(f"{scheme.value} client spec lacks its parameters")
    try:
        n, claimed = int(params["poly_degree"]), int(params["security"])
        if scheme is Scheme.BFV:
            total = sum(int(b) for b in params["coeff_bits"])
        else:
            total = sum(int(str(p)).bit_length() for p in params["primes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"malformed {scheme.value} client spec: {exc!r}") from None
    level = min(estimate_security(n, total), claimed)
    return level, f"N={n} with a {total}-bit coefficient modulus (claimed {claimed}-bit security)"


def spec_security(scheme: Scheme | str, spec: bytes) -> tuple[int, str]:
    """The classical security a client spec's parameters reach, and a description.

    Raises:
        ArtifactError, IntegrityError, ConfigError: the spec is not one of ``scheme``, or malformed.
    """
    from secquant.quant.primitives import coerce_enum

    chosen = coerce_enum(scheme, Scheme, "scheme")
    _, meta, _ = decode_client_spec(chosen, spec)
    if chosen is Scheme.PLAIN:
        return 0, "no encryption (plain backend)"
    if chosen is Scheme.PAILLIER:
        from secquant.backends.paillier.keys import security_bits

        bits = meta.get("key_bits")
        if isinstance(bits, bool) or not isinstance(bits, int):
            raise ConfigError("Paillier client spec lacks an integer key_bits")
        return security_bits(bits), f"a {bits}-bit Paillier modulus"
    return _rlwe_security(meta, chosen)


def client_role_from_spec(scheme: Scheme | str, spec: bytes, floor: SecurityFloor | None = None) -> ClientRole:
    """A client role with fresh keys, built from a spec that meets ``floor``.

    Args:
        scheme: The scheme the spec is for.
        spec: Client spec bytes from the server.
        floor: The client's minimum (default :class:`SecurityFloor()`: 128 bits).

    Raises:
        InsecureParametersError: the spec is below the floor (no key was made).
        ArtifactError, IntegrityError, ConfigError: malformed spec.
    """
    from secquant.backends.compile import client_from_spec
    from secquant.quant.primitives import coerce_enum

    floor = floor or SecurityFloor()
    chosen = coerce_enum(scheme, Scheme, "scheme")
    level, what = spec_security(chosen, spec)
    if level < floor.min_security_bits:
        if not floor.allow_insecure:
            raise InsecureParametersError(
                f"the server's client spec asks for {what}, about {level}-bit security, below this client's "
                f"floor of {floor.min_security_bits} bits; no key was made. A server cannot lower a client's "
                "floor: if you really mean it (a test rig), pass SecurityFloor(allow_insecure=True) or a lower "
                "min_security_bits")
        warnings.warn(f"INSECURE: accepting {what} (about {level}-bit security) because this client set "
                      "allow_insecure=True", InsecureParametersWarning, stacklevel=2)
    if chosen is Scheme.PAILLIER:
        from secquant.backends.paillier.backend import PaillierBackend

        return PaillierBackend.client_from_spec(spec, allow_insecure=floor.allow_insecure)
    return client_from_spec(chosen, spec)
