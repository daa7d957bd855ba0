# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Differentiable Debye-model thermodynamics from a Debye temperature θ_D, in torch.

With x = θ_D/T, n atoms per cell and R the gas constant, per mole of cells:

- heat capacity    Cv(T) = 9 n R (T/θ_D)^3 ∫_0^x t^4 e^t / (e^t - 1)^2 dt
- internal energy  U(T)  = 9/8 n R θ_D + 3 n R T D3(x)            (zero-point term included)
- entropy          S(T)  = n R [4 D3(x) - 3 ln(1 - e^-x)]
- free energy      F(T)  = U - T S = 9/8 n R θ_D - n R T D3(x) + 3 n R T ln(1 - e^-x)

where D3(x) = 3/x^3 ∫_0^x t^3 / (e^t - 1) dt is the Debye function of order 3.

How the integrals are computed, and why:

- Substituting t = a s with a = min(x, cutoff) gives, for both integrals, x^-3 ∫_0^a ... dt = (a/x)^3 ∫_0^1 s^2 g(a s) ds
  with g(t) = t / (e^t - 1) or t^2 e^t / (e^t - 1)^2. Both g tend to 1 at t -> 0 and are written with e^-t and expm1, so
  nothing overflows in float32 (the textbook form overflows once x > ~88) and no large power of x is formed.
- Beyond t = cutoff (50 by default) the integrands are below 1e-16 of their peak, so integrating to min(x, cutoff)
  gives the full integral whatever x is. That also keeps a fixed Gauss-Legendre rule accurate: 32 nodes on [0, 50]
  reach a relative error of ~1e-12 in float64 (the authors' 20 nodes on [0, x_D] lose accuracy at large x_D).
- Everything is a smooth torch expression of θ_D and T, so autograd gives Cv = dU/dT, dS/dT = Cv/T and
  dF/dT = -S to quadrature accuracy.

Supported range: T in [1, 5000] K and θ_D in [10, 3000] K (x from 0.002 to 3000), float32 or float64. x is clamped
below at 1e-6, so θ_D <= 0 (possible only with the authors' unconstrained affine head) gives the classical limit.

This file is remote code (copied flat into checkpoints); it imports only pip packages.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

GAS_CONSTANT = 8.314462618  # J/(K mol), CODATA 2018 (exact since the SI redefinition: N_A * k_B)
DEFAULT_QUADRATURE_NODES = 32
DEFAULT_INTEGRATION_CUTOFF = 50.0
_MIN_X = 1e-6


class DebyeThermodynamics(NamedTuple):
    """Debye thermodynamic functions, each broadcast to the common shape of θ_D, T and n_atoms.

    Units per mole of cells (per mole of atoms when `n_atoms` is 1): heat capacity and entropy in J/(K mol),
    internal energy and free energy in J/mol.
    """

    heat_capacity: torch.Tensor
    internal_energy: torch.Tensor
    entropy: torch.Tensor
    free_energy: torch.Tensor


@functools.lru_cache(maxsize=16)
def _gauss_legendre_unit(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    # Nodes and weights of the rule on [0, 1], in float64.
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    return (nodes + 1.0) / 2.0, weights / 2.0


def gauss_legendre_unit_interval(
    num_nodes: int, dtype: torch.dtype, device: torch.device | str | None = None
):
    """Gauss-Legendre nodes and weights on [0, 1] as tensors (the weights sum to 1).

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud.debye_functions import gauss_legendre_unit_interval
    >>> nodes, weights = gauss_legendre_unit_interval(8, torch.float64)
    >>> round(float((weights * nodes**3).sum()), 12)  # exact for polynomials up to degree 15
    0.25

    ```
    """
    if num_nodes < 2:
        raise ValueError(f"num_nodes must be >= 2, got {num_nodes}")
    nodes, weights = _gauss_legendre_unit(int(num_nodes))
    return (
        torch.as_tensor(nodes, dtype=dtype, device=device),
        torch.as_tensor(weights, dtype=dtype, device=device),
    )


def _reduced_integrals(
    x: torch.Tensor, num_nodes: int, cutoff: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return D3(x) = 3/x^3 ∫_0^x t^3/(e^t-1) dt and C(x) = 3/x^3 ∫_0^x t^4 e^t/(e^t-1)^2 dt = Cv / (3 n R)."""
    nodes, weights = gauss_legendre_unit_interval(num_nodes, x.dtype, x.device)
    upper = x if cutoff is None else torch.clamp(x, max=cutoff)
    ratio_cubed = (upper / x) ** 3
    t = upper.unsqueeze(-1) * nodes  # (..., num_nodes), all > 0 because x >= _MIN_X
    exp_minus_t = torch.exp(-t)
    one_minus_exp = -torch.expm1(-t)  # 1 - e^-t, accurate for small t
    t_over = t / one_minus_exp  # t/(1 - e^-t): -> 1 as t -> 0, ~t for large t
    bose_t = t_over * exp_minus_t  # t/(e^t - 1); -> 0, not NaN, when e^-t underflows
    heat_t = t_over * t_over * exp_minus_t  # t^2 e^t/(e^t - 1)^2 without forming e^t
    weighted = weights * nodes * nodes
    debye_3 = 3.0 * ratio_cubed * (bose_t * weighted).sum(-1)
    heat_reduced = 3.0 * ratio_cubed * (heat_t * weighted).sum(-1)
    return debye_3, heat_reduced


def _prepare(theta, temperature, n_atoms):
    theta = torch.as_tensor(theta)
    if not torch.is_floating_point(theta):
        theta = theta.to(torch.get_default_dtype())
    temperature = torch.as_tensor(temperature, dtype=theta.dtype, device=theta.device)
    if n_atoms is None:
        n_atoms = torch.ones((), dtype=theta.dtype, device=theta.device)
    n_atoms = torch.as_tensor(n_atoms, dtype=theta.dtype, device=theta.device)
    if not torch.compiler.is_compiling():
        if not bool(torch.all(temperature > 0)):
            raise ValueError(f"temperatures must be > 0 K, got {temperature.detach().cpu().tolist()}")
        if not bool(torch.all(n_atoms > 0)):
            raise ValueError(f"n_atoms must be > 0, got {n_atoms.detach().cpu().tolist()}")
    theta, temperature, n_atoms = torch.broadcast_tensors(theta, temperature, n_atoms)
    x = (theta / temperature).clamp_min(_MIN_X)
    return theta, temperature, n_atoms, x


def debye_thermodynamics(
    theta: torch.Tensor,
    temperature: torch.Tensor,
    n_atoms: torch.Tensor | float | None = None,
    *,
    num_nodes: int = DEFAULT_QUADRATURE_NODES,
    cutoff: float | None = DEFAULT_INTEGRATION_CUTOFF,
    include_zero_point: bool = True,
) -> DebyeThermodynamics:
    """Heat capacity, internal energy, entropy and free energy of a Debye solid.

    Args:
        theta: Debye temperature θ_D in K.
        temperature: temperature T in K (> 0). Broadcast against `theta`, e.g. `theta[:, None]` with T of shape (T,).
        n_atoms: atoms per cell (> 0); values are per mole of cells. `None` means 1, i.e. per mole of atoms.
        num_nodes: Gauss-Legendre nodes.
        cutoff: upper limit on x = θ_D/T of the numerical integral (`None`: integrate to x as the authors did).
        include_zero_point: add the zero-point energy 9/8 n R θ_D to U and F.

    Returns:
        [`DebyeThermodynamics`] of tensors with the broadcast shape: Cv and S in J/(K mol), U and F in J/mol.

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud.debye_functions import GAS_CONSTANT, debye_thermodynamics
    >>> out = debye_thermodynamics(torch.tensor([300.0, 1000.0], dtype=torch.float64), torch.tensor(3000.0), n_atoms=2)
    >>> [round(v, 3) for v in (out.heat_capacity / (3 * 2 * GAS_CONSTANT)).tolist()]  # classical limit 3nR
    [1.0, 0.994]

    ```
    """
    theta, temperature, n_atoms, x = _prepare(theta, temperature, n_atoms)
    debye_3, heat_reduced = _reduced_integrals(x, num_nodes, cutoff)
    nr = n_atoms * GAS_CONSTANT
    log_one_minus_exp = torch.log(-torch.expm1(-x))  # ln(1 - e^-x), finite for x >= _MIN_X
    zero_point = 9.0 / 8.0 * nr * theta if include_zero_point else torch.zeros_like(theta)
    heat_capacity = 3.0 * nr * heat_reduced
    internal_energy = zero_point + 3.0 * nr * temperature * debye_3
    entropy = nr * (4.0 * debye_3 - 3.0 * log_one_minus_exp)
    free_energy = zero_point - nr * temperature * (debye_3 - 3.0 * log_one_minus_exp)
    return DebyeThermodynamics(heat_capacity, internal_energy, entropy, free_energy)


def debye_heat_capacity(theta, temperature, n_atoms=None, **kwargs) -> torch.Tensor:
    """Debye heat capacity Cv(T) in J/(K mol of cells). See [`debye_thermodynamics`] for the arguments.

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud.debye_functions import GAS_CONSTANT, debye_heat_capacity
    >>> cv = debye_heat_capacity(torch.tensor(400.0, dtype=torch.float64), torch.tensor(4.0, dtype=torch.float64))
    >>> round(float(cv / (12 * torch.pi**4 / 5 * GAS_CONSTANT * (4.0 / 400.0) ** 3)), 9)  # T^3 law at low T
    1.0

    ```
    """
    return debye_thermodynamics(theta, temperature, n_atoms, **kwargs).heat_capacity


def debye_internal_energy(theta, temperature, n_atoms=None, **kwargs) -> torch.Tensor:
    """Debye internal energy U(T) in J/(mol of cells), zero-point energy 9/8 n R θ_D included by default."""
    return debye_thermodynamics(theta, temperature, n_atoms, **kwargs).internal_energy


def debye_entropy(theta, temperature, n_atoms=None, **kwargs) -> torch.Tensor:
    """Debye vibrational entropy S(T) in J/(K mol of cells)."""
    return debye_thermodynamics(theta, temperature, n_atoms, **kwargs).entropy


def debye_free_energy(theta, temperature, n_atoms=None, **kwargs) -> torch.Tensor:
    """Debye vibrational (Helmholtz) free energy F(T) = U - T S in J/(mol of cells)."""
    return debye_thermodynamics(theta, temperature, n_atoms, **kwargs).free_energy


__all__ = [
    "GAS_CONSTANT",
    "DebyeThermodynamics",
    "debye_entropy",
    "debye_free_energy",
    "debye_heat_capacity",
    "debye_internal_energy",
    "debye_thermodynamics",
    "gauss_legendre_unit_interval",
]
