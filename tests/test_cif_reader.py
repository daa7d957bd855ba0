"""The fast CIF reader must give exactly pymatgen's structure (or ``None``), and SCOPE v1 must not change.

"Exactly" means what SCOPE and users can see: the same sites in the same order with the same species, lattice,
fractional coordinates (compared bit for bit here; the contract is 1e-6) and labels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Structure
from pymatgen.io.cif import CifParser, CifWriter

from tokenization import encode_v1
from tokenization.cif_reader import read_cif_fast
from tokenization.structure_io import validate_structure

EXAMPLES = Path(__file__).parents[1] / "dataset_builders" / "data" / "examples"


def _ase_mineral_cifs() -> list[Path]:
    """Real COD entries that ASE ships as test data (text fields, uncertainties, anisotropic loops...)."""
    try:
        import ase
    except ImportError:
        return []
    return sorted((Path(ase.__file__).parent / "test" / "testdata" / "minerals").glob("*.cif"))


def pymatgen_structure(text: str) -> Structure | None:
    """What the fallback path reads: pymatgen's first structure, or None when pymatgen cannot read the text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return CifParser.from_str(text).parse_structures(primitive=False)[0]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, ZeroDivisionError):
            return None


def differences(fast: Structure, reference: Structure) -> list[str]:
    found = []
    if len(fast) != len(reference):
        return [f"{len(fast)} sites instead of {len(reference)}"]
    if [s.species_string for s in fast] != [s.species_string for s in reference]:
        found.append("species order")
    if not np.array_equal(fast.lattice.matrix, reference.lattice.matrix):
        found.append("lattice")
    if not np.array_equal(fast.frac_coords, reference.frac_coords):
        worst = np.abs(fast.frac_coords - reference.frac_coords).max()
        found.append(f"coordinates (largest difference {worst:.3g})")
    if [s.label for s in fast] != [s.label for s in reference]:
        found.append("labels")
    if fast.composition != reference.composition:
        found.append("composition")
    return found


def assert_read_like_pymatgen(text: str) -> Structure:
    fast = read_cif_fast(text, "test")
    assert fast is not None, "the fast reader declined a CIF in its subset"
    reference = pymatgen_structure(text)
    assert reference is not None
    assert differences(fast, reference) == []
    return fast


def assert_same_or_declined(text: str) -> Structure | None:
    fast = read_cif_fast(text, "test")
    if fast is not None:
        reference = pymatgen_structure(text)
        assert reference is not None, "the fast reader read a CIF that pymatgen refuses"
        assert differences(fast, reference) == []
    return fast


# ----------------------------------------------------------------------------------------------------------
# Real data: the 400 fixture CIFs (P1, as the authors' pipeline writes them), symmetrized CIFs, bundled examples.


def test_all_400_fixture_cifs_read_exactly_like_pymatgen(v1_fixture_records):
    mismatches = {}
    for record in v1_fixture_records:
        fast = read_cif_fast(record["cif"], record["material_id"])
        if fast is None:
            mismatches[record["material_id"]] = ["declined"]
            continue
        found = differences(fast, pymatgen_structure(record["cif"]))
        if found:
            mismatches[record["material_id"]] = found
    assert len(v1_fixture_records) == 400
    assert mismatches == {}


def test_all_400_fixture_cifs_give_the_authors_scope_v1_cif_string(v1_fixture_records):
    mismatches = []
    for record in v1_fixture_records:
        structure = validate_structure(read_cif_fast(record["cif"]), record["material_id"])
        if (got := encode_v1(structure, source=record["material_id"])) != record["scope_v1_cif"]:
            mismatches.append((record["material_id"], got, record["scope_v1_cif"]))
    assert mismatches == []


def test_symmetrized_cifs_are_expanded_exactly_like_pymatgen(v1_fixture_records):
    # CifWriter(symprec=...) writes the asymmetric unit plus the space group's operations (up to 192 of them,
    # hexagonal ones such as x-y included); every operation must be applied and de-duplicated as pymatgen does.
    records = v1_fixture_records[::4]
    space_groups = set()
    for record in records:
        structure = Structure.from_dict(record["structure"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = str(CifWriter(structure, symprec=0.01))
        fast = assert_read_like_pymatgen(text)
        # The symmetrized CIF describes the conventional cell, which may hold more sites than the input.
        assert len(fast) % len(structure) == 0, record["material_id"]
        assert fast.composition.reduced_formula == structure.composition.reduced_formula
        space_groups.add(record["spacegroup_number"])
    assert len(space_groups) > 40  # the subset covers many space groups, hexagonal and cubic included


# The ordered examples; the disordered ones (partial occupancies) are outside the fast subset.
DISORDERED_EXAMPLES = ("NMC111", "YSZ")
ORDERED_EXAMPLES = sorted(path for path in EXAMPLES.glob("*.cif") if path.stem not in DISORDERED_EXAMPLES)


@pytest.mark.parametrize("path", ORDERED_EXAMPLES, ids=lambda p: p.stem)
def test_bundled_example_cifs_read_exactly_like_pymatgen(path):
    assert_read_like_pymatgen(path.read_text())


@pytest.mark.parametrize("name", DISORDERED_EXAMPLES)
def test_disordered_examples_are_outside_the_fast_subset(name):
    assert read_cif_fast((EXAMPLES / f"{name}.cif").read_text(), name) is None


@pytest.mark.parametrize("path", _ase_mineral_cifs(), ids=lambda p: p.stem)
def test_real_cod_cifs_are_read_exactly_like_pymatgen(path):
    # These are published experimental CIFs, not pymatgen output. Only those with an oxidation-state table
    # (which makes pymatgen build charged species) are left to pymatgen.
    text = path.read_text()
    if "_atom_type_oxidation_number" in text:
        assert read_cif_fast(text, path.name) is None
    else:
        assert_read_like_pymatgen(text)


# ----------------------------------------------------------------------------------------------------------
# Variants of one real CIF that stay in the subset: still exactly pymatgen's result.

NACL_P1 = """# generated using pymatgen
data_NaCl
_symmetry_space_group_name_H-M   'P 1'
_cell_length_a   5.69
_cell_length_b   5.69
_cell_length_c   5.69
_cell_angle_alpha   90.00000000
_cell_angle_beta   90.00000000
_cell_angle_gamma   90.00000000
_symmetry_Int_Tables_number   1
_chemical_formula_structural   NaCl
_chemical_formula_sum   'Na4 Cl4'
loop_
 _symmetry_equiv_pos_site_id
 _symmetry_equiv_pos_as_xyz
  1  'x, y, z'
loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_symmetry_multiplicity
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
  Cl  Cl0  1  0.50000000  0.50000000  0.50000000  1
  Na  Na1  1  0.00000000  0.00000000  0.00000000  1
  Cl  Cl2  1  0.50000000  0.00000000  0.00000000  1
  Na  Na3  1  0.00000000  0.50000000  0.50000000  1
  Cl  Cl4  1  0.00000000  0.50000000  0.00000000  1
  Na  Na5  1  0.50000000  0.00000000  0.50000000  1
  Cl  Cl6  1  0.00000000  0.00000000  0.50000000  1
  Na  Na7  1  0.50000000  0.50000000  0.00000000  1
"""


def test_p1_cif_sorts_sites_by_electronegativity_keeping_the_order_within_an_element():
    structure = assert_read_like_pymatgen(NACL_P1)
    assert [site.label for site in structure] == ["Na1", "Na3", "Na5", "Na7", "Cl0", "Cl2", "Cl4", "Cl6"]


@pytest.mark.parametrize(
    "old, new",
    [
        ("\n", "\r\n"),  # Windows line endings
        ("'x, y, z'", "'X,Y,Z'"),  # operations are case-insensitive, spaces optional
        ("'x, y, z'", "'+x, +y, +z'"),
        ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz"),
        ("0.50000000  0.50000000  0.50000000", "0.5000(3)  0.5000(3)  0.50(1)"),  # standard uncertainties
        ("0.50000000  0.50000000  0.50000000", "-0.5  1.5  0.5"),  # wrapped into the cell
        ("0.00000000  0.00000000  0.00000000", "1.0  -1.0  0.0"),
        ("0.00000000  0.00000000  0.00000000", "0.33333  0.66667  0.3333"),  # snapped to 1/3, 2/3 (or not)
        (
            "Na  Na1  1  0.00000000",
            "Na+  Na1  1  0.00000000",
        ),  # charge in the type symbol, no oxidation table
        ("_chemical_formula_structural   NaCl", "_chemical_formula_structural   NaCl # a comment"),
        ("_chemical_formula_structural   NaCl", "_publ_section_title\n;\nA long title\n\non two lines\n;"),
    ],
)
def test_variants_in_the_subset_read_exactly_like_pymatgen(old, new):
    assert old in NACL_P1
    assert_read_like_pymatgen(NACL_P1.replace(old, new))


def test_centring_operations_generate_the_cell_of_the_p1_file():
    operations = "\n".join(
        f"  {i}  '{op}'"
        for i, op in enumerate(["x, y, z", "x, y+1/2, z+1/2", "x+1/2, y, z+1/2", "x+1/2, y+1/2, z"], start=1)
    )
    atoms = "  Cl  Cl0  1  0.50000000  0.50000000  0.50000000  1\n  Na  Na1  1  0.00000000  0.00000000  0.00000000  1\n"
    text = NACL_P1.replace("  1  'x, y, z'", operations).split("  Cl  Cl0")[0] + atoms
    structure = assert_read_like_pymatgen(text)
    assert [site.label for site in structure] == ["Na1"] * 4 + ["Cl0"] * 4
    p1 = read_cif_fast(NACL_P1)
    assert sorted(map(tuple, structure.frac_coords.tolist())) == sorted(map(tuple, p1.frac_coords.tolist()))


def test_labels_stand_in_for_missing_type_symbols():
    text = NACL_P1.replace(" _atom_site_type_symbol\n", "")
    text = "\n".join(
        line.split(None, 1)[1] if line.startswith(("  Na", "  Cl")) else line for line in text.splitlines()
    )
    structure = assert_read_like_pymatgen(text)
    assert structure.composition.reduced_formula == "NaCl"


def test_single_line_p1_operation_and_no_occupancy_column():
    text = NACL_P1.replace(
        "loop_\n _symmetry_equiv_pos_site_id\n _symmetry_equiv_pos_as_xyz\n  1  'x, y, z'\n", ""
    )
    text = text.replace("_symmetry_Int_Tables_number   1", "_symmetry_equiv_pos_as_xyz   'x, y, z'")
    text = text.replace(" _atom_site_occupancy\n", "").replace("  1\n", "\n")
    assert "_atom_site_occupancy" not in text
    assert_read_like_pymatgen(text)


def test_elements_without_electronegativity_are_ordered_like_pymatgen():
    # He, Ne and Ar have no Pauling electronegativity (NaN); pymatgen's Site.__lt__ then falls back to the
    # symbol for every comparison that involves them, which makes its sort order depend on the input order.
    rows = [
        ("Ar", 0.1),
        ("Na", 0.2),
        ("He", 0.3),
        ("O", 0.4),
        ("Ar", 0.5),
        ("Ne", 0.6),
        ("Cs", 0.7),
        ("He", 0.8),
    ]
    for shift in range(len(rows)):
        rotated = rows[shift:] + rows[:shift]
        atoms = "\n".join(f"  {el}  {el}{i}  1  {x}  0.25  0.75  1" for i, (el, x) in enumerate(rotated))
        text = NACL_P1.split("  Cl  Cl0")[0] + atoms + "\n"
        assert_read_like_pymatgen(text)


# ----------------------------------------------------------------------------------------------------------
# Outside the subset: the reader declines and the caller falls back to pymatgen.


@pytest.mark.parametrize(
    "old, new",
    [
        (
            "  Na  Na1  1  0.00000000  0.00000000  0.00000000  1",
            "  Na  Na1  1  0.00000000  0.00000000  0.00000000  0.5",
        ),
        (
            "  Na  Na1  1  0.00000000  0.00000000  0.00000000  1",
            "  Na  Na1  1  0.00000000  0.00000000  0.00000000  ?",
        ),
        ("data_NaCl", "data_first\n_cell_length_a 1\ndata_NaCl"),  # two data blocks
        ("_cell_length_a   5.69\n", ""),  # missing cell parameter
        ("_cell_angle_gamma   90.00000000", "_cell_angle_gamma   ?"),
        ("_cell_length_b   5.69", "_cell_length_b   nan"),
        ("  1  'x, y, z'", "  1  'x, y'"),  # malformed operation
        ("  1  'x, y, z'", "  1  '2x, y, z'"),
        ("  1  'x, y, z'", "  1  'x, y, z+1/0'"),
        (
            "loop_\n _symmetry_equiv_pos_site_id\n _symmetry_equiv_pos_as_xyz\n  1  'x, y, z'\n",
            "",
        ),  # by name only
        ("Cl  Cl2  1  0.50000000  0.00000000  0.00000000", "Cl  Cl2  1  0.50000000  0.50000000  0.50000000"),
        ("Cl  Cl2  1  0.50000000  0.00000000  0.00000000", "Na  Na9  1  0.00004000  0.00000000  0.99999000"),
        ("Cl  Cl2  1", "OH  OH2  1"),  # pymatgen's special symbols (hydroxide, water)
        ("Cl  Cl2  1", "D  D2  1"),  # isotopes
        ("Cl  Cl2  1", "Xx  Xx2  1"),  # not an element
        ("_chemical_formula_sum   'Na4 Cl4'", "_atom_site_moment_label   Na1"),  # magnetic CIF
        (
            "_chemical_formula_sum   'Na4 Cl4'",
            "loop_\n _atom_type_symbol\n _atom_type_oxidation_number\n  Na+  1\n  Cl-  -1",
        ),
        ("  Na  Na7  1  0.50000000  0.50000000  0.00000000  1", "  Na  Na7  1  0.50000000  0.50000000"),
        ("_cell_angle_gamma   90.00000000", "_cell_angle_gamma   179.99999"),  # flat cell
    ],
)
def test_cifs_outside_the_subset_are_declined(old, new):
    assert old in NACL_P1
    text = NACL_P1.replace(old, new)
    assert read_cif_fast(text, "test") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "garbage",
        "data_x",
        "data_x\n_cell_length_a 3\nloop_\n _atom_site_label\n",
        "\u00e9" + NACL_P1,
    ],
)
def test_garbage_is_declined(text):
    assert read_cif_fast(text, "test") is None


def test_non_text_is_declined():
    assert read_cif_fast(NACL_P1.encode(), "test") is None


# ----------------------------------------------------------------------------------------------------------
# Random CIFs in and around the subset: the reader either declines or agrees with pymatgen.

_HEXAGONAL_OPERATIONS = [
    "x, y, z",
    "-y, x-y, z",
    "-x+y, -x, z",
    "-x, -y, z+1/2",
    "y, -x+y, z+1/2",
    "x-y, x, z+1/2",
]
_CUBIC_OPERATIONS = ["x, y, z", "z, x, y", "y, z, x", "-x, -y, -z", "x+1/2, y+1/2, z", "-x+1/2, y, -z+1/2"]
_SYMBOLS = ["H", "He", "Li", "O", "Na", "Cl", "Ar", "Fe", "Fe2+", "O2-", "Cs", "Ne", "Si1", "Nb", "Ga"]
_COORDINATES = st.one_of(
    st.sampled_from([0.0, 0.5, 1 / 3, 0.33333, 0.3333, 0.66667, 2 / 3, 0.25, 1.0, -0.25, 0.99999, 0.00001]),
    st.floats(min_value=-1.5, max_value=1.5, allow_nan=False).map(lambda x: round(x, 5)),
)


@st.composite
def random_cifs(draw) -> str:
    hexagonal = draw(st.booleans())
    operations = _HEXAGONAL_OPERATIONS if hexagonal else _CUBIC_OPERATIONS
    operations = operations[: draw(st.integers(min_value=1, max_value=len(operations)))]
    a = draw(st.floats(min_value=2.0, max_value=9.0)).__round__(4)
    c = draw(st.floats(min_value=2.0, max_value=9.0)).__round__(4)
    cell = (a, a, c, 90, 90, 120) if hexagonal else (a, a, a, 90, 90, 90)
    n_sites = draw(st.integers(min_value=1, max_value=7))
    rows = [
        (draw(st.sampled_from(_SYMBOLS)), draw(_COORDINATES), draw(_COORDINATES), draw(_COORDINATES))
        for _ in range(n_sites)
    ]
    lines = ["data_random"]
    lines += [
        f"_cell_{name} {value}"
        for name, value in zip(
            ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"),
            cell,
            strict=True,
        )
    ]
    lines += ["loop_", " _symmetry_equiv_pos_as_xyz"] + [f"  '{op}'" for op in operations]
    lines += ["loop_", " _atom_site_type_symbol", " _atom_site_label"]
    lines += [" _atom_site_fract_x", " _atom_site_fract_y", " _atom_site_fract_z"]
    lines += [f"  {sym}  {sym}{i}  {x}  {y}  {z}" for i, (sym, x, y, z) in enumerate(rows)]
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_cifs())
def test_random_cifs_are_read_like_pymatgen_or_declined(text):
    assert_same_or_declined(text)


_REPLACEMENT_TOKENS = [
    "?",
    ".",
    "loop_",
    "_x",
    "'a b'",
    '"c d"',
    ";",
    "data_y",
    "1(2)",
    "0.5(",
    "-x",
    "nan",
    "inf",
    "1e400",
    "x+1/2",
    "'x, y'",
    "_eof",
    "",
    "#",
    "Fe",
    "He2",
    "OH",
    "0.33333",
    "-0.0",
    "1_0",
    "_atom_site_label",
]


_INSERTED_LINES = [
    "# a comment",
    "",
    "   ",
    ";",
    "; text",
    "_title 'a #b'",
    "loop_",
    "data_z",
    "_note\n;\nsome\n\n text\n;",
    "_x 1 # c",
    "\r",
    "  'x, y, z'",
    "_atom_site_occupancy",
    "Na  Na9  1  0.25  0.25  0.25  1",
]


@st.composite
def mutated_cifs(draw) -> str:
    """The NaCl CIF with a few random line deletions, duplications, insertions and token replacements."""
    lines = NACL_P1.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "insert", "replace"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "insert":
            lines.insert(index, draw(st.sampled_from(_INSERTED_LINES)))
        else:
            words = lines[index].split() or [""]
            words[draw(st.integers(min_value=0, max_value=len(words) - 1))] = draw(
                st.sampled_from(_REPLACEMENT_TOKENS)
            )
            lines[index] = "  " + "  ".join(words)
        if not lines:
            break
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + newline


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_cifs())
def test_mutated_cifs_never_raise_and_are_read_like_pymatgen_or_declined(text):
    assert_same_or_declined(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    assert_same_or_declined(text)


def test_position_index_finds_what_a_full_scan_finds():
    """The CIF builder's binned nearest-site search (linear in the number of sites, where the full scan was
    quadratic) gives the full scan's answer: the lowest-index nearest site within the radius, else None; in a skewed
    triclinic cell, across periodic boundaries, and along an axis too short for three bins."""
    import numpy as np

    from tokenization.cif_structure import _min_image, _PositionIndex

    rng = np.random.default_rng(7)
    for lengths in ([7.1, 9.3, 5.2], [30.0, 0.15, 12.0]):
        matrix = np.array([[lengths[0], 0, 0], [2.1, lengths[1], 0], [-1.7, 1.2, lengths[2]]])
        index = _PositionIndex(matrix, 0.4)
        kept = rng.random((300, 3))
        for point in kept:
            index.add(point)
        queries = np.concatenate([kept[:100] + rng.normal(0, 0.03, (100, 3)), rng.random((100, 3)) - 0.5])
        for query in queries:
            distance = np.linalg.norm(_min_image(kept - query) @ matrix, axis=1)
            k = int(np.argmin(distance))
            assert index.nearest(query, 0.4) == (k if distance[k] < 0.4 else None)
