"""secquant: privacy-preserving model quantization with secure computation.

A float model becomes an integer model mod p (``quantize_model``); that model is
the exact reference for encrypted evaluation under BFV, CKKS and Paillier
(``compile``), and the differential-privacy auditor (``secquant.audit``)
measures what its releases leak.

Heavy parts (torch conversion, TenSEAL, phe) are imported lazily, on first use.
"""

from __future__ import annotations

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
    "compile": "secquant.backends.compile",
    "Scheme": "secquant.backends.compile",
    "EncryptedModel": "secquant.backends.compile",
    "tune": "secquant.tuning",
}

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


__getattr__ = lazy_getattr(__name__, _LAZY)
