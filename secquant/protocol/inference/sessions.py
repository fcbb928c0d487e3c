"""Sessions of the inference service: public material on disk, server roles in memory.

A session is created by uploading the client's public and evaluation material
once.  The store:

* builds the backend's :class:`~secquant.backends.base.ServerRole` from it
  (which refuses material carrying a secret key);
* writes the material to ``cache_dir/<first 32 hex of SHA-256(session id)>.key``
  as a ``CachedSession`` frame with mode 0600 in a 0700 directory; the session
  id itself is never written to disk;
* keeps at most ``max_live_roles`` server roles in memory (least recently used
  first out) and rebuilds evicted ones from disk;
* expires sessions ``ttl`` seconds after creation (absolute, not sliding) and
  caps the number of live sessions at ``max_sessions``;
* on start, resumes the non-expired sessions of the same fingerprint found in
  the cache directory, so a restarted server keeps its clients' sessions.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secquant.artifact import write_bytes_atomic
from secquant.protocol.errors import MessageError, SessionLimitError, SessionNotFoundError
from secquant.protocol.messages import CACHED_SESSION, Frame, decode_frame, encode_frame, sha256_hex

__all__ = ["Session", "SessionStore"]

log = logging.getLogger("secquant.protocol")


@dataclass
class Session:
    """One live session (the id is known only to the client that created it).

    Attributes:
        key: SHA-256 of the session id, hex.
        created: Unix seconds.
        expires: Unix seconds.
        path: The cache file holding the public material.
        lock: Serializes evaluations within the session.
    """

    key: str
    created: float
    expires: float
    path: Path
    lock: threading.Lock


class SessionStore:
    """Thread-safe session table backed by a cache directory.

    Args:
        cache_dir: Directory for cached public material (created 0700).
        fingerprint: The server's parameter fingerprint; cached sessions of
            other fingerprints are ignored on resume.
        build_role: Maps public material to a server role; raises
            ``KeyMaterialError`` for secret material, ``ConfigError`` for junk.
        ttl: Session lifetime in seconds (> 0).
        max_sessions: Most live sessions (>= 1).
        max_live_roles: Most server roles held in memory (>= 1).
        clock: Time source (Unix seconds), replaceable in tests.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], fingerprint: str, build_role: Callable[[bytes], Any], *,
                 ttl: float = 3600.0, max_sessions: int = 16, max_live_roles: int = 8,
                 clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.fingerprint = fingerprint
        self.build_role = build_role
        self.ttl, self.max_sessions, self.max_live_roles = float(ttl), int(max_sessions), int(max_live_roles)
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._roles: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._resume()

    # -- public API ----------------------------------------------------------
    def create(self, material: bytes) -> tuple[str, Session]:
        """Build the role from ``material``, cache it and return ``(session id, session)``.

        Raises:
            KeyMaterialError: the material carries a secret key.
            ConfigError: the backend cannot read the material.
            SessionLimitError: ``max_sessions`` sessions are live.
        """
        with self._lock:
            self._purge_locked()
            if len(self._sessions) >= self.max_sessions:
                raise SessionLimitError(
                    f"the server holds its maximum of {self.max_sessions} sessions; delete one "
                    f"(DELETE /v1/sessions/{{id}}) or wait for one to expire (ttl {self.ttl:.0f} s)")
        role = self.build_role(material)  # outside the lock: may take seconds
        sid = secrets.token_urlsafe(32)
        key = sha256_hex(sid.encode())
        now = self.clock()
        session = Session(key=key, created=now, expires=now + self.ttl,
                          path=self.dir / f"{key[:32]}.key", lock=threading.Lock())
        frame = Frame(CACHED_SESSION, 1, {"session_hash": key, "created": now, "expires": session.expires,
                                          "fingerprint": self.fingerprint}, material)
        write_bytes_atomic(session.path, encode_frame(frame), mode=0o600)
        with self._lock:
            self._purge_locked()
            if len(self._sessions) >= self.max_sessions:
                session.path.unlink(missing_ok=True)
                raise SessionLimitError(f"the server holds its maximum of {self.max_sessions} sessions")
            self._sessions[key] = session
            self._remember_locked(key, role)
        return sid, session

    def get(self, sid: str) -> tuple[Session, Any]:
        """The session and its server role.

        Raises:
            SessionNotFoundError: unknown, expired or deleted id.
        """
        key = sha256_hex(sid.encode())
        with self._lock:
            self._purge_locked()
            session = self._sessions.get(key)
            if session is None:
                raise SessionNotFoundError("unknown or expired session; create a new one with POST /v1/sessions")
            role = self._roles.get(key)
            if role is not None:
                self._roles.move_to_end(key)
                return session, role
        role = self.build_role(self._material(session))
        with self._lock:
            self._remember_locked(key, role)
        return session, role

    def delete(self, sid: str) -> None:
        """End a session and remove its cached material.

        Raises:
            SessionNotFoundError: unknown, expired or deleted id.
        """
        key = sha256_hex(sid.encode())
        with self._lock:
            session = self._sessions.pop(key, None)
            self._roles.pop(key, None)
        if session is None:
            raise SessionNotFoundError("unknown or expired session")
        session.path.unlink(missing_ok=True)

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

    def _material(self, session: Session) -> bytes:
        try:
            return decode_frame(session.path.read_bytes(), CACHED_SESSION).payload
        except (OSError, MessageError) as exc:
            raise SessionNotFoundError(
                f"the session's cached material is unreadable ({exc}); create a new session") from exc

    def _resume(self) -> None:
        now = self.clock()
        for path in sorted(self.dir.glob("*.key")):
            try:
                meta = decode_frame(path.read_bytes(), CACHED_SESSION).meta
                key, expires = str(meta["session_hash"]), float(meta["expires"])
                same = meta.get("fingerprint") == self.fingerprint and path.name == f"{key[:32]}.key"
            except (OSError, MessageError, KeyError, TypeError, ValueError):
                log.warning("ignoring unreadable session cache file %s", path.name)
                continue
            if expires <= now:
                path.unlink(missing_ok=True)
            elif same and len(self._sessions) < self.max_sessions:
                self._sessions[key] = Session(key, float(meta["created"]), expires, path, threading.Lock())
