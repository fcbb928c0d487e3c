"""The integer model: exactness against an independent reference, bounds, errors, artifacts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant import QuantizedModel, quantize_model
from secquant.errors import (
    ArtifactError,
    ConfigError,
    InputRangeError,
    IntegrityError,
    ModulusOverflowError,
    UnsupportedLayerError,
)
from secquant.nn import Poly, Square
from secquant.quant.config import QuantConfig
from secquant.quant.registry import register_converter
from tests.quant.conftest import random_cnn
from tests.quant.reference import naive_forward


def _corners(qm: QuantizedModel, n: int, seed: int) -> np.ndarray:
    """Inputs whose every element sits at an end of the input range (they attain interval bounds)."""
    rng = np.random.default_rng(seed)
    iq = qm.input_quant
    return np.where(rng.random((n, *qm.input_shape)) < 0.5, iq.lo, iq.hi).astype(np.int64)


def test_cnn_forward_int_equals_reference() -> None:
    torch.manual_seed(1)
    model = random_cnn()
    x = torch.rand(64, 1, 8, 8).numpy()
    qm = quantize_model(model, x, bits=6)
    xq = np.concatenate([qm.quantize_input(x[:6]), _corners(qm, 4, 0)])
    np.testing.assert_array_equal(qm.forward_int(xq).astype(object), naive_forward(qm.ops, xq))
    kinds = [op.kind for op in qm.ops]
    assert kinds == ["conv2d", "square", "sumpool2d", "flatten", "linear", "poly", "linear"]


def test_predict_tracks_float_model() -> None:
    """8-bit scores stay within 3% of the float logits' spread (measured ~0.5%)."""
    model = random_cnn(2)
    x = torch.rand(256, 1, 8, 8).numpy()
    qm = quantize_model(model, x, bits=8)
    ref = model(torch.tensor(x)).detach().double().numpy()
    err = np.abs(qm.predict(x) - ref).max()
    assert err < 0.03 * (ref.max() - ref.min())


def test_digits_8_bit_accuracy_within_one_point(digits, digits_mlp) -> None:
    float_acc = (digits_mlp(torch.tensor(digits.x_test)).argmax(1).numpy() == digits.y_test).mean()
    qm = quantize_model(digits_mlp, digits.x_train, bits=8)
    int_acc = (qm.predict(digits.x_test).argmax(1) == digits.y_test).mean()
    assert float_acc > 0.9
    assert abs(float_acc - int_acc) <= 0.01


def test_bounds_are_sound_and_attained(digits, digits_mlp) -> None:
    qm = quantize_model(digits_mlp, digits.x_train, bits=8)
    report = qm.bounds()
    xq = np.concatenate([qm.quantize_input(digits.x_test), _corners(qm, 200, 1)])
    x = xq
    for op, b in zip(qm.ops, report.layers):
        x = op.forward(x, b.partial_max_abs)
        assert np.all(x >= b.lo.astype(np.int64)) and np.all(x <= b.hi.astype(np.int64)), b.name
    first = report.layers[0]
    # one linear layer over a box: the interval bound is exact, attained by a corner input
    w = qm.ops[0].weight
    corner = np.where(w[0] > 0, qm.input_quant.hi, qm.input_quant.lo)[None]
    assert int(qm.ops[0].forward(corner, first.partial_max_abs)[0, 0]) == int(first.hi[0])
    assert report.modulus_needed == 2 * report.max_abs + 1 or report.modulus_needed == 2 * report.max_abs
    assert all(b.observed_max_abs <= b.max_abs for b in report.layers)


def test_exact_past_two_to_the_63() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 5), Square(), nn.Linear(5, 4), Square(), nn.Linear(4, 3), Square(), nn.Linear(3, 2))
    x = torch.rand(32, 6).numpy()
    qm = quantize_model(model, x, bits=8)
    assert qm.bounds().max_abs > 2**63
    xq = np.concatenate([qm.quantize_input(x[:5]), _corners(qm, 5, 2)])
    out = qm.forward_int(xq)
    assert out.dtype == object
    np.testing.assert_array_equal(out, naive_forward(qm.ops, xq))
    ref = model(torch.tensor(x)).detach().double().numpy()
    assert np.abs(qm.predict(x) - ref).max() < 0.01 * np.abs(ref).max()  # measured 0.4%


def test_modulus_too_small_names_the_layer(digits, digits_mlp) -> None:
    qm = quantize_model(digits_mlp, digits.x_train, bits=8)
    fits_first = qm.bounds().layers[0].modulus_needed
    with pytest.raises(ModulusOverflowError) as info:
        quantize_model(digits_mlp, digits.x_train, bits=8, modulus=fits_first)
    err = info.value
    assert err.layer == "1" and "square" in str(err)  # the first layer that does not fit
    assert err.modulus_needed == qm.modulus_needed and isinstance(err, OverflowError)
    assert quantize_model(digits_mlp, digits.x_train, bits=8, modulus=qm.modulus_needed).modulus == qm.modulus_needed
    with pytest.raises(ModulusOverflowError):
        qm.with_modulus(qm.modulus_needed - 2)


def test_unsupported_layers_are_all_named_at_once() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 3), nn.Softmax(1))
    with pytest.raises(UnsupportedLayerError) as info:
        quantize_model(model, np.zeros((2, 1, 8, 8)))
    err = info.value
    assert len(err.problems) == 3 and isinstance(err, TypeError)
    text = str(err)
    assert "1 (ReLU)" in text and "Square" in text and "AvgPool2d" in text and "argmax" in text


def test_fx_traced_module_tree() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.fc = nn.Linear(72, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            h = h * h
            return self.fc(torch.flatten(h, 1))

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.rand(16, 1, 8, 8).numpy()
    qm = quantize_model(net, x, bits=8)
    assert [op.kind for op in qm.ops] == ["conv2d", "square", "flatten", "linear"]
    ref = net(torch.tensor(x)).detach().numpy()
    assert np.abs(qm.predict(x) - ref).max() < 0.03 * np.ptp(ref)


def test_registry_refuses_silent_override() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_converter(nn.Linear)(lambda *a: None)


def test_input_range_policies() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    x = np.random.default_rng(0).random((20, 3))
    strict = quantize_model(model, x, config=QuantConfig(input_overflow="raise"))
    with pytest.raises(InputRangeError, match="calibrated"):
        strict.quantize_input(x + 5)
    lenient = quantize_model(model, x)
    assert lenient.quantize_input(x + 5).max() == lenient.input_quant.hi
    with pytest.raises(InputRangeError):
        lenient.forward_int(np.full((1, 3), lenient.input_quant.hi + 1))
    with pytest.raises(ConfigError, match="integers"):
        lenient.forward_int(x)
    with pytest.raises(ConfigError, match="shape"):
        lenient.predict(np.zeros((2, 4)))


def test_known_input_range_and_floor_rounding() -> None:
    model = nn.Sequential(nn.Linear(2, 1))
    qm = quantize_model(model, np.zeros((1, 2)), config=QuantConfig(input_range=(0.0, 1.0), input_bits=4, input_rounding="floor"))
    iq = qm.input_quant
    assert iq.scale == 15.0 and iq.offset == -8  # 15 levels over [0, 1], centred
    np.testing.assert_array_equal(qm.quantize_input(np.array([[0.0, 0.99]])), [[-8, 6]])


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3), Square(), nn.Linear(3, 3), Poly([0.2, -0.3, 0.5, 0.1]), nn.Linear(3, 2))
    x = torch.rand(16, 4).numpy()
    qm = quantize_model(model, x, bits=8)
    path = qm.save(tmp_path / "m.sqm")
    loaded = QuantizedModel.load(path)
    xq = qm.quantize_input(x)
    np.testing.assert_array_equal(loaded.forward_int(xq), qm.forward_int(xq))
    assert loaded.modulus == qm.modulus and loaded.summary() == qm.summary()


def test_tampered_or_foreign_files_are_refused(tmp_path) -> None:
    model = nn.Sequential(nn.Linear(4, 2))
    qm = quantize_model(model, np.random.default_rng(0).random((8, 4)))
    path = qm.save(tmp_path / "m.sqm")
    # a tamperer who rewrites the archive consistently (valid zip, changed weight) meets the digest
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    entries["op0.weight"] = entries["op0.weight"].copy()
    entries["op0.weight"][0, 0] += 1
    np.savez(tmp_path / "t.npz", **entries)
    with pytest.raises(IntegrityError, match="digest"):
        QuantizedModel.load(tmp_path / "t.npz")
    flipped = bytearray(path.read_bytes())
    flipped[bytes(flipped).find(np.asarray(qm.ops[0].weight, dtype=np.int64).tobytes())] ^= 1
    (tmp_path / "flip.sqm").write_bytes(bytes(flipped))
    with pytest.raises(ArtifactError):
        QuantizedModel.load(tmp_path / "flip.sqm")
    (tmp_path / "short.sqm").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ArtifactError):
        QuantizedModel.load(tmp_path / "short.sqm")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ArtifactError):
        QuantizedModel.load(tmp_path / "plain.npy")


def test_quantize_model_rejects_bad_calibration() -> None:
    model = nn.Sequential(nn.Linear(2, 1))
    with pytest.raises(ConfigError):
        quantize_model(model, np.zeros((0, 2)))
    with pytest.raises(ConfigError):
        quantize_model(model, np.array([[np.nan, 0.0]]))
    with pytest.raises(ConfigError):
        quantize_model(model, np.zeros((2, 2)), bits=1)
    assert secquant.quantize_model is quantize_model


def test_compressed_archives_are_refused(tmp_path) -> None:
    """A deflated entry could inflate far past the payload size; artifacts are always stored."""
    qm = quantize_model(nn.Sequential(nn.Linear(4, 2)), np.random.default_rng(0).random((8, 4)))
    path = qm.save(tmp_path / "m.sqm")
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    np.savez_compressed(tmp_path / "c.npz", **entries)
    with pytest.raises(ArtifactError, match="compressed"):
        QuantizedModel.load(tmp_path / "c.npz")
    with pytest.raises(ArtifactError, match="compressed"):
        QuantizedModel.load((tmp_path / "c.npz").read_bytes())


def test_truncated_or_padded_archives_are_refused(tmp_path) -> None:
    """zipfile tolerates a damaged tail; secquant artifacts must end exactly with their directory record."""
    from secquant.artifact import encode_artifact, read_artifact

    good = encode_artifact("secquant.Test", 1, {"a": 1}, {"x": np.arange(5)})
    assert read_artifact(good, "secquant.Test")[1] == {"a": 1}
    for bad in (good[:-7], good + bytes(7), good + b"PK\x05\x06"):
        with pytest.raises(ArtifactError, match="truncated or has bytes after"):
            read_artifact(bad, "secquant.Test")
    path = tmp_path / "padded.npz"
    path.write_bytes(good + bytes(3))
    with pytest.raises(ArtifactError, match="truncated"):
        read_artifact(path, "secquant.Test")


def test_poly_with_a_small_leading_coefficient_keeps_its_square_term() -> None:
    """ReLU fitted over [-20, 40] (a_2 / a_0 ~ 1/280): the square term must survive quantization.

    With ``ca = qmax / max|a|`` alone, 8 bits round the square coefficient to 0 and the
    polynomial becomes a line (errors 17% of the output range); measured now: 0.7%.
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), Poly([3.458, 0.4938, 0.01234]), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[0].weight.mul_(20.0)  # pre-activations span about ±20
    x = torch.rand(200, 3).numpy() * 2 - 1
    qm = quantize_model(model, x, bits=8)
    assert np.all(np.asarray(qm.ops[1].coeffs[2]) != 0)
    ref = model(torch.tensor(x)).detach().double().numpy()
    assert np.abs(qm.predict(x) - ref).max() < 0.02 * np.ptp(ref)
