"""Debye temperature from elastic moduli (Anderson's formula), the source of the bundled `debye_temperature` labels.

O. L. Anderson, J. Phys. Chem. Solids 24, 909 (1963), with the Voigt-Reuss-Hill moduli of the cell the moduli were
computed on:

    v_t = sqrt(G / rho),  v_l = sqrt((K + 4G/3) / rho),  v_m = [(2 / v_t^3 + 1 / v_l^3) / 3]^(-1/3),
    theta_D = (h / k_B) (3 N / (4 pi V))^(1/3) v_m

with rho = cell mass / V and N the number of atoms in the cell, in SI units. Spot checks against experiment:
Si 623 K (645), MgO 902 K (946), LiF 723 K (732), NaCl 302 K (321).
"""

from __future__ import annotations

import math

from pymatgen.core import Structure

# CODATA 2018 exact values (SI) and the unified atomic mass unit.
PLANCK_CONSTANT = 6.62607015e-34  # J s
BOLTZMANN_CONSTANT = 1.380649e-23  # J / K
ATOMIC_MASS_UNIT = 1.66053906660e-27  # kg
ANGSTROM = 1e-10  # m
GIGAPASCAL = 1e9  # Pa


def debye_temperature_anderson(
    structure: Structure, bulk_modulus_gpa: float, shear_modulus_gpa: float
) -> float | None:
    """Debye temperature (K) from the elastic moduli with Anderson's mean-sound-velocity formula.

    Args:
        structure: the cell the moduli belong to (its mass, volume and number of atoms are used).
        bulk_modulus_gpa: Voigt-Reuss-Hill bulk modulus K in GPa.
        shear_modulus_gpa: Voigt-Reuss-Hill shear modulus G in GPa.

    Returns:
        The Debye temperature in kelvin, or ``None`` when a modulus is missing, not finite or not strictly
        positive (a sound velocity would be imaginary).

    Example:
        >>> from pymatgen.core import Lattice, Structure
        >>> si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.469), ["Si"], [[0, 0, 0]])
        >>> round(debye_temperature_anderson(si, 83.0, 61.2))  # K, G in GPa (Materials Project mp-149)
        623
    """
    if bulk_modulus_gpa is None or shear_modulus_gpa is None:
        return None
    bulk = float(bulk_modulus_gpa) * GIGAPASCAL
    shear = float(shear_modulus_gpa) * GIGAPASCAL
    if not (math.isfinite(bulk) and math.isfinite(shear)) or bulk <= 0 or shear <= 0:
        return None
    volume = structure.volume * ANGSTROM**3
    mass = sum(site.species.weight for site in structure) * ATOMIC_MASS_UNIT
    density = mass / volume
    transverse_velocity = math.sqrt(shear / density)
    longitudinal_velocity = math.sqrt((bulk + 4.0 * shear / 3.0) / density)
    mean_velocity = ((2.0 / transverse_velocity**3 + 1.0 / longitudinal_velocity**3) / 3.0) ** (-1.0 / 3.0)
    number_density = len(structure) / volume
    return (
        (PLANCK_CONSTANT / BOLTZMANN_CONSTANT)
        * (3.0 * number_density / (4.0 * math.pi)) ** (1.0 / 3.0)
        * mean_velocity
    )


__all__ = ["debye_temperature_anderson"]
