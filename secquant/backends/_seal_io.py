"""Low-level helpers for the BFV backend: SEAL objects <-> bytes, primes, CRT.

TenSEAL 0.3.18 ships SEAL's own Python bindings (``_sealapi_cpp``) next to
its high-level API.  Those bindings serialize only to file paths, so every
conversion goes through a private scratch directory (mode 0700, on
``/dev/shm`` when it exists, so nothing reaches a disk) that is removed when
the owning role is garbage-collected.

Only this module and :mod:`secquant.backends.bfv_eval` import the bindings;
both are loaded only when the BFV backend is used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from secquant.errors import ConfigError

__all__ = [
    "Scratch",
    "crt_combine",
    "galois_elt",
    "is_prime",
    "primes_1_mod",
    "seal",
]


def seal() -> Any:
    """The SEAL bindings bundled with TenSEAL (imported on first use).

    Raises:
        ConfigError: TenSEAL is not installed (``pip install secquant[he]``).
    """
    try:
        import _sealapi_cpp  # type: ignore[import-not-found]
        import tenseal  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("the BFV backend needs TenSEAL 0.3.18: pip install 'secquant[he]'") from exc
    return _sealapi_cpp


class Scratch:
    """A private directory for SEAL's path-based (de)serialization.

    Files are written with mode 0600 and unlinked right after use; the
    directory is removed when this object is collected.
    """

    def __init__(self) -> None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.path = tempfile.mkdtemp(prefix="secquant-bfv-", dir=base)
        self._lock = threading.Lock()
        self._n = 0
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)

    def _name(self) -> str:
        with self._lock:
            self._n += 1
            return os.path.join(self.path, f"o{os.getpid()}-{self._n}")  # forked workers share the directory

    def dump(self, obj: Any) -> bytes:
        """Bytes of a SEAL object (anything with ``save(path)``)."""
        path = self._name()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        try:
            obj.save(path)
            with open(path, "rb") as fh:
                return fh.read()
        finally:
            os.unlink(path)

    def load(self, obj: Any, context: Any, data: bytes) -> Any:
        """Fill SEAL object ``obj`` from ``data``, validated against ``context``.

        Raises:
            ConfigError: the bytes are not a valid object for these parameters.
        """
        path = self._name()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        try:
            obj.load(context, path)
        except Exception as exc:  # SEAL raises ValueError/RuntimeError/IOError subclasses
            raise ConfigError(f"malformed or mismatched SEAL {type(obj).__name__}: {exc}") from exc
        finally:
            os.unlink(path)
        return obj

    def close(self) -> None:
        """Remove the directory now."""
        self._finalizer()


def galois_elt(step: int, poly_degree: int) -> int:
    """SEAL's Galois element for rotating BFV rows left by ``step`` (0 < step < N/2)."""
    if not 0 < step < poly_degree // 2:
        raise ConfigError(f"rotation step {step} outside (0, {poly_degree // 2})")
    return pow(3, step, 2 * poly_degree)


_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin, exact for n < 3.3e24 (covers every 64-bit n)."""
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def primes_1_mod(modulus: int, bits: int, count: int, exclude: Sequence[int] = ()) -> list[int]:
    """The ``count`` largest primes p < 2**bits with p = 1 mod ``modulus``, skipping ``exclude``.

    Raises:
        ConfigError: fewer than ``count`` such primes have ``bits`` bits.
    """
    found: list[int] = []
    p = ((2**bits - 1) // modulus) * modulus + 1
    if p >= 2**bits:
        p -= modulus
    floor = 2 ** (bits - 1)
    skip = set(exclude)
    while len(found) < count and p > floor:
        if p not in skip and is_prime(p):
            found.append(p)
        p -= modulus
    if len(found) < count:
        raise ConfigError(f"only {len(found)} primes of {bits} bits are 1 mod {modulus}; {count} needed")
    return found


def crt_combine(residues: Sequence[Any], moduli: Sequence[int]) -> Any:
    """Combine residue arrays (object or int64) into one object array mod prod(moduli), exactly."""
    import numpy as np

    total = 1
    for m in moduli:
        total *= int(m)
    acc = np.zeros(np.shape(residues[0]), dtype=object)
    for r, m in zip(residues, moduli):
        m = int(m)
        rest = total // m
        coef = rest * pow(rest, -1, m) % total
        acc = acc + np.asarray(r).astype(object) * coef
    return np.mod(acc, total)
