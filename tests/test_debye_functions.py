"""Debye thermodynamics (modeling_cloud/debye_functions.py) against scipy quadrature, autograd identities and limits."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from modeling_cloud.debye_functions import (
    GAS_CONSTANT,
    debye_entropy,
    debye_free_energy,
    debye_heat_capacity,
    debye_internal_energy,
    debye_thermodynamics,
    gauss_legendre_unit_interval,
)

R = GAS_CONSTANT
THETAS = [10.0, 87.0, 300.0, 645.0, 1846.0, 3000.0]
TEMPERATURES = [1.0, 4.0, 30.0, 100.0, 298.15, 1000.0, 5000.0]


def _quad(integrand, upper):
    # scipy adaptive quadrature in float64; beyond t = 700 the integrands are below 1e-290, so stop there.
    upper = min(upper, 700.0)
    points = [p for p in (1.0, 5.0, 20.0, 60.0) if p < upper]
    value, _ = integrate.quad(
        integrand, 0.0, upper, points=points or None, limit=500, epsabs=0.0, epsrel=1e-13
    )
    return value


def reference_thermodynamics(theta, temperature, n_atoms):
    """Cv, U, S, F from the textbook integrals evaluated with scipy (float64)."""
    x = theta / temperature
    i3 = _quad(lambda t: t**3 / math.expm1(t) if t > 0 else 0.0, x)
    i4 = _quad(lambda t: t**4 * math.exp(-t) / math.expm1(-t) ** 2 if t > 0 else 0.0, x)
    debye_3 = 3.0 * i3 / x**3
    cv = 9.0 * n_atoms * R * i4 / x**3
    u = 9.0 / 8.0 * n_atoms * R * theta + 3.0 * n_atoms * R * temperature * debye_3
    s = n_atoms * R * (4.0 * debye_3 - 3.0 * math.log(-math.expm1(-x)))
    f = u - temperature * s
    return cv, u, s, f


@pytest.fixture(scope="module")
def reference_grid():
    rows = []
    for theta in THETAS:
        for temperature in TEMPERATURES:
            rows.append((theta, temperature, *reference_thermodynamics(theta, temperature, 3.0)))
    return np.array(rows)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_scipy_quadrature(reference_grid, dtype):
    theta = torch.tensor(reference_grid[:, 0], dtype=dtype)
    temperature = torch.tensor(reference_grid[:, 1], dtype=dtype)
    result = debye_thermodynamics(theta, temperature, n_atoms=3.0)
    for column, (name, value) in enumerate(zip(result._fields, result, strict=True), start=2):
        reference = reference_grid[:, column]
        got = value.double().numpy()
        assert np.all(np.isfinite(got)), name
        # F crosses zero between the zero-point and the -TS regimes: measure its error on the scale 3nRT + U_zp.
        scale = np.abs(reference)
        if name == "free_energy":
            scale = np.maximum(scale, 3 * 3.0 * R * reference_grid[:, 1] * 1e-3)
        relative = np.abs(got - reference) / scale
        assert relative.max() <= 1e-5, (name, dtype, relative.max(), reference_grid[relative.argmax(), :2])


def test_float64_is_near_machine_precision(reference_grid):
    theta = torch.tensor(reference_grid[:, 0], dtype=torch.float64)
    temperature = torch.tensor(reference_grid[:, 1], dtype=torch.float64)
    cv = debye_heat_capacity(theta, temperature, 3.0).numpy()
    assert np.max(np.abs(cv / reference_grid[:, 2] - 1)) < 1e-10


def test_float32_extreme_ratios_do_not_overflow():
    # x = θ/T up to 3000: the textbook e^t/(e^t-1)^2 form overflows float32 past x ~ 88.
    theta = torch.tensor([3000.0, 3000.0, 10.0, 10.0], requires_grad=True)
    temperature = torch.tensor([1.0, 5000.0, 1.0, 5000.0])
    result = debye_thermodynamics(theta, temperature, n_atoms=torch.tensor([1.0, 2.0, 3.0, 4.0]))
    total = sum(value.sum() for value in result)
    total.backward()
    for value in result:
        assert torch.isfinite(value).all()
    assert torch.isfinite(theta.grad).all()


def test_heat_capacity_is_temperature_derivative_of_internal_energy():
    theta = torch.tensor([[87.0], [645.0], [1846.0]], dtype=torch.float64)
    temperature = torch.tensor(
        [2.0, 20.0, 150.0, 300.0, 900.0, 4000.0], dtype=torch.float64, requires_grad=True
    )
    internal_energy = debye_internal_energy(theta, temperature, n_atoms=5.0)
    (du_dt,) = torch.autograd.grad(internal_energy.sum(), temperature, create_graph=False)
    # Each column of U depends on its own T only, so the summed gradient per column is sum over the thetas.
    cv = debye_heat_capacity(theta, temperature.detach(), n_atoms=5.0)
    torch.testing.assert_close(du_dt, cv.sum(0), rtol=1e-9, atol=1e-9)


def test_entropy_and_free_energy_derivatives():
    theta = torch.tensor(430.0, dtype=torch.float64)
    temperature = torch.linspace(3.0, 3000.0, 40, dtype=torch.float64, requires_grad=True)
    entropy = debye_entropy(theta, temperature, n_atoms=2.0)
    free_energy = debye_free_energy(theta, temperature, n_atoms=2.0)
    (ds_dt,) = torch.autograd.grad(entropy.sum(), temperature)
    (df_dt,) = torch.autograd.grad(free_energy.sum(), temperature)
    cv = debye_heat_capacity(theta, temperature.detach(), n_atoms=2.0)
    torch.testing.assert_close(ds_dt, cv / temperature.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(df_dt, -entropy.detach(), rtol=1e-9, atol=1e-9)


def test_entropy_is_integral_of_cv_over_t():
    theta, n_atoms = 645.0, 2.0
    temperature = 300.0
    numeric, _ = integrate.quad(
        lambda t: (
            float(debye_heat_capacity(torch.tensor(theta, dtype=torch.float64), torch.tensor(t), n_atoms)) / t
        ),
        1e-3,
        temperature,
        limit=200,
        epsrel=1e-11,
    )
    closed_form = float(
        debye_entropy(torch.tensor(theta, dtype=torch.float64), torch.tensor(temperature), n_atoms)
    )
    assert numeric == pytest.approx(closed_form, rel=1e-8)


def test_classical_and_quantum_limits():
    n_atoms = 4.0
    theta = torch.tensor([100.0, 500.0, 2000.0], dtype=torch.float64)
    hot_t = torch.tensor(1e5, dtype=torch.float64)
    hot = debye_heat_capacity(theta, hot_t, n_atoms)
    x = theta / hot_t
    # High T: Cv -> 3nR with the series 1 - x^2/20 + x^4/560 (Dulong-Petit).
    torch.testing.assert_close(hot, 3 * n_atoms * R * (1 - x**2 / 20 + x**4 / 560), rtol=1e-12, atol=0)
    assert float((hot / (3 * n_atoms * R)).min()) > 1 - 2.1e-5
    # Low T: Cv = (12 π^4 / 5) n R (T/θ)^3 while T << θ.
    cold_t = theta / 200.0
    cold = debye_heat_capacity(theta, cold_t, n_atoms)
    t3_law = 12 * math.pi**4 / 5 * n_atoms * R * (cold_t / theta) ** 3
    torch.testing.assert_close(cold, t3_law, rtol=1e-10, atol=0)
    # Zero-point energy at T -> 0 and the classical U = 3nRT + 9/8 nRθ - ... at high T.
    u_cold = debye_internal_energy(theta, cold_t / 10, n_atoms)
    torch.testing.assert_close(u_cold, 9 / 8 * n_atoms * R * theta, rtol=1e-6, atol=0)
    entropy_cold = debye_entropy(theta, cold_t, n_atoms)
    torch.testing.assert_close(entropy_cold, t3_law / 3, rtol=1e-10, atol=0)  # S = Cv/3 on the T^3 branch


def test_zero_point_can_be_excluded_and_n_atoms_scales_linearly():
    theta = torch.tensor(300.0, dtype=torch.float64)
    temperature = torch.tensor([50.0, 300.0], dtype=torch.float64)
    with_zp = debye_thermodynamics(theta, temperature, 1.0)
    without_zp = debye_thermodynamics(theta, temperature, 1.0, include_zero_point=False)
    torch.testing.assert_close(
        with_zp.internal_energy - without_zp.internal_energy, 9 / 8 * R * theta.expand(2)
    )
    torch.testing.assert_close(with_zp.heat_capacity, without_zp.heat_capacity)
    three = debye_thermodynamics(theta, temperature, 3.0)
    for one_value, three_value in zip(with_zp, three, strict=True):
        torch.testing.assert_close(three_value, 3 * one_value)
    per_atom_default = debye_thermodynamics(theta, temperature)
    for default_value, one_value in zip(per_atom_default, with_zp, strict=True):
        torch.testing.assert_close(default_value, one_value)


def test_authors_twenty_node_rule_is_inaccurate_at_large_x_and_the_cutoff_fixes_it():
    # 20 Gauss-Legendre nodes on [0, x_D] (the authors' rule) miss the integrand's peak near t ~ 4 once x_D is large.
    theta, temperature = torch.tensor(3000.0, dtype=torch.float64), torch.tensor(5.0, dtype=torch.float64)
    reference = reference_thermodynamics(3000.0, 5.0, 1.0)[0]
    authors = float(debye_heat_capacity(theta, temperature, num_nodes=20, cutoff=None))
    ours = float(debye_heat_capacity(theta, temperature, num_nodes=20))
    assert abs(authors / reference - 1) > 0.1  # measured: -0.26
    assert abs(ours / reference - 1) < 1e-6  # measured: 3e-7


def test_gauss_legendre_rule_and_input_validation():
    nodes, weights = gauss_legendre_unit_interval(20, torch.float64)
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-14)
    assert float((weights * nodes**39).sum()) == pytest.approx(1 / 40, rel=1e-12)  # exact to degree 2n-1
    with pytest.raises(ValueError, match="temperatures must be > 0"):
        debye_heat_capacity(torch.tensor(300.0), torch.tensor([300.0, 0.0]))
    with pytest.raises(ValueError, match="n_atoms must be > 0"):
        debye_heat_capacity(torch.tensor(300.0), torch.tensor(300.0), n_atoms=torch.tensor(-1.0))
    with pytest.raises(ValueError, match="num_nodes"):
        gauss_legendre_unit_interval(1, torch.float64)
