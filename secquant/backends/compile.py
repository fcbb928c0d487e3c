"""``secquant.compile``: bind a quantized model to an encryption scheme.

Backends register themselves by scheme; the module of each scheme is imported
only when that scheme is compiled, so TenSEAL and phe stay unloaded until used.

Options are typed.  Each backend class declares ``options_type``, a frozen
dataclass validated in its ``__post_init__`` (:class:`~secquant.BFVOptions`,
:class:`~secquant.CKKSOptions`, :class:`~secquant.PaillierOptions`; the plain
backend takes :class:`~secquant.backends.base.NoOptions`).  Both forms work:

* ``compile(qm, "bfv", options=BFVOptions(mode=Mode.LATENCY))``: the typed form;
* ``compile(qm, "bfv", mode="latency")``: keyword options, validated into
  ``options_type(**keywords)``.

:meth:`Backend.make_options <secquant.backends.base.Backend.make_options>`
refuses both forms at once, an options object of another type (naming the
expected one) and unknown keywords (listing the accepted ones), all with
``ConfigError``.  A backend is then built as ``cls(qm, options)``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.backends.base import (
    Backend,
    ClientRole,
    Mode,
    Progress,
    Scheme,
    ServerRole,
    SimulationReport,
    run_rounds,
)
from secquant.errors import ConfigError
from secquant.quant.model import QuantizedModel
from secquant.quant.primitives import coerce_enum

if TYPE_CHECKING:
    from secquant.backends.automode import AutoMode
    from secquant.backends.executors.base import Executor

__all__ = ["EncryptedModel", "Mode", "Scheme", "client_from_spec", "compile", "register_backend"]

_BACKENDS: dict[Scheme, type[Backend]] = {}
_MODULES = {
    Scheme.PLAIN: "secquant.backends.plain",
    Scheme.BFV: "secquant.backends.bfv.backend",
    Scheme.CKKS: "secquant.backends.ckks.backend",
    Scheme.PAILLIER: "secquant.backends.paillier.backend",
}

B = TypeVar("B", bound=type[Backend])


def register_backend(scheme: Scheme, *, replace: bool = False) -> Callable[[B], B]:
    """Class decorator registering the backend of ``scheme``.

    Raises:
        ConfigError: the scheme already has a backend and ``replace`` is False.
    """

    def decorate(cls: B) -> B:
        if scheme in _BACKENDS and _BACKENDS[scheme] is not cls and not replace:
            raise ConfigError(f"scheme {scheme.value} already has backend {_BACKENDS[scheme].__name__}")
        cls.scheme = scheme
        _BACKENDS[scheme] = cls
        return cls

    return decorate


def _backend_class(scheme: Scheme) -> type[Backend]:
    if scheme not in _BACKENDS:
        importlib.import_module(_MODULES[scheme])
    if scheme not in _BACKENDS:
        raise ConfigError(f"no backend is registered for scheme {scheme.value}")
    return _BACKENDS[scheme]


def client_from_spec(scheme: Scheme | str, spec: bytes) -> ClientRole:
    """A client role with fresh keys, built from a backend's ``client_spec()`` bytes alone (no model).

    Raises:
        ConfigError: unknown scheme, or a malformed spec.
        ArtifactError, IntegrityError: the spec is not one of ``scheme``, or was modified.
    """
    chosen = coerce_enum(scheme, Scheme, "scheme")
    return _backend_class(chosen).client_from_spec(spec)


class EncryptedModel:
    """A quantized model compiled for one scheme; both roles run locally.

    Use :meth:`client` and :meth:`server` to split the roles across machines
    (see :mod:`secquant.protocol`).  With ``mode="auto"`` (the BFV and CKKS
    default), every :meth:`forward_int` first picks LATENCY or THROUGHPUT for
    its number of inputs (:mod:`~secquant.backends.automode`); :attr:`backend`
    is then the compilation in that layout.  ``last_timings`` holds the seconds spent in
    encrypt, evaluate (every round, including the client's work between
    interactive rounds) and decrypt by the last :meth:`forward_int`.
    """

    def __init__(self, qm: QuantizedModel, backend: Backend, auto: AutoMode | None = None) -> None:
        self.qm = qm
        self.backend = backend
        self._client: ClientRole | None = None
        self._server: ServerRole | None = None
        self.last_timings: dict[str, float] = {}
        self.auto = auto  # mode="auto": the layout of each call is chosen by auto.choose (see automode)
        self._mode_roles: dict[Mode, tuple[ClientRole | None, ServerRole | None]] = {}

    def _choose_mode(self, inputs: int) -> None:
        """``mode="auto"``: switch :attr:`backend` (and its keys) to the layout predicted fastest for ``inputs``."""
        if self.auto is None:
            return
        mode = self.auto.choose(inputs).mode
        current = self.backend.options.mode
        if mode is not current:
            self._mode_roles[current] = (self._client, self._server)
            self._client, self._server = self._mode_roles.pop(mode, (None, None))
            chosen = self.auto.backend(mode)
            if chosen is not None:
                self.backend = chosen

    @property
    def scheme(self) -> Scheme:
        """The scheme compiled for."""
        return self.backend.scheme

    def client(self) -> ClientRole:
        """A new client role with fresh keys (built from :meth:`client_spec`, so it holds no weights)."""
        return self.backend.client()

    def client_spec(self) -> bytes:
        """What a remote client needs to build its role: shapes, input quantization, output
        scale and bound, and the scheme's parameters; never the weights."""
        return self.backend.client_spec()

    def server(self, public_material: bytes) -> ServerRole:
        """A server role built from public material only."""
        return self.backend.server(public_material)

    def _roles(self) -> tuple[ClientRole, ServerRole]:
        if self._client is None or self._server is None:
            self._client = self.backend.client()
            self._server = self.backend.server(self._client.public_material())
        return self._client, self._server

    def forward_int(self, xq: ArrayLike, progress: Progress | None = None, workers: int = 1,
                    executor: Executor | None = None) -> NDArray[Any]:
        """Encrypt, evaluate and decrypt integer inputs; equals ``qm.forward_int`` for exact schemes.

        Args:
            xq: Integers of shape (n, *input_shape).
            progress: ``progress(done, total)`` callback while encrypting (in this process only).
            workers: THROUGHPUT mode: run whole batches (``backend.batch_size()``
                inputs each) in this many forked processes
                (:class:`~secquant.backends.executors.local.LocalExecutor`); ignored
                when the inputs fill one batch.
            executor: Run whole batches on this executor instead
                (:class:`~secquant.backends.executors.ray.RayExecutor`, a
                ``LocalExecutor``, or ``executor_from_url(...)``); a batch is
                ``backend.batch_size()`` inputs (one input in LATENCY mode).  Ray
                workers get the public material, never the secret key.

        Raises:
            ConfigError: ``workers`` < 1, ``workers`` > 1 on a platform without
                fork, both ``workers`` > 1 and ``executor``, or an ``executor`` that is not one.
            ExecutorError: a batch failed on every attempt, or came back twice or never.
        """
        self._choose_mode(len(np.asarray(xq)))
        client, server = self._roles()
        batch = self.backend.batch_size()
        arr = np.asarray(xq)
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        if executor is not None and workers != 1:
            raise ConfigError("pass workers=N (forked processes) or executor=..., not both")
        if executor is None and workers > 1 and batch is not None and len(arr) > batch:
            from secquant.backends.executors.local import LocalExecutor

            executor = LocalExecutor(workers)
        if executor is not None and len(arr):
            from secquant.backends.executors.pipeline import run_on
            from secquant.backends.executors.recipe import recipe_for

            out, self.last_timings = run_on(executor, client, server,
                                            lambda: recipe_for(self, client.public_material(), server), arr,
                                            batch or 1)
            return out
        client.release_public_material()  # the in-process server holds it; gigabytes for deep CKKS models
        t0 = time.perf_counter()
        payload = client.encrypt(arr, progress)
        t1 = time.perf_counter()
        result, rounds = run_rounds(client, server, payload)
        t2 = time.perf_counter()
        out = client.decrypt(result)
        t3 = time.perf_counter()
        self.last_timings = {"encrypt": t1 - t0, "evaluate": t2 - t1, "decrypt": t3 - t2, "rounds": float(rounds),
                             "request_bytes": float(len(payload)), "response_bytes": float(len(result))}
        return out

    def predict(self, x: ArrayLike, workers: int = 1, executor: Executor | None = None) -> NDArray[Any]:
        """Float scores through the encrypted round trip; what ``qm.predict`` returns
        (``workers``, ``executor``: see :meth:`forward_int`)."""
        return self.qm.dequantize_output(self.forward_int(self.qm.quantize_input(x), workers=workers,
                                                          executor=executor))

    def parameters(self) -> dict[str, Any]:
        """Every parameter choice, JSON-ready; with ``mode="auto"``, ``mode_choice`` says which layout the
        last call ran in and why (before any call: the layout ``backend`` starts in)."""
        out = self.backend.parameters()
        if self.auto is not None:
            last = self.auto.last
            out["mode_choice"] = last.to_dict() if last is not None else {
                "mode": self.backend.options.mode.value, "inputs": None,
                "reason": "mode auto: no call yet; each call runs in the layout the cost model predicts faster"}
        return out

    def simulate(self, x: ArrayLike) -> SimulationReport:
        """Key-less dry run on float inputs: would the real run succeed?"""
        return self.backend.simulate(self.qm.quantize_input(x))


def compile(qm: QuantizedModel, scheme: Scheme | str, options: Any = None,
            **keywords: Any) -> EncryptedModel:
    """Compile ``qm`` for ``scheme`` (``"bfv"``, ``"ckks"``, ``"paillier"`` or ``"plain"``).

    Parameters are chosen from ``qm.bounds()``; options override them where a
    backend allows (e.g. ``plain_modulus`` for BFV, ``mode``).

    Args:
        qm: The integer model.
        scheme: A :class:`Scheme` or its lower-case name.
        options: The backend's typed options (``BFVOptions``, ``CKKSOptions``,
            ``PaillierOptions``), or None for keyword options.
        **keywords: Fields of the backend's options, validated into them.

    Raises:
        ConfigError: unknown scheme or option, both ``options`` and keywords,
            or options of another scheme.
        ParameterError: no secure parameters exist for the model.
        ModulusOverflowError: a forced modulus is smaller than the bounds need.
    """
    if not isinstance(qm, QuantizedModel):
        raise ConfigError(f"compile takes a QuantizedModel, got {type(qm).__name__}")
    cls = _backend_class(coerce_enum(scheme, Scheme, "scheme"))
    opts = cls.make_options(options, keywords)
    if getattr(opts, "mode", None) is Mode.AUTO and cls.scheme in (Scheme.BFV, Scheme.CKKS):
        from secquant.backends.automode import AutoMode

        auto = AutoMode(qm, cls, opts)
        return EncryptedModel(qm, auto.backend(auto.initial) or cls(qm, opts), auto)
    return EncryptedModel(qm, cls(qm, opts))
