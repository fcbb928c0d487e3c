"""Shared fixtures: a small digits model and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from secquant.data import Dataset, load_dataset
from secquant.nn import Square
from secquant.protocol.inference import ServiceConfig, create_app
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.floors import SecurityFloor
from secquant.protocol.runner import ServerThread
from secquant.quant.model import QuantizedModel


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 80) -> nn.Module:
    torch.manual_seed(0)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def digits_mlp_qm(digits: Dataset) -> QuantizedModel:
    """64 -> 16 -> Square -> 10, 6-bit weights: small enough for every scheme."""
    from secquant import quantize_model

    torch.manual_seed(0)
    model = _train(nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 10)), digits.x_train, digits.y_train)
    return quantize_model(model, digits.x_train, bits=6)


@pytest.fixture(scope="session")
def digits_linear_qm(digits: Dataset) -> QuantizedModel:
    """A linear 64 -> 10 model (one round under Paillier)."""
    from secquant import quantize_model

    torch.manual_seed(0)
    model = _train(nn.Sequential(nn.Linear(64, 10)), digits.x_train, digits.y_train)
    return quantize_model(model, digits.x_train, bits=8)


#: The plain backend encrypts nothing, so a client accepts it only with its own explicit opt-out.
PLAIN_OK = SecurityFloor(allow_insecure=True)


@pytest.fixture()
def token() -> str:
    return secrets.token_urlsafe(24)


def start_server(qm: QuantizedModel, scheme: str, token: str | None, cache_dir: Path,
                 options: dict[str, Any] | None = None, release: Any = None,
                 **limits: Any) -> tuple[ServerThread, ModelBinding]:
    """Build the app and serve it on a free port of 127.0.0.1."""
    binding = ModelBinding.build(qm, scheme, options, release)
    config = ServiceConfig(token=token, allow_no_auth=token is None, cache_dir=str(cache_dir), **limits)
    return ServerThread(create_app(binding, config)).start(), binding


@pytest.fixture()
def plain_server(digits_mlp_qm: QuantizedModel, token: str, tmp_path: Path) -> Iterator[tuple[str, str, ModelBinding]]:
    server, binding = start_server(digits_mlp_qm, "plain", token, tmp_path / "keys", max_sessions=3, max_batch=64,
                                   max_request_bytes=1 << 20)
    try:
        yield server.url, token, binding
    finally:
        server.stop()
