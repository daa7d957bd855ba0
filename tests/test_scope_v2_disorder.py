"""SCOPE v2 for disordered crystals: canonical strings for mixed sites, partial occupancy and vacancies.

The fixtures are twelve disordered crystals from the literature (``fixtures/disordered/``, written for this
project). Each must encode with a closed vocabulary, give one string under every change of description, keep
different mixtures apart, and give the authors' v1 (pymatgen's atom types) exactly as pymatgen's analyser sees it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from modeling_cloud.cli import main
from tokenization import CloudTokenizerFast, DisorderedStructureError, load_structure, structure_to_scope
from tokenization.scope_encoding import symmetry_dataset
from tokenization.scope_v2 import V2_TOKENS, encode_v2, parse_v2, parse_v2_disorder

FIXTURES = Path(__file__).parent / "fixtures"
DISORDERED = sorted((FIXTURES / "disordered").glob("*.cif"))
STRUCTURES = {path.stem: load_structure(path) for path in DISORDERED}

#: What each crystal must read as: its space group and its disordered orbits (from the literature setting).
EXPECTED = {
    "CuAu_A1": "SG225 Cu 0.5 Au 0.5 | 4a Cu 0.5 Au 0.5",
    "FeCoO_rocksalt": "SG225 Fe 0.25 Co 0.25 O 0.5 4a | 4b Fe 0.5 Co 0.5",
    "NMC111": "SG166 Li 0.25 3a Mn 0.08 Co 0.08 Ni 0.08 O 0.5 6c | 3b Mn 0.33 Co 0.33 Ni 0.33",
    "YSZ": "SG225 Y 0.05 Zr 0.29 O 0.66 | 4a Y 0.15 Zr 0.85 8c O 0.96 Vac 0.04",
    "MgAl2O4_inverse": "SG227 Mg 0.14 Al 0.29 O 0.57 32e | 8a Mg 0.8 Al 0.2 16d Mg 0.1 Al 0.9",
    "Cu2Se_beta": "SG225 Cu 0.67 Se 0.33 4a | 8c Cu 0.9 Vac 0.1 4b Cu 0.2 Vac 0.8",
}


def test_twelve_literature_crystals_are_present():
    assert len(DISORDERED) >= 12
    assert all(not structure.is_ordered for structure in STRUCTURES.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_known_disordered_strings(name):
    assert encode_v2(STRUCTURES[name]) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_closed_vocabulary_and_grammar(name):
    scope = encode_v2(STRUCTURES[name])
    assert set(scope.split()) <= set(V2_TOKENS)
    number, blocks = parse_v2(scope)
    orbits = parse_v2_disorder(scope)
    assert number == SpacegroupAnalyzer(STRUCTURES[name]).get_space_group_number()
    assert orbits, "a disordered crystal has a disorder section"
    tokenizer = CloudTokenizerFast.from_scope_version("v2")
    assert tokenizer.unk_token_id not in tokenizer(scope)["input_ids"]
    # the element blocks give the fractional composition, occupancies summed
    composition = STRUCTURES[name].composition.fractional_composition
    assert {element: float(fraction) for element, fraction, _ in blocks} == pytest.approx(
        {el.symbol: round(x, 2) for el, x in composition.items()}, abs=1e-9
    )


def _transforms(structure: Structure, draw) -> list[Structure]:
    rng = np.random.default_rng(draw)
    permuted = Structure.from_sites([structure[i] for i in rng.permutation(len(structure))])
    shifted = structure.copy()
    shifted.translate_sites(list(range(len(shifted))), rng.random(3), frac_coords=True, to_unit_cell=True)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotated = Structure(
        Lattice(structure.lattice.matrix @ rotation.T),
        structure.species_and_occu,
        structure.frac_coords,
    )
    # ~0.2 mÅ of noise, far below symprec (10 mÅ)
    cartesian_noise = rng.normal(scale=2e-4, size=(len(structure), 3))
    noisy = Structure(
        structure.lattice,
        structure.species_and_occu,
        structure.cart_coords + cartesian_noise,
        coords_are_cartesian=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        primitive = structure.get_primitive_structure()
        conventional = SpacegroupAnalyzer(structure).get_conventional_standard_structure()
    return [permuted, shifted, rotated, noisy, primitive, conventional, structure * (1, 1, 2)]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=st.integers(0, 2**32 - 1))
@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_one_string_under_every_change_of_description(name, draw):
    structure = STRUCTURES[name]
    if len(structure) > 100 and draw % 2:  # the garnet: one of the supercell-sized draws is enough
        return
    reference = encode_v2(structure)
    for changed in _transforms(structure, draw):
        assert encode_v2(changed) == reference


def test_different_mixtures_on_one_orbit_give_different_strings():
    base = STRUCTURES["NMC111"]
    two = base.copy()
    for i, site in enumerate(two):
        if len(site.species) > 1:
            two.replace(i, {"Ni": 0.5, "Mn": 0.5}, coords=site.frac_coords)
    assert encode_v2(two) != encode_v2(base)
    assert parse_v2_disorder(encode_v2(two)) == [("3b", [("Mn", "0.5"), ("Ni", "0.5")])]


def test_same_mixture_is_one_atom_type_and_partial_sites_differ_from_full_ones():
    lattice = Lattice.cubic(4.0)
    mixed = Structure(lattice, [{"Fe": 0.5, "Co": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    partial = Structure(lattice, [{"Fe": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert encode_v2(mixed) == "SG221 Fe 0.25 Co 0.25 O 0.5 1a | 1b Fe 0.5 Co 0.5"
    assert encode_v2(partial) == "SG221 Fe 0.33 O 0.67 1a | 1b Fe 0.5 Vac 0.5"


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_v1_uses_pymatgens_atom_types(name):
    structure = STRUCTURES[name]
    ours = symmetry_dataset(structure)
    theirs = SpacegroupAnalyzer(structure).get_symmetry_dataset()
    assert ours.number == theirs.number
    assert list(ours.wyckoffs) == list(theirs.wyckoffs)
    composition = structure_to_scope(structure, version="v1").split(" | ")[2]
    fractions = structure.composition.fractional_composition
    assert composition == " ".join(f"{el} {round(x, 2)}" for el, x in fractions.items())


def test_disorder_raise_refuses_and_ordered_strings_are_the_same_either_way():
    with pytest.raises(DisorderedStructureError):
        structure_to_scope(DISORDERED[0], version="v2", disorder="raise")
    ordered = FIXTURES / "realworld" / "10a-rutile-clean.vasp"
    assert structure_to_scope(ordered, version="v2", disorder="raise") == structure_to_scope(
        ordered, version="v2"
    )


def test_the_file_and_ase_read_of_it_give_the_same_disordered_string():
    ase_io = pytest.importorskip("ase.io")
    for name in ("13-disordered-site-via-ase.cif", "18b-mcif-mixed-site.mcif"):
        path = FIXTURES / "realworld" / name
        from_file = structure_to_scope(path, version="v2")
        assert " | " in from_file
        if path.suffix == ".cif":
            assert structure_to_scope(ase_io.read(path), version="v2") == from_file


def test_encode_command_takes_the_disorder_policy(capsys):
    path = str(FIXTURES / "disordered" / "CuAu_A1.cif")
    assert main(["encode", path, "--scope-version", "v2", "--jsonl"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["scope"] == EXPECTED["CuAu_A1"]
    assert main(["encode", path, "--scope-version", "v2", "--jsonl", "--disorder", "raise"]) == 1
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["error"]["reason"] == "disordered_structure"


def test_dataset_builders_follow_the_disorder_policy(tmp_path):
    from dataset_builders import FailureReport, dataset_from_files, dataset_from_records

    encoded = dataset_from_files([FIXTURES / "disordered"])
    assert len(encoded) == len(DISORDERED)
    report = FailureReport()
    refused = dataset_from_files([FIXTURES / "disordered"], report=report, disorder="raise")
    assert len(refused) == 0
    assert {failure.reason for failure in report.failures} == {"disordered_structure"}
    assert len(report.failures) == len(DISORDERED)

    # OPTIMADE-style species with concentrations (and a vacancy) as JSON in a record table
    entry = {
        "id": "feco-o",
        "attributes": {
            "lattice_vectors": [[4.26, 0, 0], [0, 4.26, 0], [0, 0, 4.26]],
            "cartesian_site_positions": [[0, 0, 0], [2.13, 2.13, 2.13]],
            "species_at_sites": ["M", "O"],
            "species": [
                {
                    "name": "M",
                    "chemical_symbols": ["Fe", "Co", "vacancy"],
                    "concentration": [0.45, 0.45, 0.1],
                },
                {"name": "O", "chemical_symbols": ["O"], "concentration": [1.0]},
            ],
            "dimension_types": [1, 1, 1],
        },
    }
    table = tmp_path / "optimade.jsonl"
    table.write_text(json.dumps({"structure": json.dumps(entry), "label": 1.5}) + "\n")
    (row,) = dataset_from_records(table)
    assert (
        structure_to_scope(row["structure"], version="v2")
        == "SG221 Fe 0.24 Co 0.24 O 0.53 1a | 1b Fe 0.45 Co 0.45 Vac 0.1"
    )


def test_ordered_strings_are_those_from_before_disorder_support(v1_fixture_records):
    """The 400 fixture crystals keep the v2 strings of the last commit before disorder support (all 6,317 bundled
    ones: benchmarks/report_disorder.py)."""
    import gzip

    with gzip.open(FIXTURES / "scope_v2" / "ordered_v2_strings.json.gz", "rt") as handle:
        golden = json.load(handle)["strings"]
    assert len(golden) == len(v1_fixture_records) == 400
    for record in v1_fixture_records:
        structure = Structure.from_dict(record["structure"])
        assert encode_v2(structure) == golden[record["material_id"]], record["material_id"]


def test_predict_command_takes_the_disorder_policy(tmp_path, capsys):
    import torch

    from modeling_cloud import CloudConfig, CloudForPropertyRegression

    torch.manual_seed(0)
    config = CloudConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        target_names=["band_gap"], target_units=["eV"],
    )  # fmt: skip
    CloudForPropertyRegression(config).save_pretrained(tmp_path / "model")
    CloudTokenizerFast.from_scope_version("v2").save_pretrained(tmp_path / "model")
    path = str(FIXTURES / "disordered" / "NMC111.cif")
    assert main(["predict", "--model", str(tmp_path / "model"), path, "--jsonl"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert isinstance(row["predictions"]["band_gap"], float)
    assert main(["predict", "--model", str(tmp_path / "model"), path, "--jsonl", "--disorder", "raise"]) == 1
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["error"]["reason"] == "disordered_structure"


ROCKSALT_ROWS = """data_x
_space_group_IT_number 225
_cell_length_a 5.64
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
{rows}
Cl1 Cl 0.5 0.5 0.5 1
"""


def test_rows_rounded_to_full_then_mixed_are_scaled_not_crashed():
    # Na 0.999 counts as full, then K 0.001 joins it: 1.001 is within the tolerance and scaled back to 1.
    text = ROCKSALT_ROWS.format(rows="Na1 Na 0 0 0 0.999\nK1 K 0 0 0 0.001")
    assert structure_to_scope(text, version="v2") == "SG225 K 0.0 Na 0.5 Cl 0.5 4a | 4b K 0.0 Na 1.0"
    composite = ROCKSALT_ROWS.format(rows="M1 0.5Na+0.5K 0 0 0 1")  # Pauling-file composite, no spaces
    assert structure_to_scope(composite, version="v2") == "SG225 K 0.25 Na 0.25 Cl 0.5 4a | 4b K 0.5 Na 0.5"


def test_ase_losing_same_element_rows_is_refused_not_encoded(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    path = tmp_path / "fe2fe3.cif"
    path.write_text(ROCKSALT_ROWS.format(rows="Fe1 Fe2+ 0 0 0 0.5\nFe2 Fe3+ 0 0 0 0.5").replace("Cl", "O"))
    assert structure_to_scope(path, version="v2") == "SG225 Fe 0.5 4a O 0.5 4b"
    with pytest.raises(Exception, match="no atom carries"):  # ASE keeps one Fe row's atoms only
        structure_to_scope(ase_io.read(path), version="v2")


def test_occupancies_written_with_few_decimals_fill_a_site():
    shares = ["Ti", "Zr", "Hf", "Nb", "Ta", "V"]
    entry = {
        "id": "hea6",
        "lattice_vectors": [[3.3, 0, 0], [0, 3.3, 0], [0, 0, 3.3]],
        "cartesian_site_positions": [[0, 0, 0], [1.65, 1.65, 1.65]],
        "species_at_sites": ["M", "M"],
        "species": [{"name": "M", "chemical_symbols": shares, "concentration": [0.1667] * 6}],
        "dimension_types": [1, 1, 1],
    }
    assert structure_to_scope(entry, version="v2").startswith("SG229 ")  # 6 x 0.1667 = 1.0002: a full site
    nearly_full = Structure(Lattice.cubic(5.64), [{"Na": 0.996}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert structure_to_scope(nearly_full, version="v2", disorder="raise") == "SG221 Na 0.5 1a Cl 0.5 1b"


def test_tokenizer_call_takes_the_disorder_policy():
    tokenizer = CloudTokenizerFast.from_scope_version("v2")
    path = str(FIXTURES / "disordered" / "YSZ.cif")
    assert tokenizer.unk_token_id not in tokenizer(path)["input_ids"]
    with pytest.raises(DisorderedStructureError):
        tokenizer(path, disorder="raise")


# --- Split positions (issue 21, kind 7) ---------------------------------------------------------------------------


def _split_pair(occupancy: float, distance: float, element: str = "Si") -> Structure:
    """A cubic cell (a = 6 Å) with a full Na at the corner and two partial ``element`` sites ``distance`` apart."""
    half = distance / 2 / 6.0
    return Structure(
        Lattice.cubic(6.0),
        ["Na", {element: occupancy}, {element: occupancy}],
        [[0, 0, 0], [0.5 - half, 0.5, 0.5], [0.5 + half, 0.5, 0.5]],
    )


def test_split_positions_keep_their_own_orbit():
    """beta-cristobalite's bridging O over six 1/6-occupied 96h positions, 0.43 Å around the Si...Si line: one atom
    spread over alternatives, not six overlapping atoms (tests/fixtures/realworld/r3_11)."""
    y = 0.0424
    structure = Structure.from_spacegroup(
        "Fd-3m:2", Lattice.cubic(7.1666), ["Si", {"O": 1 / 6}], [[0.125, 0.125, 0.125], [0, y, -y]]
    )
    assert structure.composition.formula == "Si8 O16"
    assert min(structure.distance_matrix[np.triu_indices(len(structure), 1)]) < 0.5
    assert structure_to_scope(structure, version="v2") == "SG227 Si 0.33 8a O 0.67 | 96h O 0.17 Vac 0.83"
    with pytest.raises(DisorderedStructureError):
        structure_to_scope(structure, version="v2", disorder="raise")


@pytest.mark.parametrize(
    ("occupancy", "distance", "refused"),
    [
        (0.8, 0.7, True),  # two atoms 0.7 Å apart: impossible, yet above the overlap tolerance
        (0.8, 0.3, True),
        (1.0, 0.3, True),
        (0.5, 0.7, False),  # alternatives: one atom, half the time on each
        (0.5, 0.3, False),
        (0.8, 1.2, False),  # beyond 1 Å two atoms can both be there
    ],
)
def test_partial_sites_closer_than_1_angstrom_must_sum_to_at_most_one(occupancy, distance, refused):
    from tokenization import OverlappingSitesError

    structure = _split_pair(occupancy, distance)
    if not refused:
        assert load_structure(structure).composition["Si"] == pytest.approx(2 * occupancy)
        return
    with pytest.raises(OverlappingSitesError, match=f"{distance:.3f} A"):
        load_structure(structure)


def test_partial_hydrogen_riding_on_a_partial_atom_is_not_a_split_site():
    """X-ray riding H sits 0.82-0.96 Å from its O or C; both belong to one disorder part and are occupied together."""
    load_structure(_split_pair(0.8, 0.9, element="H"))
    with pytest.raises(Exception, match="overlap tolerance|sum to"):
        load_structure(_split_pair(0.8, 0.3, element="H"))


def test_a_chain_of_split_sites_is_not_one_cluster():
    """A-B and B-C 0.8 Å apart, A-C 1.6 Å: B excludes A and C, but A and C may be occupied together (sum 1.5)."""
    structure = Structure(
        Lattice.cubic(8.0),
        ["Na", {"Si": 0.5}, {"Si": 0.5}, {"Si": 0.5}],
        [[0, 0, 0], [0.4, 0.5, 0.5], [0.5, 0.5, 0.5], [0.6, 0.5, 0.5]],
    )
    assert load_structure(structure).composition["Si"] == pytest.approx(1.5)
