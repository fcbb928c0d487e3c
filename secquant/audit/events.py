"""Event (witness) search for auditing: turn any output type into a score, then threshold it.

An event is ``S = {y : score(y) > t}`` or ``{y : score(y) <= t}`` for a
*scorer* fitted on selection samples only.  Scorers cover every output type:

* scalars: the raw value (thresholds in both tails), a binned likelihood ratio
  (non-monotone ratios, wrap-around mod 2^b) and, for few distinct values, a
  per-value likelihood ratio;
* categorical and pattern outputs (rows of bits/small integers, strings): a
  smoothed per-category likelihood ratio, so thresholding it yields the
  Neyman–Pearson-optimal unions of categories;
* vectors: a learned classifier (L2-regularized logistic regression on
  ``[finite?, value, value²]`` features, i.e. a quadratic log-likelihood ratio)
  plus each coordinate on its own and the pattern of non-finite entries.

Rare events are not ignored: candidate thresholds run down to a single
selection sample in each tail (geometric grid), and candidates are ranked by the
Clopper–Pearson bound they would give at the estimation sample size (on two
independent parts of the selection samples; the worse of the two counts), so an
event of probability 10^-4 wins when its likelihood ratio is large enough.  There is
no ``ln(1/c)`` cap from a minimum event probability ``c``.

Nothing here sees estimation samples: :func:`select_event` gets the selection
split only.  Units: scores are dimensionless log-likelihood-ratio surrogates.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from secquant.audit.estimators import clopper_pearson_lower, clopper_pearson_upper, epsilon_from_rates
from secquant.errors import ConfigError

__all__ = [
    "CandidateEvent",
    "CategoryScorer",
    "HistogramScorer",
    "IdentityScorer",
    "LogisticScorer",
    "OutputKind",
    "Scorer",
    "Tail",
    "as_outputs",
    "infer_kind",
    "select_event",
]

_MAX_COLUMNS = 8  # coordinates tried one by one for vector outputs
_HIST_BINS = 64
_MAX_CATEGORIES = 4096  # scalars with at most this many distinct values also get a per-value scorer
_GRID = 300  # thresholds per tail on the geometric grid
_LOGISTIC_ROWS = 20_000
_FEATURE_CELLS = 1 << 22  # largest feature matrix built at once (32 MiB of float64)


class OutputKind(enum.Enum):
    """How a mechanism's outputs are treated."""

    SCALAR = "scalar"  #: one number per draw
    CATEGORICAL = "categorical"  #: a category, a string, or a row of few distinct integer patterns
    VECTOR = "vector"  #: a real vector per draw (non-finite entries allowed as markers)


class Tail(enum.Enum):
    """Which side of the threshold the event is."""

    UPPER = "upper"  #: S = {score > t}
    LOWER = "lower"  #: S = {score <= t}


def as_outputs(out: Any, n: int) -> NDArray[Any]:
    """Validate a mechanism's return value and shape it as ``(n,)`` or ``(n, d)``.

    Booleans become int8; trailing dimensions are flattened.

    Raises:
        ConfigError: not an array of ``n`` outputs along axis 0, or empty rows.
    """
    arr = np.asarray(out)
    if arr.ndim == 0 or arr.shape[0] != n:
        shape = "a scalar" if arr.ndim == 0 else f"shape {arr.shape}"
        raise ConfigError(
            f"mechanism returned {shape} but was asked for n={n} outputs; it must return an array "
            "with n outputs along axis 0"
        )
    if arr.dtype == bool:
        arr = arr.astype(np.int8)
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    if arr.ndim > 2 or (arr.ndim == 2 and arr.dtype.kind in "US"):
        if arr.dtype.kind in "US":
            raise ConfigError("string outputs must be one string per draw (a 1-D array)")
        arr = arr.reshape(n, -1)
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ConfigError("mechanism returned empty outputs")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr


def _integral(arr: NDArray[Any]) -> bool:
    if arr.dtype.kind in "iub":
        return True
    if arr.dtype.kind != "f":
        return False
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def infer_kind(out0: NDArray[Any], out1: NDArray[Any]) -> OutputKind:
    """Classify outputs (from :func:`as_outputs`) as scalar, categorical or vector."""
    if out0.dtype.kind in "US" or out1.dtype.kind in "US":
        return OutputKind.CATEGORICAL
    if out0.ndim == 1:
        return OutputKind.SCALAR
    pooled = np.concatenate([out0, out1])
    if _integral(pooled) and np.unique(_row_keys(pooled)).size <= pooled.shape[0] // 2:
        return OutputKind.CATEGORICAL
    return OutputKind.VECTOR


def _row_keys(arr: NDArray[Any]) -> NDArray[Any]:
    """One sortable key per draw (the value itself for 1-D, the row's bytes for 2-D)."""
    if arr.ndim == 1:
        return arr
    rows = np.ascontiguousarray(arr)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


class Scorer(Protocol):
    """Maps outputs to one float score per draw; larger should mean "more like x1"."""

    name: str

    def score(self, outputs: NDArray[Any]) -> NDArray[np.float64]:
        """Scores, shape ``(n,)``."""
        ...


@dataclass(frozen=True)
class IdentityScorer:
    """The output itself (scalars) or one coordinate of a vector; needs no fitting."""

    column: int | None = None

    @property
    def name(self) -> str:
        return "value" if self.column is None else f"coordinate[{self.column}]"

    def score(self, outputs: NDArray[Any]) -> NDArray[np.float64]:
        col = outputs if self.column is None else outputs[:, self.column]
        return np.nan_to_num(np.asarray(col, dtype=np.float64), nan=-np.inf)


def _smoothed_log_ratio(c1: NDArray[Any], m1: int, c0: NDArray[Any], m0: int) -> NDArray[np.float64]:
    return np.log((c1 + 0.5) / (m1 + 1.0)) - np.log((c0 + 0.5) / (m0 + 1.0))


@dataclass(frozen=True)
class CategoryScorer:
    """Smoothed log ratio of per-category frequencies; unseen categories score 0.

    Attributes:
        keys: Sorted distinct keys seen while fitting.
        log_ratio: ``log((c1 + 1/2)/m1) - log((c0 + 1/2)/m0)`` per key.
        transform: ``"raw"`` (the outputs are the categories) or ``"finite_mask"``
            (the category is the pattern of finite entries of a vector).
    """

    keys: NDArray[Any]
    log_ratio: NDArray[np.float64]
    transform: str = "raw"

    @property
    def name(self) -> str:
        return "category likelihood ratio" if self.transform == "raw" else "finite-pattern likelihood ratio"

    @staticmethod
    def _keys_of(outputs: NDArray[Any], transform: str) -> NDArray[Any]:
        if transform == "finite_mask":
            return _row_keys(np.isfinite(outputs).astype(np.int8))
        return _row_keys(outputs)

    @classmethod
    def fit(cls, out0: NDArray[Any], out1: NDArray[Any], transform: str = "raw") -> CategoryScorer:
        """Fit on selection outputs of x0 and x1."""
        k0, k1 = cls._keys_of(out0, transform), cls._keys_of(out1, transform)
        keys, inverse = np.unique(np.concatenate([k0, k1]), return_inverse=True)
        inverse = inverse.ravel()
        c0 = np.bincount(inverse[: k0.size], minlength=keys.size)
        c1 = np.bincount(inverse[k0.size :], minlength=keys.size)
        return cls(keys, _smoothed_log_ratio(c1, k1.size, c0, k0.size), transform)

    def score(self, outputs: NDArray[Any]) -> NDArray[np.float64]:
        keys = self._keys_of(outputs, self.transform)
        table = self.keys
        if keys.dtype != table.dtype:
            try:
                common = np.promote_types(table.dtype, keys.dtype)
                table, keys = table.astype(common), keys.astype(common)
            except (TypeError, ValueError):
                return np.zeros(keys.shape[0])
        pos = np.clip(np.searchsorted(table, keys), 0, table.size - 1)
        hit = table[pos] == keys
        return np.where(hit, self.log_ratio[pos], 0.0)


@dataclass(frozen=True)
class HistogramScorer:
    """Binned log likelihood ratio of a scalar; bins are quantiles of the pooled fitting samples."""

    edges: NDArray[np.float64]
    log_ratio: NDArray[np.float64]
    name: str = "binned likelihood ratio"

    @classmethod
    def fit(cls, out0: NDArray[Any], out1: NDArray[Any], bins: int = _HIST_BINS) -> HistogramScorer:
        """Fit on selection outputs of x0 and x1 (1-D)."""
        y0, y1 = np.asarray(out0, dtype=np.float64), np.asarray(out1, dtype=np.float64)
        pooled = np.concatenate([y0, y1])
        pooled = pooled[np.isfinite(pooled)]
        edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)[1:-1])) if pooled.size else np.zeros(0)
        c0 = np.bincount(np.searchsorted(edges, y0, side="right"), minlength=edges.size + 1)
        c1 = np.bincount(np.searchsorted(edges, y1, side="right"), minlength=edges.size + 1)
        return cls(edges, _smoothed_log_ratio(c1, y1.size, c0, y0.size))

    def score(self, outputs: NDArray[Any]) -> NDArray[np.float64]:
        y = np.asarray(outputs, dtype=np.float64)
        return self.log_ratio[np.searchsorted(self.edges, y, side="right")]


@contextlib.contextmanager
def _single_blas_thread() -> Iterator[None]:
    """Run small BLAS products on one thread: on a shared 2-core machine the
    default thread pool oversubscribes and runs about 4x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _features(outputs: NDArray[Any]) -> NDArray[np.float64]:
    y = np.asarray(outputs, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    finite = np.isfinite(y)
    v = np.where(finite, y, 0.0)
    return np.concatenate([finite.astype(np.float64), v, v * v], axis=1)


@dataclass(frozen=True)
class LogisticScorer:
    """Log-odds of an L2-regularized logistic regression on ``[finite?, y, y²]`` features.

    A quadratic surrogate of the log likelihood ratio ``log p1(y)/p0(y)``; fitted
    with :func:`scipy.optimize.minimize` (L-BFGS-B).
    """

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    weights: NDArray[np.float64]
    name: str = "logistic classifier"

    @classmethod
    def fit(
        cls, out0: NDArray[Any], out1: NDArray[Any], rng: np.random.Generator, l2: float = 1e-3
    ) -> LogisticScorer:
        """Fit on a subsample (at most 20,000 rows per side, fewer for wide outputs) of the selection outputs."""
        width = 3 * max(1, int(np.prod(out0.shape[1:])))
        rows = max(1000, min(_LOGISTIC_ROWS, _FEATURE_CELLS // width))
        parts = []
        for out in (out0, out1):
            idx = rng.permutation(out.shape[0])[:rows]
            parts.append(_features(out[idx]))
        x = np.concatenate(parts)
        labels = np.concatenate([np.zeros(parts[0].shape[0]), np.ones(parts[1].shape[0])])
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 1e-12, scale, np.inf)  # constant features drop out
        z = np.concatenate([(x - mean) / scale, np.ones((x.shape[0], 1))], axis=1)
        sign = 2.0 * labels - 1.0

        def loss(w: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            margin = sign * (z @ w)
            value = np.logaddexp(0.0, -margin).mean() + 0.5 * l2 * float(w[:-1] @ w[:-1])
            grad_coef = -sign * np.exp(-np.logaddexp(0.0, margin)) / z.shape[0]
            grad = z.T @ grad_coef
            grad[:-1] += l2 * w[:-1]
            return float(value), grad

        with _single_blas_thread():
            res = optimize.minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 100})
        return cls(mean, scale, np.asarray(res.x, dtype=np.float64))

    def score(self, outputs: NDArray[Any]) -> NDArray[np.float64]:
        step = max(1, _FEATURE_CELLS // self.mean.size)
        out = np.empty(outputs.shape[0])
        with _single_blas_thread():
            for start in range(0, outputs.shape[0], step):
                z = (_features(outputs[start : start + step]) - self.mean) / self.scale
                out[start : start + step] = z @ self.weights[:-1] + self.weights[-1]
        return out


@dataclass(frozen=True)
class CandidateEvent:
    """A thresholded score chosen on selection samples.

    Attributes:
        scorer: The fitted scorer.
        tail: UPPER (``score > threshold``) or LOWER (``score <= threshold``).
        threshold: The threshold on the score.
        selection_epsilon: The projected ε bound that ranked this event (the worse of
            two selection parts; not itself a confidence bound).
        selection_counts: ``(count1, m1, count0, m0)`` summed over the ranking parts.
    """

    scorer: Scorer
    tail: Tail
    threshold: float
    selection_epsilon: float
    selection_counts: tuple[int, int, int, int]

    def contains(self, outputs: NDArray[Any]) -> NDArray[np.bool_]:
        """Membership of each output in the event."""
        s = self.scorer.score(outputs)
        return s > self.threshold if self.tail is Tail.UPPER else s <= self.threshold

    def describe(self) -> str:
        """A one-line description such as ``value > 1.002``."""
        op = ">" if self.tail is Tail.UPPER else "<="
        return f"{self.scorer.name} {op} {self.threshold:.6g}"

    def describe_complement(self) -> str:
        """The complement event, used for the reverse direction."""
        op = "<=" if self.tail is Tail.UPPER else ">"
        return f"{self.scorer.name} {op} {self.threshold:.6g}"


def _threshold_grid(pooled_sorted_unique: NDArray[np.float64]) -> NDArray[np.float64]:
    u = pooled_sorted_unique
    if u.size <= 2 * _GRID + 400:
        return u
    geo = np.unique(np.geomspace(1, u.size // 2, _GRID).astype(np.int64)) - 1
    lin = np.linspace(0, u.size - 1, 400).astype(np.int64)
    idx = np.unique(np.concatenate([geo, u.size - 1 - geo, lin]))
    return u[idx]


def _projected(
    k1: NDArray[np.int64], m1: int, k0: NDArray[np.int64], m0: int,
    n_estimate: int, delta: float, alpha: float, selection_alpha: float,
) -> NDArray[np.float64]:
    """The ε bound that counts seen on ``m`` selection draws promise at ``n_estimate`` draws.

    The selection rates are shrunk by one-sided Clopper–Pearson bounds at
    ``selection_alpha`` (default 0.25: ``k0 = 0`` counts as about 1.4
    occurrences) and then scaled to the estimation size, where the final bounds
    at ``alpha`` are applied.  The shrinkage trades sensitivity to very rare
    events against the winner's curse of searching many thresholds: with 10^6
    draws per input a leak of probability 3·10^-4 is found at every seed tried,
    one of 10^-4 rarely.
    """
    p1 = np.asarray(clopper_pearson_lower(k1, m1, selection_alpha))
    p0 = np.asarray(clopper_pearson_upper(k0, m0, selection_alpha))
    c1 = np.asarray(clopper_pearson_lower(p1 * n_estimate, n_estimate, alpha))
    c0 = np.asarray(clopper_pearson_upper(p0 * n_estimate, n_estimate, alpha))
    return np.asarray(epsilon_from_rates(c1, c0, delta))


def _rank_thresholds(
    parts: list[tuple[NDArray[np.float64], NDArray[np.float64]]],
    n_estimate: int,
    delta: float,
    alpha: float,
    selection_alpha: float,
) -> tuple[float, Tail, float, tuple[int, int, int, int]]:
    """Best threshold and tail for one scorer.

    ``parts`` are independent ``(scores under x0, scores under x1)`` samples.
    A threshold is worth its *smallest* projected bound over the parts, so an
    event has to look good on every part independently: a tail that looks
    extreme by chance on one part (the winner's curse of searching many
    thresholds) rarely does on another, while a real rare leak does.
    """
    sorted_parts = [(np.sort(s0), np.sort(s1)) for s0, s1 in parts]
    pooled = np.unique(np.concatenate([np.concatenate(p) for p in sorted_parts]))
    pooled = pooled[np.isfinite(pooled) | (pooled == -np.inf)]
    t = _threshold_grid(pooled)
    if t.size == 0:
        return 0.0, Tail.UPPER, 0.0, (0, 0, 0, 0)
    best = (-1.0, Tail.UPPER, float(t[0]), (0, 0, 0, 0))
    for tail in (Tail.UPPER, Tail.LOWER):
        worst = np.full(t.size, np.inf)
        totals = np.zeros((4, t.size), dtype=np.int64)
        for s0, s1 in sorted_parts:
            k1 = s1.size - np.searchsorted(s1, t, side="right")
            k0 = s0.size - np.searchsorted(s0, t, side="right")
            if tail is Tail.LOWER:
                k1, k0 = s1.size - k1, s0.size - k0
            eps = _projected(k1, s1.size, k0, s0.size, n_estimate, delta, alpha, selection_alpha)
            worst = np.minimum(worst, eps)
            totals += np.stack([k1, np.full(t.size, s1.size), k0, np.full(t.size, s0.size)])
        i = int(np.argmax(worst))
        if worst[i] > best[0]:
            best = (float(worst[i]), tail, float(t[i]), tuple(int(v) for v in totals[:, i]))  # type: ignore[assignment]
    return best


def _scorers(
    kind: OutputKind, fit0: NDArray[Any], fit1: NDArray[Any], rng: np.random.Generator
) -> tuple[list[Scorer], list[Scorer]]:
    """(scorers needing no fit, scorers fitted on ``fit0``/``fit1``)."""
    free: list[Scorer] = []
    fitted: list[Scorer] = []
    if kind is OutputKind.SCALAR:
        free.append(IdentityScorer())
        pooled = np.concatenate([fit0, fit1]).astype(np.float64)
        distinct = np.unique(pooled[np.isfinite(pooled)]).size
        if distinct <= _MAX_CATEGORIES and _integral(pooled[np.isfinite(pooled)]):
            fitted.append(CategoryScorer.fit(fit0, fit1))
        if distinct > 2:
            fitted.append(HistogramScorer.fit(fit0, fit1))
        return free, fitted
    if kind is OutputKind.CATEGORICAL:
        fitted.append(CategoryScorer.fit(fit0, fit1))
        if fit0.ndim == 2:
            fitted.append(LogisticScorer.fit(fit0, fit1, rng))
        return free, fitted
    free.extend(IdentityScorer(j) for j in range(min(fit0.shape[1], _MAX_COLUMNS)))
    fitted.append(LogisticScorer.fit(fit0, fit1, rng))
    if not (np.all(np.isfinite(fit0)) and np.all(np.isfinite(fit1))):
        fitted.append(CategoryScorer.fit(fit0, fit1, transform="finite_mask"))
    return free, fitted


def select_event(
    kind: OutputKind,
    out0: NDArray[Any],
    out1: NDArray[Any],
    *,
    n_estimate: int,
    delta: float,
    alpha: float,
    rng: np.random.Generator,
    selection_alpha: float = 0.25,
) -> CandidateEvent:
    """Choose the event that promises the largest ε lower bound, from selection samples only.

    Scorers without parameters rank thresholds on two halves of the selection
    samples; fitted scorers learn on the first third and rank on the other two.
    A threshold counts with its worse projected bound over the two ranking
    parts, which guards against picking a tail that only looks extreme by chance.

    Args:
        kind: Output kind from :func:`infer_kind`.
        out0: Selection outputs under x0, shape ``(m,)`` or ``(m, d)``.
        out1: Selection outputs under x1.
        n_estimate: Estimation draws per side that the event will be evaluated on.
        delta: δ of the claim, in [0, 1).
        alpha: One-sided level of the final Clopper–Pearson bounds, in (0, 1).
        rng: Randomness for subsampling inside classifiers.
        selection_alpha: Shrinkage of selection rates before projecting, in (0, 1).

    Returns:
        The chosen :class:`CandidateEvent`.

    Raises:
        ConfigError: fewer than 2 selection samples per side.
    """
    m0, m1 = out0.shape[0], out1.shape[0]
    if min(m0, m1) < 6:
        raise ConfigError("event selection needs at least 6 selection samples per side; raise samples")
    h0, h1 = m0 // 2, m1 // 2
    t0, t1 = m0 // 3, m1 // 3
    free, fitted = _scorers(kind, out0[:t0], out1[:t1], rng)
    plans: list[tuple[Scorer, list[tuple[NDArray[Any], NDArray[Any]]]]] = []
    for scorer in free:  # no parameters: two halves
        plans.append((scorer, [(out0[:h0], out1[:h1]), (out0[h0:], out1[h1:])]))
    for scorer in fitted:  # fitted on the first third: the other two thirds
        plans.append((scorer, [(out0[t0 : 2 * t0], out1[t1 : 2 * t1]), (out0[2 * t0 :], out1[2 * t1 :])]))
    best: CandidateEvent | None = None
    for scorer, parts in plans:
        scored = [(scorer.score(a0), scorer.score(a1)) for a0, a1 in parts]
        eps, tail, thr, counts = _rank_thresholds(scored, n_estimate, delta, alpha, selection_alpha)
        if best is None or eps > best.selection_epsilon:
            best = CandidateEvent(scorer, tail, thr, eps, counts)
    if best is None:  # pragma: no cover - free or fitted is never empty
        raise ConfigError("no event could be formed from these outputs")
    if math.isnan(best.threshold):
        raise ConfigError("scores are NaN; the mechanism returned unusable outputs")
    return best
