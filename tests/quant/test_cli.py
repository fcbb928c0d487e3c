"""``secquant quantize`` and ``secquant inspect`` end to end, in process."""

from __future__ import annotations

import json

import torch
from torch import nn

from secquant import QuantizedModel
from secquant.cli import main
from secquant.nn import Square
from secquant.torchio import load_float_model, save_float_model


def test_quantize_then_inspect(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), Square(), nn.Linear(8, 10)).eval()
    save_float_model(model, tmp_path / "f.pt")
    assert main(["quantize", str(tmp_path / "f.pt"), "--data", "digits", "--bits", "6", "--out", str(tmp_path / "m.sqm")]) == 0
    out = capsys.readouterr().out
    assert "modulus needed" in out and "square" in out
    qm = QuantizedModel.load(tmp_path / "m.sqm")
    assert main(["inspect", str(tmp_path / "m.sqm"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert int(summary["modulus"]) == qm.modulus and summary["bounds"]["bits"] == qm.bounds().bits


def test_too_small_modulus_exits_2_with_message(tmp_path, capsys) -> None:
    save_float_model(nn.Sequential(nn.Linear(64, 10)), tmp_path / "f.pt")
    code = main(["quantize", str(tmp_path / "f.pt"), "--data", "digits", "--modulus", "101", "--out", str(tmp_path / "m.sqm")])
    assert code == 2
    assert "needs a modulus of at least" in capsys.readouterr().err
    assert not (tmp_path / "m.sqm").exists()


def test_float_model_file_round_trip_and_refusals(tmp_path, capsys) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), Square(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    save_float_model(model, tmp_path / "f.pt")
    loaded = load_float_model(tmp_path / "f.pt")
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))
    torch.save({"not": "ours"}, tmp_path / "other.pt")
    assert main(["inspect", str(tmp_path / "other.pt")]) == 2
    assert "not a secquant artifact" in capsys.readouterr().err
    assert main(["quantize", str(tmp_path / "other.pt"), "--data", "digits", "--out", str(tmp_path / "x.sqm")]) == 2
    assert "float model" in capsys.readouterr().err
