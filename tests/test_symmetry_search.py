"""spglib's known failure mode: no dataset at ``angle_tolerance=5`` for a valid cell (issue 12, point 6).

``symmetry_search.search_symmetry`` retries with spglib's automatic angle tolerance (``-1``), as spglib recommends,
and both encoders go through it. The fixture ``09-spglib-slow-none-distorted-rocksalt.vasp`` (written for this
project, MIT) is a two-atom monoclinic cell on which spglib 2.x searches for about 6 s at 5° and returns nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from tokenization import structure_to_scope
from tokenization.scope_encoding import encode_v1, symmetry_dataset
from tokenization.scope_errors import SymmetrySearchError
from tokenization.scope_tables import GENERATOR_STRINGS
from tokenization.scope_v2 import encode_v2
from tokenization.symmetry_search import AUTOMATIC_ANGLE_TOLERANCE, search_symmetry

SPGLIB_NONE_CASE = (
    Path(__file__).parent / "fixtures" / "realworld" / "09-spglib-slow-none-distorted-rocksalt.vasp"
)


@pytest.fixture(scope="module")
def distorted_rocksalt() -> Structure:
    return Structure.from_file(SPGLIB_NONE_CASE)


def test_retry_with_automatic_angle_tolerance_finds_the_group(distorted_rocksalt):
    cell = (
        distorted_rocksalt.lattice.matrix,
        distorted_rocksalt.frac_coords,
        distorted_rocksalt.atomic_numbers,
    )
    found = search_symmetry(cell, 0.01, 5.0, "case 09")
    assert found.angle_tolerance == AUTOMATIC_ANGLE_TOLERANCE
    assert found.dataset.number == 12
    # The v2 string of the file, through the public path (reader, validation, encoder).
    assert structure_to_scope(str(SPGLIB_NONE_CASE), version="v2") == "SG12 Mg 0.5 2a O 0.5 2c"
    # v1 goes through the same wrapper: it used to fail here, now it gives the C2/m string. (Each spglib call at
    # 5° takes seconds on this cell, so the test makes only three.)
    assert encode_v1(distorted_rocksalt).startswith(" ".join(GENERATOR_STRINGS[12]) + " | ")


def test_no_retry_when_the_requested_tolerance_works():
    rocksalt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    found = search_symmetry(
        (rocksalt.lattice.matrix, rocksalt.frac_coords, rocksalt.atomic_numbers), 0.01, 5.0, "x"
    )
    assert (found.dataset.number, found.angle_tolerance) == (225, 5.0)


def test_error_names_the_input_and_both_tolerances():
    overlapping = Structure(Lattice.cubic(3), ["Na", "Na"], [[0, 0, 0], [0, 0, 1e-5]])
    for encode in (encode_v1, encode_v2):
        with pytest.raises(SymmetrySearchError) as error:
            encode(overlapping, source="overlap.cif")
        message = str(error.value)
        assert message.startswith("overlap.cif: ")
        assert "symprec=0.01 Å" in message
        assert (
            "angle_tolerance=5°" in message and "angle_tolerance=-1 (spglib's automatic criterion)" in message
        )


def test_automatic_angle_tolerance_requested_is_tried_once():
    overlapping = Structure(Lattice.cubic(3), ["Na", "Na"], [[0, 0, 0], [0, 0, 1e-5]])
    with pytest.raises(SymmetrySearchError) as error:
        encode_v2(overlapping, angle_tolerance=-1, source="overlap.cif")
    assert str(error.value).count("angle_tolerance=") == 1


def test_bad_tolerances_are_refused_before_spglib():
    rocksalt = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    for bad in ({"symprec": -1.0}, {"symprec": float("nan")}, {"angle_tolerance": float("inf")}):
        with pytest.raises(ValueError, match="symprec"):
            symmetry_dataset(rocksalt, **bad)
