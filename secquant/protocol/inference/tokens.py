"""Bearer tokens of the inference service: identities, scopes, limits; stored as hashes only.

A token is a random secret (``secrets.token_urlsafe(32)``: 256 bits).  The
server keeps a :class:`TokenRecord` per token and never the token itself: the
record holds ``sha256(token)`` in hex, and a presented token is hashed and
compared with :func:`hmac.compare_digest`.  SHA-256 (not a slow hash such as
scrypt) is enough because tokens are 256-bit random strings, never passwords:
nothing short enough to guess exists to be brute-forced from the hash.

Token file (``secquant serve --tokens FILE``): JSON lines, one record each,
``#`` comments and blank lines ignored::

    {"id": "alice", "scopes": ["infer"], "sha256": "<64 hex>",
     "query_budget": 1000, "budget_window_s": 86400,
     "rate_per_s": 2.0, "burst": 10, "epsilon": 4.0, "delta": 1e-6, "max_sessions": 2}

Only ``id``, ``scopes`` and ``sha256`` are required; see :class:`TokenRecord`.
``secquant tokens new`` writes a record and the token (mode 0600).  The file
holds no secret but decides who may do what, so :meth:`TokenTable.from_file`
refuses one that group or others can write.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError
from secquant.protocol.errors import AuthenticationError, ScopeError
from secquant.quant.primitives import coerce_enum

__all__ = ["Scope", "TokenRecord", "TokenTable", "hash_token", "new_token", "read_token_file"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: Shortest token accepted (characters); ``secrets.token_urlsafe(32)`` gives 43.
MIN_TOKEN_CHARS = 16


class Scope(enum.Enum):
    """What a token may do."""

    INFER = "infer"  #: info, client spec, sessions, evaluate
    ADMIN = "admin"  #: per-token usage (``GET /v1/admin/tokens``)


def hash_token(token: str) -> str:
    """``sha256(token)`` in lower-case hex: what the server stores.

    Raises:
        ConfigError: not a string of at least 16 characters.
    """
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"a bearer token must be a string of at least {MIN_TOKEN_CHARS} characters "
                          "(use secrets.token_urlsafe(32) or `secquant tokens new`)")
    return hashlib.sha256(token.encode()).hexdigest()


def _optional(value: Any, name: str, kind: type, low: float, *, open_low: bool = False) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise ConfigError(f"token field {name} must be a {kind.__name__} or null, got {value!r}")
    if not math.isfinite(float(value)) or (value <= low if open_low else value < low):
        raise ConfigError(f"token field {name} must be {'>' if open_low else '>='} {low}, got {value!r}")
    return kind(value)


@dataclass(frozen=True)
class TokenRecord:
    """One token as the server knows it: identity, scopes, limits and the hash.

    Attributes:
        id: Identity (1-64 of ``A-Za-z0-9_.@-``, starting alphanumeric); sessions
            and usage are per id.
        scopes: Subset of :class:`Scope`.
        sha256: ``sha256(token)``, 64 lower-case hex digits.
        query_budget: Inputs the token may have evaluated per window (None: no budget).
        budget_window_s: Length of the budget window in seconds (> 0; default one day).
        rate_per_s: Sustained requests per second (token bucket; None: no rate limit).
        burst: Requests admitted at once before the rate applies (>= 1).
        epsilon: Privacy budget (ε, nats) under a noisy release policy (None: no budget).
        delta: δ at which ``epsilon`` is stated (in (0, 1)).
        max_sessions: Live sessions of this token (None: the server's ``max_sessions_per_token``).

    Raises:
        ConfigError: a field out of range.
    """

    id: str
    scopes: frozenset[Scope]
    sha256: str = field(repr=False)
    query_budget: int | None = None
    budget_window_s: float = 86400.0
    rate_per_s: float | None = None
    burst: int = 10
    epsilon: float | None = None
    delta: float = 1e-6
    max_sessions: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ConfigError(f"token id must be 1-64 characters of A-Za-z0-9_.@- (starting alphanumeric), "
                              f"got {self.id!r}")
        if isinstance(self.scopes, (str, Scope)) or not isinstance(self.scopes, Iterable):
            raise ConfigError(f"scopes must be a list of {[s.value for s in Scope]}, got {self.scopes!r}")
        scopes = frozenset(coerce_enum(s, Scope, "scope") for s in self.scopes)
        if not scopes:
            raise ConfigError(f"token {self.id!r} has no scope; give infer and/or admin")
        object.__setattr__(self, "scopes", scopes)
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise ConfigError(f"token {self.id!r}: sha256 must be 64 lower-case hex digits")
        object.__setattr__(self, "query_budget", _optional(self.query_budget, "query_budget", int, 0))
        object.__setattr__(self, "budget_window_s", _optional(self.budget_window_s, "budget_window_s", float, 0,
                                                              open_low=True))
        object.__setattr__(self, "rate_per_s", _optional(self.rate_per_s, "rate_per_s", float, 0, open_low=True))
        object.__setattr__(self, "burst", _optional(self.burst, "burst", int, 1))
        object.__setattr__(self, "epsilon", _optional(self.epsilon, "epsilon", float, 0, open_low=True))
        delta = _optional(self.delta, "delta", float, 0, open_low=True)
        if delta is None or not delta < 1:
            raise ConfigError(f"token field delta must lie in (0, 1), got {self.delta!r}")
        object.__setattr__(self, "delta", delta)
        object.__setattr__(self, "max_sessions", _optional(self.max_sessions, "max_sessions", int, 1))

    def require(self, scope: Scope) -> None:
        """Raise :class:`ScopeError` unless the token has ``scope``."""
        if scope not in self.scopes:
            raise ScopeError(f"token {self.id!r} lacks the {scope.value!r} scope this endpoint needs")

    def to_json(self) -> dict[str, Any]:
        """The JSON line of the token file."""
        out: dict[str, Any] = {"id": self.id, "scopes": sorted(s.value for s in self.scopes), "sha256": self.sha256}
        for name in ("query_budget", "budget_window_s", "rate_per_s", "burst", "epsilon", "delta", "max_sessions"):
            value = getattr(self, name)
            if value is not None and value != getattr(TokenRecord, name, None):
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Any) -> TokenRecord:
        """Inverse of :meth:`to_json`.

        Raises:
            ConfigError: not an object, unknown or missing fields, or a value out of range.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a token record must be a JSON object, got {type(data).__name__}")
        known = {"id", "scopes", "sha256", "query_budget", "budget_window_s", "rate_per_s", "burst", "epsilon",
                 "delta", "max_sessions"}
        extra, missing = set(data) - known, {"id", "scopes", "sha256"} - set(data)
        if extra or missing:
            raise ConfigError(f"token record: unknown fields {sorted(extra)}, missing {sorted(missing)}")
        return cls(**data)

    def public(self) -> dict[str, Any]:
        """What an admin may see: everything but the hash."""
        out = self.to_json()
        out.pop("sha256")
        return out


class TokenTable:
    """The tokens a server accepts, indexed by hash.

    Args:
        records: The records; ids and hashes must be unique.

    Raises:
        ConfigError: a duplicate id or hash.
    """

    def __init__(self, records: Iterable[TokenRecord]) -> None:
        self._by_hash: dict[str, TokenRecord] = {}
        self._by_id: dict[str, TokenRecord] = {}
        for record in records:
            if record.id in self._by_id or record.sha256 in self._by_hash:
                raise ConfigError(f"token id {record.id!r} or its hash appears twice")
            self._by_hash[record.sha256] = record
            self._by_id[record.id] = record

    @classmethod
    def single(cls, token: str, *, token_id: str = "default") -> TokenTable:
        """One token with every scope and no limits (``secquant serve --token-file`` / ``$SECQUANT_TOKEN``)."""
        return cls([TokenRecord(token_id, frozenset(Scope), hash_token(token))])

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TokenTable:
        """Read a JSON-lines token file.

        Raises:
            ConfigError: group/other-writable file, malformed line, or duplicates.
            FileNotFoundError: no such file.
        """
        p = Path(path)
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o022:
            raise ConfigError(f"token file {p} has mode {mode:o}: others could add tokens. Run: chmod go-w {p}")
        records = []
        for number, line in enumerate(p.read_text().splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                records.append(TokenRecord.from_json(json.loads(text)))
            except (ValueError, RecursionError) as exc:
                raise ConfigError(f"{p}:{number}: {exc}") from None
        if not records:
            raise ConfigError(f"token file {p} holds no token")
        return cls(records)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Any:
        return iter(self._by_id.values())

    def authenticate(self, authorization: str | None) -> TokenRecord:
        """The record of the token in an ``Authorization: Bearer <token>`` header.

        The presented token is hashed; the lookup is by hash (its timing can
        only reveal bits of a SHA-256 the attacker chose) and the match is
        confirmed with :func:`hmac.compare_digest`.

        Raises:
            AuthenticationError: header missing, not a bearer token, or unknown token.
        """
        if not authorization:
            raise AuthenticationError("missing 'Authorization: Bearer <token>' header")
        scheme, _, presented = authorization.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
        digest = hashlib.sha256(presented.encode()).hexdigest()
        record = self._by_hash.get(digest)
        if record is None or not hmac.compare_digest(record.sha256, digest):
            raise AuthenticationError("wrong bearer token")
        return record


def new_token(token_id: str, scopes: Iterable[Scope | str] = (Scope.INFER,), **limits: Any) -> tuple[str, TokenRecord]:
    """A fresh 256-bit token (from :mod:`secrets`) and its record.

    Raises:
        ConfigError: invalid id, scopes or limits.
    """
    token = secrets.token_urlsafe(32)
    return token, TokenRecord(token_id, frozenset(coerce_enum(s, Scope, "scope") for s in scopes),
                              hash_token(token), **limits)


def read_token_file(path: str | os.PathLike[str]) -> str:
    """A single bearer token from a file (first line, stripped), refusing one others can read.

    Raises:
        ConfigError: the file is readable by group or others, or holds no token.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"token file {p} has mode {mode:o}; others can read the token. Run: chmod 600 {p}")
    lines = p.read_text().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"token file {p} is empty")
    return token
