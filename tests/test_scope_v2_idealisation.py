"""SCOPE v2 at the symmetry-tolerance edge (issue 12, point 7): one string for a crystal and its idealised cells.

pymatgen's ``get_conventional_standard_structure()`` and ``get_primitive_standard_structure()`` symmetrise a
crystal to the group spglib finds, and a crystal within tolerance of a higher group can then show that group. v2
looks for a larger group from every orbit of the rarest atoms, symmetrises to the group found (order-independent
averages) and searches again until the group is stable (``tokenization/symmetry_idealisation.py``).

Data: the 400 Materials Project structures of ``fixtures/scope_v1/structures.jsonl.gz`` and the 16 edge materials of
``fixtures/scope_v2/idealisation_edge_structures.jsonl.gz`` (CC BY 4.0, see that folder's README). The check over all
6,317 bundled structures is ``benchmarks/report_idealisation.py``. ``SCOPE_V2_QUICK=1`` runs the 400-structure
sweep on a quarter of them.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from tokenization import symmetry_idealisation
from tokenization.scope_v2 import encode_v2
from tokenization.symmetry_idealisation import canonical_symmetry, symmetrise

FIXTURES = Path(__file__).parent / "fixtures"
V1_STRUCTURES = FIXTURES / "scope_v1" / "structures.jsonl.gz"
EDGE_STRUCTURES = FIXTURES / "scope_v2" / "idealisation_edge_structures.jsonl.gz"
QUICK = os.environ.get("SCOPE_V2_QUICK", "") not in ("", "0")
#: Still different after the rule (measured; see SCOPE_V2.md): the crystal symmetrised by averaging stays just
#: outside the tolerance of the higher group that pymatgen's idealised cells show.
RESIDUAL = {"mp-18965", "mp-610530"}


@cache
def records(path: Path) -> tuple[dict, ...]:
    with gzip.open(path, "rt") as handle:
        return tuple(json.loads(line) for line in handle)


def idealised_cells(structure: Structure) -> list[Structure]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = SpacegroupAnalyzer(structure)
        return [analyzer.get_conventional_standard_structure(), analyzer.get_primitive_standard_structure()]


def test_fixture_structures_give_one_string_for_input_and_idealised_cells():
    selected = records(V1_STRUCTURES)[:: 4 if QUICK else 1]
    failures = []
    for record in selected:
        structure = Structure.from_dict(record["structure"])
        strings = {encode_v2(structure)} | {encode_v2(cell) for cell in idealised_cells(structure)}
        if len(strings) > 1:
            failures.append((record["material_id"], sorted(strings)))
    assert not failures, failures[:5]


@pytest.mark.parametrize("record", records(EDGE_STRUCTURES), ids=lambda r: r["material_id"])
def test_edge_structures_give_one_string_for_every_description(record, request):
    if record["material_id"] in RESIDUAL:
        request.applymarker(pytest.mark.xfail(reason="known residual at the tolerance edge", strict=False))
    structure = Structure.from_dict(record["structure"])
    rng = np.random.default_rng(12)
    shifted = Structure(structure.lattice, structure.species, structure.frac_coords + rng.random(3))
    permuted = Structure.from_sites([structure[i] for i in rng.permutation(len(structure))])
    descriptions = [structure, shifted, permuted, structure * (1, 1, 2), *idealised_cells(structure)]
    assert [encode_v2(d) for d in descriptions] == [record["expected_v2"]] * len(descriptions)


def test_symmetrise_is_exact_and_independent_of_site_order():
    """Averaging over the group gives a crystal invariant under every operation, whatever the site order."""
    rocksalt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    rng = np.random.default_rng(3)
    noisy = Structure(
        Lattice(rocksalt.lattice.matrix + rng.uniform(-2e-3, 2e-3, (3, 3))),
        rocksalt.species,
        rocksalt.frac_coords + rng.uniform(-3e-4, 3e-4, (len(rocksalt), 3)),
    )
    types = np.asarray(noisy.atomic_numbers)
    rotations = np.asarray(SpacegroupAnalyzer(rocksalt).get_symmetry_dataset().rotations)
    translations = np.asarray(SpacegroupAnalyzer(rocksalt).get_symmetry_dataset().translations)
    lattice, frac, moved = symmetrise(
        noisy.lattice.matrix, noisy.frac_coords, types, rotations, translations, 0.04
    )
    assert 0 < moved < 0.02
    metric = lattice @ lattice.T
    for rotation, translation in zip(rotations, translations, strict=True):
        assert np.allclose(rotation.T @ metric @ rotation, metric, atol=1e-9)
        images = frac @ rotation.T + translation
        delta = images[:, None, :] - frac[None, :, :]
        delta -= np.round(delta)
        assert np.abs(delta).sum(axis=2).min(axis=1).max() < 1e-9
    permutation = rng.permutation(len(types))
    _, frac_permuted, _ = symmetrise(
        noisy.lattice.matrix,
        noisy.frac_coords[permutation],
        types[permutation],
        rotations,
        translations,
        0.04,
    )
    assert np.allclose(frac_permuted, frac[permutation], atol=1e-12)


def test_types_are_any_positive_integers():
    """Types are labels, not atomic numbers: relabelling them (above 118 too) changes nothing but the labels."""
    structure = Structure.from_dict(records(EDGE_STRUCTURES)[0]["structure"])
    types = np.asarray(structure.atomic_numbers)
    relabelled = {z: 200 + k for k, z in enumerate(sorted(set(types.tolist())))}
    args = (structure.lattice.matrix, structure.frac_coords)
    plain = canonical_symmetry(*args, types, 0.01, 5.0, None)
    other = canonical_symmetry(*args, np.array([relabelled[z] for z in types]), 0.01, 5.0, None)
    assert plain[0] == other[0] and plain[1] == other[1] and np.array_equal(plain[2], other[2])


@pytest.mark.parametrize("record", records(EDGE_STRUCTURES)[:3], ids=lambda r: r["material_id"])
def test_rounds_are_bounded(record, monkeypatch):
    """With no round allowed the result is still a valid string: the bound cuts the chain, it never fails."""
    monkeypatch.setattr(symmetry_idealisation, "MAX_ROUNDS", 0)
    assert encode_v2(Structure.from_dict(record["structure"])).startswith("SG")


@pytest.mark.parametrize("material_id", sorted(RESIDUAL))
def test_residuals_reference_cells_depend_on_site_order_while_v2_does_not(material_id):
    """Why the two residuals stay: pymatgen's idealised cells of them change with the order of the input sites
    (spglib's refinement starts from one atom per orbit, chosen by order), so no order-independent string can
    match them for every order. Measured over 20 orders (helper study, session 4): mp-18965 SG164 15x / SG194 5x,
    mp-610530 SG139 11x / SG44 9x. v2 gives one string for every order."""
    record = next(r for r in records(EDGE_STRUCTURES) if r["material_id"] == material_id)
    structure = Structure.from_dict(record["structure"])
    rng = np.random.default_rng(0)
    v2_strings, reference_strings = set(), set()
    for _ in range(12):
        permuted = Structure.from_sites([structure[i] for i in rng.permutation(len(structure))])
        v2_strings.add(encode_v2(permuted))
        reference_strings.add(encode_v2(idealised_cells(permuted)[0]))
    assert v2_strings == {record["expected_v2"]}
    assert len(reference_strings) > 1, reference_strings
