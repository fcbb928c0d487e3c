"""Typed compile options: ``compile(qm, scheme, options=XOptions(...))`` and keyword options.

Oracles: the keyword form and the typed form build equal option objects and
byte-identical client specs (Paillier, known key) or equal parameter choices
(BFV, CKKS); an encrypted round trip under the typed form equals
``qm.forward_int``; both forms at once, an options object of another scheme,
and unknown keywords are refused with ``ConfigError`` whose message names the
expected type or lists every accepted keyword; invalid values are refused by
the options' ``__post_init__``.  Every case compiles a real model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

import secquant
from secquant.backends.base import Mode, NoOptions
from secquant.data import load_dataset
from secquant.errors import ConfigError, ParameterError
from tests.backends.paillier_known_keys import known_key


@pytest.fixture(scope="module")
def linear() -> tuple[secquant.QuantizedModel, np.ndarray]:
    """A logistic digits model (affine only: one Paillier round) and 4 test inputs."""
    d = load_dataset("digits")
    torch.manual_seed(0)
    qm = secquant.quantize_model(torch.nn.Sequential(torch.nn.Linear(64, 10)).eval(), d.x_train, bits=8)
    return qm, qm.quantize_input(d.x_test[:4])


def test_options_are_exported_lazily_from_secquant_and_backends() -> None:
    from secquant.backends.paillier.options import PaillierOptions

    assert secquant.PaillierOptions is PaillierOptions is secquant.backends.PaillierOptions
    assert secquant.BFVOptions is secquant.backends.BFVOptions
    assert secquant.CKKSOptions is secquant.backends.CKKSOptions


def test_paillier_typed_and_keyword_forms_agree(linear: Any) -> None:
    pytest.importorskip("gmpy2")
    qm, xq = linear
    key = known_key(2048)
    typed = secquant.compile(qm, "paillier", options=secquant.PaillierOptions(private_key=key, randomness="full"))
    keyword = secquant.compile(qm, "paillier", private_key=key, randomness="full")
    assert typed.backend.options == keyword.backend.options
    assert typed.backend.options.randomness.value == "full" and typed.backend.options.key_bits == 2048
    assert typed.backend.client_spec() == keyword.backend.client_spec()
    assert typed.parameters() == keyword.parameters()
    assert np.array_equal(typed.forward_int(xq), qm.forward_int(xq))


def test_plain_takes_no_options(linear: Any) -> None:
    qm, xq = linear
    for em in (secquant.compile(qm, "plain"), secquant.compile(qm, "plain", options=NoOptions())):
        assert em.backend.options == NoOptions()
        assert np.array_equal(em.forward_int(xq), qm.forward_int(xq))
    with pytest.raises(ConfigError, match="accepted: none"):
        secquant.compile(qm, "plain", modulus=7)


def test_both_forms_at_once_are_refused(linear: Any) -> None:
    qm, _ = linear
    with pytest.raises(ConfigError, match="not both"):
        secquant.compile(qm, "paillier", options=secquant.PaillierOptions(private_key=known_key(2048)),
                         interactive=True)
    with pytest.raises(ConfigError, match="not both"):
        secquant.compile(qm, "plain", options=NoOptions(), mode="latency")


def test_options_of_another_type_are_refused_by_name(linear: Any) -> None:
    qm, _ = linear
    with pytest.raises(ConfigError, match="PaillierOptions, got NoOptions"):
        secquant.compile(qm, "paillier", options=NoOptions())
    with pytest.raises(ConfigError, match="NoOptions, got dict"):
        secquant.compile(qm, "plain", options={"mode": "latency"})
    from secquant.backends.paillier import PaillierBackend

    with pytest.raises(ConfigError, match="PaillierOptions"):
        PaillierBackend(qm, NoOptions())


def test_unknown_keywords_are_refused_with_the_accepted_ones(linear: Any) -> None:
    qm, _ = linear
    with pytest.raises(ConfigError) as info:
        secquant.compile(qm, "paillier", private_key=known_key(2048), key_size=2048)
    message = str(info.value)
    assert "key_size" in message
    assert all(f.name in message for f in dataclasses.fields(secquant.PaillierOptions))


def test_invalid_paillier_values_are_refused() -> None:
    for bad in ({"guard_bits": 65}, {"guard_bits": True}, {"interactive": "yes"}, {"allow_insecure": 1},
                {"randomness": "fast"}, {"mode": "sideways"}, {"private_key": "secret"}, {"key_bits": 2049}):
        with pytest.raises(ConfigError):
            secquant.PaillierOptions(**bad)
    with pytest.raises(ParameterError):
        secquant.PaillierOptions(key_bits=1024)
    with pytest.raises(ConfigError, match="bits"):
        secquant.PaillierOptions(private_key=known_key(2048), key_bits=3072)
    opts = secquant.PaillierOptions(mode="throughput", randomness="djn")
    assert opts.mode is Mode.THROUGHPUT and opts.key_bits == 3072 and "private_key" not in repr(opts)


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_seal_schemes_take_typed_options(digits_mlp: Any, scheme: str) -> None:
    pytest.importorskip("tenseal")
    qm = digits_mlp.qm
    options_type = secquant.BFVOptions if scheme == "bfv" else secquant.CKKSOptions
    typed = secquant.compile(qm, scheme, options=options_type(mode="latency"))
    keyword = secquant.compile(qm, scheme, mode="latency")
    assert typed.backend.options == keyword.backend.options == options_type(mode=Mode.LATENCY)
    assert isinstance(typed.backend, type(keyword.backend)) and typed.backend.options_type is options_type
    with pytest.raises(ConfigError, match=options_type.__name__):
        secquant.compile(qm, scheme, options=secquant.PaillierOptions(private_key=known_key(2048)))
    with pytest.raises(ConfigError, match="accepted: mode"):
        secquant.compile(qm, scheme, modes="latency")
