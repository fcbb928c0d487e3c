"""What the page lets a person choose: the model and the scheme, and where each pair is served.

* :class:`DemoModel`: the MNIST CNN (28×28 images) and the digits MLP (8×8 images).
* :class:`DemoScheme`: BFV and Paillier (exact) and CKKS (within a stated bound),
  with the ``secquant serve --option`` values the demo's models need.
* :class:`ServerEntry`: one inference server, serving one (model, scheme) pair.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError
from secquant.web.errors import DemoInputError

__all__ = ["DemoModel", "DemoScheme", "ServerEntry", "read_servers", "write_servers"]


class DemoModel(enum.Enum):
    """A model of the demo, named after the shipped data set it is trained on (``secquant.data``)."""

    MNIST = "mnist"
    DIGITS = "digits"

    @property
    def title(self) -> str:
        """Name shown on the page."""
        return "MNIST CNN (28×28)" if self is DemoModel.MNIST else "digits MLP (8×8)"

    @property
    def side(self) -> int:
        """Side of the model's square input image, in pixels."""
        return 28 if self is DemoModel.MNIST else 8

    @classmethod
    def parse(cls, value: Any) -> DemoModel:
        """The model named ``value``.

        Raises:
            DemoInputError: unknown name.
        """
        try:
            return cls(value)
        except ValueError:
            raise DemoInputError(f"unknown model {value!r}: choose one of {[m.value for m in cls]}",
                                 code="UnknownModel") from None


class DemoScheme(enum.Enum):
    """An encryption scheme the page offers."""

    BFV = "bfv"
    CKKS = "ckks"
    PAILLIER = "paillier"

    @property
    def title(self) -> str:
        """Name shown on the page."""
        return {"bfv": "BFV", "ckks": "CKKS", "paillier": "Paillier"}[self.value]

    @property
    def note(self) -> str:
        """What the scheme promises, and what each side learns beyond the result, for the page."""
        return {
            "bfv": "exact: the decrypted integers equal qm.forward_int bit for bit",
            "ckks": "approximate: the decrypted integers lie within the stated error bound of qm.forward_int",
            "paillier": "exact, interactive: the server evaluates the linear layers; the client decrypts, applies "
                        "each Square itself and re-encrypts, so it also sees those pre-activations",
        }[self.value]

    @property
    def exact(self) -> bool:
        """True when results must equal ``qm.forward_int`` bit for bit (BFV, Paillier)."""
        return self is not DemoScheme.CKKS

    @property
    def serve_options(self) -> tuple[str, ...]:
        """``secquant serve --option`` values: BFV in latency mode (one image at a time), Paillier
        interactive (the demo's models have Square activations, which the client applies)."""
        if self is DemoScheme.BFV:
            return ("mode=latency",)
        if self is DemoScheme.PAILLIER:
            return ("interactive=true",)
        return ()

    @classmethod
    def parse(cls, value: Any) -> DemoScheme:
        """The scheme named ``value``.

        Raises:
            DemoInputError: unknown name.
        """
        try:
            return cls(value)
        except ValueError:
            raise DemoInputError(f"unknown scheme {value!r}: choose one of {[s.value for s in cls]}",
                                 code="UnknownScheme") from None


@dataclass(frozen=True)
class ServerEntry:
    """One inference server.

    Attributes:
        url: Base URL (``http://127.0.0.1:PORT`` for a local one).
        model: The model it serves; None for a remote server until its info is read.
        scheme: Its scheme; None for a remote server until its info is read.
        pid: Process id of a server the demo started (None: remote).
        log: Path of that server's log file, if any.
    """

    url: str
    model: DemoModel | None = None
    scheme: DemoScheme | None = None
    pid: int | None = None
    log: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"a server URL starts with http:// or https://, got {self.url!r}")
        if self.pid is not None and (isinstance(self.pid, bool) or not isinstance(self.pid, int) or self.pid < 1):
            raise ConfigError(f"pid must be a positive int, got {self.pid!r}")

    @property
    def local(self) -> bool:
        """True for a server the demo started."""
        return self.pid is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"url": self.url, "model": self.model.value if self.model else None,
                "scheme": self.scheme.value if self.scheme else None, "pid": self.pid, "log": self.log}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerEntry:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: missing or invalid fields.
        """
        if not isinstance(data, dict) or "url" not in data:
            raise ConfigError(f"a server entry is an object with a url, got {data!r}")
        try:
            model = DemoModel(data["model"]) if data.get("model") else None
            scheme = DemoScheme(data["scheme"]) if data.get("scheme") else None
        except ValueError as exc:
            raise ConfigError(f"invalid server entry {data!r}: {exc}") from exc
        return cls(url=str(data["url"]), model=model, scheme=scheme, pid=data.get("pid"), log=data.get("log"))


def write_servers(path: Path, servers: list[ServerEntry]) -> None:
    """Write the server list as JSON (atomically).

    Args:
        path: Destination file.
        servers: The entries.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([s.to_dict() for s in servers], indent=1))
    tmp.replace(path)


def read_servers(path: Path) -> list[ServerEntry]:
    """Read a list written by :func:`write_servers`.

    Raises:
        ConfigError: the file is not a JSON list of server entries.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the server list {path}: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path} must hold a non-empty JSON list of servers")
    return [ServerEntry.from_dict(item) for item in data]
