"""Scorers: turn any output type into one float per draw, larger meaning "more like x1".

* :class:`IdentityScorer`: the value itself (scalars) or one coordinate, no fitting;
* :class:`CategoryScorer`: a smoothed per-category (or per non-finite pattern) log
  likelihood ratio, so thresholding it yields the Neyman–Pearson-optimal unions of categories;
* :class:`HistogramScorer`: a binned log likelihood ratio of a scalar (non-monotone
  ratios, wrap-around mod 2^b);
* :class:`LogisticScorer`: an L2-regularized logistic regression on
  ``[finite?, value, value²]`` features, a quadratic log-likelihood-ratio surrogate.

Fitted scorers learn on selection samples only (:mod:`secquant.audit.events`).
Scores are dimensionless log-likelihood-ratio surrogates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from secquant.audit.outputs import row_keys

__all__ = ["CategoryScorer", "HistogramScorer", "IdentityScorer", "LogisticScorer", "Scorer"]

_HIST_BINS = 64
_LOGISTIC_ROWS = 20_000
_FEATURE_CELLS = 1 << 22  # largest feature matrix built at once (32 MiB of float64)


class Scorer(Protocol):
    """Maps outputs to one float score per draw; larger should mean "more like x1"."""

    @property
    def name(self) -> str:
        """What the score is, for reports."""
        ...

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
            return row_keys(np.isfinite(outputs).astype(np.int8))
        return row_keys(outputs)

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
