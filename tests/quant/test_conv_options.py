"""Convolutions and calls written the way users write them: ``padding="same"``, dilation, groups
(depthwise), ``F.linear``/``F.conv2d`` on the model's own parameters, and ``x.sum((2, 3))``.

Each used to be refused.  The oracle is an equivalent model in the forms that
always converted (a numeric padding, the kernel spread out with zeros, a
block-diagonal kernel, a module instead of the functional call): both quantize
to the same integers, so their integer models agree exactly on real digits.
One grouped model also runs end to end under BFV, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.errors import ConfigError, SecquantError


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_dataset("digits").x_train.reshape(-1, 1, 8, 8)[:300].astype(np.float32)


class ConvNet(nn.Module):
    """conv -> square -> linear, with the conv given; ``conv_fn`` replaces the module call when set."""

    def __init__(self, conv: nn.Module, features: int, conv_fn: Callable[..., torch.Tensor] | None = None) -> None:
        super().__init__()
        self.conv, self.fc, self.conv_fn = conv, nn.Linear(features, 10), conv_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_fn(x, self.conv) if self.conv_fn is not None else self.conv(x)
        return self.fc(torch.flatten(h * h, 1))


def _init(*models: nn.Module) -> None:
    torch.manual_seed(0)
    for p in models[0].parameters():
        nn.init.uniform_(p, -0.3, 0.3)


def _same_ints(user: nn.Module, plain: nn.Module, x: np.ndarray) -> None:
    """Both models quantize to integer models that agree exactly on ``x``."""
    a = secquant.quantize_model(user.eval(), x, bits=8)
    b = secquant.quantize_model(plain.eval(), x, bits=8)
    xq = a.quantize_input(x[:64])
    np.testing.assert_array_equal(np.asarray(a.forward_int(xq)), np.asarray(b.forward_int(xq)))
    with torch.no_grad():
        want = user(torch.from_numpy(x[:64])).argmax(1).numpy()
    assert np.mean(a.predict(x[:64]).argmax(1) == want) >= 0.9


def _copy_into(plain: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None, fc: nn.Linear, net: ConvNet) -> ConvNet:
    with torch.no_grad():
        plain.weight.copy_(weight)
        if bias is not None:
            plain.bias.copy_(bias)
    out = ConvNet(plain, fc.in_features)
    out.fc.load_state_dict(net.fc.state_dict())
    return out


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_string_padding_is_the_numeric_padding(digits, padding: str) -> None:
    user = ConvNet(nn.Conv2d(1, 3, 3, padding=padding), 3 * (64 if padding == "same" else 36))
    _init(user)
    plain = _copy_into(nn.Conv2d(1, 3, 3, padding=1 if padding == "same" else 0), user.conv.weight, user.conv.bias,
                       user.fc, user)
    _same_ints(user, plain, digits)


def test_dilated_conv_is_the_spread_kernel(digits) -> None:
    user = ConvNet(nn.Conv2d(1, 2, 3, dilation=2, padding="same"), 2 * 64)
    _init(user)
    spread = torch.zeros(2, 1, 5, 5)
    spread[:, :, ::2, ::2] = user.conv.weight.detach()
    plain = _copy_into(nn.Conv2d(1, 2, 5, padding=2), spread, user.conv.bias, user.fc, user)
    _same_ints(user, plain, digits)


def test_grouped_and_depthwise_convs_are_block_diagonal(digits) -> None:
    x = np.repeat(digits, 2, axis=1)  # two input channels
    user = ConvNet(nn.Conv2d(2, 4, 3, groups=2), 4 * 36)
    _init(user)
    block = torch.zeros(4, 2, 3, 3)
    block[:2, :1], block[2:, 1:] = user.conv.weight.detach()[:2], user.conv.weight.detach()[2:]
    _same_ints(user, _copy_into(nn.Conv2d(2, 4, 3), block, user.conv.bias, user.fc, user), x)
    depthwise = ConvNet(nn.Conv2d(2, 2, 3, groups=2, padding=1), 2 * 64)
    _init(depthwise)
    qm = secquant.quantize_model(depthwise.eval(), x, bits=6)
    em = secquant.compile(qm, "bfv", mode="latency")
    client = em.client()
    server = em.server(client.public_material())
    xq = qm.quantize_input(x[:1])
    result, _ = secquant.backends.base.run_rounds(client, server, client.encrypt(xq))
    np.testing.assert_array_equal(np.asarray(client.decrypt(result)), np.asarray(qm.forward_int(xq)))


@pytest.mark.parametrize("call", ["conv2d", "conv2d_nobias", "linear"])
def test_functional_calls_on_own_parameters(digits, call: str) -> None:
    if call == "linear":
        class Functional(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.hidden, self.out = nn.Linear(64, 16), nn.Linear(16, 10)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                h = F.linear(torch.flatten(x, 1), self.hidden.weight, self.hidden.bias)
                return F.linear(h * h, self.out.weight, self.out.bias)

        user = Functional()
        _init(user)
        plain = nn.Sequential(nn.Flatten(), user.hidden, secquant.nn.Square(), user.out)
        _same_ints(user, plain, digits)
        return
    bias = call == "conv2d"
    user = ConvNet(nn.Conv2d(1, 2, 3, bias=bias), 2 * 16,
                   lambda x, conv: F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1))
    _init(user)
    plain = _copy_into(nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=bias), user.conv.weight, user.conv.bias,
                       user.fc, user)
    _same_ints(user, plain, digits)


def test_spatial_sum_is_global_sum_pooling(digits) -> None:
    class Summed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            return self.fc((h * h).sum(dim=(2, 3)))

    user = Summed()
    _init(user)
    qm = secquant.quantize_model(user.eval(), digits, bits=8)
    with torch.no_grad():
        want = user(torch.from_numpy(digits[:64])).numpy()
    got = qm.predict(digits[:64])
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.95
    assert np.max(np.abs(got - want)) <= 0.05 * np.max(np.abs(want))


def test_what_stays_refused_is_named(digits) -> None:
    """Reflect padding, an even 'same' kernel, and a sum over channels: typed errors that say why."""
    for conv, match in [(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), "zero padding"),
                        (nn.Conv2d(1, 2, 2, padding="same"), "one side more")]:
        with pytest.raises(ConfigError, match=match):
            secquant.quantize_model(ConvNet(conv, 128).eval(), digits, bits=8)

    class ChannelSum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).sum(dim=1).flatten(1)

    with pytest.raises(SecquantError, match="global sum pooling"):
        secquant.quantize_model(ChannelSum().eval(), digits, bits=8)
