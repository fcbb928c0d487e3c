"""TenSEAL's tutorial network for the CKKS overflow demonstration: trained (deterministic, seconds) and
evaluated the tutorial's way, under the tutorial's parameters (``bench/tenseal_baseline.py`` times the
same evaluation; tests do not import from ``bench/``)."""

from __future__ import annotations

from functools import cache
from typing import Any, cast

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square
from secquant.quant.model import QuantizedModel

__all__ = ["TUTORIAL_PARAMS", "mnist_tutorial", "tutorial_context", "tutorial_logits", "tutorial_net"]

#: TenSEAL's MNIST tutorial parameters ("Encrypted Convolution on MNIST").
TUTORIAL_PARAMS: dict[str, Any] = {
    "poly_modulus_degree": 8192,
    "coeff_mod_bit_sizes": [31, 26, 26, 26, 26, 26, 26, 31],
    "global_scale_bits": 26,
}


def tutorial_context() -> Any:
    """A TenSEAL CKKS context with the tutorial's parameters and default Galois keys."""
    import tenseal as ts  # type: ignore[import-untyped]

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=TUTORIAL_PARAMS["poly_modulus_degree"],
                     coeff_mod_bit_sizes=TUTORIAL_PARAMS["coeff_mod_bit_sizes"])
    ctx.global_scale = 2 ** TUTORIAL_PARAMS["global_scale_bits"]
    ctx.generate_galois_keys()
    return ctx


def tutorial_logits(model: nn.Sequential, images: np.ndarray) -> np.ndarray:
    """Decrypted logits of :func:`tutorial_net`-shaped ``model`` on (n, 1, 28, 28) images, evaluated exactly
    as TenSEAL's tutorial does (``im2col_encoding``, ``conv2d_im2col``, ``pack_vectors``, ``square_``, ``mm``)."""
    import tenseal as ts

    conv, fc1, fc2 = cast(nn.Conv2d, model[0]), cast(nn.Linear, model[3]), cast(nn.Linear, model[5])
    kernel, stride = int(conv.kernel_size[0]), int(conv.stride[0])
    conv_w = conv.weight.data.view(conv.out_channels, kernel, kernel).tolist()
    conv_b = [0.0] * conv.out_channels if conv.bias is None else conv.bias.data.tolist()
    ctx = tutorial_context()
    out = []
    for img in np.asarray(images, dtype=np.float32).reshape(-1, 28, 28):
        enc_x, windows = ts.im2col_encoding(ctx, img.tolist(), kernel, kernel, stride)
        enc = ts.CKKSVector.pack_vectors([enc_x.conv2d_im2col(k, windows) + b
                                          for k, b in zip(conv_w, conv_b)])
        enc.square_()
        enc = enc.mm(fc1.weight.T.data.tolist()) + fc1.bias.data.tolist()
        enc.square_()
        enc = enc.mm(fc2.weight.T.data.tolist()) + fc2.bias.data.tolist()
        out.append(enc.decrypt())
    return np.asarray(out, dtype=np.float64)


def tutorial_net() -> nn.Sequential:
    """conv(1 -> 4, 7x7, stride 3) -> Square -> flatten -> fc 256->64 -> Square -> fc 64->10."""
    return nn.Sequential(nn.Conv2d(1, 4, 7, stride=3), Square(), nn.Flatten(), nn.Linear(256, 64), Square(),
                         nn.Linear(64, 10))


@cache
def mnist_tutorial(epochs: int = 40) -> tuple[nn.Module, QuantizedModel, np.ndarray, np.ndarray]:
    """(float model, integer model, x_test, y_test), full-batch Adam with a fixed seed on one thread."""
    torch.set_num_threads(1)
    m = load_dataset("mnist")
    xtr, xte = m.images()
    torch.manual_seed(0)
    net = tutorial_net()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xt, yt = torch.tensor(xtr), torch.tensor(m.y_train)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    qm = secquant.quantize_model(net, xtr[:512])
    return net, qm, xte, m.y_test
