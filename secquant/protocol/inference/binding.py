"""What ties a client and a server to the same model and parameters.

A :class:`ModelBinding` is a quantized model compiled for one scheme with one
set of options, plus two digests both sides compute the same way:

* ``model_digest``: the SHA-256 content digest recorded in the model's
  artifact header (``QuantizedModel.save``), independent of zip timestamps;
* ``fingerprint``: SHA-256 of the canonical JSON of protocol version, scheme,
  model digest and compile options.  Every session and ciphertext batch names
  it, so material made for other parameters is refused with a 409.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secquant.errors import ArtifactError, ConfigError
from secquant.protocol.messages import PROTOCOL_VERSION, canonical_json, sha256_hex
from secquant.quant.model import QuantizedModel

__all__ = ["ModelBinding", "artifact_digest", "model_artifact"]


def artifact_digest(data: bytes) -> str:
    """The content digest recorded in a secquant artifact's header.

    Raises:
        ArtifactError: ``data`` is not an artifact.
    """
    import io
    import zipfile

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(npz["__header__"].tobytes().decode())
    except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"not a secquant artifact: {exc}") from exc
    digest = header.get("digest") if isinstance(header, dict) else None
    if not isinstance(digest, str):
        raise ArtifactError("artifact header has no digest")
    return digest


def model_artifact(qm: QuantizedModel) -> bytes:
    """The bytes ``qm.save`` writes."""
    with tempfile.TemporaryDirectory(prefix="secquant-model-") as tmp:
        path = Path(tmp) / "model.npz"
        qm.save(path)
        return path.read_bytes()


def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sorted(options.items()):
        value = getattr(value, "value", value)  # enums travel as their lower-case value
        try:
            canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"compile option {key}={value!r} cannot travel as JSON: {exc}") from exc
        out[key] = value
    return out


@dataclass
class ModelBinding:
    """A model compiled for a scheme, with the digests both parties check.

    Attributes:
        qm: The quantized model.
        scheme: Scheme name (``plain``, ``bfv``, ``ckks``, ``paillier``).
        options: JSON-ready compile options (enums as their values).
        artifact: The model's artifact bytes (what ``GET /v1/model`` serves).
        model_digest: Content digest of the artifact.
        fingerprint: Digest of protocol version, scheme, model digest and options.
    """

    qm: QuantizedModel
    scheme: str
    options: dict[str, Any] = field(default_factory=dict)
    artifact: bytes = b""
    model_digest: str = ""
    fingerprint: str = ""
    _em: Any = None

    @classmethod
    def build(cls, qm: QuantizedModel | str | Path | bytes, scheme: str,
              options: dict[str, Any] | None = None) -> ModelBinding:
        """Compile ``qm`` (a model, a path to its artifact, or the artifact's bytes) for ``scheme``.

        Raises:
            ConfigError, ParameterError, ModulusOverflowError: from ``secquant.compile``.
            ArtifactError: ``qm`` is a path to something that is not a model.
        """
        from secquant.backends.compile import Scheme, compile
        from secquant.quant.primitives import coerce_enum

        if isinstance(qm, (str, Path, bytes)):
            data = qm if isinstance(qm, bytes) else Path(qm).read_bytes()
            model = QuantizedModel.load(data)
        else:
            model = qm
            data = model_artifact(model)
        name = coerce_enum(scheme, Scheme, "scheme").value
        opts = _json_options(dict(options or {}))
        em = compile(model, name, **opts)
        digest = artifact_digest(data)
        fp = sha256_hex(canonical_json({"protocol": PROTOCOL_VERSION, "scheme": name,
                                        "model_digest": digest, "options": opts}))
        return cls(qm=model, scheme=name, options=opts, artifact=data, model_digest=digest, fingerprint=fp, _em=em)

    @property
    def em(self) -> Any:
        """The :class:`~secquant.backends.compile.EncryptedModel`."""
        return self._em
