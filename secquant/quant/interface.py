"""What a client may know about an integer model: its input quantization and its output edge.

* :class:`InputQuant`: floats -> input integers;
* :class:`ModelInterface`: shapes, input quantization, output scale and bound, no weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError, InputRangeError
from secquant.quant.primitives import OnOverflow, Rounding, coerce_enum, round_values

__all__ = ["InputQuant", "ModelInterface"]


@dataclass(frozen=True)
class InputQuant:
    """Input quantization ``u = round(C·x + d)``, kept inside ``[lo, hi]``.

    Attributes:
        scale: C > 0.
        offset: Integer d; the real value is ``(u - d) / C``.
        lo, hi: Integer range of ``u`` that the bound analysis assumes.
        rounding: How ``C·x + d`` is rounded.
        on_overflow: SATURATE (clip to [lo, hi]) or RAISE for inputs outside it.
        shape: Shape of one input (no batch axis).
    """

    scale: float
    offset: int
    lo: int
    hi: int
    rounding: Rounding
    on_overflow: OnOverflow
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rounding", coerce_enum(self.rounding, Rounding, "rounding"))
        object.__setattr__(self, "on_overflow", coerce_enum(self.on_overflow, OnOverflow, "on_overflow"))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"input scale must be finite and positive, got {self.scale}")
        if self.lo > self.hi:
            raise ConfigError(f"input range [{self.lo}, {self.hi}] is empty")
        if self.on_overflow is OnOverflow.WRAP:
            raise ConfigError("input quantization never wraps; use SATURATE or RAISE")

    @property
    def real_range(self) -> tuple[float, float]:
        """The real interval [lo, hi] stands for."""
        return (self.lo - self.offset) / self.scale, (self.hi - self.offset) / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale, "offset": self.offset, "lo": self.lo, "hi": self.hi,
            "rounding": self.rounding.value, "on_overflow": self.on_overflow.value, "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputQuant:
        """Rebuild from :meth:`to_dict`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        try:
            return cls(scale=float(data["scale"]), offset=int(data["offset"]), lo=int(data["lo"]),
                       hi=int(data["hi"]), rounding=data["rounding"], on_overflow=data["on_overflow"],
                       shape=tuple(data["shape"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed input quantization {data!r}: {exc!r}") from exc


def _as_numpy(x: Any) -> NDArray[np.float64]:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ModelInterface:
    """What a client may know about a model: its edges, never its weights.

    Everything here is needed to quantize inputs, check shapes and ranges,
    dequantize outputs and refuse a decrypted value past the proven bound.

    Attributes:
        input_quant: How floats become input integers (carries the input shape).
        output_scale: float64 per output element; scores are ``y / output_scale``.
        output_shape: Shape of one output.
        output_max_abs: Proven bound on |output integer|.
        modulus: The plaintext modulus the model was checked against.
    """

    input_quant: InputQuant
    output_scale: NDArray[np.float64]
    output_shape: tuple[int, ...]
    output_max_abs: int
    modulus: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_shape", tuple(int(s) for s in self.output_shape))
        object.__setattr__(self, "output_scale", np.asarray(self.output_scale, dtype=np.float64))
        if isinstance(self.output_max_abs, bool) or not isinstance(self.output_max_abs, int) or self.output_max_abs < 0:
            raise ConfigError(f"output_max_abs must be an int >= 0, got {self.output_max_abs!r}")
        if isinstance(self.modulus, bool) or not isinstance(self.modulus, int) or self.modulus < 2:
            raise ConfigError(f"modulus must be an int >= 2, got {self.modulus!r}")
        if any(s < 1 for s in self.output_shape):
            raise ConfigError(f"output shape {self.output_shape} has an empty axis")
        if self.output_scale.size not in (1, int(np.prod(self.output_shape))):
            raise ConfigError(f"output_scale has {self.output_scale.size} values for output shape {self.output_shape}")
        if not np.all(np.isfinite(self.output_scale)) or np.any(self.output_scale <= 0):
            raise ConfigError("output_scale must be finite and positive")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return self.input_quant.shape

    def batched(self, arr: NDArray[Any]) -> NDArray[Any]:
        """``arr`` as a batch of shape (n, *input_shape) (one input or flat rows are accepted).

        Raises:
            ConfigError: the shape fits neither.
        """
        shape = self.input_shape
        if arr.shape == shape:
            return arr[None]
        if arr.shape[1:] == shape:
            return arr
        if arr.ndim == 2 and arr.shape[1] == int(np.prod(shape)):
            return arr.reshape(-1, *shape)
        raise ConfigError(f"expected inputs of shape (n, {', '.join(map(str, shape))}), got {arr.shape}")

    def check_integers(self, xq: ArrayLike) -> NDArray[Any]:
        """Integer inputs as a batch, refused unless they lie in the input range.

        Raises:
            ConfigError: wrong shape or non-integer dtype.
            InputRangeError: an integer lies outside ``[input_quant.lo, input_quant.hi]``.
        """
        arr = np.asarray(xq)
        if arr.dtype.kind not in "iuO":
            raise ConfigError(f"expected integers, got dtype {arr.dtype}; use quantize_input first")
        arr = self.batched(arr)
        iq = self.input_quant
        if arr.size and (int(np.min(arr)) < iq.lo or int(np.max(arr)) > iq.hi):
            raise InputRangeError(f"input integers must lie in [{iq.lo}, {iq.hi}], the range the bounds assume")
        return arr

    def quantize_input(self, x: ArrayLike, *, rng: np.random.Generator | None = None) -> NDArray[np.int64]:
        """Quantize float inputs of shape (n, *input_shape) (or one input) to integers.

        Raises:
            ConfigError: wrong shape or non-finite values.
            InputRangeError: a value lies outside the calibrated range and the
                model was built with ``input_overflow=RAISE``.
        """
        arr = self.batched(_as_numpy(x))
        if not np.all(np.isfinite(arr)):
            raise ConfigError("inputs contain NaN or infinity")
        iq = self.input_quant
        v = round_values(iq.scale * arr + iq.offset, iq.rounding, rng)
        if np.any((v < iq.lo) | (v > iq.hi)):
            if iq.on_overflow is OnOverflow.RAISE:
                lo_r, hi_r = iq.real_range
                raise InputRangeError(
                    f"inputs span [{arr.min():.6g}, {arr.max():.6g}] but the model was calibrated for "
                    f"[{lo_r:.6g}, {hi_r:.6g}]; clip them or rebuild with input_overflow=SATURATE"
                )
            v = np.clip(v, iq.lo, iq.hi)
        return v.astype(np.int64)

    def dequantize_output(self, y: ArrayLike) -> NDArray[np.float64]:
        """Float scores from output integers: ``y / output_scale``."""
        return np.asarray(y, dtype=np.float64) / self.output_scale

    def as_output(self, values: ArrayLike) -> NDArray[Any]:
        """Centered output integers as int64, or Python ints when the bound passes 2**63."""
        out = np.asarray(values, dtype=object)
        return out.astype(np.int64) if self.output_max_abs < 2**63 else out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; big integers as decimal strings."""
        return {
            "input_quant": self.input_quant.to_dict(),
            "output_scale": [float(v) for v in self.output_scale.reshape(-1)],
            "output_scale_shape": list(self.output_scale.shape),
            "output_shape": list(self.output_shape),
            "output_max_abs": str(self.output_max_abs),
            "modulus": str(self.modulus),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInterface:
        """Rebuild from :meth:`to_dict`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a model interface must be a JSON object, got {type(data).__name__}")
        try:
            scale = np.asarray([float(v) for v in data["output_scale"]], dtype=np.float64)
            return cls(input_quant=InputQuant.from_dict(data["input_quant"]),
                       output_scale=scale.reshape([int(s) for s in data["output_scale_shape"]]),
                       output_shape=tuple(int(s) for s in data["output_shape"]),
                       output_max_abs=int(str(data["output_max_abs"])), modulus=int(str(data["modulus"])))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed model interface: {exc!r}") from exc
