"""POSCAR and ASE readers: the format corners, ASE disorder and periodicity, and one validation table for every path.

Issue 12: a reader must read a file as its format defines it or refuse it with the real reason; it must never
invent or drop data, and every input path must answer a bad structure with the same typed error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import DummySpecies, IStructure, Lattice, Molecule, Structure

from tokenization import (
    DisorderedStructureError,
    EmptyStructureError,
    InvalidGeometryError,
    OverlappingSitesError,
    StructureParseError,
    UnknownSpeciesError,
    load_structure,
    structure_to_scope,
)
from tokenization.scope_errors import NonPeriodicStructureError

pytest.importorskip("ase")
import ase.build  # noqa: E402
import ase.io  # noqa: E402

from tokenization.ase_adapter import atoms_to_structure, read_ase_file  # noqa: E402
from tokenization.poscar_reader import read_poscar  # noqa: E402

REALWORLD = Path(__file__).parent / "fixtures" / "realworld"

ROCKSALT_V2 = "SG225 Na 0.5 4a Cl 0.5 4b"
DIAMOND_V2 = "SG227 Si 1.0 8a"
RUTILE_V2 = "SG136 Ti 0.33 2a O 0.67 4f"

FCC_PRIMITIVE = "  0.0 0.5 0.5\n  0.5 0.0 0.5\n  0.5 0.5 0.0\n"


def v2(obj, disorder: str = "raise") -> str:
    # The validation table and the ASE tests check the refusal policy; disorder="encode" is tested in
    # test_scope_v2_disorder.py.
    return structure_to_scope(obj, version="v2", disorder=disorder)


# --- POSCAR: the real-world cases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("10a-rutile-clean.vasp", RUTILE_V2),
        ("11a-poscar-negative-scale-direct.vasp", DIAMOND_V2),
        ("11b-poscar-negative-scale-cartesian.vasp", DIAMOND_V2),
    ],
)
def test_realworld_poscars_encode_to_the_crystal_in_the_file(name, expected):
    path = REALWORLD / name
    assert v2(path) == expected
    assert v2(str(path)) == expected
    assert v2(path.read_text()) == expected


def test_negative_scale_is_the_cell_volume_for_cartesian_positions_too():
    """pymatgen multiplied Cartesian positions by the volume itself (SG166 instead of diamond)."""
    direct = read_poscar((REALWORLD / "11a-poscar-negative-scale-direct.vasp").read_text(), "11a")
    cartesian = read_poscar((REALWORLD / "11b-poscar-negative-scale-cartesian.vasp").read_text(), "11b")
    for structure in (direct, cartesian):
        assert structure.volume == pytest.approx(40.05)
        np.testing.assert_allclose(structure.frac_coords, [[0, 0, 0], [0.25, 0.25, 0.25]], atol=1e-12)


def test_vasp4_without_any_species_is_refused_not_invented():
    path = REALWORLD / "12a-vasp4-poscar-no-species.vasp"
    with pytest.raises(
        UnknownSpeciesError, match=r"12a-vasp4-poscar-no-species\.vasp: a VASP 4 POSCAR"
    ) as info:
        v2(path)
    assert "species are unknown" in str(info.value)


def test_vasp4_takes_species_from_the_comment_line():
    text = "Na Cl rock salt\n5.64\n1 0 0\n0 1 0\n0 0 1\n4 4\nDirect\n" + "".join(
        f"{x} {y} {z}\n"
        for x, y, z in [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
        + [(0.5, 0.5, 0.5), (0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5)]
    )
    assert v2(text) == ROCKSALT_V2
    # POTCAR names in the comment keep their element; species come in the order of the counts.
    rutile = (REALWORLD / "10a-rutile-clean.vasp").read_text().splitlines()
    vasp4 = ["Ti_sv O  rutile"] + rutile[1:5] + rutile[6:]
    assert v2("\n".join(vasp4)) == RUTILE_V2


@pytest.mark.parametrize("vasp5", [False, True])
@pytest.mark.parametrize("direct", [True, False])
def test_poscars_written_by_ase_read_back_site_by_site(vasp5, direct):
    """ASE's VASP 4 writer puts the symbols on the comment line, one per group of the counts line."""
    import io

    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(0.01, seed=1)
    handle = io.StringIO()
    ase.io.write(handle, atoms, format="vasp", vasp5=vasp5, direct=direct)
    structure = read_poscar(handle.getvalue(), "ase-written")
    assert [site.specie.symbol for site in structure] == atoms.get_chemical_symbols()
    np.testing.assert_allclose(structure.cart_coords, atoms.get_positions(), atol=1e-6)


@pytest.mark.parametrize(
    "comment",
    [
        "rutile O2Ti",  # a formula word whose counts do not follow the counts line (2 4) in its order
        "TiO2 grown on SnO2",  # two formulas: which one is meant is unknown
        "Ti",  # fewer symbols than counts
        "At 0 K, relaxed",  # a lone symbol in a sentence is never a species
        "Ti O Fe relaxed",  # more symbols than counts: ambiguous
    ],
)
def test_vasp4_comment_without_a_clear_species_list_is_refused(comment):
    rutile = (REALWORLD / "10a-rutile-clean.vasp").read_text().splitlines()
    with pytest.raises(UnknownSpeciesError, match="VASP 4 POSCAR"):
        read_poscar("\n".join([comment] + rutile[1:5] + rutile[6:]), "vasp4")


def test_three_scale_factors_scale_each_cartesian_axis():
    base = "three scales\n{scale}\n1 0 0\n0 1 0\n0 0 1\nNa Cl\n1 1\n{mode}\n0 0 0\n{second}\n"
    scaled = read_poscar(base.format(scale="2.0 3.0 4.0", mode="Cartesian", second="0.5 0.5 0.5"), "three")
    np.testing.assert_allclose(scaled.lattice.matrix, np.diag([2.0, 3.0, 4.0]))
    np.testing.assert_allclose(scaled.frac_coords[1], [0.5, 0.5, 0.5])
    direct = read_poscar(base.format(scale="2 3 4", mode="Direct", second="0.5 0.5 0.5"), "three")
    np.testing.assert_allclose(direct.frac_coords, scaled.frac_coords)
    with pytest.raises(StructureParseError, match="must all be positive"):
        read_poscar(base.format(scale="2 -3 4", mode="Direct", second="0.5 0.5 0.5"), "three")
    with pytest.raises(StructureParseError, match="scaling factor"):
        read_poscar(base.format(scale="2 3", mode="Direct", second="0.5 0.5 0.5"), "two")


def test_selective_dynamics_and_trailing_velocity_blocks_do_not_change_the_structure():
    plain = (REALWORLD / "11a-poscar-negative-scale-direct.vasp").read_text().splitlines()
    header, positions = plain[:7], plain[8:]
    flagged = header + ["Selective dynamics", "Direct"] + [p + "  T T F" for p in positions]
    contcar = flagged + ["", "  0.01 0.00 0.00", "  0.00 0.02 0.00", "", "  1", "  0.5", "  0.0 0.0 0.0"]
    for lines in (flagged, contcar):
        structure = read_poscar("\n".join(lines), "flags")
        assert structure == read_poscar("\n".join(plain), "plain")
        assert v2("\n".join(lines)) == DIAMOND_V2
    missing = header + ["Selective dynamics", "Direct"] + positions
    with pytest.raises(StructureParseError, match="selective-dynamics flags"):
        read_poscar("\n".join(missing), "flags")


def test_site_order_is_the_file_order():
    text = "order\n1.0\n4 0 0\n0 4 0\n0 0 4\nO Ti Na\n2 1 1\nDirect\n0 0 0\n0.5 0 0\n0 0.5 0\n0 0 0.5\n"
    structure = read_poscar(text, "order")
    assert [site.specie.symbol for site in structure] == ["O", "O", "Ti", "Na"]
    np.testing.assert_allclose(structure.frac_coords[3], [0, 0, 0.5])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa\n1\n0 0 0\n0.5 0.5 0.5\n", "line 8 should be the coordinate mode"),
        ("x\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1\nDirect\n0 0 0\n", "2 species names"),
        ("x\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1 1\nDirect\n0 0 0\n", "asks for 2 positions"),
        ("x\nabc\n4 0 0\n0 4 0\n0 0 4\nNa\n1\nDirect\n0 0 0\n", "line 2 should be the scaling factor"),
        ("hello\nthis is not a crystal\n", "not a readable POSCAR"),
    ],
)
def test_broken_poscars_name_the_line_and_the_reason(text, problem):
    # Counts that disagree with the species line or the positions are refused by the claims check of the
    # validation (file_claims), which every input path goes through.
    with pytest.raises(StructureParseError, match=problem):
        load_structure(text, "broken")


def test_fortran_double_exponents_are_numbers():
    text = "d\n0.564D+01\n1 0 0\n0 1 0\n0 0 1\nNa Cl\n1 1\nDirect\n0 0 0\n0.5d0 0.5D0 0.5\n"
    structure = read_poscar(text, "d")
    assert structure.lattice.a == pytest.approx(5.64)


# --- other formats given as a POSCAR are named --------------------------------------------------------------


def _write_extxyz(path: Path) -> None:
    ase.io.write(path, ase.build.bulk("NaCl", "rocksalt", a=5.64), format="extxyz")


def test_extxyz_given_as_poscar_is_named_as_extxyz(tmp_path):
    source = tmp_path / "frames.extxyz"
    _write_extxyz(source)
    poscar = tmp_path / "POSCAR"
    poscar.write_text(source.read_text())
    for obj in (poscar, source.read_text()):
        with pytest.raises(StructureParseError, match="extended XYZ") as info:
            load_structure(obj)
        assert "not a readable POSCAR" not in str(info.value)
    assert str(poscar) in str(pytest.raises(StructureParseError, load_structure, poscar).value)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("3\nwater\nO 0.0 0.0 0.0\nH 0.76 0.59 0.0\nH -0.76 0.59 0.0\n", "an XYZ file"),
        (
            "# made by hand\ndata_NaCl\n_cell_length_a 5.64\n_cell_length_b 5.64\n_cell_length_c 5.64\n",
            "a CIF file",
        ),
        ('{"@class": "Structure", "lattice": {}}', "JSON"),
        ("CRYST1    5.640    5.640    5.640  90.00  90.00  90.00 P 1\nATOM      1 NA   NA     1\n", "a PDB"),
        ("&control\n calculation='scf'\n/\nATOMIC_POSITIONS crystal\nNa 0 0 0\n", "a Quantum ESPRESSO"),
    ],
)
def test_other_formats_in_a_vasp_file_are_named(tmp_path, text, name):
    path = tmp_path / "structure.vasp"
    path.write_text(text)
    with pytest.raises(StructureParseError, match=f"this is {name}") as info:
        load_structure(path)
    assert "structure.vasp" in str(info.value)


# --- ASE -------------------------------------------------------------------------------------------------------


def test_disorder_read_by_ase_gets_the_same_answer_as_the_file():
    path = REALWORLD / "13-disordered-site-via-ase.cif"
    with pytest.raises(DisorderedStructureError):
        v2(path)
    atoms = ase.io.read(path)
    assert "occupancy" in atoms.info  # ASE keeps one atom per site and the occupancies beside it
    structure = atoms_to_structure(atoms, "13 via ASE")  # built, not refused early: disorder is data
    assert not structure.is_ordered
    assert {str(sp): occ for sp, occ in structure[0].species.items()} == {"Fe": 0.5, "Si": 0.5}
    assert structure.composition.num_atoms == pytest.approx(16)
    with pytest.raises(DisorderedStructureError, match="13 via ASE: site 0 is partially occupied or mixed"):
        structure_to_scope(atoms, version="v2", source="13 via ASE", disorder="raise")
    assert v2(atoms, disorder="encode") == v2(path, disorder="encode")  # encoded, the same string both ways


def _rocksalt_atoms():
    return ase.build.bulk("NaCl", "rocksalt", a=5.64)


def test_occupancy_keyed_by_tags_as_older_ase_writes_it():
    atoms = _rocksalt_atoms()
    atoms.set_tags([0, 1])
    atoms.info["occupancy"] = {"0": {"Na": 0.5, "K": 0.5}, "1": {"Cl": 1.0}}
    structure = atoms_to_structure(atoms, "tags")
    assert {str(sp): occ for sp, occ in structure[0].species.items()} == {"Na": 0.5, "K": 0.5}
    with pytest.raises(DisorderedStructureError):
        v2(atoms)


def test_full_occupancies_from_ase_stay_ordered():
    atoms = _rocksalt_atoms()
    atoms.new_array("spacegroup_kinds", np.array([0, 1]))
    atoms.info["occupancy"] = {"0": {"Na": 1.0001}, "1": {"Cl": 0.9999}}  # refinement rounding, not disorder
    assert v2(atoms) == ROCKSALT_V2


@pytest.mark.parametrize(
    ("occupancy", "error", "match"),
    [
        ({"0": {"K": 1.0}, "1": {"Cl": 1.0}}, StructureParseError, "atom 0 is Na"),
        ({"1": {"Cl": 1.0}}, StructureParseError, "no .* entry for spacegroup kind 0"),
        ({"0": {"Na": 1.0, "K": 1.0}, "1": {"Cl": 1.0}}, OverlappingSitesError, "total occupancy 2 > 1"),
        ({"0": {"Na": 1.2}, "1": {"Cl": 1.0}}, StructureParseError, "occupancy 1.2 of Na is above 1"),
        ({"0": {"Na": 1.0, "Xx": 0.5}, "1": {"Cl": 1.0}}, UnknownSpeciesError, "Xx"),
    ],
)
def test_occupancy_records_that_do_not_fit_the_atoms_are_refused(occupancy, error, match):
    atoms = _rocksalt_atoms()
    atoms.new_array("spacegroup_kinds", np.array([0, 1]))
    atoms.info["occupancy"] = occupancy
    with pytest.raises(error, match=match):
        v2(atoms)


@pytest.mark.parametrize("pbc", [False, (True, True, False)])
def test_non_periodic_atoms_are_refused(pbc):
    atoms = _rocksalt_atoms()
    atoms.pbc = pbc
    with pytest.raises(NonPeriodicStructureError, match="not a 3D crystal"):
        v2(atoms)


def test_a_molecule_in_a_box_is_refused():
    water = ase.build.molecule("H2O")
    water.center(vacuum=5.0)  # a cell, but pbc stays False: still a molecule
    assert water.cell.rank == 3
    with pytest.raises(NonPeriodicStructureError):
        v2(water)
    with pytest.raises(NonPeriodicStructureError, match="Molecule"):
        v2(Molecule(["O", "H", "H"], water.get_positions()))


def test_multi_frame_extxyz_gives_one_entry_per_frame(tmp_path):
    water = ase.build.molecule("H2O")
    water.center(vacuum=5.0)
    frames = [_rocksalt_atoms(), ase.build.bulk("Si", "diamond", a=5.43), water]
    path = tmp_path / "frames.extxyz"
    ase.io.write(path, frames, format="extxyz")
    entries = read_ase_file(path)
    assert [name for name, _ in entries] == [f"{path}@{i}" for i in range(3)]
    assert [v2(entries[i][1]) for i in (0, 1)] == [ROCKSALT_V2, DIAMOND_V2]
    assert isinstance(entries[2][1], NonPeriodicStructureError)  # the bad frame does not sink the others
    assert entries[2][1].source == f"{path}@2"

    single = tmp_path / "one.extxyz"
    ase.io.write(single, frames[1], format="extxyz")
    ((name, structure),) = read_ase_file(single)
    assert name == str(single) and v2(structure) == DIAMOND_V2


def test_ase_file_errors_are_entries_not_exceptions(tmp_path):
    path = tmp_path / "frames.extxyz"
    ase.io.write(path, [_rocksalt_atoms(), _rocksalt_atoms()], format="extxyz")
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1].replace(lines[-1].split()[1], "not-a-number", 1)
    path.write_text("\n".join(lines) + "\n")
    entries = read_ase_file(path)
    assert v2(entries[0][1]) == ROCKSALT_V2
    assert isinstance(entries[1][1], StructureParseError)
    assert "could not read frame 1" in str(entries[1][1])
    ((name, error),) = read_ase_file(tmp_path / "missing.extxyz")
    assert isinstance(error, StructureParseError) and "no such file" in str(error)


def test_remote_code_keeps_ase_optional():
    """transformers refuses remote code whose imports (outside try blocks) are not installed."""
    from transformers.dynamic_module_utils import get_imports, get_relative_imports

    import tokenization.ase_adapter as adapter
    import tokenization.poscar_reader as poscar
    import tokenization.structure_io as structure_io

    for module in (adapter, poscar):
        third_party = set(get_imports(module.__file__)) - set(sys.stdlib_module_names)
        assert third_party <= {"numpy", "pymatgen"}, third_party
    assert {"poscar_reader", "ase_adapter"} <= set(get_relative_imports(structure_io.__file__))


# --- one validation table for every input path -----------------------------------------------------------------

CUBIC = 4.0


def _case(species, coords, lattice=None, pbc=(True, True, True)):
    return {
        "lattice": np.eye(3) * CUBIC if lattice is None else np.asarray(lattice, dtype=float),
        "species": species,
        "coords": np.asarray(coords, dtype=float).reshape(-1, 3),
        "pbc": pbc,
    }


BAD = {
    "empty": (_case([], []), EmptyStructureError),
    "overlapping": (_case(["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]]), OverlappingSitesError),
    "nan_coordinates": (_case(["Na", "Cl"], [[0, 0, 0], [np.nan, 0.5, 0.5]]), InvalidGeometryError),
    "flat_lattice": (
        _case(["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], lattice=np.diag([CUBIC, CUBIC, 1e-3])),
        InvalidGeometryError,
    ),
    "unknown_species": (_case(["X", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]), UnknownSpeciesError),
    "disordered": (_case([{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]]), DisorderedStructureError),
    "non_periodic": (
        _case(["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], pbc=(True, True, False)),
        NonPeriodicStructureError,
    ),
}


def _pymatgen_species(sp):
    return DummySpecies("X") if sp == "X" else sp


def _as_structure(case):
    lattice = Lattice(case["lattice"], pbc=case["pbc"])
    return Structure(lattice, [_pymatgen_species(s) for s in case["species"]], case["coords"])


def _as_istructure(case):
    lattice = Lattice(case["lattice"], pbc=case["pbc"])
    return IStructure(lattice, [_pymatgen_species(s) for s in case["species"]], case["coords"])


def _as_dict(case):
    return _as_structure(case).as_dict()


def _as_json_text(case):
    return json.dumps(_as_dict(case))


def _as_atoms(case):
    symbols, occupancy = [], {}
    for i, sp in enumerate(case["species"]):
        if isinstance(sp, dict):
            symbols.append(max(sp, key=sp.get))
            occupancy[str(i)] = dict(sp)
        else:
            symbols.append(sp)
            occupancy[str(i)] = {sp: 1.0}
    atoms = ase.Atoms(
        symbols=symbols,
        scaled_positions=case["coords"] if len(symbols) else None,
        cell=case["lattice"],
        pbc=case["pbc"],
    )
    if any(isinstance(sp, dict) for sp in case["species"]):
        atoms.new_array("spacegroup_kinds", np.arange(len(atoms)))
        atoms.info["occupancy"] = occupancy
    return atoms


def _as_arrays(case):
    species = ["Xx" if sp == "X" else sp for sp in case["species"]]
    return (case["lattice"], case["coords"], species)


def _cif_text(case):
    a, b, c = np.linalg.norm(case["lattice"], axis=1)
    rows = []
    for i, (sp, xyz) in enumerate(zip(case["species"], case["coords"], strict=True)):
        for symbol, occ in sp.items() if isinstance(sp, dict) else [("Xx" if sp == "X" else sp, 1.0)]:
            coords = " ".join("nan" if np.isnan(v) else f"{v:.6f}" for v in xyz)
            rows.append(f"{symbol}{i} {symbol} {coords} {occ}")
    atoms = (
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        "_atom_site_fract_z\n_atom_site_occupancy\n" + "\n".join(rows) + "\n"
        if rows
        else ""
    )
    return (
        f"data_case\n_cell_length_a {a:.6f}\n_cell_length_b {b:.6f}\n_cell_length_c {c:.6f}\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n" + atoms
    )


def _poscar_text(case):
    species = ["Xx" if sp == "X" else sp for sp in case["species"]]
    names = list(dict.fromkeys(species)) or ["Na"]
    counts = [species.count(name) for name in names]
    lattice = "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in case["lattice"])
    coords = "".join(
        " ".join("nan" if np.isnan(v) else f"{v:.6f}" for v in row) + "\n" for row in case["coords"]
    )
    return f"case\n1.0\n{lattice}{' '.join(names)}\n{' '.join(map(str, counts))}\nDirect\n{coords}"


def _path(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


PATHS = {
    "Structure": lambda case, tmp: _as_structure(case),
    "IStructure": lambda case, tmp: _as_istructure(case),
    "dict": lambda case, tmp: _as_dict(case),
    "json_text": lambda case, tmp: _as_json_text(case),
    "ase_Atoms": lambda case, tmp: _as_atoms(case),
    "arrays": lambda case, tmp: _as_arrays(case),
    "cif_text": lambda case, tmp: _cif_text(case),
    "cif_path": lambda case, tmp: _path(tmp, "case.cif", _cif_text(case)),
    "cif_path_str": lambda case, tmp: str(_path(tmp, "case.cif", _cif_text(case))),
    "poscar_text": lambda case, tmp: _poscar_text(case),
    "poscar_path": lambda case, tmp: _path(tmp, "case.vasp", _poscar_text(case)),
    "poscar_path_str": lambda case, tmp: str(_path(tmp, "POSCAR", _poscar_text(case))),
}

#: Combinations a path cannot express.
NOT_APPLICABLE = (
    {("non_periodic", path) for path in ("arrays", "cif_text", "cif_path", "cif_path_str")}
    | {("non_periodic", path) for path in ("poscar_text", "poscar_path", "poscar_path_str")}
    | {("disordered", path) for path in ("poscar_text", "poscar_path", "poscar_path_str")}
    | {
        # CIF numbers cannot spell NaN: the CIF reader refuses the token itself as a parse error.
        ("nan_coordinates", path)
        for path in ("cif_text", "cif_path", "cif_path_str")
    }
)

#: Known disagreements, to be fixed where the table points (strict: a fix turns them into failures to remove).
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def _table():
    for case_name, (_, error) in BAD.items():
        for path_name in PATHS:
            if (case_name, path_name) in NOT_APPLICABLE:
                continue
            marks = []
            if (case_name, path_name) in KNOWN_GAPS:
                marks.append(pytest.mark.xfail(reason=KNOWN_GAPS[case_name, path_name], strict=True))
            yield pytest.param(case_name, path_name, error, id=f"{case_name}-{path_name}", marks=marks)


@pytest.mark.parametrize(("case_name", "path_name", "error"), list(_table()))
def test_every_input_path_gives_the_same_error(tmp_path, case_name, path_name, error):
    case, _ = BAD[case_name]
    obj = PATHS[path_name](case, tmp_path)
    with pytest.raises(error) as info:
        structure_to_scope(obj, version="v2", disorder="raise")
    assert type(info.value) is error
    if path_name.endswith(("_path", "_path_str")):
        assert str(obj) in str(info.value)  # the message names the file


@pytest.mark.parametrize("path_name", list(PATHS))
def test_every_input_path_reads_the_good_crystal(tmp_path, path_name):
    good = _case(["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert v2(PATHS[path_name](good, tmp_path)) == "SG221 Na 0.5 1a Cl 0.5 1b"
