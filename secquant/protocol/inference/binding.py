"""What ties a client and a server to the same model and parameters.

A :class:`ModelBinding` is a quantized model compiled for one scheme with one
set of options, plus two digests both sides compute the same way:

* ``model_digest``: the SHA-256 content digest recorded in the model's
  artifact header (``QuantizedModel.save``), independent of zip timestamps;
* ``fingerprint``: SHA-256 of the canonical JSON of protocol version, scheme,
  model digest, compile options and (when not full logits) the release
  policy.  Every session and ciphertext batch names it, so material made for
  other parameters is refused with a 409.

The release policy (:mod:`~secquant.protocol.inference.release`) is checked
against the scheme here, before anything is served.
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

__all__ = ["ModelBinding", "artifact_digest", "model_and_artifact", "model_artifact"]


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


def model_and_artifact(data: bytes, load: dict[str, Any] | None = None) -> tuple[QuantizedModel, bytes]:
    """The model in ``data`` and the plain artifact bytes its digest is taken from.

    A signed file's body is the artifact (the digest of the file as written);
    a sealed (encrypted) one is re-saved in the clear after decryption.

    Raises:
        ArtifactError, IntegrityError: as ``QuantizedModel.load``.
    """
    from secquant.signing import is_signed, strip_envelope

    model = QuantizedModel.load(data, **(load or {}))
    body = strip_envelope(data) if is_signed(data) else data
    try:
        artifact_digest(body)
    except ArtifactError:
        body = model_artifact(model)
    return model, body


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
        fingerprint: Digest of protocol version, scheme, model digest, options and release.
        release: The :class:`~secquant.protocol.inference.release.ServiceRelease`.
    """

    qm: QuantizedModel
    scheme: str
    options: dict[str, Any] = field(default_factory=dict)
    artifact: bytes = b""
    model_digest: str = ""
    fingerprint: str = ""
    release: Any = None
    _em: Any = None

    @classmethod
    def build(cls, qm: QuantizedModel | str | Path | bytes, scheme: str, options: dict[str, Any] | None = None,
              release: Any = None, *, load: dict[str, Any] | None = None) -> ModelBinding:
        """Compile ``qm`` (a model, a path to its artifact, or the artifact's bytes) for ``scheme``.

        Args:
            qm: The model, or its artifact (path or bytes).
            scheme: ``plain``, ``bfv``, ``ckks`` or ``paillier``.
            options: Compile options (JSON-ready values).
            release: A :mod:`secquant.dp.release` policy (None: full logits).
            load: Keywords for ``QuantizedModel.load`` (``trusted=``, ``decrypt_with=``) when
                ``qm`` is an artifact.

        Raises:
            ConfigError, ParameterError, ModulusOverflowError: from ``secquant.compile``.
            ReleaseUnsupportedError: the scheme cannot apply ``release``.
            ArtifactError: ``qm`` is a path to something that is not a model.
        """
        from secquant.backends.compile import Scheme, compile
        from secquant.dp.release import FullLogits
        from secquant.protocol.inference.release import ServiceRelease
        from secquant.quant.primitives import coerce_enum

        if isinstance(qm, (str, Path, bytes)):
            model, data = model_and_artifact(qm if isinstance(qm, bytes) else Path(qm).read_bytes(), load)
        else:
            model, data = qm, model_artifact(qm)
        name = coerce_enum(scheme, Scheme, "scheme").value
        rel = ServiceRelease(release if release is not None else FullLogits(), name,
                             int(np.prod(model.output_shape)), int(model.bounds().output.max_abs), int(model.modulus))
        opts = _json_options({**dict(options or {}), **rel.compile_options()})
        em = compile(model, name, **opts)
        digest = artifact_digest(data)
        facts: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "scheme": name, "model_digest": digest, "options": opts}
        if not isinstance(rel.policy, FullLogits):
            facts["release"] = rel.policy.to_json()
        fp = sha256_hex(canonical_json(facts))
        return cls(qm=model, scheme=name, options=opts, artifact=data, model_digest=digest, fingerprint=fp,
                   release=rel, _em=em)

    @property
    def em(self) -> Any:
        """The :class:`~secquant.backends.compile.EncryptedModel`."""
        return self._em
