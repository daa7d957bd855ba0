"""Real-world structure files: each gives the crystal in the file, or a typed refusal that names the file.

The cases in ``fixtures/realworld/`` (written for this project, MIT; ``expected.json`` gives each right outcome)
run through the command-line contract ``cloud-crystal encode FILE --scope-version v2 --jsonl``; the synthetic CIFs
below cover each fault kind of the CIF reader at its root (declared symmetry, settings, tolerances, dialects).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeling_cloud.cli import main
from tokenization import (
    DisorderedStructureError,
    InvalidGeometryError,
    StructureParseError,
    UnknownSpeciesError,
    load_structure,
    structure_to_scope,
)
from tokenization.cif_structure import read_cif_structures
from tokenization.structure_io import load_structures

CASES = Path(__file__).parent / "fixtures" / "realworld"
EXPECTED = json.loads((CASES / "expected.json").read_text())


def _rows(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _error_class(name: str) -> type:
    """The package's error class of that name: expected.json's classes are read through the class tree."""
    import tokenization.scope_errors as scope_errors

    return getattr(scope_errors, name)


def _is_expected_error(type_name: str, expected_names: list[str]) -> bool:
    """True when the raised class is one of the expected classes or a subclass of one of them."""
    import tokenization.scope_errors as scope_errors

    raised = getattr(scope_errors, type_name, None)
    return raised is not None and any(issubclass(raised, _error_class(name)) for name in expected_names)


@pytest.mark.parametrize("case", EXPECTED, ids=[case["file"] for case in EXPECTED])
def test_each_case_gives_its_expected_outcome_through_encode(case, capsys):
    """expected.json: `scope_v2` (exactly these strings), `error_types` (a typed error of one of these classes or a
    subclass, naming the file), or both keys (either outcome is right under the default `--disorder encode`)."""
    path = CASES / case["file"]
    code = main(["encode", str(path), "--scope-version", "v2", "--jsonl"])
    rows = _rows(capsys)
    assert len(rows) == case["rows"]
    expect = case["expect"]
    if all("scope" in row for row in rows) and "scope_v2" in expect:
        assert code == 0
        assert [row["scope"] for row in rows] == expect["scope_v2"]
        return
    assert "error_types" in expect, f"expected strings {expect.get('scope_v2')}, got {rows}"
    assert code == 1
    for row in rows:
        error = row["error"]
        assert _is_expected_error(error["type"], expect["error_types"]), error
        assert error["source"].startswith(str(path))  # names the file, in full
        assert error["reason"] and error["message"]


@pytest.mark.parametrize("name", ["13-disordered-site-via-ase.cif", "18b-mcif-mixed-site.mcif"])
def test_disordered_cases_are_refused_under_disorder_raise(name, capsys):
    path = CASES / name
    code = main(["encode", str(path), "--scope-version", "v2", "--jsonl", "--disorder", "raise"])
    (row,) = _rows(capsys)
    assert code == 1
    assert _is_expected_error(row["error"]["type"], ["DisorderedStructureError", "StructureParseError"])


def test_a_magnetic_file_between_two_good_files_keeps_the_batch_going(capsys):
    files = ["10a-rutile-clean.vasp", "18b-mcif-mixed-site.mcif", "11a-poscar-negative-scale-direct.vasp"]
    code = main(
        [
            "encode",
            *(str(CASES / name) for name in files),
            "--scope-version",
            "v2",
            "--jsonl",
            "--disorder",
            "raise",
        ]
    )
    rows = _rows(capsys)
    assert code == 1
    assert [row["source"] for row in rows] == [str(CASES / name) for name in files]
    assert rows[0]["scope"] == "SG136 Ti 0.33 2a O 0.67 4f"
    assert rows[1]["error"]["type"] in ("DisorderedStructureError", "StructureParseError")
    assert rows[2]["scope"] == "SG227 Si 1.0 8a"


def test_rounded_occupancy_is_full_and_the_row_says_so(capsys):
    main(["encode", str(CASES / "02b-occupancy-1.0001.cif"), "--scope-version", "v2", "--jsonl"])
    (row,) = _rows(capsys)
    assert any("occupancy 1.0001 counted as full" in note for note in row["notes"])


def test_disorder_via_ase_gets_the_same_answer_as_the_file():
    ase_io = pytest.importorskip("ase.io")
    path = CASES / "13-disordered-site-via-ase.cif"
    with pytest.raises(DisorderedStructureError):
        structure_to_scope(path, version="v2", disorder="raise")
    with pytest.raises(DisorderedStructureError):
        structure_to_scope(ase_io.read(path), version="v2", disorder="raise")
    assert structure_to_scope(ase_io.read(path), version="v2") == structure_to_scope(path, version="v2")


def test_two_crystal_blocks_are_two_crystals_each_loadable_by_name():
    path = CASES / "16b-two-crystal-blocks.cif"
    names = [name for name, _ in load_structures(path)]
    assert names == [f"{path}#NaCl", f"{path}#KCl"]
    assert load_structure(f"{path}#KCl").composition.reduced_formula == "KCl"
    with pytest.raises(StructureParseError, match="holds 2 crystals"):
        load_structure(path)


# ----------------------------------------------------------------------------------------------------------
# Synthetic CIFs, one per fault kind (written for these tests).

CELL = """_cell_length_a {a}
_cell_length_b {b}
_cell_length_c {c}
_cell_angle_alpha {alpha}
_cell_angle_beta {beta}
_cell_angle_gamma {gamma}
"""


def cif(
    symmetry: str, sites: str, a=5.64, b=None, c=None, alpha=90, beta=90, gamma=90, extra_columns=""
) -> str:
    cell = CELL.format(a=a, b=b or a, c=c or a, alpha=alpha, beta=beta, gamma=gamma)
    return (
        f"data_test\n{symmetry}\n{cell}loop_\n_atom_site_label\n_atom_site_type_symbol\n"
        f"_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n{extra_columns}{sites}\n"
    )


NACL_SITES = "Na1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5"
NACL_V2 = "SG225 Na 0.5 4a Cl 0.5 4b"


@pytest.mark.parametrize(
    "symmetry",
    [
        "_space_group_name_Hall '-F 4 2 3'",
        "_symmetry_space_group_name_Hall '-F 4 2 3'",
        "_space_group_name_H-M_alt 'F m -3 m'",
        "_symmetry_space_group_name_H-M 'Fm-3m'",
        "_space_group_IT_number 225",
        "_space_group.IT_number 225",
    ],
)
def test_symmetry_given_only_by_hall_name_or_number_is_expanded(symmetry):
    assert structure_to_scope(cif(symmetry, NACL_SITES), version="v2") == NACL_V2


def test_dotted_ddlm_operation_tags_are_read():
    text = cif(
        "loop_\n_space_group_symop.id\n_space_group_symop.operation_xyz\n1 'x,y,z'\n2 'x,y+1/2,z+1/2'\n"
        "3 'x+1/2,y,z+1/2'\n4 'x+1/2,y+1/2,z'",
        NACL_SITES,
    )
    assert structure_to_scope(text, version="v2") == NACL_V2


def test_a_declared_group_that_the_operations_contradict_is_refused_naming_both():
    text = cif(
        "_space_group_name_H-M_alt 'F m -3 m'\nloop_\n_space_group_symop_operation_xyz\n'x,y,z'", NACL_SITES
    )
    with pytest.raises(StructureParseError, match=r"declares Fm-3m \(225\).*P1 \(1\)"):
        load_structure(text)


def test_missing_centring_in_the_operation_list_is_refused():
    # A C2/c file whose list holds only the four P2/c operations (as in a CSD export): never a P2/c crystal.
    ops = "'x,y,z'\n'-x,y,-z+1/2'\n'-x,-y,-z'\n'x,-y,z+1/2'"
    text = cif(
        f"_symmetry_space_group_name_H-M 'C 1 2/c 1'\nloop_\n_symmetry_equiv_pos_as_xyz\n{ops}",
        "Ca1 Ca 0.1 0.2 0.3\nO1 O 0.3 0.1 0.05",
        a=10.0,
        b=6.0,
        c=8.0,
        beta=100,
    )
    with pytest.raises(StructureParseError, match=r"C2/c \(15\).*P2/c \(13\)"):
        load_structure(text)


def test_contradicting_name_and_number_are_refused():
    with pytest.raises(StructureParseError, match="contradicts itself"):
        load_structure(cif("_space_group_name_H-M_alt 'F m -3 m'\n_space_group_IT_number 221", NACL_SITES))


def test_no_symmetry_at_all_is_refused_not_read_as_p1():
    with pytest.raises(StructureParseError, match="declares no symmetry"):
        load_structure(cif("", NACL_SITES))


def test_an_unreadable_space_group_name_is_refused_not_read_as_p1():
    with pytest.raises(StructureParseError, match=r"cannot be read.*'Q 9 z'"):
        load_structure(cif("_symmetry_space_group_name_H-M 'Q 9 z'", NACL_SITES))


ANATASE = "Ti1 Ti 0 0.75 0.125\nO1 O 0 0.25 0.0832"


@pytest.mark.parametrize("name", ["'I 41/a m d :2'", "'I 41/a m d Z'", "'I 41/a m d (origin choice 2)'"])
def test_origin_choice_suffixes(name):
    text = cif(f"_symmetry_space_group_name_H-M {name}", ANATASE, a=3.7845, c=9.5143)
    assert structure_to_scope(text, version="v2") == "SG141 Ti 0.33 4a O 0.67 8e"


def test_rhombohedral_names_follow_the_cell_axes():
    rhombohedral = cif(
        "_symmetry_space_group_name_H-M 'R -3 m'",
        "Hg1 Hg 0 0 0",
        a=3.005,
        alpha=70.53,
        beta=70.53,
        gamma=70.53,
    )
    assert structure_to_scope(rhombohedral, version="v2") == "SG166 Hg 1.0 3a"
    hexagonal = cif("_symmetry_space_group_name_H-M 'R -3 m'", "Hg1 Hg 0 0 0", a=3.46, c=6.7, gamma=120)
    assert structure_to_scope(hexagonal, version="v2") == "SG166 Hg 1.0 3a"
    assert len(load_structure(hexagonal)) == 3  # the R centring of the hexagonal setting was applied


def test_monoclinic_cell_choice_suffix():
    # C2 (unique axis b, cell choice 1): 2a is (0, y, 0), the general position 4c; 'C2:b1' is not read as P1.
    sites = "K1 K 0 0.1 0\nO1 O 0.1 0.2 0.3"
    structure = load_structure(
        cif("_symmetry_space_group_name_H-M C2:b1", sites, a=5.2, b=9.0, c=10.0, beta=100)
    )
    assert [site.specie.symbol for site in structure].count("K") == 2
    assert [site.specie.symbol for site in structure].count("O") == 4
    assert structure_to_scope(structure, version="v2") == "SG5 K 0.33 2a O 0.67 4c"


def test_images_of_a_special_position_written_with_three_decimals_merge():
    text = cif(
        "_symmetry_space_group_name_H-M 'P 63/m m c'",
        "Mo1 Mo 0.333 0.667 0.25\nS1 S 0.333 0.667 0.621",
        a=3.16,
        c=12.294,
        gamma=120,
    )
    structure = load_structure(text)
    assert len(structure) == 6
    assert structure_to_scope(structure, version="v2") == "SG194 Mo 0.33 2c S 0.67 4f"
    assert any("merged" in note for note in structure.properties["reader_notes"])


def test_truly_overlapping_rows_are_refused():
    with pytest.raises(Exception, match="same position|apart"):
        load_structure(
            cif("_space_group_IT_number 225", "Na1 Na 0 0 0\nNa2 Na 0 0 0.001\nCl1 Cl 0.5 0.5 0.5")
        )


def test_an_occupancy_beyond_the_tolerance_is_disorder_not_rounding():
    sites = "Na1 Na 0 0 0 0.98\nCl1 Cl 0.5 0.5 0.5 1"
    text = cif("_space_group_IT_number 225", sites, extra_columns="_atom_site_occupancy\n")
    with pytest.raises(DisorderedStructureError):
        load_structure(text, disorder="raise")
    assert structure_to_scope(text, version="v2") == "SG225 Na 0.49 Cl 0.51 4a | 4b Na 0.98 Vac 0.02"


def test_pauling_file_composite_site_is_disorder():
    sites = "T1 '0.75Si + 0.25Al' 0 0 0 1\nO1 O 0.5 0.5 0.5 1"
    text = cif("_space_group_IT_number 221", sites, a=3.0, extra_columns="_atom_site_occupancy\n")
    with pytest.raises(DisorderedStructureError, match="Si:0.75"):
        load_structure(text, disorder="raise")
    assert structure_to_scope(text, version="v2") == "SG221 Al 0.12 Si 0.38 O 0.5 1a | 1b Al 0.25 Si 0.75"


def test_a_water_group_type_symbol_is_refused_never_dropped():
    text = cif("_space_group_IT_number 221", "Ow1 OH2 0 0 0\nNa1 Na 0.5 0.5 0.5", a=3.0)
    with pytest.raises(UnknownSpeciesError, match="'OH2'"):
        load_structure(text)


def test_implicit_hydrogens_are_refused():
    text = cif(
        "_space_group_IT_number 221",
        "C1 C 0 0 0 3\nNa1 Na 0.5 0.5 0.5 0",
        a=3.0,
        extra_columns="_atom_site_attached_hydrogens\n",
    )
    with pytest.raises(StructureParseError, match="implicit hydrogen"):
        load_structure(text)


def test_cartesian_coordinates_are_read_in_the_cif_frame():
    text = (
        "data_x\n_space_group_IT_number 225\n"
        + CELL.format(a=5.64, b=5.64, c=5.64, alpha=90, beta=90, gamma=90)
        + "loop_\n_atom_site_label\n_atom_site_Cartn_x\n_atom_site_Cartn_y\n_atom_site_Cartn_z\n"
        + "Na1 0 0 0\nCl1 2.82 2.82 2.82\n"
    )
    assert structure_to_scope(text, version="v2") == NACL_V2


def test_a_flat_cell_is_refused_as_degenerate():
    text = cif("_space_group_IT_number 1", "Ni1 Ni 0 0 0", a=3.0, alpha=90, beta=90, gamma=179.9999999)
    with pytest.raises(InvalidGeometryError, match="flat|three-dimensional"):
        load_structure(text)


def test_cif2_only_syntax_is_refused_by_name():
    text = "#\\#CIF_2.0\n" + cif("_space_group_IT_number 225\n_note '''a\nb'''", NACL_SITES)
    with pytest.raises(StructureParseError, match="CIF 2.0"):
        load_structure(text)


def test_placeholder_blocks_are_not_crystals():
    placeholder = cif("_space_group_IT_number 1", "? ? ? ? ?").replace("data_test", "data_reduced")
    (only,) = read_cif_structures(cif("_space_group_IT_number 225", NACL_SITES) + placeholder, "two.cif")
    assert only[0] == "two.cif"


def test_latin1_text_fields_do_not_make_the_file_unreadable(tmp_path):
    path = tmp_path / "icsd.cif"
    text = cif("_space_group_IT_number 225\n_publ_author_name 'M\u00fcller'", NACL_SITES)
    path.write_bytes(text.encode("latin-1"))
    assert structure_to_scope(path, version="v2") == NACL_V2


def test_a_bad_block_does_not_sink_the_others():
    good = cif("_space_group_IT_number 225", NACL_SITES).replace("data_test", "data_good")
    bad = cif("", NACL_SITES).replace("data_test", "data_bad")
    results = read_cif_structures(good + bad, "mixed.cif")
    assert [name for name, _ in results] == ["mixed.cif#good", "mixed.cif#bad"]
    assert not isinstance(results[0][1], Exception)
    assert isinstance(results[1][1], StructureParseError)


def test_a_gzip_compressed_poscar_reads_as_the_poscar(tmp_path):
    import gzip

    plain = CASES / "10a-rutile-clean.vasp"
    packed = tmp_path / "POSCAR.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert structure_to_scope(load_structure(packed), version="v2") == structure_to_scope(
        load_structure(plain), version="v2"
    )
    broken = tmp_path / "CONTCAR.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:20])
    with pytest.raises(StructureParseError, match="unreadable gzip file"):
        load_structure(broken)


def test_a_stray_loop_before_the_cell_items_is_a_loop_of_one_row():
    # a real writer's mistake (COD 1101113, pymatgen's FePO4.cif): 'loop_' before the single-valued cell items
    text = cif("_space_group_IT_number 225", NACL_SITES).replace("_cell_length_a", "loop_\n_cell_length_a", 1)
    assert structure_to_scope(text, version="v2") == NACL_V2


def test_an_empty_loop_is_refused_naming_the_loop_not_a_python_error():
    text = cif("_space_group_IT_number 225", NACL_SITES) + (
        "loop_\n_atom_site_moment_label\n_atom_site_moment_crystalaxis_x\n"
    )
    with pytest.raises(StructureParseError, match="_atom_site_moment_label .* holds no values") as raised:
        load_structure(text)
    assert "ZeroDivisionError" not in str(raised.value)


def test_a_row_repeating_an_image_under_the_same_label_is_read_once():
    # AMCSD's 9000079 lists Cu at x and at -x, both labelled 'Cu': one atom written twice, never two atoms
    text = cif("_space_group_IT_number 225", "Na Na 0 0 0\nCl Cl 0.5 0.5 0.5\nCl Cl -0.5 -0.5 -0.5")
    structure = load_structure(text)
    assert structure_to_scope(structure, version="v2") == NACL_V2
    assert any("repeats row Cl" in note for note in structure.properties["reader_notes"])


#: A methyl group on the mirror plane of Pmn2_1 as SHELX writes it (COD 2100345, cod-tools' test inputs): H12 and
#: H12A, each half occupied, at each other's mirror image.
METHYL_ON_A_MIRROR = """data_methyl
_chemical_formula_sum '{formula}'
_cell_formula_units_Z 2
_cell_length_a {a}
_cell_length_b {b}
_cell_length_c {c}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
'-x+1/2, -y, z+1/2'
'x+1/2, -y, z+1/2'
'-x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Cl1 Cl 0.0 0.361 0.4727 1
Si1 Si 0.0 0.6592 0.3753 1
C1 C 0.0 0.699 0.0771 1
H11 H 0.0 0.8453 0.0461 1
H12 H -0.12 0.64 -0.05 0.5
H12A H 0.12 0.64 -0.05 0.5
"""


@pytest.mark.parametrize(
    ("formula", "hydrogen_per_cell", "reading"),
    [
        ("C H3 Cl Si", 6.0, "occupancies added"),
        ("C H2 Cl Si", 4.0, "repeats row H12"),
        (None, 4.0, "repeats row"),
    ],
)
def test_a_row_at_another_rows_image_is_read_as_the_files_formula_counts_it(
    formula, hydrogen_per_cell, reading
):
    """'H12A' 0.5 at the mirror image of 'H12' 0.5 is a second half H there (the formula counts CH3) or H12's image
    written out (the formula counts CH2): the file's formula and Z decide; without a formula it is read once."""
    text = METHYL_ON_A_MIRROR.format(formula=formula or "", a=6.0, b=7.0, c=5.0)
    if formula is None:
        text = text.replace("_chemical_formula_sum ''\n", "")
    structure = load_structure(text, source="methyl.cif")
    assert structure.composition["H"] == pytest.approx(hydrogen_per_cell)
    assert structure.composition["C"] == pytest.approx(2.0)
    assert any(reading in note for note in structure.properties["reader_notes"])
    assert structure.is_ordered == (hydrogen_per_cell == 6.0)


#: The methyl group on a mirror in a cell twice as long with 16 more H (35 H per formula unit, Z = 2): read once, 68
#: H per cell, within the formula check's 3 % tolerance (a note); with H12A added, exactly the formula's 70.
MANY_HYDROGENS = (
    METHYL_ON_A_MIRROR.format(formula="{formula}", a=12.0, b=14.0, c=10.0)
    + """H20 H 0.8277 0.4092 0.5496 1
H21 H 0.3297 0.7884 0.3032 1
H22 H 0.2804 0.4852 0.9807 1
H23 H 0.2769 0.1607 0.9699 1
H24 H 0.7767 0.6130 0.9173 1
H25 H 0.5929 0.2601 0.8399 1
H26 H 0.1479 0.8196 0.6833 1
H27 H 0.1913 0.0816 0.8552 1
H28 H 0.2740 0.0071 0.6457 1
H29 H 0.2456 0.7685 0.2117 1
H30 H 0.1645 0.3751 0.3167 1
H31 H 0.6913 0.1786 0.3963 1
H32 H 0.1059 0.6332 0.3804 1
H33 H 0.7253 0.6539 0.4312 1
H34 H 0.8673 0.6321 0.8103 1
H35 H 0.3418 0.5437 0.1963 1
"""
)


def test_the_sum_is_taken_where_it_fits_the_formula_more_closely():
    structure = load_structure(MANY_HYDROGENS.format(formula="C H35 Cl Si"), source="many-h.cif")
    assert structure.composition["H"] == pytest.approx(70.0)
    assert any("fit it less closely" in note for note in structure.properties["reader_notes"])
    fewer = load_structure(MANY_HYDROGENS.format(formula="C H34 Cl Si"), source="many-h.cif")
    assert fewer.composition["H"] == pytest.approx(68.0)  # the formula of the read-once cell: read once


#: A short monoclinic symbol with no operations in a cell of right angles: unique axis b (the International Tables'
#: reading) needs H1A added to H1 to give the formula's 4 H per cell; unique axis c fits read once.
SHORT_SYMBOL_IMAGE_ROWS = """data_mono
_chemical_formula_sum 'C2 H'
_cell_formula_units_Z 4
_cell_length_a 6.0
_cell_length_b 7.0
_cell_length_c 5.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 21/m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
C1 C 0.1 0.1 0.1 1
C2 C 0.25 0.05 0.35 1
H1 H 0.3 0.15 0.6 0.5
H1A H 0.3 0.35 0.6 0.5
"""


def test_each_setting_is_compared_in_its_own_better_reading_of_image_rows():
    structure = load_structure(SHORT_SYMBOL_IMAGE_ROWS, source="mono.cif")
    notes = structure.properties["reader_notes"]
    assert structure_to_scope(structure, version="v2") == "SG11 H 0.33 4f C 0.67 4f 4f"
    assert structure.is_ordered and structure.composition["H"] == pytest.approx(4.0)
    assert any("unique axis b" in note for note in notes) and any(
        "occupancies added" in note for note in notes
    )
