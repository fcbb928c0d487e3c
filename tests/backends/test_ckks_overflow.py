"""TenSEAL's tutorial parameters wrap large values around q0 silently; secquant's choice does not.

Oracles: the float model (for TenSEAL) and ``qm.forward_int`` with the stated
error bound (for secquant).  Deterministic apart from encryption noise, which
is orders of magnitude below the effects tested.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import secquant
from tests.backends.ckks_models import TUTORIAL_PARAMS, mnist_tutorial, tutorial_logits

ts = pytest.importorskip("tenseal")


def test_tutorial_parameters_wrap_a_value_past_q0_over_scale():
    """At the last level only q0 (31 bits) is left: a message past q0/2 = 16·2**26 comes back shifted by 32."""
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, TUTORIAL_PARAMS["poly_modulus_degree"],
                     coeff_mod_bit_sizes=TUTORIAL_PARAMS["coeff_mod_bit_sizes"])
    ctx.global_scale = 2 ** TUTORIAL_PARAMS["global_scale_bits"]
    enc = ts.ckks_vector(ctx, [20.0] * 4096)
    for _ in range(6):  # the tutorial network's six rescales
        enc = enc * 1.0
    got = np.asarray(enc.decrypt())
    assert np.all(np.abs(got - (20.0 - 32.0)) < 1.0)  # wrapped, and no error raised


@pytest.mark.slow
def test_tutorial_network_garbles_large_logits_where_secquant_does_not():
    net, _, x, _ = mnist_tutorial()
    amp = copy.deepcopy(net)
    with torch.no_grad():  # logits ×4: same argmax, values past what q0 holds at scale 2**26
        amp[5].weight.mul_(4.0)
        amp[5].bias.mul_(4.0)
        plain = amp(torch.as_tensor(x[:1])).double().numpy()
    err = np.abs(tutorial_logits(amp, x[:1]) - plain).max()
    # garbled: off the float logits by more than 10% of the largest |logit| (plus one); CKKS noise is ~1e-2
    assert err > 0.1 * np.abs(plain).max() + 1.0, "TenSEAL's tutorial parameters should corrupt this output"

    qm = secquant.quantize_model(amp, x[:512])
    em = secquant.compile(qm, "ckks", mode="latency")
    xq = qm.quantize_input(x[:1])
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]
    assert out.argmax() == ref.argmax()
