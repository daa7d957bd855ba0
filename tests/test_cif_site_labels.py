"""Atom-site labels read as elements when a CIF gives no type symbols (AMCSD, old COD entries), the Pauling File's
mixed-site and group type symbols, and the reasons of what stays refused (issue 21, survey kinds L1 and L2)."""

from __future__ import annotations

import pytest

from tokenization import UnknownSpeciesError, load_structure
from tokenization.scope_errors import (
    DisorderedStructureError,
    ImplicitHydrogenGroupError,
    UnlocatedAtomsError,
)


def labels_only(labels: list[str], formula: str | None = None, occupancies: list[str] | None = None) -> str:
    """A rock-salt-like cubic P1 cell holding one row per label (no type symbols), spread 1 Å or more apart."""
    rows = []
    for k, label in enumerate(labels):
        occupancy = f" {occupancies[k]}" if occupancies else ""
        rows.append(f"{label} {0.05 + 0.12 * k:.2f} 0.1 0.1{occupancy}")
    head = (
        "data_x\n"
        + (f"_chemical_formula_sum '{formula}'\n" if formula else "")
        + "_cell_length_a 10\n_cell_length_b 10\n_cell_length_c 10\n"
        + "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        + "loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n"
        + "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        + ("_atom_site_occupancy\n" if occupancies else "")
    )
    return head + "\n".join(rows) + "\n"


def species(text: str) -> list[str]:
    return [site.specie.symbol for site in sorted(load_structure(text), key=lambda s: s.frac_coords[0])]


@pytest.mark.parametrize(
    ("labels", "elements"),
    [
        # element symbol + upper-case site name (AMCSD): tetrahedral, octahedral, A sites, Roman numerals
        (
            ["MgT", "FeT2", "AlOct", "CaA", "NaA(m)", "NbII", "MgIII"],
            ["Mg", "Fe", "Al", "Ca", "Na", "Nb", "Mg"],
        ),
        # one-letter symbols before an upper-case site name: I on site X, K on site K, the H riding on O1
        (["IX", "KK", "HO1", "Fe1"], ["I", "K", "H", "Fe"]),
        # lower-case site names that complete no symbol: O on site a1, S1 typed 'Sl', the H of water 'Hwa'
        (["Oa1", "Sl", "Hwa", "Ala"], ["O", "S", "H", "Al"]),
        # deuterium labels are hydrogen
        (["Dw", "DWH1", "Ca1"], ["H", "H", "Ca"]),
    ],
)
def test_mixed_case_labels_end_their_symbol_where_the_case_says(labels, elements):
    assert species(labels_only(labels)) == elements


def test_all_capitals_labels_read_as_before_or_as_the_only_element_they_can_start_with():
    assert species(labels_only(["FE1", "CA1", "HC2", "HA"], formula="Ca Fe H2")) == ["Fe", "Ca", "H", "H"]
    # without a formula to confirm it, a capital site name after a symbol leaves the element open ('REE1': Re?)
    for label in ("HC2", "REE1"):
        with pytest.raises(UnknownSpeciesError, match=repr(label)):
            load_structure(labels_only(["FE1", label]))
    # a lower-case site letter elsewhere ('O1a') says nothing of how the file writes two-letter symbols
    assert species(labels_only(["SI1", "O1a"])) == ["Si", "O"]
    # a two-letter symbol written in its case ('Cl1') says capitals are not symbols: 'SI1' is S on I1
    assert species(labels_only(["SI1", "Cl1"])) == ["S", "Cl"]


def test_all_capitals_label_ambiguity_is_decided_by_the_formula():
    # 'HO1' in capitals: holmium, or H on O1; the formula names H and no Ho
    assert species(labels_only(["C1", "O1", "HO1"], formula="C H O")) == ["C", "O", "H"]
    assert species(labels_only(["C1", "O1", "HO1"], formula="C Ho O")) == ["C", "O", "Ho"]


@pytest.mark.parametrize("label", ["Wat1", "WatOW", "Watz1", "OH1", "Owa", "Du1", "max", "X"])
def test_water_and_non_element_labels_stay_refused_naming_the_label(label):
    with pytest.raises(UnknownSpeciesError, match=repr(label)):
        load_structure(labels_only(["Na1", label]))


def test_an_unreadable_label_beside_partial_sites_is_refused_for_the_label_not_as_disorder():
    text = labels_only(["Na1", "Cl1", "Wat1"], occupancies=["0.5", "1", "1"])
    with pytest.raises(UnknownSpeciesError, match="'Wat1'") as raised:
        load_structure(text)
    assert not isinstance(raised.value, DisorderedStructureError)


def test_a_label_reading_that_the_formula_does_not_name_is_refused():
    with pytest.raises(UnknownSpeciesError, match="formula does not name K"):
        load_structure(labels_only(["Kk", "Cl1"], formula="B Cl"))


def pauling(symbol: str) -> str:
    return (
        "data_x\n_cell_length_a 4.2\n_cell_length_b 4.2\n_cell_length_c 4.2\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'F m -3 m'\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        f"_atom_site_fract_z\n_atom_site_occupancy\nM '{symbol}' 0 0 0 1\nO O 0.5 0.5 0.5 1\n"
    )


def test_pauling_file_shares_with_standard_uncertainties_are_a_mixed_site():
    structure = load_structure(pauling("0.56(4)Mg + 0.29(3)Ta + 0.15(5)Zr"))
    mixed = {str(e): round(float(x), 6) for e, x in structure[0].species.items()}
    assert mixed == {"Mg": 0.56, "Ta": 0.29, "Zr": 0.15}


@pytest.mark.parametrize("symbol", ["OH", "OH2", "NH3"])
def test_group_type_symbols_are_refused_for_their_implicit_hydrogen(symbol):
    with pytest.raises(ImplicitHydrogenGroupError, match=f"'{symbol}' stands for") as raised:
        load_structure(pauling(symbol))
    assert isinstance(raised.value, UnlocatedAtomsError) and isinstance(raised.value, UnknownSpeciesError)


def test_a_dummy_ring_centroid_label_is_skipped_not_read_as_an_unlocated_atom():
    # 'Cg1' flagged dum is a ring centroid (SHELXL/PLATON), not a C whose position is unknown
    text = labels_only(["Na1", "Cl1"]).replace(
        "_atom_site_fract_z\n", "_atom_site_fract_z\n_atom_site_calc_flag\n"
    )
    text = text.replace(" 0.1 0.1\n", " 0.1 0.1 d\n") + "Cg1 -1 -1 -1 dum\n"
    structure = load_structure(text)
    assert sorted(site.specie.symbol for site in structure) == ["Cl", "Na"]
    assert any("dummy atom" in note for note in structure.properties["reader_notes"])
