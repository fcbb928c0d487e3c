"""SEAL objects for one BFV plaintext prime, and the ciphertext operations both slot layouts use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.seal.context import SealScheme, coeff_primes, make_context
from secquant.backends.seal.context import sealapi as seal

__all__ = ["PrimeKit", "accumulate", "finish", "powers", "scalar_mul", "square"]


@dataclass(eq=False)
class PrimeKit:
    """SEAL objects for one plaintext prime t.

    Attributes:
        t: The plaintext prime.
        context: ``seal::SEALContext``.
        encoder: BatchEncoder; ``evaluator``: Evaluator.
        relin, galois, public: Evaluation and public keys (server side), or None.
        encryptor, decryptor: Client side only.
    """

    t: int
    context: Any
    encoder: Any
    evaluator: Any
    relin: Any = None
    galois: Any = None
    public: Any = None
    encryptor: Any = None
    decryptor: Any = None
    _const: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, params: Any, t: int) -> PrimeKit:
        """Context, encoder and evaluator for ``params`` (poly_degree, coeff_bits, security) and prime ``t``.

        Raises:
            ParameterError: SEAL refuses the parameters.
        """
        sa = seal()
        n = params.poly_degree
        ctx = make_context(SealScheme.BFV, n, coeff_primes(n, params.coeff_bits), params.security, int(t))
        return cls(t=int(t), context=ctx, encoder=sa.BatchEncoder(ctx), evaluator=sa.Evaluator(ctx))

    @property
    def slots(self) -> int:
        """Slots per plaintext (= N)."""
        return int(self.encoder.slot_count())

    def constant(self, value: int) -> Any:
        """A plaintext whose every slot is ``value`` mod t (the constant polynomial; cached)."""
        v = int(value) % self.t
        pt = self._const.get(v)
        if pt is None:
            pt = seal().Plaintext(format(v, "X"))
            self._const[v] = pt
        return pt

    def encode(self, values: NDArray[Any]) -> Any:
        """Batch-encode ``values`` (length N, any integers) mod t."""
        pt = seal().Plaintext()
        arr = np.asarray(values)
        if arr.dtype.kind in "iu" and arr.size and int(np.max(np.abs(arr.astype(np.int64)))) < 2**62:
            reduced = np.mod(arr.astype(np.int64), self.t)
        else:
            reduced = np.mod(arr.astype(object), self.t)
        self.encoder.encode(reduced.astype(np.uint64).tolist(), pt)
        return pt

    def encrypt_zero(self) -> Any:
        """A fresh encryption of 0 (public key on the server, secret key on the client)."""
        sa = seal()
        ct = sa.Ciphertext()
        if self.encryptor is None:
            self.encryptor = sa.Encryptor(self.context, self.public)
            self.encryptor.encrypt(sa.Plaintext("0"), ct)
        else:
            self.encryptor.encrypt_symmetric(sa.Plaintext("0"), ct)
        return ct



def accumulate(kit: PrimeKit, total: Any | None, term: Any) -> Any:
    """``total + term`` in place (``term`` itself when there is no total yet)."""
    if total is None:
        return term
    kit.evaluator.add_inplace(total, term)
    return total


def finish(kit: PrimeKit, total: Any | None, plain: Any | None) -> Any:
    """The accumulated sum (an encryption of zero if nothing was added) plus an optional plaintext."""
    if total is None:
        total = kit.encrypt_zero()
    if plain is not None:
        kit.evaluator.add_plain_inplace(total, plain)
    return total


def square(kit: PrimeKit, xs: list[Any]) -> list[Any]:
    """``x * x`` of each ciphertext, relinearized (one multiplication level)."""
    sa, ev = seal(), kit.evaluator
    out = []
    for x in xs:
        y = sa.Ciphertext()
        ev.square(x, y)
        ev.relinearize_inplace(y, kit.relin)
        out.append(y)
    return out


def powers(kit: PrimeKit, x: Any, degree: int) -> list[Any]:
    """[x, x^2, ..., x^degree], x^k = x^(k//2) * x^(k - k//2) (depth ceil(log2 degree))."""
    sa, ev = seal(), kit.evaluator
    powers: list[Any] = [None, x]
    for k in range(2, degree + 1):
        y = sa.Ciphertext()
        ev.multiply(powers[k // 2], powers[k - k // 2], y)
        ev.relinearize_inplace(y, kit.relin)
        powers.append(y)
    return powers


def scalar_mul(kit: PrimeKit, x: Any, c: int, out: Any) -> None:
    """out = c * x for a residue c mod t, multiplying by the centered |c| (SEAL does not center
    constant plaintexts: multiplying by t - 1 instead of negating would grow the noise by t)."""
    ev = kit.evaluator
    c %= kit.t
    if c > kit.t // 2:
        ev.multiply_plain(x, kit.constant(kit.t - c), out)
        ev.negate_inplace(out)
    else:
        ev.multiply_plain(x, kit.constant(c), out)

