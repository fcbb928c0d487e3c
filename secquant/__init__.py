"""secquant: privacy-preserving model quantization with secure computation.

A float model becomes an integer model mod p (``quantize_model``); that model is
the exact reference for encrypted evaluation under BFV, CKKS and Paillier
(``compile``), and the differential-privacy auditor (``secquant.audit``)
measures what its releases leak.

Heavy parts (torch conversion, TenSEAL, phe) are imported lazily, on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from secquant._lazy import lazy_getattr
from secquant.errors import (
    ArtifactError,
    ConfigError,
    InputRangeError,
    IntegrityError,
    KeyMaterialError,
    ModulusOverflowError,
    ParameterError,
    SecquantError,
    UnsupportedLayerError,
)
from secquant.quant.primitives import (
    Domain,
    OnOverflow,
    QuantParams,
    Rounding,
    centered_lift,
    dequantize,
    quantize,
)

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "quantize_model": "secquant.quant.convert",
    "QuantizedModel": "secquant.quant.model",
    "ModelInterface": "secquant.quant.model",
    "QuantConfig": "secquant.quant.config",
    "RequantizeConfig": "secquant.quant.requantize_config",
    "RequantizeAt": "secquant.quant.requantize_config",
    "linearize": "secquant.quant.linearize",
    "compile": "secquant.backends.compile",
    "Scheme": "secquant.backends.compile",
    "EncryptedModel": "secquant.backends.compile",
    "BFVOptions": "secquant.backends.bfv.options",
    "CKKSOptions": "secquant.backends.ckks.options",
    "PaillierOptions": "secquant.backends.paillier.options",
    "tune": "secquant.tuning",
}

#: Subpackages and modules of the public API, imported on first attribute access
#: (``import secquant; secquant.nn.Square``).  A name whose module is not installed
#: in this tree raises AttributeError, as any missing attribute does.
SUBPACKAGES = ("audit", "backends", "data", "dp", "models", "nn", "protocol", "quant", "tuning")

__all__ = [
    "ArtifactError",
    "ConfigError",
    "Domain",
    "InputRangeError",
    "IntegrityError",
    "KeyMaterialError",
    "ModulusOverflowError",
    "OnOverflow",
    "ParameterError",
    "QuantParams",
    "Rounding",
    "SecquantError",
    "UnsupportedLayerError",
    "centered_lift",
    "dequantize",
    "quantize",
    *_LAZY,
]


_lazy_attribute = lazy_getattr(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    """Import a public subpackage or a lazily exported name on first access (PEP 562).

    Raises:
        AttributeError: ``name`` is neither.
    """
    if name in SUBPACKAGES:
        if importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r} (secquant.{name} is not part of this build)")
        return importlib.import_module(f"{__name__}.{name}")
    return _lazy_attribute(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *SUBPACKAGES})
