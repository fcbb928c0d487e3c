"""approximate_activations: least-squares fits against known answers, recorded ranges, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.errors import ConfigError
from secquant.nn import Poly, approximate_activations
from secquant.nn.approx import ActivationFit, fit_polynomial


def test_relu_degree2_matches_the_analytic_least_squares_fit() -> None:
    # On [-1, 1] with uniform weight: ReLU ≈ 3/32 + x/2 + 15/32 x² (Legendre expansion to P2).
    coeffs, err = fit_polynomial(lambda x: np.maximum(x, 0), -1.0, 1.0, 2)
    np.testing.assert_allclose(coeffs, [3 / 32, 1 / 2, 15 / 32], atol=2e-3)
    assert err == pytest.approx(3 / 32, abs=2e-3)  # the worst error is at x = 0


def test_polynomials_are_fitted_exactly() -> None:
    coeffs, err = fit_polynomial(lambda x: 1 - 2 * x + 0.5 * x**3, -3.0, 2.0, 3)
    np.testing.assert_allclose(coeffs, [1, -2, 0, 0.5], atol=1e-9)
    assert err < 1e-9


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 6), nn.Tanh(),
                         nn.Linear(6, 4), nn.SiLU(), nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2))


def test_every_activation_is_replaced_over_the_range_the_data_reaches() -> None:
    model = _model()
    x = torch.randn(200, 5)
    fits: list[ActivationFit] = []
    new = approximate_activations(model, 2, calibration=x, margin=0.0, fits=fits)
    assert [f.kind for f in fits] == ["ReLU", "GELU", "Tanh", "SiLU", "Sigmoid"]
    assert all(isinstance(new[i], Poly) for i in (1, 3, 5, 7, 9))
    assert isinstance(model[1], nn.ReLU)  # the original is untouched
    pre = model[0](x).detach()
    assert fits[0].lo == pytest.approx(float(pre.min())) and fits[0].hi == pytest.approx(float(pre.max()))
    for f, i in zip(fits, (1, 3, 5, 7, 9)):
        np.testing.assert_allclose(new[i].coeffs.detach().numpy(), np.asarray(f.coeffs, np.float32), rtol=1e-6)
    secquant.quantize_model(new, x.numpy(), bits=8)  # now convertible


def test_higher_degree_fits_better_and_margin_widens() -> None:
    x = torch.randn(100, 5)
    errs = []
    for degree in (2, 4, 6):
        fits: list[ActivationFit] = []
        approximate_activations(_model(), degree, calibration=x, fits=fits)
        errs.append(fits[2].max_error)  # Tanh
    assert errs[0] > errs[1] > errs[2]
    narrow: list[ActivationFit] = []
    wide: list[ActivationFit] = []
    approximate_activations(_model(), 2, calibration=x, margin=0.0, fits=narrow)
    approximate_activations(_model(), 2, calibration=x, margin=0.5, fits=wide)
    width = narrow[0].hi - narrow[0].lo
    assert wide[0].lo == pytest.approx(narrow[0].lo - 0.5 * width)


def test_learnable_polynomials_train() -> None:
    new = approximate_activations(_model(), 2, calibration=np.random.default_rng(0).normal(size=(50, 5)))
    assert isinstance(new[1].coeffs, nn.Parameter)
    frozen = approximate_activations(_model(), 2, calibration=torch.randn(50, 5), learnable=False)
    assert not isinstance(frozen[1].coeffs, nn.Parameter)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calibration": None}, "needs calibration data"),
        ({"calibration": torch.randn(10, 5), "degree": 0}, "degree must be an int in"),
        ({"calibration": torch.randn(10, 5), "degree": 2.5}, "degree must be an int in"),
        ({"calibration": torch.randn(10, 5), "margin": -1.0}, "margin must be"),
        ({"calibration": torch.full((4, 5), float("nan"))}, "NaN"),
        ({"calibration": torch.randn(5)}, "shape (n, ...)"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        approximate_activations(_model(), **kwargs)


def test_models_without_activation_modules_or_unreached_ones_are_refused() -> None:
    with pytest.raises(ConfigError, match="no ReLU"):
        approximate_activations(nn.Sequential(nn.Linear(3, 2)), calibration=torch.randn(4, 3))

    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.unused = nn.Linear(3, 2), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    with pytest.raises(ConfigError, match="not reached"):
        approximate_activations(Skips(), calibration=torch.randn(4, 3))


def test_functional_activations_are_rewritten_into_polynomials() -> None:
    """F.relu, x.relu() and F.leaky_relu(x, 0.2) inside forward: replaced on the torch.fx graph, parameters kept."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.nn.functional.relu(self.a(x))
            h = self.b(h).relu()
            return self.c(torch.nn.functional.leaky_relu(h, 0.2))

    torch.manual_seed(0)
    model = Net()
    x = torch.randn(200, 5)
    fits: list[ActivationFit] = []
    new = approximate_activations(model, 3, calibration=x, margin=0.0, fits=fits)
    assert [f.kind for f in fits] == ["ReLU", "ReLU", "LeakyReLU"]
    assert sum(isinstance(m, Poly) for m in new.modules()) == 3 and not any(isinstance(m, Poly) for m in model.modules())
    leaky = fits[2]
    grid = np.linspace(leaky.lo, leaky.hi, 101)
    poly = np.polynomial.polynomial.polyval(grid, leaky.coeffs)
    assert np.max(np.abs(poly - np.where(grid > 0, grid, 0.2 * grid))) <= leaky.max_error + 1e-9  # slope 0.2 kept
    with torch.no_grad():  # the rewritten graph computes the same layers, polynomials in place of activations
        h = torch.relu(model.a(x))
        pre = model.b(h)
        assert fits[1].lo == pytest.approx(float(pre.min()), rel=1e-5)
    secquant.quantize_model(new, x.numpy(), bits=8)
