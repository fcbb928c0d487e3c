"""Per-token rate limits, query budgets and privacy accounting of the inference service.

* **Rate limit** (token bucket): ``burst`` requests at once, refilled at
  ``rate_per_s``; past it, :class:`RateLimitError` (429, ``Retry-After`` = the
  seconds until the next request would be admitted).  Checked before a body is read.
* **Query budget**: at most ``query_budget`` inputs evaluated per window of
  ``budget_window_s`` seconds (windows aligned to the Unix epoch); past it,
  :class:`QueryBudgetError` (429, ``Retry-After`` = the seconds until the window
  ends).  Inputs are counted in the payload, not as declared.
* **Privacy budget**: under a noisy release policy, each released input costs
  ``rho`` (zCDP, :mod:`~secquant.protocol.inference.release`); a token with
  ``epsilon`` may release inputs while ``ρ + 2·sqrt(ρ ln(1/δ)) <= epsilon``;
  past it, :class:`PrivacyBudgetError` (403: waiting does not restore privacy).

Charges are taken before evaluation and refunded if the evaluation fails (no
result, nothing released).  Usage is kept in ``usage.json`` (mode 0600) in the
server's cache directory, so a restart does not reset budgets or privacy spent.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secquant.artifact import write_bytes_atomic
from secquant.protocol.errors import PrivacyBudgetError, QueryBudgetError, RateLimitError
from secquant.protocol.inference.release import zcdp_budget, zcdp_epsilon
from secquant.protocol.inference.tokens import TokenRecord

__all__ = ["Charge", "QuotaBook"]

log = logging.getLogger("secquant.protocol")


@dataclass
class _Usage:
    window: int = -1
    used: int = 0
    released: int = 0  # inputs released under noise, ever
    bucket: float = -1.0
    refilled: float = 0.0


@dataclass(frozen=True)
class Charge:
    """What one request was charged, for a refund if it fails."""

    token_id: str
    window: int
    inputs: int
    noisy: int


class QuotaBook:
    """Usage of every token, with its limits.

    Args:
        path: ``usage.json`` to persist usage in (None: memory only).
        rho_per_input: zCDP cost of one released input under the release policy (0: not noisy).
        clock: Time source (Unix seconds), replaceable in tests.
    """

    def __init__(self, path: Path | None, rho_per_input: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.rho = float(rho_per_input)
        self.clock = clock
        self._lock = threading.Lock()
        self._usage: dict[str, _Usage] = {}
        if path is not None and path.exists():
            self._load(path)

    # -- checks -----------------------------------------------------------------------
    def admit(self, record: TokenRecord) -> None:
        """Take one request from the token's bucket.

        Raises:
            RateLimitError: the bucket is empty.
        """
        if record.rate_per_s is None:
            return
        now = self.clock()
        with self._lock:
            u = self._usage.setdefault(record.id, _Usage())
            if u.bucket < 0:
                u.bucket, u.refilled = float(record.burst), now
            u.bucket = min(float(record.burst), u.bucket + (now - u.refilled) * record.rate_per_s)
            u.refilled = now
            if u.bucket < 1.0:
                wait = (1.0 - u.bucket) / record.rate_per_s
                raise RateLimitError(f"token {record.id!r} exceeds its rate of {record.rate_per_s:g} requests/s "
                                     f"(burst {record.burst}); retry in {wait:.2f} s", wait)
            u.bucket -= 1.0

    def max_released(self, record: TokenRecord) -> int | None:
        """Most inputs the token may have released under the noisy policy (None: unlimited)."""
        if record.epsilon is None or self.rho <= 0:
            return None
        return math.floor(zcdp_budget(record.epsilon, record.delta) / self.rho + 1e-9)

    def charge(self, record: TokenRecord, inputs: int, noisy: int) -> Charge:
        """Charge ``inputs`` evaluated inputs, ``noisy`` of them released under noise.

        Raises:
            QueryBudgetError: the window's budget would be exceeded.
            PrivacyBudgetError: the privacy budget would be exceeded.
        """
        now = self.clock()
        window = int(now // record.budget_window_s)
        with self._lock:
            u = self._usage.setdefault(record.id, _Usage())
            if u.window != window:
                u.window, u.used = window, 0
            if record.query_budget is not None and u.used + inputs > record.query_budget:
                wait = (window + 1) * record.budget_window_s - now
                raise QueryBudgetError(
                    f"token {record.id!r} has {record.query_budget - u.used} of its {record.query_budget} queries "
                    f"left in this {record.budget_window_s:g} s window and asked for {inputs}; the window ends in "
                    f"{wait:.0f} s", wait)
            cap = self.max_released(record)
            if noisy and cap is not None and u.released + noisy > cap:
                raise PrivacyBudgetError(
                    f"token {record.id!r} has spent its privacy budget: ε={record.epsilon:g} at δ={record.delta:g} "
                    f"allows {cap} released inputs under this release policy, {u.released} are spent and "
                    f"{noisy} more were asked for")
            u.used += inputs
            u.released += noisy
        self._save()
        return Charge(record.id, window, inputs, noisy)

    def refund(self, charge: Charge) -> None:
        """Undo a charge whose evaluation failed (nothing was released)."""
        with self._lock:
            u = self._usage.get(charge.token_id)
            if u is None:
                return
            if u.window == charge.window:
                u.used = max(0, u.used - charge.inputs)
            u.released = max(0, u.released - charge.noisy)
        self._save()

    def report(self, record: TokenRecord) -> dict[str, Any]:
        """Usage of one token: queries in the window, inputs released, ε spent (for ``/v1/admin/tokens``)."""
        now = self.clock()
        with self._lock:
            u = self._usage.get(record.id, _Usage())
            used = u.used if u.window == int(now // record.budget_window_s) else 0
            released = u.released
        return {"queries_in_window": used, "released_under_noise": released,
                "epsilon_spent": zcdp_epsilon(released * self.rho, record.delta) if self.rho else 0.0,
                "released_allowed": self.max_released(record)}

    # -- persistence ------------------------------------------------------------------
    def _save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            data = {k: {"window": u.window, "used": u.used, "released": u.released} for k, u in self._usage.items()}
        write_bytes_atomic(self.path, json.dumps(data, sort_keys=True).encode(), mode=0o600)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            for key, value in data.items():
                self._usage[str(key)] = _Usage(int(value["window"]), int(value["used"]), int(value["released"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable usage file %s (%s): budgets start from zero", path, exc)
