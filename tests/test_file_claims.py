"""What a file says about itself, checked against the crystal built from it (tokenization/file_claims.py).

Each case is a small file written here: a right file gives its crystal with no note, a small deviation a note, a file
that contradicts itself a typed error that names the file, what it says and what was built.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenization import StructureParseError, UnknownSpeciesError, load_structure, structure_to_scope
from tokenization.file_claims import Measured, parse_formula, shares_fill_site
from tokenization.scope_errors import InconsistentFileError, UnlocatedAtomsError
from tokenization.structure_io import load_structures

EXAMPLES = Path(__file__).parents[1] / "dataset_builders" / "data" / "examples"
REALWORLD = Path(__file__).parent / "fixtures" / "realworld"


def _nacl_cif(extra: str = "", na_row: str = "Na1 Na 0 0 0", header: str = "") -> str:
    return f"""data_NaCl
_space_group_name_H-M_alt 'F m -3 m'
_space_group_IT_number 225
_cell_length_a 5.6402(3)
_cell_length_b 5.6402(3)
_cell_length_c 5.6402(3)
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
{extra}
loop_
_atom_site_label
_atom_site_type_symbol
{header}_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
{na_row}
Cl1 Cl 0.5 0.5 0.5
"""


def _notes(structure) -> list[str]:
    return list(structure.properties.get("reader_notes", []))


# --- CIF: formula, Z, volume, density ----------------------------------------------------------------------------


def test_a_right_cif_passes_every_check_without_a_note():
    extra = "_chemical_formula_sum 'Cl Na'\n_cell_formula_units_Z 4\n_cell_volume 179.43(3)\n"
    extra += "_exptl_crystal_density_diffrn 2.163\n"
    structure = load_structure(_nacl_cif(extra), "nacl.cif")
    assert structure.composition.reduced_formula == "NaCl"
    assert _notes(structure) == []


BOEHMITE = """data_boehmite
_chemical_formula_sum 'Al H O2'
_cell_formula_units_Z 4
_space_group_name_H-M_alt 'C m c m'
_space_group_IT_number 63
_cell_length_a 2.868
_cell_length_b 12.227
_cell_length_c 3.692
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Al1 0 0.3218 0.25
O1 0 0.2888 0.75
O2 0 0.0792 0.25
"""


def test_boehmite_with_h_in_the_formula_but_on_no_site_is_refused():
    # AlO(OH), Cmcm, the H of the hydroxyl not located (as COD and AMCSD hydroxides often are).
    text = BOEHMITE
    with pytest.raises(
        UnlocatedAtomsError, match=r"boehmite\.cif: .*declares H1 per formula unit.*places no H"
    ):
        load_structure(text, "boehmite.cif")
    # Without the H in the formula, the same sites are a consistent (H-free) file.
    assert load_structure(text.replace("'Al H O2'", "'Al O2'"), "b.cif").composition.reduced_formula == "AlO2"


@pytest.mark.parametrize("formula", ["'Al O (O H)'", "'Al [O (O H)]'", "'(Al) O (O H)1'"])
def test_a_bracketed_formula_sum_is_read_and_its_h_checked(formula):
    # AMCSD writes formula sums with bracketed groups ('(Fe6.1 Mg.9) Si8 O23.5 (F.5 H1.5)'); the group's contents
    # count, so the unplaced H of boehmite written 'Al O (O H)' is caught like 'Al H O2'.
    text = BOEHMITE.replace("'Al H O2'", formula)
    with pytest.raises(UnlocatedAtomsError, match=r"declares H1 per formula unit.*places no H"):
        load_structure(text, "boehmite.cif")
    assert parse_formula(formula.strip("'")) == (
        {"Al": 1.0, "O": 2.0, "H": 1.0},
        {"Al": 0.0, "O": 0.0, "H": 0.0},
    )


ICSD_DUM = """data_icsd_boehmite
_chemical_formula_sum 'Al1 H1 O2'
_cell_formula_units_Z 4
_space_group_name_H-M_alt 'C m c m'
_cell_length_a 2.868
_cell_length_b 12.227
_cell_length_c 3.692
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_symmetry_multiplicity
_atom_site_Wyckoff_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
_atom_site_calc_flag
Al1 Al3+ 4 c 0 0.3218 0.25 1. d
O1 O2- 4 c 0 0.2888 0.75 1. d
O2 O2- 4 c 0 0.0792 0.25 1. d
H1 H1+ 0 . -1 -1 -1 1. dum
"""


def test_an_icsd_dum_row_is_refused_as_h_not_located(tmp_path):
    path = tmp_path / "icsd.cif"
    path.write_text(ICSD_DUM)
    with pytest.raises(UnlocatedAtomsError, match=r"icsd\.cif: H not located.*H1 \(H 1\)"):
        load_structure(path)
    # A dummy that is no element (a ring centroid) is still skipped, with a note.
    centroid = ICSD_DUM.replace("H1 H1+ 0 . -1 -1 -1 1. dum", "Cg1 ? 0 . 0.1 0.1 0.1 1. dum").replace(
        "'Al1 H1 O2'", "'Al1 O2'"
    )
    assert any("dummy atom" in note for note in _notes(load_structure(centroid, "c.cif")))


def test_the_ase_path_with_the_cif_tags_refuses_the_icsd_dum_file_too(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    path = tmp_path / "icsd.cif"
    path.write_text(ICSD_DUM)
    # ASE places the dum row as an H on the origin's orbit; the tags it keeps say that H was not located.
    atoms = ase_io.read(path, store_tags=True)
    assert "H" in atoms.get_chemical_symbols()
    with pytest.raises(UnlocatedAtomsError, match="H not located"):
        structure_to_scope(atoms, "v2", source="icsd via ASE")


def test_a_wrong_z_names_both_numbers():
    extra = "_chemical_formula_sum 'Cl Na'\n_cell_formula_units_Z 2\n"
    with pytest.raises(InconsistentFileError, match=r"declares Z = 2; the cell built holds 4 formula units"):
        load_structure(_nacl_cif(extra), "z.cif")


def test_a_file_without_z_must_hold_a_whole_number_of_formula_units():
    assert _notes(load_structure(_nacl_cif("_chemical_formula_sum 'Cl Na'\n"), "noz.cif")) == []
    with pytest.raises(InconsistentFileError, match=r"holds 1\.333 formula units"):
        load_structure(_nacl_cif("_chemical_formula_sum 'Cl3 Na3'\n"), "noz.cif")


def test_pymatgen_cell_formula_with_its_z_is_right():
    # pymatgen's CifWriter writes the cell's contents as the formula sum ('Cu4', Z = 4): every Materials Project CIF.
    for name in ("Cu.cif", "Al2O3.cif", "ZnO.cif"):
        structure = load_structure(EXAMPLES / name)
        assert _notes(structure) == [], name


def test_rounded_formula_of_a_disordered_site_is_within_its_rounding():
    # 'Co0.33 Li1 Mn0.33 Ni0.33 O2', no Z: the thirds are rounded, the cell holds 3 formula units.
    structure = load_structure(REALWORLD / "r3_05_NMC111_thirds_two_decimals.cif")
    assert not [n for n in _notes(structure) if "formula" in n]


@pytest.mark.parametrize(
    ("volume", "outcome"),
    [("179.43(3)", None), ("179.6", "note"), ("200.0", "error")],
)
def test_cell_volume_three_bands(volume, outcome):
    text = _nacl_cif(f"_cell_volume {volume}\n")
    if outcome == "error":
        with pytest.raises(
            InconsistentFileError, match=r"declares _cell_volume 200\.0; the crystal built has 179\.4"
        ):
            load_structure(text, "v.cif")
        return
    notes = [n for n in _notes(load_structure(text, "v.cif")) if "_cell_volume" in n]
    assert bool(notes) == (outcome == "note")


def test_density_beyond_its_tolerance_is_refused():
    with pytest.raises(InconsistentFileError, match="_exptl_crystal_density_diffrn 2.5"):
        load_structure(_nacl_cif("_exptl_crystal_density_diffrn 2.5\n"), "d.cif")


def test_wrong_multiplicity_or_wyckoff_letter_is_refused():
    header = "_atom_site_symmetry_multiplicity\n_atom_site_Wyckoff_symbol\n"
    right = _nacl_cif(header=header, na_row="Na1 Na 4 a 0 0 0").replace("Cl1 Cl 0.5", "Cl1 Cl 4 b 0.5")
    assert _notes(load_structure(right, "m.cif")) == []
    with pytest.raises(
        InconsistentFileError, match=r"site Na1: the file gives multiplicity 8 .* has 4 positions"
    ):
        load_structure(right.replace("Na1 Na 4 a", "Na1 Na 8 a"), "m.cif")
    with pytest.raises(
        InconsistentFileError, match=r"site Na1: the file gives Wyckoff letter c \(multiplicity 8"
    ):
        load_structure(right.replace("Na1 Na 4 a", "Na1 Na 4 c"), "m.cif")


def test_shelxl_site_symmetry_order_under_the_multiplicity_tag_is_read_as_such():
    # SHELXL writes the order of the site symmetry there: 192 operations of Fm-3m over an orbit of 4 = 48.
    header = "_atom_site_symmetry_multiplicity\n"
    text = _nacl_cif(header=header, na_row="Na1 Na 48 0 0 0").replace("Cl1 Cl 0.5", "Cl1 Cl 4 0.5")
    assert load_structure(text, "shelxl.cif").composition.reduced_formula == "NaCl"
    with pytest.raises(InconsistentFileError, match="multiplicity 24"):
        load_structure(text.replace("Na1 Na 48", "Na1 Na 24"), "shelxl.cif")


def test_rhombohedral_axes_may_give_hexagonal_multiplicities():
    # alpha-Hg on rhombohedral axes: one atom per cell, 3a in the hexagonal description.
    text = (REALWORLD / "06c-alpha-Hg-R-3m-rhombohedral-axes-HM-only.cif").read_text()
    assert "_atom_site_symmetry_multiplicity" not in text
    text = text.replace("_atom_site_label", "_atom_site_symmetry_multiplicity\n_atom_site_label", 1)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("_atom_site_fract_z")) + 1
    lines[start] = "3 " + lines[start]
    assert load_structure("\n".join(lines), "hg.cif").composition.reduced_formula == "Hg"


# --- POSCAR ------------------------------------------------------------------------------------------------------

SILICON = "\n".join(
    [
        "{comment}",
        "5.431",
        "0 0.5 0.5",
        "0.5 0 0.5",
        "0.5 0.5 0",
        "{counts}",
        "Direct",
        "0 0 0",
        "0.25 0.25 0.25",
    ]
)


def test_poscar_counts_against_the_positions_listed():
    text = SILICON.format(comment="Si", counts="Si\n2")
    assert load_structure(text, "si").composition.reduced_formula == "Si"
    with pytest.raises(InconsistentFileError, match="asks for 3 positions, but only 2"):
        load_structure(SILICON.format(comment="Si", counts="Si\n3"), "si")
    with pytest.raises(InconsistentFileError, match="asks for 1 positions, but position line 2 follows"):
        load_structure(SILICON.format(comment="Si", counts="Si\n1"), "si")
    with pytest.raises(InconsistentFileError, match="2 species names"):
        load_structure(SILICON.format(comment="Si", counts="Si Ge\n2"), "si")


@pytest.mark.parametrize("comment", ["At 0 K, relaxed", "In the diamond structure", "He said: Si"])
def test_vasp4_prose_is_never_a_species(comment):
    with pytest.raises(UnknownSpeciesError, match="VASP 4 POSCAR") as info:
        load_structure(SILICON.format(comment=comment, counts="2"), "vasp4")
    assert "astatine" not in str(info.value)


@pytest.mark.parametrize("comment", ["Si", "Si8 diamond at 0 K", "Si_d  "])
def test_vasp4_symbols_or_a_formula_word_are_species(comment):
    structure = load_structure(SILICON.format(comment=comment, counts="2"), "vasp4")
    assert structure.composition.reduced_formula == "Si"


# --- extxyz ------------------------------------------------------------------------------------------------------

EXTXYZ = '2\nLattice="5.64 0 0 0 5.64 0 0 0 5.64" Properties=species:S:1:pos:R:3 pbc="T T T"{more}\n{rows}'
ROWS = "Na 0 0 0\nCl 2.82 2.82 2.82\n"


def test_extxyz_columns_and_lattice_against_the_frame(tmp_path):
    pytest.importorskip("ase")
    path = tmp_path / "frame.extxyz"
    path.write_text(EXTXYZ.format(more="", rows=ROWS))
    assert load_structure(path).composition.reduced_formula == "NaCl"
    path.write_text(EXTXYZ.format(more="", rows="Na 0 0 0 1.0\nCl 2.82 2.82 2.82 1.0\n"))
    with pytest.raises(
        InconsistentFileError, match="Properties declare 4 columns per atom, but atom lines hold 5"
    ):
        load_structure(path)
    # Two lattices on one comment line: ASE takes 'Lattice', the file also says another.
    path.write_text(EXTXYZ.format(more=' lattice="4 0 0 0 4 0 0 0 4"', rows=ROWS))
    with pytest.raises(InconsistentFileError, match=r"declares Lattice \[\[4\.0"):
        load_structure(path)


# --- OPTIMADE ----------------------------------------------------------------------------------------------------


def _nacl_entry(**attributes) -> dict:
    base = {
        "lattice_vectors": [[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]],
        "cartesian_site_positions": [[0, 0, 0], [2.82, 2.82, 2.82]],
        "species_at_sites": ["Na", "Cl"],
        "species": [
            {"name": "Na", "chemical_symbols": ["Na"], "concentration": [1.0]},
            {"name": "Cl", "chemical_symbols": ["Cl"], "concentration": [1.0]},
        ],
        "nsites": 2,
        "elements": ["Cl", "Na"],
        "nelements": 2,
        "chemical_formula_reduced": "ClNa",
        "structure_features": [],
    }
    base.update(attributes)
    return {"id": "nacl", "type": "structures", "attributes": base}


def test_optimade_entry_claims():
    assert load_structure(_nacl_entry(), "nacl").composition.reduced_formula == "NaCl"
    with pytest.raises(InconsistentFileError, match="declares nsites 3, but lists 2 sites"):
        load_structure(_nacl_entry(nsites=3), "nacl")
    with pytest.raises(UnlocatedAtomsError, match="implicit_atoms"):
        load_structure(_nacl_entry(structure_features=["implicit_atoms"]), "nacl")
    with pytest.raises(UnlocatedAtomsError, match="no site holds H"):
        load_structure(_nacl_entry(elements=["Cl", "H", "Na"], nelements=3), "nacl")
    with pytest.raises(InconsistentFileError, match="formula 'Cl2Na'"):
        load_structure(_nacl_entry(chemical_formula_reduced="Cl2Na"), "nacl")


def test_optimade_response_documents_give_one_crystal_per_entry(tmp_path):
    single = {"data": _nacl_entry(), "meta": {"api_version": "1.1.0"}, "links": {"next": None}}
    assert load_structure(single, "doc").composition.reduced_formula == "NaCl"
    several = {"data": [_nacl_entry(), _nacl_entry(nsites=3), {"id": "r1", "type": "references"}], "meta": {}}
    rows = load_structures(several, "docs")
    assert [name for name, _ in rows] == ["docs@0", "docs@1", "docs@2"]
    assert rows[0][1].composition.reduced_formula == "NaCl"
    assert isinstance(rows[1][1], InconsistentFileError)
    assert isinstance(rows[2][1], StructureParseError) and "'references' entry" in rows[2][1].message
    path = tmp_path / "docs.json"
    path.write_text(json.dumps(several))
    assert [name for name, _ in load_structures(path)] == [f"{path}@0", f"{path}@1", f"{path}@2"]
    assert load_structure(f"{path}@0").composition.reduced_formula == "NaCl"


def test_a_json_object_that_is_no_structure_says_what_it_is():
    with pytest.raises(StructureParseError, match="an OPTIMADE error document"):
        load_structure({"errors": [{"detail": "unknown filter"}], "meta": {}}, "err")
    with pytest.raises(StructureParseError, match="neither a pymatgen Structure dict nor an OPTIMADE"):
        load_structure({"name": "NaCl", "a": 5.64}, "other")


# --- kind 4: shares rounded to their last decimal ----------------------------------------------------------------


def test_rounded_shares_make_a_full_site_only_within_their_rounding():
    measured = [Measured.parse(t) for t in ("0.33", "0.33", "0.33")]
    assert shares_fill_site(measured)
    assert not shares_fill_site([Measured.parse("0.49"), Measured.parse("0.50")])
    assert shares_fill_site([Measured.parse("0.49(1)"), Measured.parse("0.50(1)")])
    mixed = _nacl_cif(header="_atom_site_occupancy\n", na_row="Na1 Na 0.50 0 0 0\nLi1 Li 0.49 0 0 0").replace(
        "Cl1 Cl 0.5 0.5 0.5", "Cl1 Cl 1 0.5 0.5 0.5"
    )
    assert structure_to_scope(mixed, "v2", source="lina.cif").endswith("| 4b Na 0.5 Li 0.49 Vac 0.01")
    thirds = mixed.replace(
        "Na1 Na 0.50 0 0 0\nLi1 Li 0.49 0 0 0", "Na1 Na 0.33 0 0 0\nLi1 Li 0.33 0 0 0\nK1 K 0.33 0 0 0"
    )
    assert "Vac" not in structure_to_scope(thirds, "v2", source="thirds.cif")


def test_formula_parsing():
    assert parse_formula("Al H O2") == ({"Al": 1.0, "H": 1.0, "O": 2.0}, {"Al": 0.0, "H": 0.0, "O": 0.0})
    assert parse_formula("D2 O")[0] == {"H": 2.0, "O": 1.0}
    assert parse_formula("Co0.33 Li1")[1] == {"Co": 0.005, "Li": 0.0}
    assert parse_formula("(C6 H5)2 O")[0] == {"C": 12.0, "H": 10.0, "O": 1.0}  # a group times its amount
    assert parse_formula("(C6 H5 O") is None  # unbalanced


def test_encode_gives_one_row_per_entry_of_an_optimade_document(tmp_path, capsys):
    from modeling_cloud.cli import main

    path = tmp_path / "response.json"
    path.write_text(json.dumps({"data": [_nacl_entry(), _nacl_entry(nsites=3)], "meta": {}, "links": {}}))
    main(["encode", str(path), "--scope-version", "v2", "--jsonl"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [row["source"] for row in rows] == [f"{path}@0", f"{path}@1"]
    assert rows[0]["scope"] == "SG225 Na 0.5 4a Cl 0.5 4b"
    assert rows[1]["error"]["reason"] == "inconsistent_file"


WURTZITE_OPERATIONS = [
    "x,y,z", "-y,x-y,z", "-x+y,-x,z", "-x,-y,z", "y,-x+y,z+1/2", "x-y,x,z+1/2",
    "-y,-x,z", "-x+y,y,z", "x,x-y,z", "y,x,z+1/2", "x-y,-y,z+1/2", "-x,-x+y,z+1/2",
]  # fmt: skip


def test_a_mistyped_operation_list_is_caught_by_what_the_file_says_of_z():
    # Wurtzite (P6_3mc) with '-x,-y,z' typed for '-x,-y,z+1/2' (issue 21, kind 2): the list closes into a group with
    # the translation (0, 0, 1/2), which doubles the atoms. The file's Z (and its multiplicities) say otherwise.
    operations = "\n".join(f"'{op}'" for op in WURTZITE_OPERATIONS)
    text = f"""data_ZnO
_chemical_formula_sum 'O Zn'
_cell_formula_units_Z 2
_space_group_name_H-M_alt 'P 63 m c'
_cell_length_a 3.2496
_cell_length_b 3.2496
_cell_length_c 5.2042
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 120
loop_
_space_group_symop_operation_xyz
{operations}
loop_
_atom_site_label
_atom_site_symmetry_multiplicity
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Zn1 2 0.33333 0.66667 0
O1 2 0.33333 0.66667 0.3821
"""
    right = text.replace("'-x,-y,z'\n", "'-x,-y,z+1/2'\n")
    assert load_structure(right, "zno.cif").composition.reduced_formula == "ZnO"
    # Refused, whichever check sees it first (the operation list's own check, or Z and the multiplicities).
    with pytest.raises(StructureParseError):
        load_structure(text, "zno.cif")


# --- false positives found by the survey (issue 21 point 4: P1, P2, P4) -------------------------------------------


def _fluorite_cif(extra: str) -> str:
    """CaF2 (Fm-3m, Ca 4a, F 8c: 12 atoms, 4 formula units per cell)."""
    return f"""data_CaF2
_space_group_name_H-M_alt 'F m -3 m'
_cell_length_a 5.4631
_cell_length_b 5.4631
_cell_length_c 5.4631
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_chemical_formula_sum 'Ca F2'
{extra}
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Ca1 Ca 0 0 0
F1 F 0.25 0.25 0.25
"""


@pytest.mark.parametrize(
    ("z", "note"),
    [("6", "atoms in the cell (12) over the number of elements"), ("5.33333333333333", "not a whole number")],
)
def test_oqmd_writer_z_is_a_note_not_an_error(z, note):
    # OQMD writes atoms / elements (12 / 2 = 6) as Z, or a fraction for a 1:1:2 formula; the crystal is right
    structure = load_structure(_fluorite_cif(f"_cell_formula_units_Z {z}\n"), "oqmd.cif")
    assert structure.composition.reduced_formula == "CaF2"
    assert any(note in n for n in _notes(structure)), _notes(structure)


def test_a_wrong_whole_z_that_is_no_writer_quirk_stays_an_error():
    with pytest.raises(InconsistentFileError, match="declares Z = 2; the cell built holds 4 formula units"):
        load_structure(_fluorite_cif("_cell_formula_units_Z 2\n"), "z.cif")


def test_a_density_tag_that_contradicts_the_files_own_formula_z_and_volume_is_a_note():
    extra = "_chemical_formula_sum 'Cl Na'\n_cell_formula_units_Z 4\n_exptl_crystal_density_diffrn 1.5\n"
    structure = load_structure(_nacl_cif(extra), "d.cif")
    assert any("density tag disagrees" in n for n in _notes(structure))
    # without a formula and Z to compare with, the same density is an error
    with pytest.raises(InconsistentFileError, match="_exptl_crystal_density_diffrn 1.5"):
        load_structure(_nacl_cif("_exptl_crystal_density_diffrn 1.5\n"), "d.cif")


@pytest.mark.parametrize(
    ("formula", "outcome"),
    [("'Cl K0.46 Na0.54'", "note"), ("'Cl K0.40 Na0.60'", "error")],
)
def test_a_minor_amount_written_with_decimals_has_an_absolute_floor(formula, outcome):
    # the mixed site holds K 0.50: 'K0.46' is 0.04 atom per formula unit off (8.7 %), within the 0.05 floor
    extra = f"_chemical_formula_sum {formula}\n_cell_formula_units_Z 4\n"
    text = _nacl_cif(extra, na_row="Na1 Na 0.5 0 0 0\nK1 K 0.5 0 0 0", header="_atom_site_occupancy\n")
    text = text.replace("Cl1 Cl 0.5 0.5 0.5", "Cl1 Cl 1 0.5 0.5 0.5")
    if outcome == "error":
        with pytest.raises(InconsistentFileError, match="K per cell"):
            load_structure(text, "dopant.cif")
        return
    assert any("within the floor" in n for n in _notes(load_structure(text, "dopant.cif")))
