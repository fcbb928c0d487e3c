"""A throughput request split into its slot batches, so that an executor runs them on several workers.

A THROUGHPUT request of B slot batches is B independent evaluations.  The
service (:mod:`~.offload`) hands each batch to the executor as a request of
its own and answers with one result frame, exactly the one the whole request
would have given (the schemes' ``split_batches`` and ``merge_results`` in
:mod:`secquant.backends.bfv.wire` and :mod:`secquant.backends.ckks.wire`).
A request whose header does not match its contents is not split: the server
role refuses it whole, with the error it would give in process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from secquant.backends.base import Scheme

__all__ = ["BatchSplit"]


@dataclass(frozen=True)
class BatchSplit:
    """How the requests of one served model split into slot batches.

    Attributes:
        scheme: BFV or CKKS (anything else is never split).
        features: Input ciphertexts per batch (per CRT prime under BFV; CKKS may pair features).
        slots: Inputs per batch.
    """

    scheme: Scheme
    features: int
    slots: int

    @classmethod
    def of(cls, em: Any) -> BatchSplit:
        """The split of a compiled model's THROUGHPUT requests."""
        return cls(em.scheme, em.backend.request_ciphertexts(), int(em.backend.batch_size() or 0))

    def split(self, payload: bytes) -> tuple[int, Iterator[bytes]]:
        """``(parts, requests of one batch each)``; ``(1, [payload])`` when there is nothing to split."""
        if self.slots < 1 or self.features < 1:
            return 1, iter([payload])
        if self.scheme is Scheme.BFV:
            from secquant.backends.bfv.wire import split_batches
        elif self.scheme is Scheme.CKKS:
            from secquant.backends.ckks.wire import split_batches
        else:
            return 1, iter([payload])
        return split_batches(payload, self.features, self.slots)

    def merge(self, results: list[bytes]) -> bytes:
        """The result of the whole request from its parts' results, in order.

        Raises:
            ConfigError: results that do not belong together.
        """
        if len(results) == 1:
            return results[0]
        if self.scheme is Scheme.BFV:
            from secquant.backends.bfv.wire import merge_results
        else:
            from secquant.backends.ckks.wire import merge_results
        return merge_results(results)
