"""Client specs: a client built from ``Backend.client_spec()`` alone knows no weight.

Oracles: the bytes of every weight, bias and coefficient array of the model
(and of each backend's folded affine maps) must not occur in the spec; a client
built from the spec, with no QuantizedModel in reach, must round-trip with the
server bit-exactly (plain, BFV, Paillier) or within the proven error bound
(CKKS); a tampered spec must be refused.  Arrays whose values are all equal
(e.g. a zero bias) or that hold fewer than 4 values are not checked for bytes:
they carry no information and could match padding by chance.
"""

from __future__ import annotations

import gc
import types
from typing import Any

import numpy as np
import pytest

import secquant
from secquant.artifact import encode_artifact, read_artifact
from secquant.backends.base import Backend, ClientRole, Scheme, decode_client_spec, run_rounds, spec_type
from secquant.backends.compile import client_from_spec
from secquant.data import load_dataset
from secquant.errors import ArtifactError, ConfigError
from secquant.nn import Poly, Square
from secquant.quant.model import QuantizedModel

try:
    from tests.backends.paillier_known_keys import known_key
except ImportError:  # pytest's rootdir-less import mode
    from paillier_known_keys import known_key


def _arrays_of(em: secquant.EncryptedModel) -> list[np.ndarray]:
    """Every weight-like array the server holds: op arrays and the backend's folded maps."""
    out = [np.asarray(v) for op in em.qm.ops for v in op.arrays().values()]
    backend = em.backend
    for stage in getattr(backend, "stages", []):
        for name in ("matrix", "bias"):
            if hasattr(stage, name):
                out.append(np.asarray(getattr(stage, name)))
    plan = getattr(backend, "plan", None)
    for block in getattr(plan, "blocks", ()):
        out.extend([np.asarray(block.weight), np.asarray(block.bias)])
    return out


def _informative(arr: np.ndarray) -> bool:
    return arr.size >= 4 and len(np.unique(np.asarray(arr, dtype=object).reshape(-1).astype(str))) > 1


def _encodings(arr: np.ndarray) -> list[bytes]:
    out = [np.asarray(arr, dtype=np.float64).tobytes()]
    ints = np.asarray(arr, dtype=object).reshape(-1)
    if all(-(2**63) <= int(v) < 2**63 for v in ints):
        out.append(np.asarray(arr, dtype=np.int64).tobytes())
    return out


def assert_weight_free(spec: bytes, scheme: Scheme, secrets: list[np.ndarray], allowed: tuple[str, ...] = ()) -> None:
    """No secret array's bytes in ``spec``; its decoded arrays are only the ``allowed`` names."""
    checked = [a for a in secrets if _informative(a)]
    assert checked, "the oracle needs at least one informative weight array"
    for arr in checked:
        for blob in _encodings(arr):
            assert blob not in spec, f"a weight array of shape {arr.shape} occurs in the client spec"
    _, _, arrays = read_artifact(spec, spec_type(scheme))
    for name, value in arrays.items():
        assert allowed and name.startswith(allowed), f"unexpected array {name} in the client spec"
        for arr in checked:
            assert not (value.shape == arr.shape and np.array_equal(np.asarray(value, dtype=object),
                                                                    np.asarray(arr, dtype=object))), name


def assert_model_unreachable(client: ClientRole) -> None:
    """Nothing reachable from the client is a model, a backend or a folded weight matrix.

    Modules are not followed: their globals belong to the interpreter, not to the client (SEAL's
    objects reach ``builtins``, where a test runner's plugin may have left anything).
    """
    seen: set[int] = set()
    todo: list[Any] = [client]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, str, bytes, int, float, np.ndarray, types.ModuleType)):
            continue
        seen.add(id(obj))
        name = type(obj).__name__
        assert not isinstance(obj, (QuantizedModel, Backend)), f"the client reaches a {name}"
        assert name not in {"AffineBlock", "AffineStage", "Affine", "Stage", "CKKSPlan", "StagePlan", "EncryptedModel"}, name
        if isinstance(obj, (dict, list, tuple, set, frozenset)) or hasattr(obj, "__dict__"):
            todo.extend(gc.get_referents(obj))


def test_the_reachability_oracle_catches_a_model_on_the_client_but_not_in_a_module(digits_mlp) -> None:  # type: ignore[no-untyped-def]
    """Planted: a client holding the model is caught; a model left in ``builtins`` is not the client's."""
    import builtins

    client = secquant.compile(digits_mlp.qm, "plain").client()
    builtins._secquant_test_model = digits_mlp.qm  # type: ignore[attr-defined]
    try:
        assert_model_unreachable(client)
    finally:
        del builtins._secquant_test_model  # type: ignore[attr-defined]
    client.leaked = [digits_mlp.qm]  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="QuantizedModel"):
        assert_model_unreachable(client)


def _roundtrip(em: secquant.EncryptedModel, client: ClientRole, xq: np.ndarray) -> np.ndarray:
    server = em.server(client.public_material())
    result, _ = run_rounds(client, server, client.encrypt(xq))
    return client.decrypt(result)


def _spec_client(em: secquant.EncryptedModel) -> tuple[bytes, ClientRole]:
    spec = em.client_spec()
    assert spec == em.backend.client_spec()
    client = client_from_spec(em.scheme.value, bytes(spec))
    assert_model_unreachable(client)
    return spec, client


def test_plain_spec_is_weight_free_and_exact(digits_mlp) -> None:  # type: ignore[no-untyped-def]
    em = secquant.compile(digits_mlp.qm, "plain")
    spec, client = _spec_client(em)
    assert_weight_free(spec, Scheme.PLAIN, _arrays_of(em))
    xq = digits_mlp.qm.quantize_input(digits_mlp.x_test[:16])
    assert np.array_equal(_roundtrip(em, client, xq), digits_mlp.qm.forward_int(xq))


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_bfv_spec_is_weight_free_and_exact(digits_mlp, mode: str) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tenseal")
    em = secquant.compile(digits_mlp.qm, "bfv", mode=mode)
    spec, client = _spec_client(em)
    assert_weight_free(spec, Scheme.BFV, _arrays_of(em), allowed=("gather_cols",))
    xq = digits_mlp.qm.quantize_input(digits_mlp.x_test[:3])
    assert np.array_equal(_roundtrip(em, client, xq), digits_mlp.qm.forward_int(xq))


def test_paillier_linear_spec_is_weight_free_and_exact() -> None:
    pytest.importorskip("gmpy2")
    from secquant.backends.paillier import PaillierBackend

    d = load_dataset("digits")
    qm = secquant.quantize_model(_linear_digits(), d.x_train, bits=8)
    em = secquant.compile(qm, "paillier", private_key=known_key(2048))
    spec = em.backend.client_spec()
    assert_weight_free(spec, Scheme.PAILLIER, _arrays_of(em))
    client = PaillierBackend.client_from_spec(spec, private_key=known_key(2048))
    assert_model_unreachable(client)
    xq = qm.quantize_input(d.x_test[:8])
    assert np.array_equal(_roundtrip(em, client, xq), qm.forward_int(xq))


def test_paillier_interactive_spec_holds_only_activation_coefficients() -> None:
    pytest.importorskip("gmpy2")
    torch = pytest.importorskip("torch")
    d = load_dataset("digits")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), Square(), torch.nn.Linear(16, 12),
                                Poly([0.1, 0.5, 0.25]), torch.nn.Linear(12, 10)).eval()
    qm = secquant.quantize_model(model, d.x_train, bits=6)
    em = secquant.compile(qm, "paillier", private_key=known_key(2048), interactive=True)
    spec, client = _spec_client(em)  # fresh keys from the spec alone
    affine = [np.asarray(v) for op in qm.ops if op.kind not in ("square", "poly") for v in op.arrays().values()]
    affine += [np.asarray(a) for b in em.backend.plan.blocks for a in (b.weight, b.bias)]
    assert_weight_free(spec, Scheme.PAILLIER, affine, allowed=("step",))
    _, _, arrays = read_artifact(spec, spec_type(Scheme.PAILLIER))
    poly = next(op for op in qm.ops if op.kind == "poly")
    assert any(np.array_equal(a, np.asarray(poly.coeffs)) for a in arrays.values())  # the documented leak
    xq = qm.quantize_input(d.x_test[:4])
    assert np.array_equal(_roundtrip(em, client, xq), qm.forward_int(xq))


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_ckks_spec_is_weight_free_and_within_bound(digits_mlp, mode: str) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tenseal")
    em = secquant.compile(digits_mlp.qm, "ckks", mode=mode)
    spec, client = _spec_client(em)
    assert_weight_free(spec, Scheme.CKKS, _arrays_of(em))
    xq = digits_mlp.qm.quantize_input(digits_mlp.x_test[:2])
    err = np.abs(np.asarray(_roundtrip(em, client, xq), dtype=object) - np.asarray(digits_mlp.qm.forward_int(xq),
                                                                                    dtype=object))
    assert int(err.max()) <= em.parameters()["max_abs_error_int"]


def test_model_interface_round_trips_and_matches_the_model(digits_mlp) -> None:  # type: ignore[no-untyped-def]
    qm = digits_mlp.qm
    iface = qm.interface()
    again = type(iface).from_dict(iface.to_dict())
    x = digits_mlp.x_test[:5]
    assert np.array_equal(again.quantize_input(x), qm.quantize_input(x))
    y = qm.forward_int(qm.quantize_input(x))
    assert np.array_equal(again.dequantize_output(y), qm.dequantize_output(y))
    assert again.output_max_abs == qm.bounds().output.max_abs and again.output_shape == qm.output_shape


def _spec_of(scheme: str, qm: QuantizedModel) -> bytes:
    options = {"private_key": known_key(2048)} if scheme == "paillier" else {}
    return secquant.compile(qm, scheme, **options).backend.client_spec()


@pytest.mark.parametrize("scheme", ["plain", "bfv", "paillier", "ckks"])
def test_tampered_or_foreign_specs_are_refused(digits_mlp, scheme: str) -> None:  # type: ignore[no-untyped-def]
    if scheme in ("bfv", "ckks"):
        pytest.importorskip("tenseal")
    qm = digits_mlp.qm
    if scheme == "paillier":
        pytest.importorskip("gmpy2")
        qm = secquant.quantize_model(_linear_digits(), load_dataset("digits").x_train, bits=8)
    spec = _spec_of(scheme, qm)
    digits = str(qm.modulus).encode()
    at = spec.find(digits)
    assert at > 0
    flipped = spec[:at] + (b"2" if spec[at:at + 1] != b"2" else b"3") + spec[at + 1:]
    with pytest.raises(ArtifactError):  # IntegrityError: the digest no longer matches
        client_from_spec(scheme, flipped)
    with pytest.raises(ArtifactError):
        client_from_spec(scheme, spec[: len(spec) // 2])
    other = "plain" if scheme != "plain" else "bfv"
    with pytest.raises(ArtifactError):
        client_from_spec(other, spec)
    interface, meta, arrays = decode_client_spec(Scheme(scheme), spec)
    broken = {k: v for k, v in meta.items() if k not in ("params", "plan", "layouts")}
    if broken == meta:
        broken = {**meta, "interface": {"input_quant": {}}}
    forged = encode_artifact(spec_type(Scheme(scheme)), 1, broken, arrays)
    with pytest.raises(ConfigError):
        client_from_spec(scheme, forged)


def _linear_digits() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 10)).eval()
