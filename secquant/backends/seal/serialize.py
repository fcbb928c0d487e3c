"""SEAL objects <-> bytes: the one serializer of the BFV and CKKS backends.

SEAL's Python bindings save and load through file paths only, so every
conversion goes through a private scratch directory: made by ``mkdtemp``
(mode 0700), on ``/dev/shm`` when it is writable (nothing reaches a disk);
each file is created exclusively with mode 0600, named after the process id
and a counter (forked workers share the directory without collisions), and
unlinked right after use.  The process that made the directory removes it at
exit; forked children never do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from secquant.backends.seal.ciphertext import PACKED_MAGIC, unpack
from secquant.errors import ConfigError

__all__ = ["Scratch", "load_seal", "save_seal", "scratch"]

#: What SEAL's ``load`` raises on bytes it refuses.
_SEAL_ERRORS = (ValueError, RuntimeError, TypeError, OSError)


def _remove(path: str, owner: int) -> None:
    if os.getpid() == owner:  # a forked child must not remove its parent's directory
        shutil.rmtree(path, True)


class Scratch:
    """A private directory for SEAL's path-based (de)serialization (see the module docstring)."""

    def __init__(self) -> None:
        shm = "/dev/shm"
        base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
        self.path = tempfile.mkdtemp(prefix="secquant-seal-", dir=base)
        self._lock = threading.Lock()
        self._n = 0
        self._finalizer = weakref.finalize(self, _remove, self.path, os.getpid())

    def _create(self, data: bytes | memoryview = b"") -> str:
        """A new file holding ``data``, created exclusively with mode 0600; its path."""
        with self._lock:
            self._n += 1
            path = os.path.join(self.path, f"o{os.getpid()}-{self._n}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return path

    def dump(self, obj: Any) -> bytes:
        """The bytes of a SEAL object (anything with ``save(path)``)."""
        path = self._create()
        try:
            obj.save(path)
            with open(path, "rb") as fh:
                return fh.read()
        finally:
            os.unlink(path)

    def load(self, obj: Any, context: Any, data: bytes | memoryview, what: str = "") -> Any:
        """Fill SEAL object ``obj`` from ``data``, validated by SEAL against ``context``; returns ``obj``.

        ``data`` may be a packed ciphertext (:func:`~secquant.backends.seal.ciphertext.pack`).

        Raises:
            ConfigError: SEAL refuses the bytes (malformed, or made under other parameters).
        """
        if bytes(data[:4]) == PACKED_MAGIC:
            data = unpack(data)
        path = self._create(data)
        try:
            obj.load(context, path)
        except _SEAL_ERRORS as exc:
            name = what or f"SEAL {type(obj).__name__}"
            raise ConfigError(f"malformed {name}: SEAL rejects it ({exc}); was it made under other "
                              "parameters?") from exc
        finally:
            os.unlink(path)
        return obj

    def transfer(self, src: Any, dst: Any, context: Any) -> Any:
        """Copy a TenSEAL key object into the matching SEAL binding object ``dst``; returns ``dst``.

        Raises:
            ConfigError: the key does not match ``context``.
        """
        path = self._create()
        try:
            src.save(path)
            dst.load(context, path)
        except _SEAL_ERRORS as exc:
            raise ConfigError(f"key material does not match the SEAL parameters: {exc}") from exc
        finally:
            os.unlink(path)
        return dst


_SHARED: Scratch | None = None
_SHARED_LOCK = threading.Lock()


def scratch() -> Scratch:
    """The process's shared :class:`Scratch` (made on first use; forked children keep using it)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = Scratch()
        return _SHARED


def save_seal(objs: Sequence[Any]) -> list[bytes]:
    """The bytes of each SEAL object."""
    io = scratch()
    return [io.dump(obj) for obj in objs]


def load_seal(blobs: Sequence[bytes | memoryview], make: Callable[[], Any], context: Any, what: str) -> list[Any]:
    """SEAL objects made by ``make()`` and filled from ``blobs`` under ``context``.

    Raises:
        ConfigError: a blob is not a valid ``what`` for these parameters.
    """
    io = scratch()
    return [io.load(make(), context, blob, what) for blob in blobs]
