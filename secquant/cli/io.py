"""Reading arrays for the command line: ``.npy``/``.npz`` without pickle, or a built-in data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError, ConfigError

__all__ = ["load_array", "load_inputs"]


def load_array(path: str | Path, key: str = "x") -> NDArray[np.float64]:
    """Load a float array from ``.npy``, or entry ``key`` (else the only entry) of ``.npz``.

    Raises:
        ArtifactError: unreadable, pickled, or ambiguous file.
    """
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {p} as .npy/.npz without pickle: {exc}") from exc
    if isinstance(data, np.ndarray):
        return data.astype(np.float64)
    with data:
        names = list(data.files)
        if key in names:
            return data[key].astype(np.float64)
        if len(names) == 1:
            return data[names[0]].astype(np.float64)
    raise ArtifactError(f"{p} holds {names}; name the input array {key!r}")


def load_inputs(
    path: str | None,
    dataset: str | None,
    split: str = "test",
    limit: int | None = None,
    *,
    images: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.int64] | None]:
    """Inputs (and labels, for built-in data) from a file or a data set name.

    Built-in data comes flat, or as (n, C, H, W) when ``images`` is set.

    Raises:
        ConfigError: neither or both sources given, or a bad limit.
    """
    if (path is None) == (dataset is None):
        raise ConfigError("give exactly one of an input file or --data NAME")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be positive, got {limit}")
    if path is not None:
        x = load_array(path)
        return (x[:limit] if limit else x), None
    from secquant.data import load_dataset

    ds = load_dataset(dataset)  # type: ignore[arg-type]
    x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
    if images and ds.image_shape is not None:
        x = x.reshape(-1, *ds.image_shape)
    return (x[:limit].astype(np.float64), y[:limit]) if limit else (x.astype(np.float64), y)
