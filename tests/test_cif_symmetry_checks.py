"""The symmetry a CIF declares, checked against the cell and read in every spelling real files use (issue 21).

* A mistyped operation list is refused, naming the operation, instead of being closed into a supergroup.
* A setting is used only when its rotations preserve the cell's metric (the monoclinic unique axis follows the cell).
* Dialects: pre-2002 e-glide symbols, Hall symbols without spaces, ``_space_group_name_H-M_ref``, Bruker's
  ``2(1)`` screws and non-integer valences give the same crystal as the standard spelling.

The old symbols and spaceless Hall symbols are checked against gemmi's tables, an outside oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

from tokenization import StructureParseError, structure_to_scope
from tokenization.cif_structure import read_cif_structures
from tokenization.cif_symmetry import (
    _PRE_2002_E_SYMBOLS,
    hall_number_for_symbol,
    hall_numbers_for_name,
    hall_symbol,
    setting_choice,
)

_CELL_KEYS = ("a", "b", "c", "alpha", "beta", "gamma")


def _cif(
    cell: tuple[float, ...],
    sites: list[tuple[str, float, float, float]],
    symmetry: dict[str, str] | None = None,
    operations: list[str] | None = None,
    type_symbols: list[str] | None = None,
) -> str:
    lines = ["data_test"]
    for key, value in zip(_CELL_KEYS, cell, strict=True):
        lines.append(f"_cell_{'length' if len(key) == 1 else 'angle'}_{key} {value}")
    for key, value in (symmetry or {}).items():
        lines.append(f"{key} '{value}'")
    if operations is not None:
        lines += ["loop_", "_space_group_symop_operation_xyz", *(f"'{op}'" for op in operations)]
    lines += ["loop_", "_atom_site_label"]
    lines += ["_atom_site_type_symbol"] if type_symbols else []
    lines += ["_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"]
    for k, (label, x, y, z) in enumerate(sites):
        lines.append(" ".join([label, *([type_symbols[k]] if type_symbols else []), str(x), str(y), str(z)]))
    return "\n".join(lines) + "\n"


def _read(text: str):
    ((_, result),) = read_cif_structures(text, "test.cif")
    if isinstance(result, Exception):
        raise result
    return result


# --- Kind 2: a mistyped operation list -------------------------------------------------------------------------

_WURTZITE_CELL = (3.25, 3.25, 5.207, 90, 90, 120)
_WURTZITE_SITES = [("Zn1", 0.3333, 0.6667, 0.0), ("O1", 0.3333, 0.6667, 0.382)]
_P63MC = [
    "x,y,z", "-y,x-y,z", "-x+y,-x,z", "-x,-y,z+1/2", "y,-x+y,z+1/2", "x-y,x,z+1/2",
    "-y,-x,z", "-x+y,y,z", "x,x-y,z", "y,x,z+1/2", "x-y,-y,z+1/2", "-x,-x+y,z+1/2",
]  # fmt: skip


def test_wurtzite_with_its_operations_is_read():
    structure = _read(
        _cif(_WURTZITE_CELL, _WURTZITE_SITES, {"_symmetry_space_group_name_H-M": "P 63 m c"}, _P63MC)
    )
    assert structure.composition.reduced_formula == "ZnO" and len(structure) == 4
    assert structure_to_scope(structure, version="v2").startswith("SG186 ")


@pytest.mark.parametrize("declared", [True, False], ids=["declared-P63mc", "no-group-declared"])
def test_a_mistyped_operation_is_refused_and_named(declared):
    """'-x,-y,z' for '-x,-y,z+1/2': the closure holds the translation (0, 0, 1/2), a halved cell with twice the
    atoms (P6mm), which the declared-group check alone accepts because it is a supergroup of P6_3mc."""
    operations = list(_P63MC)
    operations[3] = "-x,-y,z"
    symmetry = {"_symmetry_space_group_name_H-M": "P 63 m c"} if declared else None
    with pytest.raises(StructureParseError) as caught:
        _read(_cif(_WURTZITE_CELL, _WURTZITE_SITES, symmetry, operations))
    message = caught.value.message
    assert "'-x,-y,z'" in message and "(0, 0, 1/2)" in message
    assert ("P6_3mc (186)" in message) == declared


def test_more_operations_than_the_declared_group_are_refused():
    with pytest.raises(StructureParseError, match="generate 2 operations, more than the 1 of P1"):
        _read(
            _cif(
                (5, 6, 7, 80, 85, 95),
                [("Si1", 0.1, 0.2, 0.3)],
                {"_space_group_name_H-M_alt": "P 1"},
                ["x,y,z", "-x,-y,-z"],
            )
        )


def test_an_i_centred_list_of_a_c_centred_name_is_one_group():
    """'C 2/c' beside the operations of its I 1 2/a 1 setting (same group, No. 15): the centring (1/2, 1/2, 1/2)
    is a lattice vector of No. 15 in that cell, so the list is read."""
    operations = ["x,y,z", "-x+1/2,y,-z", "-x,-y,-z", "x+1/2,-y,z"]
    centred = ["x+1/2,y+1/2,z+1/2", "-x,y+1/2,-z+1/2", "-x+1/2,-y+1/2,-z+1/2", "x,-y+1/2,z+1/2"]
    text = _cif(
        (9.0, 6.0, 8.0, 90, 95, 90),
        [("Fe1", 0.11, 0.23, 0.37)],
        {"_symmetry_space_group_name_H-M": "C 2/c"},
        operations + centred,
    )
    assert len(_read(text)) == 8


def test_a_centred_setting_named_by_its_lattice_letter_is_read():
    """'A -1' with IT number 2 (P-1 in an A-centred cell, as COD writes some triclinic cells): (0, 1/2, 1/2) is
    a lattice vector of the declared A lattice, and 4 operations are P-1's 2 times its 2 lattice points."""
    operations = ["x,y,z", "-x,-y,-z", "x,y+1/2,z+1/2", "-x,-y+1/2,-z+1/2"]
    symmetry = {"_symmetry_space_group_name_H-M": "A -1", "_symmetry_Int_Tables_number": "2"}
    assert (
        len(_read(_cif((5.1, 6.2, 7.3, 89.6, 96.2, 90.3), [("W1", 0.1, 0.2, 0.3)], symmetry, operations)))
        == 4
    )
    with pytest.raises(StructureParseError, match=r"\(0, 1/2, 1/2\), which is not a lattice vector of P-1"):
        _read(
            _cif(
                (5.1, 6.2, 7.3, 89.6, 96.2, 90.3),
                [("W1", 0.1, 0.2, 0.3)],
                {"_symmetry_space_group_name_H-M": "P -1", "_symmetry_Int_Tables_number": "2"},
                operations,
            )
        )


def test_a_subgroup_name_beside_the_operations_of_its_supergroup_is_refused():
    """'R 3 2' beside the 36 operations of R-3m: which one is the crystal's group, the file cannot say."""
    rotations = ["x,y,z", "-y,x-y,z", "-x+y,-x,z", "y,x,-z", "x-y,-y,-z", "-x,-x+y,-z"]
    inverted = ["-x,-y,-z", "y,-x+y,-z", "x-y,x,-z", "-y,-x,z", "-x+y,y,z", "x,x-y,z"]
    operations = [
        ",".join(f"{part}{shift}" for part, shift in zip(op.split(","), shifts, strict=True))
        for shifts in (("", "", ""), ("+2/3", "+1/3", "+1/3"), ("+1/3", "+2/3", "+2/3"))
        for op in rotations + inverted
    ]
    cell = (3.3583, 3.3583, 14.3468, 90, 90, 120)
    sites = [("Mn", 0.3333, 0.6667, 0.6667), ("C", 0, 0, 0.5), ("N", 0, 0, 0.5855)]
    assert _read(_cif(cell, sites, None, operations)).composition.reduced_formula == "MnCN2"
    with pytest.raises(
        StructureParseError, match=r"36 operations, more than the 18 of R32 \(155\).*R-3m \(166\)"
    ):
        _read(_cif(cell, sites, {"_symmetry_space_group_name_H-M": "R 3 2"}, operations))


def test_operations_that_do_not_fit_the_cell_are_refused_and_named():
    """A fourfold axis in a cell with a != b: the rotation does not preserve the metric."""
    operations = ["x,y,z", "-y,x,z", "-x,-y,z", "y,-x,z"]
    with pytest.raises(StructureParseError, match=r"operation '-y,x,z' does not preserve the cell's metric"):
        _read(_cif((4.0, 4.6, 5.0, 90, 90, 90), [("Ti1", 0.1, 0.2, 0.3)], None, operations))


# --- Kind 3: the unique axis of a monoclinic short symbol comes from the cell -------------------------------------

# Titanite CaTiSiO5 (Hughes et al. 1997, P 1 21/a 1): the b-unique description and the same crystal in the
# c-unique setting P 1 1 21/a (x' = x, y' = z, z' = -y).
_TITANITE_B = (7.057, 8.710, 6.555, 90, 113.84, 90)
_TITANITE_C = (7.057, 6.555, 8.710, 90, 90, 113.84)
_TITANITE_SITES_C = [
    ("Ti", 0.50870, 0.24960, 0.24740), ("Ca", 0.24510, 0.75040, 0.08169), ("Si", 0.74970, 0.75030, 0.06720),
    ("O1", 0.74870, 0.24820, 0.17910), ("O2", 0.91060, 0.93550, 0.18280), ("O3", 0.38300, 0.14610, 0.04010),
    ("O4", 0.91130, 0.43550, 0.68450), ("O5", 0.38190, 0.64860, 0.53850),
]  # fmt: skip
_TITANITE_SITES_B = [(label, x, round(-z % 1, 5), y) for label, x, y, z in _TITANITE_SITES_C]
_TITANITE = "SG14 Ca 0.12 4e Ti 0.12 4e Si 0.12 4e O 0.62 4e 4e 4e 4e 4e"


@pytest.mark.parametrize(
    ("cell", "sites", "name"),
    [
        (_TITANITE_B, _TITANITE_SITES_B, "P 21/a"),
        (_TITANITE_B, _TITANITE_SITES_B, "P 1 21/a 1"),
        (_TITANITE_C, _TITANITE_SITES_C, "P 21/a"),
        (_TITANITE_C, _TITANITE_SITES_C, "P 1 1 21/a"),
    ],
    ids=["b-unique-short", "b-unique-full", "c-unique-short", "c-unique-full"],
)
def test_monoclinic_short_symbol_is_read_in_the_unique_axis_of_the_cell(cell, sites, name):
    structure = _read(_cif(cell, sites, {"_symmetry_space_group_name_H-M": name}))
    assert structure_to_scope(structure, version="v2") == _TITANITE


def test_a_b_unique_cell_given_p21c_still_reads_b_unique():
    """'P 21/c' in a b-unique cell (beta != 90) is P 1 21/c 1, as before: same crystal as its operation list."""
    cell = (5.1, 6.2, 7.3, 90, 104.0, 90)
    sites = [("Fe1", 0.11, 0.23, 0.37), ("O1", 0.31, 0.07, 0.19)]
    named = _read(_cif(cell, sites, {"_symmetry_space_group_name_H-M": "P 21/c"}))
    listed = _read(_cif(cell, sites, None, ["x,y,z", "-x,y+1/2,-z+1/2", "-x,-y,-z", "x,-y+1/2,z+1/2"]))
    assert structure_to_scope(named, version="v2") == structure_to_scope(listed, version="v2")
    assert np.allclose(np.sort(named.frac_coords, axis=0), np.sort(listed.frac_coords, axis=0))


def test_a_full_symbol_whose_axis_the_cell_excludes_is_refused():
    """'P 1 21/a 1' (unique axis b) in a cell with gamma = 113.84: the file contradicts itself."""
    with pytest.raises(StructureParseError, match="do not preserve the cell's metric"):
        _read(_cif(_TITANITE_C, _TITANITE_SITES_C, {"_symmetry_space_group_name_H-M": "P 1 21/a 1"}))


# --- Kind 6: dialects ---------------------------------------------------------------------------------------------

_OLD_SYMBOLS = [
    (number, axes, old) for number, table in _PRE_2002_E_SYMBOLS.items() for axes, old in table.items()
]


@pytest.mark.parametrize(("number", "axes", "old"), _OLD_SYMBOLS, ids=[old for _, _, old in _OLD_SYMBOLS])
def test_pre_2002_symbols_name_the_setting_that_gemmi_gives(number, axes, old):
    gemmi = pytest.importorskip("gemmi")
    reference = gemmi.find_spacegroup_by_name(old)
    for spelling in (old, old.replace(" ", "")):
        numbers = hall_numbers_for_name(spelling)
        assert numbers, spelling
        assert {setting_choice(h).lstrip("12") for h in numbers} == {axes}
        assert " ".join(hall_symbol(numbers[0]).split()) == " ".join(reference.hall.split())


@pytest.mark.parametrize(("number", "axes", "old"), _OLD_SYMBOLS, ids=[old for _, _, old in _OLD_SYMBOLS])
def test_pre_2002_symbols_give_the_crystal_of_the_current_symbol(number, axes, old):
    """Each old symbol, with and without spaces, builds the crystal of spglib's current symbol for that setting
    (No. 68 has two origins: both spellings name origin choice 1)."""
    from tokenization.cif_symmetry import _spacegroup_type

    origin = " :1" if number == 68 else ""
    current = _spacegroup_type(hall_numbers_for_name(old)[0]).international
    sites = [("Fe1", 0.07, 0.19, 0.32), ("O1", 0.43, 0.06, 0.19)]  # away from every mirror, glide and axis
    cell = (8.0, 9.0, 10.0, 90, 90, 90)
    strings = {
        structure_to_scope(
            _read(_cif(cell, sites, {"_symmetry_space_group_name_H-M": name + origin})), version="v2"
        )
        for name in (current, old, old.replace(" ", ""))
    }
    assert len(strings) == 1 and strings.pop().startswith(f"SG{number} ")


def test_black_phosphorus_cmca_with_its_it_number():
    sites = [("P1", 0.0, 0.10168, 0.080561)]
    cell = (3.3136, 10.478, 4.3763, 90, 90, 90)
    for symmetry in (
        {"_symmetry_space_group_name_H-M": "C m c a", "_symmetry_Int_Tables_number": "64"},
        {"_space_group_name_H-M_alt": "Cmca"},
        {"_space_group_name_H-M_alt": "C 2/m 2/c 21/a"},
        {"_space_group_name_H-M_alt": "C m c e"},
    ):
        assert structure_to_scope(_read(_cif(cell, sites, symmetry)), version="v2") == "SG64 P 1.0 8f"


@pytest.mark.parametrize("spelling", ["-P 2ybc", "-P2ybc", "-P 2yb c", " -P  2ybc "])
def test_hall_symbols_with_or_without_spaces(spelling):
    cell = (5.1, 6.2, 7.3, 90, 104.0, 90)
    sites = [("Fe1", 0.11, 0.23, 0.37), ("O1", 0.31, 0.07, 0.19)]
    standard = _read(_cif(cell, sites, {"_symmetry_space_group_name_H-M": "P 1 21/c 1"}))
    hall = _read(_cif(cell, sites, {"_space_group_name_Hall": spelling}))
    assert structure_to_scope(hall, version="v2") == structure_to_scope(standard, version="v2")


def test_every_spaceless_hall_symbol_is_gemmis_group_or_refused_as_ambiguous():
    gemmi = pytest.importorskip("gemmi")
    from tokenization.cif_symmetry import _hall_index, it_number

    for spaced in _hall_index():
        compact = spaced.replace(" ", "")
        found = hall_number_for_symbol(compact)
        if compact in ("P32", "P62"):  # 'P 32' (No. 145) or 'P 3 2' (No. 149); 'P 62' or 'P 6 2'
            assert found is None
            continue
        reference = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(spaced))
        assert found is not None and it_number(found) == reference.number, spaced


def test_a_given_hall_symbol_is_not_asked_for():
    """The refusal of a file whose setting stays open advises giving the Hall symbol only when there is none."""
    from tokenization.cif_structure import _choose_setting

    for data, advised in (({}, True), ({"_space_group_name_hall": "-F 4vw 2vw 3 (1,1,1)"}, False)):
        with pytest.raises(StructureParseError) as caught:
            _choose_setting([None, None], data, "test.cif", [])
        assert ("give the Hall symbol" in caught.value.message) == advised
        assert "list the operations" in caught.value.message


@pytest.mark.parametrize(
    "symmetry",
    [
        {"_space_group_name_H-M_ref": "P 21/c"},
        {"_symmetry_space_group_name_H-M": "P2(1)/c"},
        {"_symmetry_space_group_name_H-M": "P 1 2(1)/c 1"},
    ],
    ids=["H-M_ref", "bruker-screw", "bruker-screw-full"],
)
def test_h_m_dialects(symmetry):
    cell = (5.1, 6.2, 7.3, 90, 104.0, 90)
    sites = [("Fe1", 0.11, 0.23, 0.37), ("O1", 0.31, 0.07, 0.19)]
    standard = _read(_cif(cell, sites, {"_symmetry_space_group_name_H-M": "P 1 21/c 1"}))
    assert structure_to_scope(_read(_cif(cell, sites, symmetry)), version="v2") == structure_to_scope(
        standard, version="v2"
    )


@pytest.mark.parametrize(
    "symbols",
    [("Fe3+", "Fe2.5+", "O2-"), ("Fe+3", "Fe+2.5", "O-2"), ("Fe3+", "Fe2+", "O2-"), ("Fe", "Fe", "O")],
)
def test_non_integer_valences_in_type_symbols(symbols):
    """Magnetite as ICSD writes it: Fe3+ on 8a, mixed-valence Fe2.5+ on 16d."""
    cell = (8.39, 8.39, 8.39, 90, 90, 90)
    sites = [("Fe1", 0.125, 0.125, 0.125), ("Fe2", 0.5, 0.5, 0.5), ("O1", 0.2549, 0.2549, 0.2549)]
    text = _cif(cell, sites, {"_space_group_name_H-M_alt": "F d -3 m :2"}, type_symbols=list(symbols))
    assert structure_to_scope(_read(text), version="v2") == "SG227 Fe 0.43 8a 16d O 0.57 32e"


@pytest.mark.parametrize(
    "symmetry",
    [{"_symmetry_space_group_name_H-M": "Fd-3m"}, {"_space_group_IT_number": "227"}],
    ids=["H-M", "IT-number"],
)
def test_a_cubic_group_in_a_primitive_rhombohedral_cell_is_read_as_the_whole_cell_if_it_forms_that_group(
    symmetry,
):
    """Diamond's primitive cell (a = b = c, 60 degrees) with 'Fd-3m' and no operations (CASTEP, cod-tools'
    Si2.cif): the F-centred cubic operations are not isometries of this cell (they would build 48 atoms), so the
    sites are the whole cell, kept because they form Fd-3m; sites that form another group are refused."""
    cell = (3.812, 3.812, 3.812, 60, 60, 60)
    diamond = _read(_cif(cell, [("Si1", 0, 0, 0), ("Si2", 0.25, 0.25, 0.25)], symmetry))
    assert len(diamond) == 2
    assert structure_to_scope(diamond, version="v2") == "SG227 Si 1.0 8a"
    assert any("read as the whole cell" in note for note in diamond.properties["reader_notes"])
    with pytest.raises(StructureParseError, match="do not preserve the cell's metric.*form space group 166"):
        _read(_cif(cell, [("Si1", 0, 0, 0), ("Si2", 0.3, 0.3, 0.3)], symmetry))


def test_operation_translations_with_a_leading_dot():
    """'-X,.5+Y,-Z' (COD) and 'z+.5, y+.5, -x+.5' (pymatgen's Fe.cif): '.5' is a CIF number."""
    cell = (5.1, 6.2, 7.3, 90, 104.0, 90)
    sites = [("Fe1", 0.11, 0.23, 0.37), ("O1", 0.31, 0.07, 0.19)]
    standard = _read(_cif(cell, sites, None, ["x,y,z", "-x,y+1/2,-z"]))
    dotted = _read(_cif(cell, sites, None, ["X,Y,Z", "-X,.5+Y,-Z"]))
    assert structure_to_scope(dotted, version="v2") == structure_to_scope(standard, version="v2")


def test_a_short_symbol_in_a_metrically_orthogonal_cell_keeps_the_ita_reading():
    """beta = 90: 'P 21/c' fits unique axes b and a; when both readings are plausible but differ, the ITA
    definition of the short symbol (unique axis b) decides, with a note, as before this check existed."""
    cell = (5.1, 6.2, 7.3, 90, 90, 90)
    sites = [("Fe1", 0.11, 0.23, 0.37), ("O1", 0.31, 0.07, 0.19)]
    named = _read(_cif(cell, sites, {"_symmetry_space_group_name_H-M": "P 21/c"}))
    listed = _read(_cif(cell, sites, None, ["x,y,z", "-x,y+1/2,-z+1/2", "-x,-y,-z", "x,-y+1/2,z+1/2"]))
    assert structure_to_scope(named, version="v2") == structure_to_scope(listed, version="v2")
    assert any("setting" in note for note in named.properties["reader_notes"])


def test_a_short_symbol_that_names_no_setting_of_the_cells_unique_axis_is_refused():
    """'P 21/c' in a unique-axis-c cell: the c-unique settings are P 1 1 21/a, /n and /b, and the file does not
    say which; the b- and a-unique readings do not fit the cell."""
    with pytest.raises(StructureParseError, match="do not preserve the cell's metric"):
        _read(_cif(_TITANITE_C, _TITANITE_SITES_C, {"_symmetry_space_group_name_H-M": "P 21/c"}))


def _operation_set(rotations, translations) -> set:
    """Operations as (rotation bytes, translation in 24ths mod 1), for comparing two tables."""
    rotations = np.rint(np.asarray(rotations)).astype(np.int64)
    steps = np.rint(np.asarray(translations, dtype=float) % 1 * 24).astype(int) % 24
    return {(r.tobytes(), tuple(t)) for r, t in zip(rotations, steps, strict=True)}


def test_every_setting_named_in_gemmis_table_gives_gemmis_operations():
    """gemmi's 564 settings by H-M symbol and setting suffix: each that spglib's database holds (530) resolves to the
    same operations, through its name and through its Hall symbol. The other 34 are centred or shifted variants
    ('C -1', 'B 1 21 1', 'F 2 2 2a') that the reader reads only with their operation list."""
    gemmi = pytest.importorskip("gemmi")
    from tokenization.cif_symmetry import operations_of_hall_number

    read = 0
    for group in gemmi.spacegroup_table():
        suffix = group.ext if group.ext not in ("\x00", "") else ""
        numbers = hall_numbers_for_name(
            group.hm + (f":{suffix}" if suffix else ""), rhombohedral_axes=suffix == "R"
        )
        if not numbers:
            continue
        reference = _operation_set(
            [np.array(op.rot) // gemmi.Op.DEN for op in group.operations()],
            [np.array(op.tran) / gemmi.Op.DEN for op in group.operations()],
        )
        assert _operation_set(*operations_of_hall_number(numbers[0])) == reference, group.hm
        assert _operation_set(*operations_of_hall_number(hall_number_for_symbol(group.hall))) == reference
        read += 1
    assert read == 530


_TRICLINIC = (5.1, 6.2, 7.3, 89.6, 96.2, 90.3)


@pytest.mark.parametrize(
    ("name", "number", "cell"),
    [
        ("A -1", "2", _TRICLINIC),
        ("C -1", "2", _TRICLINIC),
        ("I 1", "1", _TRICLINIC),
        ("B 1 21 1", "4", (5.1, 6.2, 7.3, 90, 96.2, 90)),
        ("C 1 1 21", "4", (5.1, 6.2, 7.3, 90, 90, 96.2)),
    ],
)
def test_a_centred_triclinic_or_monoclinic_name_without_operations(name, number, cell):
    """COD's centred cells of P-1, P2_1, P1 given by name (and IT number) alone: the primitive-lettered name's
    operations with the letter's centring, the same crystal as the listed operations give."""
    from tokenization.cif_symmetry import centred_variant

    rotations, translations = centred_variant(name)
    operations = [_xyz(r, t) for r, t in zip(rotations, translations, strict=True)]
    sites = [("W1", 0.1, 0.2, 0.3), ("O1", 0.3, 0.1, 0.2)]
    named = _read(
        _cif(cell, sites, {"_symmetry_space_group_name_H-M": name, "_symmetry_Int_Tables_number": number})
    )
    listed = _read(_cif(cell, sites, None, operations))
    assert len(named) == len(listed) == 2 * len(rotations)
    assert structure_to_scope(named, version="v2") == structure_to_scope(listed, version="v2")
    assert structure_to_scope(named, version="v2").startswith(f"SG{number} ")


def _xyz(rotation, translation) -> str:
    from tokenization.cif_structure import _operation_text

    return _operation_text(rotation, translation)
