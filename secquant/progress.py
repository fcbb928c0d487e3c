"""Progress bars for long client-side work (tqdm, imported lazily)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from secquant.backends.base import Progress

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(desc: str, unit: str = "ct", *, disabled: bool = False) -> Iterator[Progress | None]:
    """Yield a ``progress(done, total)`` callback drawing a tqdm bar, or None when disabled.

    The bar closes when the block exits, also on error.
    """
    if disabled:
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in secquant[progress]
        yield None
        return
    bar = tqdm(total=0, desc=desc, unit=unit, leave=False)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
