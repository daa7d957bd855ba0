"""Malformed inputs give typed errors that name the input and the reason; batches never return partial strings."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tokenization import (
    DisorderedStructureError,
    EmptyStructureError,
    InvalidGeometryError,
    OverlappingSitesError,
    ScopeAnalyzer,
    ScopeError,
    ScopeTooLongError,
    StructureParseError,
    SymmetrySearchError,
    UnknownSpeciesError,
    structure_to_scope,
    structures_to_scope,
)
from tokenization.scope_encoding import encode_v1

CUBIC = np.eye(3) * 4.0


def test_missing_file(tmp_path):
    with pytest.raises(StructureParseError, match=r"nope\.cif: no such file"):
        structure_to_scope(str(tmp_path / "nope.cif"))


def test_unreadable_binary_file(tmp_path):
    path = tmp_path / "garbage.cif"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(StructureParseError, match=r"garbage\.cif: unreadable file"):
        structure_to_scope(path)


def test_garbage_text():
    with pytest.raises(StructureParseError, match="not a readable POSCAR"):
        structure_to_scope("hello\nthis is not a crystal\n")
    with pytest.raises(StructureParseError, match="not a readable CIF"):
        structure_to_scope("data_x\n_cell_length_a 4\n")


def test_unsupported_type():
    with pytest.raises(StructureParseError, match="unsupported input type float"):
        structure_to_scope(3.14)


def test_empty_structure():
    with pytest.raises(EmptyStructureError, match="no sites"):
        structure_to_scope(Structure(Lattice(CUBIC), [], []))
    with pytest.raises(EmptyStructureError):
        structure_to_scope((CUBIC, np.zeros((0, 3)), []))


def test_partial_occupancy_is_refused_not_guessed():
    disordered = Structure(Lattice(CUBIC), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    with pytest.raises(
        DisorderedStructureError, match=r"site 0 is partially occupied or mixed \(Fe:0.5, Ni:0.5\)"
    ):
        structure_to_scope(disordered, disorder="raise")
    vacancy = Structure(Lattice(CUBIC), [{"Fe": 0.9}], [[0, 0, 0]])
    with pytest.raises(DisorderedStructureError):
        structure_to_scope(vacancy, disorder="raise")


def test_disordered_cif_is_refused():
    cif = """data_x
_cell_length_a 4
_cell_length_b 4
_cell_length_c 4
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Fe1 Fe 0 0 0 0.5
Ni1 Ni 0 0 0 0.5
"""
    with pytest.raises(DisorderedStructureError):
        structure_to_scope(cif, disorder="raise")


def test_unknown_species():
    with pytest.raises(UnknownSpeciesError, match=r"site 1: 'Xx' is not a chemical element"):
        structure_to_scope((CUBIC, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Xx"]))
    with pytest.raises(UnknownSpeciesError, match="atomic number 130"):
        structure_to_scope((CUBIC, [[0, 0, 0]], [130]))
    dummy = Structure(Lattice(CUBIC), ["X0+"], [[0, 0, 0]])
    with pytest.raises(UnknownSpeciesError, match="not a chemical element"):
        structure_to_scope(dummy)


def test_overlapping_sites():
    with pytest.raises(OverlappingSitesError, match=r"sites 0 and 1 are 0\.0\d+ A apart"):
        structure_to_scope((CUBIC, [[0, 0, 0], [0.005, 0, 0]], ["Na", "Cl"]))
    # Overlap across the periodic boundary counts too.
    with pytest.raises(OverlappingSitesError):
        structure_to_scope((CUBIC, [[0.001, 0, 0], [0.999, 0, 0]], ["Na", "Cl"]))


def test_non_finite_and_degenerate_geometry():
    with pytest.raises(InvalidGeometryError, match="NaN or infinity"):
        structure_to_scope((CUBIC, [[np.nan, 0, 0]], ["Na"]))
    with pytest.raises(InvalidGeometryError, match="NaN or infinity"):
        structure_to_scope((np.diag([4.0, np.inf, 4.0]), [[0, 0, 0]], ["Na"]))
    with pytest.raises(InvalidGeometryError, match="degenerate lattice"):
        structure_to_scope(([[4, 0, 0], [8, 0, 0], [0, 0, 4]], [[0, 0, 0]], ["Na"]))
    with pytest.raises(InvalidGeometryError, match="3x3"):
        structure_to_scope(([[4, 0], [0, 4]], [[0, 0, 0]], ["Na"]))


def test_failed_symmetry_search_is_typed():
    structure = Structure(Lattice(CUBIC), ["Na", "Cl", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.1, 0.2, 0.3]])
    # A tolerance of the order of the interatomic distances makes spglib give up; the error must name the
    # input and the settings.
    with pytest.raises(SymmetrySearchError, match=r"my-crystal: spglib found no space group .*symprec=3.0"):
        encode_v1(structure, symprec=3.0, source="my-crystal")
    # A negative tolerance would crash spglib itself; it is refused before the call.
    with pytest.raises(ValueError, match="symprec must be a positive"):
        encode_v1(structure, symprec=-1.0)


def test_every_error_is_a_value_error_with_a_json_form():
    with pytest.raises(ValueError) as info:
        structure_to_scope((CUBIC, [[0, 0, 0]], ["Qq"]))
    assert isinstance(info.value, ScopeError)
    assert info.value.to_dict()["type"] == "UnknownSpeciesError"
    assert "Qq" in info.value.to_dict()["message"]


def test_batch_raises_with_the_index_or_returns_errors_in_place(v1_fixture_records):
    good = v1_fixture_records[0]["structure"]
    batch = [good, (CUBIC, [[0, 0, 0]], ["Qq"]), good]
    with pytest.raises(UnknownSpeciesError, match=r"^item 1 "):
        structures_to_scope(batch)
    out = structures_to_scope(batch, errors="return")
    assert len(out) == 3
    assert out[0] == out[2] == v1_fixture_records[0]["scope_v1"]
    assert isinstance(out[1], UnknownSpeciesError)
    assert all(isinstance(x, ScopeError) or (isinstance(x, str) and x.count("|") == 2) for x in out)


def test_overlap_check_agrees_with_the_neighbor_list_on_real_cells(v1_fixture_records):
    # The all-pairs shortcut must find exactly the overlaps the neighbor list finds, in skewed cells too.
    rng = np.random.default_rng(3)
    for record in v1_fixture_records[:40]:
        structure = Structure.from_dict(record["structure"])
        direction = rng.normal(size=3)
        for distance, overlapping in ((0.3, True), (0.49, True), (0.9, None)):
            shifted = structure[0].coords + distance * direction / np.linalg.norm(direction)
            probe = structure.copy()
            probe.append("He", shifted, coords_are_cartesian=True)
            _, _, _, distances = probe.get_neighbor_list(r=0.5, exclude_self=True)
            expected = len(distances) > 0
            if overlapping is not None:
                assert expected
            if expected:
                with pytest.raises(OverlappingSitesError):
                    structure_to_scope(probe)
            else:
                assert structure_to_scope(probe).count("|") == 2


def test_an_unnamed_structure_is_named_when_it_fails():
    """A pymatgen Structure is described (its formula, a pass over the sites) only when it fails, and every path
    names it the same way: validation, the v1 and v2 encoders, and the batch rows."""
    crowded = Structure(Lattice.cubic(4.0), ["Na", "Na"], [[0, 0, 0], [0.01, 0, 0]])
    expected = "Structure Na (2 sites)"
    with pytest.raises(OverlappingSitesError) as raised:
        structure_to_scope(crowded, version="v2")
    assert raised.value.source == expected and str(raised.value).startswith(expected + ": sites 0 and 1")
    cscl = Structure(Lattice.cubic(4.0), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ScopeTooLongError) as raised:  # raised by the encoder, after validation
        ScopeAnalyzer(cscl, max_length=3).get_scope("v2")
    assert raised.value.source == "Structure CsCl (2 sites)"
    (row,) = structures_to_scope([crowded], version="v2", errors="return")
    assert isinstance(row, OverlappingSitesError) and expected in row.source
    for version in ("v1", "v2"):
        analyzer = ScopeAnalyzer(cscl)
        assert analyzer.get_scope(version) and analyzer.source == "Structure CsCl (2 sites)"
