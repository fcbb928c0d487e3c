"""Save and load float torch models without unpickling code.

A float model file is ``torch.save`` of a plain dict::

    {"format": "secquant.FloatModel", "version": 1,
     "arch": [{"type": "Linear", "in_features": 64, ...}, ...],
     "state_dict": {...}}

It is read with ``torch.load(weights_only=True)``, which refuses anything but
tensors and plain containers, and the architecture is rebuilt from the spec,
so loading a file never runs code from it.  Only ``nn.Sequential`` chains of
the layers below can be written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secquant.errors import ArtifactError, ConfigError
from secquant.nn.layers import Poly, Square

__all__ = ["build_module", "load_float_model", "module_spec", "save_float_model"]

FORMAT = "secquant.FloatModel"
VERSION = 1


def _pair(v: Any) -> list[int]:
    return [int(v[0]), int(v[1])] if isinstance(v, (tuple, list)) else [int(v), int(v)]


_SPEC: dict[type[nn.Module], Callable[[Any], dict[str, Any]]] = {
    nn.Linear: lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None},
    nn.Conv2d: lambda m: {"in_channels": m.in_channels, "out_channels": m.out_channels,
                          "kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride),
                          "padding": _pair(m.padding), "bias": m.bias is not None},
    nn.AvgPool2d: lambda m: {"kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size),
                             "padding": _pair(m.padding)},
    nn.BatchNorm1d: lambda m: {"num_features": m.num_features},
    nn.BatchNorm2d: lambda m: {"num_features": m.num_features},
    nn.Flatten: lambda m: {},
    nn.ReLU: lambda m: {},
    nn.Identity: lambda m: {},
    nn.Dropout: lambda m: {"p": m.p},
    Square: lambda m: {},
    Poly: lambda m: {"degree": m.degree, "learnable": isinstance(m.coeffs, nn.Parameter)},
}
_BUILD: dict[str, Callable[..., nn.Module]] = {
    "Linear": nn.Linear, "Conv2d": nn.Conv2d, "AvgPool2d": nn.AvgPool2d, "BatchNorm1d": nn.BatchNorm1d,
    "BatchNorm2d": nn.BatchNorm2d, "Flatten": nn.Flatten, "ReLU": nn.ReLU, "Identity": nn.Identity,
    "Dropout": nn.Dropout, "Square": Square,
    "Poly": lambda degree, learnable=False: Poly([0.0] * degree + [1.0], learnable=learnable),
}


def module_spec(model: nn.Module) -> list[dict[str, Any]]:
    """Describe an ``nn.Sequential`` as a list of layer specs.

    Raises:
        ConfigError: not a Sequential, or a layer type without a spec (all listed).
    """
    if not isinstance(model, nn.Sequential):
        raise ConfigError("only nn.Sequential models can be saved as a float model file")
    specs, problems = [], []
    for name, layer in model.named_children():
        fn = _SPEC.get(type(layer))
        if fn is None:
            problems.append(f"{name} ({type(layer).__name__})")
            continue
        specs.append({"type": type(layer).__name__, **fn(layer)})
    if problems:
        raise ConfigError("these layers cannot be described in a float model file: " + ", ".join(problems))
    return specs


def build_module(arch: list[dict[str, Any]]) -> nn.Sequential:
    """Rebuild an ``nn.Sequential`` from :func:`module_spec` output (untrained weights).

    Raises:
        ArtifactError: an unknown layer type or malformed fields.
    """
    layers = []
    for i, spec in enumerate(arch):
        if not isinstance(spec, dict) or spec.get("type") not in _BUILD:
            raise ArtifactError(f"layer {i}: unknown or missing type in {spec!r}; known: {sorted(_BUILD)}")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "type"}
        try:
            layers.append(_BUILD[spec["type"]](**kwargs))
        except TypeError as exc:
            raise ArtifactError(f"layer {i} ({spec['type']}): {exc}") from exc
    return nn.Sequential(*layers)


def save_float_model(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write a Sequential float model (architecture spec plus weights) to ``path``."""
    import io

    from secquant.artifact import write_bytes_atomic

    payload = {"format": FORMAT, "version": VERSION, "arch": module_spec(model),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return write_bytes_atomic(path, buf.getvalue())


def load_float_model(path: str | os.PathLike[str]) -> nn.Sequential:
    """Load a float model file with ``torch.load(weights_only=True)``.

    Raises:
        ArtifactError: unreadable, not a float model file, or weights that do not fit the architecture.
    """
    try:
        payload = torch.load(Path(path), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for bad or unsafe files
        raise ArtifactError(f"cannot read float model {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a secquant float model file (save one with save_float_model)")
    if payload.get("version") != VERSION:
        raise ArtifactError(f"float model version {payload.get('version')!r} is not supported")
    model = build_module(payload.get("arch", []))
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise ArtifactError(f"weights in {path} do not fit its architecture: {exc}") from exc
    return model.eval()
