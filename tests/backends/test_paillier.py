"""The Paillier backend on real ciphertexts: bit-exact results, interactive rounds, refusals.

Oracle: ``QuantizedModel.forward_int`` (every encrypted result must equal it
exactly).  Keys are the fixed 2048-bit known-prime key: the arithmetic is the
same at every size and 2048 bits keeps the suite fast (3072 is the default
and is covered by ``test_small_keys_are_refused_unless_opted_out``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.backends.base import run_rounds
from secquant.backends.paillier import PaillierBackend, PaillierOptions
from secquant.backends.paillier.packing import PackingLayout
from secquant.data import load_dataset
from secquant.errors import ConfigError, ModulusOverflowError
from secquant.nn import Poly, Square

try:
    from tests.backends.paillier_known_keys import known_key
except ImportError:  # pytest's rootdir-less import mode
    from paillier_known_keys import known_key


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int = 60) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    xt, yt = torch.tensor(x.reshape(len(x), -1)), torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def _compile(qm: secquant.QuantizedModel, **options: object) -> secquant.EncryptedModel:
    return secquant.compile(qm, "paillier", private_key=known_key(2048), **options)


@pytest.fixture(scope="module")
def breast_cancer() -> tuple[secquant.QuantizedModel, np.ndarray, np.ndarray]:
    d = load_dataset("breast_cancer")
    torch.manual_seed(0)
    qm = secquant.quantize_model(_train(nn.Sequential(nn.Linear(30, 2)), d.x_train, d.y_train), d.x_train, bits=8)
    return qm, d.x_test, d.y_test


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = load_dataset("digits")
    return d.x_train, d.y_train, d.x_test


def test_logistic_breast_cancer_is_bit_exact(breast_cancer) -> None:  # type: ignore[no-untyped-def]
    qm, x_test, y_test = breast_cancer
    em = _compile(qm)
    xq = qm.quantize_input(x_test[:20])
    out = em.forward_int(xq)
    assert out.dtype == np.int64 and np.array_equal(out, qm.forward_int(xq))
    assert np.array_equal(em.predict(x_test[:5]), qm.predict(x_test[:5]))
    assert np.mean(qm.predict(x_test[:40]).argmax(1) == y_test[:40]) > 0.85
    params = em.parameters()
    json.dumps(params)
    assert params["rounds"] == 1 and params["round_details"][0]["response_ciphertexts_per_input"] == 1
    assert params["randomness"]["exponent_bits"] == 1024 and params["security_bits"] == 112


def test_digits_logistic_and_full_randomness_are_bit_exact(digits) -> None:  # type: ignore[no-untyped-def]
    x_train, y_train, x_test = digits
    qm = secquant.quantize_model(_train(nn.Sequential(nn.Linear(64, 10)), x_train, y_train), x_train, bits=8)
    xq = qm.quantize_input(x_test[:12])
    for randomness, count in (("djn", 12), ("full", 2)):  # textbook randomness is ~10x slower: fewer inputs
        em = _compile(qm, randomness=randomness)
        assert np.array_equal(em.forward_int(xq[:count]), qm.forward_int(xq[:count]))
    em = _compile(qm)
    em.forward_int(xq)
    # 12 inputs x 10 outputs (about 20 bits each) share one 512-byte response ciphertext.
    assert em.last_timings["response_bytes"] < 512 + 2048


def test_mnist_784_to_10_layer_is_bit_exact() -> None:
    d = load_dataset("mnist")
    x_train = d.x_train.reshape(len(d.x_train), -1)
    qm = secquant.quantize_model(_train(nn.Sequential(nn.Linear(784, 10)), x_train, d.y_train, steps=30),
                                 x_train, bits=8)
    em = _compile(qm)
    client = em.client()
    server = em.server(client.public_material())
    xq = qm.quantize_input(d.x_test[:2].reshape(2, -1))
    result, rounds = run_rounds(client, server, client.encrypt(xq))
    assert rounds == em.backend.plan.rounds == 1
    assert np.array_equal(client.decrypt(result), qm.forward_int(xq))
    details = em.parameters()["round_details"][0]
    assert details["in_features"] == 784 and details["response_ciphertexts_per_input"] == 1


@pytest.fixture(scope="module")
def square_mlp(digits) -> secquant.QuantizedModel:  # type: ignore[no-untyped-def]
    x_train, y_train, _ = digits
    model = _train(nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 12), Poly([0.1, 0.5, 0.25]),
                                 nn.Linear(12, 10)), x_train, y_train)
    return secquant.quantize_model(model, x_train, bits=6)


def test_nonlinear_model_needs_interactive(square_mlp: secquant.QuantizedModel) -> None:
    with pytest.raises(ConfigError, match="interactive=True"):
        _compile(square_mlp)


def test_interactive_square_mlp_is_bit_exact(  # type: ignore[no-untyped-def]
    square_mlp: secquant.QuantizedModel, digits
) -> None:
    _, _, x_test = digits
    em = _compile(square_mlp, interactive=True)
    xq = square_mlp.quantize_input(x_test[:8])
    expected = square_mlp.forward_int(xq)
    assert np.array_equal(em.forward_int(xq), expected)  # EncryptedModel drives the rounds
    assert em.last_timings["rounds"] == 3
    params = em.parameters()
    assert params["rounds"] == 3 and params["client_ops"] == ["1", "3"]
    # Separate roles, rounds driven explicitly as a transport would.
    client = em.client()
    server = em.server(client.public_material())
    result, rounds = run_rounds(client, server, client.encrypt(xq))
    assert rounds == 3 and np.array_equal(client.decrypt(result), expected)
    # An intermediate result cannot be decrypted as final: the client must send the next round.
    lone = PaillierBackend(square_mlp, PaillierOptions(private_key=known_key(2048), interactive=True))
    lone_client = lone.client()
    other = _compile(square_mlp, interactive=True).server(lone_client.public_material())
    with pytest.raises(ConfigError, match="next_request"):
        lone_client.decrypt(other.evaluate(lone_client.encrypt(xq[:1])))
    report = em.simulate(x_test[:8])
    assert report.ok and np.array_equal(report.output, expected)


def test_malformed_and_foreign_payloads_are_refused(breast_cancer) -> None:  # type: ignore[no-untyped-def]
    qm, x_test, _ = breast_cancer
    em = _compile(qm)
    client = em.client()
    server = em.server(client.public_material())
    request = client.encrypt(qm.quantize_input(x_test[:2]))
    for bad in (b"", b"junk", request[:-10]):
        with pytest.raises(ConfigError):
            server.evaluate(bad)
    tampered = bytearray(request)
    tampered[-200] ^= 0xFF
    with pytest.raises(ConfigError):
        server.evaluate(bytes(tampered))
    with pytest.raises(ConfigError):
        client.decrypt(request)  # a request is not a response
    other = secquant.compile(qm, "paillier", key_bits=2048)  # fresh random key
    other_client = other.client()
    with pytest.raises(ConfigError, match="another Paillier key"):
        other.server(other_client.public_material()).evaluate(request)
    with pytest.raises(ConfigError):
        client.encrypt(np.zeros((1, 30), dtype=np.float64))
    with pytest.raises(secquant.InputRangeError):
        client.encrypt(np.full((1, 30), 10**6, dtype=np.int64))


def test_simulate_and_decrypt_catch_a_planted_narrow_slot(breast_cancer) -> None:  # type: ignore[no-untyped-def]
    """Planted bug: slots sized for a bound 1000x too small must be caught by simulate and by decrypt."""
    qm, x_test, _ = breast_cancer
    em = _compile(qm, guard_bits=0)
    assert em.simulate(x_test[:20]).ok
    backend = em.backend
    assert isinstance(backend, PaillierBackend)
    block = backend.plan.blocks[0]
    backend.layouts = (PackingLayout.for_bound(block.out_bound // 1000, backend.key_bits - 1),)
    report = em.simulate(x_test[:20])
    assert not report.ok and "overflow" in report.reasons[0]
    with pytest.raises(ModulusOverflowError):
        em.forward_int(qm.quantize_input(x_test[:20]))


def test_convolutional_models_fold_into_affine_rounds(digits) -> None:  # type: ignore[no-untyped-def]
    """Conv2d, AvgPool2d, Flatten and Linear compose into one integer matrix; Square splits rounds."""
    x_train, y_train, x_test = digits
    images, test_images = x_train.reshape(-1, 1, 8, 8), x_test[:4].reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(27, 10))
    qm = secquant.quantize_model(linear, images, bits=6)
    em = _compile(qm)
    assert em.parameters()["rounds"] == 1
    xq = qm.quantize_input(test_images)
    assert np.array_equal(em.forward_int(xq), qm.forward_int(xq))
    square = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), Square(), nn.Flatten(), nn.Linear(18, 10))
    qm2 = secquant.quantize_model(square, images, bits=6)
    em2 = _compile(qm2, interactive=True)
    xq2 = qm2.quantize_input(test_images)
    assert np.array_equal(em2.forward_int(xq2), qm2.forward_int(xq2))
    assert em2.simulate(test_images).ok
