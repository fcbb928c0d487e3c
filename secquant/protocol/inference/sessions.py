"""Sessions of the inference service: public material on disk, server roles in memory.

A session is created by uploading the client's public and evaluation material
once.  The store:

* builds the backend's :class:`~secquant.backends.base.ServerRole` from it
  (which refuses material carrying a secret key);
* binds the session to the identity of the token that created it: a session
  of one token is invisible to every other token (404, as for an unknown id);
* writes the material to ``cache_dir/<first 32 hex of SHA-256(session id)>.key``
  as a ``CachedSession`` frame with mode 0600 in a private directory; the
  session id itself is never written to disk.  An existing cache directory
  must already be private (owned by this user, no group or other access):
  :func:`private_dir` refuses any other with :class:`CacheDirError` and never
  changes its mode;
* keeps at most ``max_live_roles`` server roles in memory (least recently used
  first out) and rebuilds evicted ones from disk;
* expires sessions ``ttl`` seconds after creation (absolute, not sliding) and
  caps the number of live sessions at ``max_sessions`` in all and
  ``max_per_owner`` per token;
* on start, resumes the non-expired sessions of the same fingerprint found in
  the cache directory, so a restarted server keeps its clients' sessions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secquant.artifact import write_bytes_atomic
from secquant.protocol.errors import CacheDirError, MessageError, SessionLimitError, SessionNotFoundError
from secquant.protocol.messages import CACHED_SESSION, Frame, decode_frame, encode_frame, sha256_hex

__all__ = ["Session", "SessionStore", "private_dir"]

log = logging.getLogger("secquant.protocol")

_UNKNOWN = "unknown or expired session; create a new one with POST /v1/sessions"


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` with mode 0700, or check that an existing directory is already private.

    The mode of an existing directory is never changed: a directory others can
    read or write may already hold (or be swapped for) files the server must
    not trust, so the operator has to fix it or pick another.

    Raises:
        CacheDirError: not a directory, owned by another user, or with group/other permission bits.
    """
    p = Path(path)
    with contextlib.suppress(FileExistsError):
        p.mkdir(parents=True, mode=0o700)
    info = p.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode):
        raise CacheDirError(f"cache directory {p} exists and is not a directory; pick another --cache-dir")
    if info.st_uid != os.getuid():
        raise CacheDirError(f"cache directory {p} belongs to uid {info.st_uid}, not to this user ({os.getuid()}); "
                            "pick a directory of your own")
    if mode & 0o077:
        raise CacheDirError(f"cache directory {p} has mode {mode:o}: group or others can reach the cached session "
                            f"material. It is left unchanged; run `chmod 700 {p}` yourself or pick another --cache-dir")
    return p


@dataclass
class Session:
    """One live session (the id is known only to the client that created it).

    Attributes:
        key: SHA-256 of the session id, hex.
        created: Unix seconds.
        expires: Unix seconds.
        path: The cache file holding the public material.
        lock: Serializes evaluations within the session.
        owner: Identity of the token that created it ("" without authentication).
    """

    key: str
    created: float
    expires: float
    path: Path
    lock: threading.Lock
    owner: str = ""


class SessionStore:
    """Thread-safe session table backed by a cache directory.

    Args:
        cache_dir: Directory for cached public material: created 0700, or an
            existing private one (see :func:`private_dir`).
        fingerprint: The server's parameter fingerprint; cached sessions of
            other fingerprints are ignored on resume.
        build_role: Maps public material to a server role; raises
            ``KeyMaterialError`` for secret material, ``ConfigError`` for junk.
        ttl: Session lifetime in seconds (> 0).
        max_sessions: Most live sessions (>= 1).
        max_live_roles: Most server roles held in memory (>= 1).
        max_per_owner: Most live sessions of one token (>= 1; default ``max_sessions``).
        clock: Time source (Unix seconds), replaceable in tests.

    Raises:
        CacheDirError: the cache directory exists and is not private.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], fingerprint: str, build_role: Callable[[bytes], Any], *,
                 ttl: float = 3600.0, max_sessions: int = 16, max_live_roles: int = 8, max_per_owner: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.dir = private_dir(cache_dir)
        self.fingerprint = fingerprint
        self.build_role = build_role
        self.ttl, self.max_sessions, self.max_live_roles = float(ttl), int(max_sessions), int(max_live_roles)
        self.max_per_owner = int(max_per_owner) if max_per_owner is not None else self.max_sessions
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._roles: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._resume()

    # -- public API ----------------------------------------------------------
    def create(self, material: bytes, owner: str = "", limit: int | None = None) -> tuple[str, Session]:
        """Build the role from ``material``, cache it and return ``(session id, session)``.

        Args:
            material: The client's public material.
            owner: Identity of the creating token; only it can use the session.
            limit: This owner's session cap (default ``max_per_owner``).

        Raises:
            KeyMaterialError: the material carries a secret key.
            ConfigError: the backend cannot read the material.
            SessionLimitError: ``max_sessions`` sessions are live, or ``limit`` of this owner.
        """
        cap = self.max_per_owner if limit is None else int(limit)
        with self._lock:
            self._check_room_locked(owner, cap)
        role = self.build_role(material)  # outside the lock: may take seconds
        sid = secrets.token_urlsafe(32)
        key = sha256_hex(sid.encode())
        now = self.clock()
        session = Session(key=key, created=now, expires=now + self.ttl,
                          path=self.dir / f"{key[:32]}.key", lock=threading.Lock(), owner=owner)
        frame = Frame(CACHED_SESSION, 1, {"session_hash": key, "created": now, "expires": session.expires,
                                          "fingerprint": self.fingerprint, "owner": owner}, material)
        write_bytes_atomic(session.path, encode_frame(frame), mode=0o600)
        with self._lock:
            try:
                self._check_room_locked(owner, cap)
            except SessionLimitError:
                session.path.unlink(missing_ok=True)
                raise
            self._sessions[key] = session
            self._remember_locked(key, role)
        return sid, session

    def _check_room_locked(self, owner: str, cap: int) -> None:
        self._purge_locked()
        if len(self._sessions) >= self.max_sessions:
            raise SessionLimitError(
                f"the server holds its maximum of {self.max_sessions} sessions; delete one "
                f"(DELETE /v1/sessions/{{id}}) or wait for one to expire (ttl {self.ttl:.0f} s)")
        if sum(1 for s in self._sessions.values() if s.owner == owner) >= cap:
            raise SessionLimitError(
                f"this token already holds its maximum of {cap} sessions; delete one "
                f"(DELETE /v1/sessions/{{id}}) or wait for one to expire (ttl {self.ttl:.0f} s)")

    def get(self, sid: str, owner: str = "") -> tuple[Session, Any]:
        """The session and its server role, if ``owner`` created it.

        Raises:
            SessionNotFoundError: unknown, expired or deleted id, or a session of another token
                (the same answer, so ids of other tokens cannot be probed).
        """
        key = sha256_hex(sid.encode())
        with self._lock:
            self._purge_locked()
            session = self._sessions.get(key)
            if session is None or session.owner != owner:
                raise SessionNotFoundError(_UNKNOWN)
            role = self._roles.get(key)
            if role is not None:
                self._roles.move_to_end(key)
                return session, role
        role = self.build_role(self.material(session))
        with self._lock:
            self._remember_locked(key, role)
        return session, role

    def delete(self, sid: str, owner: str = "") -> None:
        """End a session of ``owner`` and remove its cached material.

        Raises:
            SessionNotFoundError: unknown, expired or deleted id, or a session of another token.
        """
        key = sha256_hex(sid.encode())
        with self._lock:
            session = self._sessions.get(key)
            if session is None or session.owner != owner:
                raise SessionNotFoundError(_UNKNOWN)
            del self._sessions[key]
            self._roles.pop(key, None)
        session.path.unlink(missing_ok=True)

    def count(self, owner: str) -> int:
        """Live sessions of ``owner``."""
        with self._lock:
            self._purge_locked()
            return sum(1 for s in self._sessions.values() if s.owner == owner)

    def material(self, session: Session) -> bytes:
        """The public material ``session`` was created with, read back from its cache file.

        Raises:
            SessionNotFoundError: the cache file is gone or unreadable.
        """
        try:
            return decode_frame(session.path.read_bytes(), CACHED_SESSION).payload
        except (OSError, MessageError) as exc:
            raise SessionNotFoundError(
                f"the session's cached material is unreadable ({exc}); create a new session") from exc

    def __len__(self) -> int:
        with self._lock:
            self._purge_locked()
            return len(self._sessions)

    # -- internals -----------------------------------------------------------
    def _remember_locked(self, key: str, role: Any) -> None:
        self._roles[key] = role
        self._roles.move_to_end(key)
        while len(self._roles) > self.max_live_roles:
            self._roles.popitem(last=False)

    def _purge_locked(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            self._sessions.pop(key).path.unlink(missing_ok=True)
            self._roles.pop(key, None)

    def _resume(self) -> None:
        now = self.clock()
        for path in sorted(self.dir.glob("*.key")):
            try:
                meta = decode_frame(path.read_bytes(), CACHED_SESSION).meta
                key, expires, owner = str(meta["session_hash"]), float(meta["expires"]), str(meta.get("owner", ""))
                same = meta.get("fingerprint") == self.fingerprint and path.name == f"{key[:32]}.key"
            except (OSError, MessageError, KeyError, TypeError, ValueError):
                log.warning("ignoring unreadable session cache file %s", path.name)
                continue
            if expires <= now:
                path.unlink(missing_ok=True)
            elif same and len(self._sessions) < self.max_sessions:
                self._sessions[key] = Session(key, float(meta["created"]), expires, path, threading.Lock(), owner)
