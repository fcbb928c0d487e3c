"""The client app's local models: the quantized models (the reference) and the shipped test images.

The demo trains its models once (:func:`secquant.demo.prepare_models`) and
writes a manifest; the client app loads each model file
(``secquant.QuantizedModel.load``: digest-checked, no pickle) to compute the
reference ``qm.forward_int`` and to pin the server's model, and loads the
test split of the same shipped data set (``secquant.data``) for the page's
gallery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.web.choices import DemoModel
from secquant.web.errors import DemoInputError

__all__ = ["Catalog", "LocalModel"]


@dataclass(frozen=True, eq=False)
class LocalModel:
    """One model the client app knows.

    Attributes:
        model: Which demo model.
        qm: The ``QuantizedModel`` (the integer reference).
        path: Its model file.
        figures: Training figures from the manifest (accuracy, epochs, bits, ...).
        x_test: Test images, ``(n, side, side)`` float32 in [0, 1].
        y_test: Their labels.
    """

    model: DemoModel
    qm: Any
    path: Path
    figures: dict[str, Any]
    x_test: NDArray[np.float32] = field(repr=False)
    y_test: NDArray[np.int64] = field(repr=False)

    def batch(self, image: NDArray[np.floating]) -> NDArray[np.float32]:
        """One ``(side, side)`` image as a batch of one model input, ``(1, *qm.input_shape)``."""
        return np.asarray(image, dtype=np.float32).reshape(1, *self.qm.input_shape)

    def test_image(self, index: Any) -> NDArray[np.float32]:
        """Test image ``index``.

        Raises:
            DemoInputError: ``index`` is not an int in range.
        """
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.y_test):
            raise DemoInputError(f"test image index must be an int in [0, {len(self.y_test)}), got {index!r}",
                                 code="BadInput")
        return self.x_test[index]

    def gallery(self, per_class: int = 1) -> list[dict[str, Any]]:
        """The first ``per_class`` test images of each class: index, label, pixels (rounded, row-major)."""
        picks = [int(i) for c in range(int(self.y_test.max()) + 1) for i in np.flatnonzero(self.y_test == c)[:per_class]]
        return [{"index": i, "label": int(self.y_test[i]),
                 "pixels": np.round(self.x_test[i].ravel(), 3).tolist()} for i in sorted(picks)]

    def describe(self) -> dict[str, Any]:
        """What the page shows about the model."""
        keys = ("bits", "epochs", "float_acc", "int_acc")
        return {"id": self.model.value, "title": self.model.title, "side": self.model.side,
                "input_shape": list(self.qm.input_shape), **{k: self.figures.get(k) for k in keys}}


class Catalog:
    """The local models by :class:`DemoModel`.

    Args:
        models: The loaded models.
    """

    def __init__(self, models: dict[DemoModel, LocalModel]) -> None:
        self.models = dict(models)

    @classmethod
    def load(cls, manifest: dict[str, dict[str, Any]]) -> Catalog:
        """Load every model of a manifest (:func:`secquant.demo.read_manifest`) and its test images.

        Raises:
            ConfigError: unknown data set in the manifest.
            ArtifactError: a model file is missing, modified or truncated.
        """
        import secquant
        from secquant.data import load_dataset
        from secquant.errors import ConfigError

        models = {}
        for name, entry in manifest.items():
            try:
                model = DemoModel(name)
            except ValueError:
                raise ConfigError(f"the manifest names {name!r}, which is not a demo model") from None
            qm = secquant.QuantizedModel.load(entry["path"])
            ds = load_dataset(name, seed=int(entry.get("seed", 0)))
            x_test = ds.x_test.reshape(-1, model.side, model.side).astype(np.float32)
            models[model] = LocalModel(model, qm, Path(entry["path"]), dict(entry), x_test, ds.y_test)
        return cls(models)

    def get(self, model: DemoModel) -> LocalModel:
        """The local model.

        Raises:
            DemoInputError: this run did not load it.
        """
        if model not in self.models:
            raise DemoInputError(f"the {model.title} is not loaded in this run; choose one of "
                                 f"{[m.value for m in self.models]}", code="UnknownModel")
        return self.models[model]
