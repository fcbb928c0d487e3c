"""Exceptions raised by secquant.

Every error is a :class:`SecquantError` *and* the built-in exception that fits
it, so ``except OverflowError`` and ``except SecquantError`` both work:

* :class:`ModulusOverflowError` (``OverflowError``): a value leaves the window
  of integers a modulus represents.  Carries the layer, the bound and the
  modulus that would be needed.
* :class:`UnsupportedLayerError` (``TypeError``): a model holds layers that
  cannot be evaluated homomorphically.  Lists every such layer at once.
* :class:`ConfigError` (``ValueError``): an argument or configuration is invalid.
* :class:`InputRangeError` (``ValueError``): an integer input lies outside the
  range the bound analysis assumed.
* :class:`ArtifactError` (``ValueError``) and its subclass
  :class:`IntegrityError`: a saved artifact has the wrong type or version, or
  its digest does not match (tampered or truncated).
* :class:`ParameterError` (``ValueError``): no secure encryption parameters
  exist for a request.
* :class:`KeyMaterialError` (``PermissionError``): secret key material reached a
  party that must never hold it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ArtifactError",
    "ConfigError",
    "InputRangeError",
    "IntegrityError",
    "KeyMaterialError",
    "ModulusOverflowError",
    "ParameterError",
    "SecquantError",
    "UnsupportedLayerError",
]


class SecquantError(Exception):
    """Base class of every error secquant raises on purpose."""


class ModulusOverflowError(SecquantError, OverflowError):
    """A value does not fit the window of integers a modulus represents.

    Attributes:
        layer: Name of the layer (or ``"input"``) whose values overflow, if known.
        bound: Largest absolute integer that has to be represented, if known.
        modulus: The modulus that was given.
        modulus_needed: The smallest modulus that would hold every value.
    """

    def __init__(
        self,
        message: str,
        *,
        layer: str | None = None,
        bound: int | None = None,
        modulus: int | None = None,
        modulus_needed: int | None = None,
    ) -> None:
        super().__init__(message)
        self.layer = layer
        self.bound = bound
        self.modulus = modulus
        self.modulus_needed = modulus_needed


class UnsupportedLayerError(SecquantError, TypeError):
    """A model contains layers secquant cannot turn into integer arithmetic.

    Attributes:
        problems: One human-readable line per offending layer.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} layer(s) cannot be evaluated on encrypted data:\n{lines}"
        )


class ConfigError(SecquantError, ValueError):
    """An argument or configuration value is invalid."""


class InputRangeError(SecquantError, ValueError):
    """An integer input lies outside the range the bound analysis assumed."""


class ArtifactError(SecquantError, ValueError):
    """A saved artifact cannot be read: wrong type, version or layout."""


class IntegrityError(ArtifactError):
    """An artifact's SHA-256 digest does not match its content."""


class ParameterError(SecquantError, ValueError):
    """No secure encryption parameters satisfy the request."""


class KeyMaterialError(SecquantError, PermissionError):
    """Secret key material reached a party that must never hold it."""
