"""What a remote worker builds its server role from: :class:`ServerRecipe`, bytes only.

A recipe holds the model (the server's own weights, as the digest-checked
artifact ``qm.save`` writes), the compile options as JSON, the client's public
material (public and evaluation keys: never the secret key) and the SHA-256
of the client spec the client was built from.  It travels as one
``secquant.ServerRecipe`` artifact (typed, versioned, digest-checked, no
pickle), sent once per worker.  :meth:`ServerRecipe.build` recompiles the model
with the same options, refuses to go on if that gives another client spec
(another secquant version or model on that node), and builds the server role,
which itself refuses public material that carries a secret key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from secquant.artifact import encode_artifact, read_artifact
from secquant.backends.base import Scheme, ServerRole
from secquant.errors import ConfigError, SecquantError
from secquant.quant.primitives import coerce_enum

if TYPE_CHECKING:
    from secquant.backends.compile import EncryptedModel
    from secquant.quant.model import QuantizedModel

__all__ = ["RECIPE_TYPE", "ServerRecipe", "model_bytes", "options_json", "recipe_for"]

#: Artifact type and version of a serialized recipe.
RECIPE_TYPE, RECIPE_VERSION = "secquant.ServerRecipe", 1
_JSON_SCALARS = (type(None), bool, int, float, str)


def model_bytes(qm: QuantizedModel) -> bytes:
    """The bytes ``qm.save`` writes (a digest-checked ``.npz``)."""
    with tempfile.TemporaryDirectory(prefix="secquant-recipe-") as tmp:
        path = Path(tmp) / "model.npz"
        qm.save(path)
        return path.read_bytes()


def _defaults(options_type: type) -> Any:
    """``options_type()`` (every field at its default), or None if it cannot be made without arguments."""
    try:
        return options_type()
    except (SecquantError, TypeError, ValueError):
        return None


def options_json(options: Any) -> dict[str, Any]:
    """A backend's typed options as JSON keywords of ``secquant.compile`` (enums as their values).

    A release policy travels as its ``to_json()`` (compile takes either).  A
    field that is not a JSON scalar but equals the one a default-made options
    object holds is left out: the worker's compile makes the same (and the
    client-spec digest checks it).

    Raises:
        ConfigError: any other field that cannot travel as JSON (e.g. a Paillier
            private key): such options cannot be sent to remote workers.
    """
    if not dataclasses.is_dataclass(options) or isinstance(options, type):
        raise ConfigError(f"backend options must be a dataclass instance, got {type(options).__name__}")
    out: dict[str, Any] = {}
    refused: list[str] = []
    defaults = _defaults(type(options))
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        value = value.value if isinstance(value, enum.Enum) else value
        if isinstance(value, _JSON_SCALARS):
            out[f.name] = value
        elif callable(getattr(value, "to_json", None)):  # a release policy: its JSON, which compile takes
            out[f.name] = value.to_json()
        elif defaults is None or getattr(defaults, f.name) != value:
            refused.append(f"{f.name} ({type(value).__name__})")
    if refused:
        raise ConfigError(f"option(s) {', '.join(refused)} cannot be sent to remote workers; run this model with "
                          "workers= (forked processes) instead")
    return out


def _json_option(value: object) -> bool:
    """A JSON scalar, or a flat JSON object of them (a release policy's ``to_json()``)."""
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and isinstance(v, _JSON_SCALARS) for k, v in value.items())
    return isinstance(value, _JSON_SCALARS)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, eq=False)
class ServerRecipe:
    """Public inputs of a server role, as bytes and JSON (see the module docstring).

    Attributes:
        scheme: The scheme compiled for.
        model: The model artifact (``qm.save`` bytes).
        options: Keyword options of ``secquant.compile``: JSON scalars, or flat objects of them
            (a release policy's JSON).
        public_material: The client's ``public_material()``.
        spec_digest: SHA-256 (hex) of the client spec the client was built from.
        local: This process's server role, used by in-process executors instead
            of building another; never serialized.

    Raises:
        ConfigError: a field of the wrong type.
    """

    scheme: Scheme
    model: bytes
    options: Mapping[str, Any]
    public_material: bytes
    spec_digest: str
    local: ServerRole | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", coerce_enum(self.scheme, Scheme, "scheme"))
        for name in ("model", "public_material"):
            if not isinstance(getattr(self, name), bytes):
                raise ConfigError(f"ServerRecipe.{name} must be bytes, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.options, Mapping) or not all(
                isinstance(k, str) and _json_option(v) for k, v in self.options.items()):
            raise ConfigError("ServerRecipe.options must map option names to JSON scalars (or flat objects of "
                              "them: a release policy)")
        object.__setattr__(self, "options", dict(self.options))
        if not isinstance(self.spec_digest, str) or len(self.spec_digest) != 64:
            raise ConfigError("ServerRecipe.spec_digest must be a SHA-256 hex digest of the client spec")

    @cached_property
    def wire(self) -> bytes:
        """The recipe as one ``secquant.ServerRecipe`` artifact: what remote workers receive."""
        meta = {"scheme": self.scheme.value, "options": dict(self.options), "spec_digest": self.spec_digest}
        arrays = {"model": np.frombuffer(self.model, dtype=np.uint8),
                  "public_material": np.frombuffer(self.public_material, dtype=np.uint8)}
        return encode_artifact(RECIPE_TYPE, RECIPE_VERSION, meta, arrays)

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of :attr:`wire`: workers built from equal digests are interchangeable."""
        return _digest(self.wire)

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerRecipe:
        """Parse :attr:`wire` bytes.

        Raises:
            ArtifactError, IntegrityError: not a recipe, or modified.
            ConfigError: malformed fields.
        """
        _, meta, arrays = read_artifact(bytes(data), RECIPE_TYPE, (RECIPE_VERSION,))
        try:
            return cls(Scheme(meta["scheme"]), arrays["model"].tobytes(), dict(meta["options"]),
                       arrays["public_material"].tobytes(), str(meta["spec_digest"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed server recipe: {exc}") from exc

    def server(self) -> ServerRole:
        """:attr:`local` when set, else :meth:`build`."""
        return self.local if self.local is not None else self.build()

    def build(self) -> ServerRole:
        """Compile the model with the options and build the server role from the public material.

        Raises:
            ConfigError: this node compiles another client spec (install the same
                secquant version everywhere), or the options are invalid.
            KeyMaterialError: the public material carries a secret key.
        """
        from secquant.backends.compile import compile
        from secquant.quant.model import QuantizedModel

        em = compile(QuantizedModel.load(self.model), self.scheme, **dict(self.options))
        if _digest(em.client_spec()) != self.spec_digest:
            raise ConfigError("this worker compiles the model to another client spec than the client's: install "
                              "the same secquant version (and its extras) on every node")
        return em.server(self.public_material)


def recipe_for(em: EncryptedModel, public_material: bytes, local: ServerRole | None = None) -> ServerRecipe:
    """The recipe of ``em``'s server role for a client whose public material is ``public_material``.

    Raises:
        ConfigError: the options cannot travel as JSON.
    """
    return ServerRecipe(em.scheme, model_bytes(em.qm), options_json(em.backend.options), bytes(public_material),
                        _digest(em.client_spec()), local)

