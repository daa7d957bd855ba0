"""A fast reader for the common subset of CIF, exactly equal to pymatgen's ``CifParser`` on that subset.

Reading a CIF with pymatgen's ``CifParser.from_str(text).parse_structures(primitive=False)[0]`` costs several
milliseconds per structure, about as much as the spglib symmetry search that SCOPE needs afterwards. Most CIFs
that users feed to SCOPE are simple: one data block, the six cell parameters, an explicit list of symmetry
operations (often just ``x, y, z``) and one ``_atom_site_*`` loop with fully occupied sites. :func:`read_cif_fast`
reads exactly that subset with plain string and numpy code and returns the structure pymatgen would return:

* the same lattice (built with ``Lattice.from_parameters``, as pymatgen does);
* pymatgen's coordinate clean-up: values within 1e-4 (relative) of 1/3 or 2/3 are snapped to them, and symmetry
  images are wrapped with ``x - floor(x)``;
* the same symmetry expansion and de-duplication (tolerance 1e-4 in fractional coordinates, first image kept, in
  pymatgen's order: species groups, then sites, then operations);
* the same site order: pymatgen groups the sites by species, then sorts them by electronegativity (ties broken
  by symbol), keeping the order within a species; this order decides SCOPE v1's Wyckoff part.

Anything outside the subset returns ``None`` so that the caller falls back to pymatgen (which then either reads
it or raises the proper error): several data blocks, partial or unparsable occupancies, missing cell
parameters or atom-site fields, symmetry given only by a space-group name, magnetic CIFs, oxidation-state tables,
implicit hydrogens, Pauling-file composite sites, sites that pymatgen would merge into one, unusual operation
syntax, non-finite numbers and non-ASCII text. The reader never raises for bad input and never guesses.

This module is remote code (copied flat into checkpoints): it imports only pip packages and its siblings.
"""

from __future__ import annotations

import math
import re
import warnings
from functools import lru_cache

import numpy as np
from pymatgen.core import Composition, Element, Lattice, PeriodicSite, Structure, get_el_sp

#: pymatgen ``CifParser`` defaults that decide the result: two images closer than this in every fractional
#: coordinate are one site (``site_tolerance``), and coordinates this close (relative) to 1/3 or 2/3 are snapped
#: (``frac_tolerance``).
SITE_TOLERANCE = 1e-4
FRAC_TOLERANCE = 1e-4

#: pymatgen refuses cells thinner than 0.01 A along a lattice direction; near that limit we let it decide.
_MIN_THICKNESS = 0.02

# Keys that pymatgen reads the symmetry operations from, in its order of precedence.
_SYMOP_KEYS = (
    "_symmetry_equiv_pos_as_xyz",
    "_symmetry_equiv_pos_as_xyz_",
    "_space_group_symop_operation_xyz",
    "_space_group_symop_operation_xyz_",
)
_CELL_KEYS = (
    "_cell_length_a",
    "_cell_length_b",
    "_cell_length_c",
    "_cell_angle_alpha",
    "_cell_angle_beta",
    "_cell_angle_gamma",
)
_MAGNETIC_KEY_PARTS = ("_space_group_magn", "_atom_site_moment", "_space_group_symop_magn")
# Symbols that pymatgen maps specially (water, hydroxide, nitrate) or decorates with implicit hydrogens.
_SPECIAL_SYMBOL_PREFIXES = ("Hw", "Ow", "Wat", "wat", "OH", "NO3", "O-H")
# Named isotopes are valid pymatgen symbols but sort and compare like hydrogen; leave them to pymatgen.
_ISOTOPE_SYMBOLS = frozenset({"D", "T"})

# A CIF token on one line: a 'single-' or "double-quoted" value that closes before whitespace or the end of the
# line, or a bare word (one that does not start with a quote).
_QUOTED_OR_BARE = re.compile(r"""'(.*?)'(?=\s|$)|"(.*?)"(?=\s|$)|([^\s'"]\S*)""")
# One component of a symmetry operation: signed terms, each an axis or a number (optionally a fraction).
# A number may be written with a leading or trailing dot ('.5', '-X,.5+Y,-Z' in real COD and pymatgen test files).
_SYMOP_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SYMOP_TERM = rf"(?:[xyz]|{_SYMOP_NUMBER}(?:/{_SYMOP_NUMBER})?)"
_SYMOP_COMPONENT = re.compile(rf"[+-]?{_SYMOP_TERM}(?:[+-]{_SYMOP_TERM})*")
_SYMOP_SIGNED_TERM = re.compile(rf"([+-]?)({_SYMOP_TERM})")
_IDEAL_FRACTIONS = (1 / 3, 2 / 3)


def read_cif_fast(text: str, source: str | None = None) -> Structure | None:
    """Read CIF text in the common subset, or return ``None`` to ask the caller to use pymatgen.

    The structure returned is the one ``CifParser.from_str(text).parse_structures(primitive=False)[0]`` returns:
    same lattice, same site order, same fractional coordinates (bit for bit on every fixture tried) and the same
    site labels. See the module docstring for the subset.

    Args:
        text: the CIF text.
        source: a name for the input. The reader never raises for bad input (it returns ``None`` and the caller's
            fallback reports the error with this name), so it only documents the call site.

    Returns:
        A pymatgen ``Structure``, or ``None`` when the text is outside the subset.

    Example:
        >>> cif = '''data_NaCl
        ... _cell_length_a 5.64
        ... _cell_length_b 5.64
        ... _cell_length_c 5.64
        ... _cell_angle_alpha 90
        ... _cell_angle_beta 90
        ... _cell_angle_gamma 90
        ... loop_
        ...  _symmetry_equiv_pos_as_xyz
        ...  'x, y, z'
        ...  'x, y+1/2, z+1/2'
        ...  'x+1/2, y, z+1/2'
        ...  'x+1/2, y+1/2, z'
        ... loop_
        ...  _atom_site_label
        ...  _atom_site_fract_x
        ...  _atom_site_fract_y
        ...  _atom_site_fract_z
        ...  Cl1 0.5 0.5 0.5
        ...  Na1 0 0 0
        ... '''
        >>> structure = read_cif_fast(cif)
        >>> [site.specie.symbol for site in structure]  # pymatgen's order: by electronegativity
        ['Na', 'Na', 'Na', 'Na', 'Cl', 'Cl', 'Cl', 'Cl']
        >>> read_cif_fast(cif.replace("data_NaCl", "data_NaCl\\n_space_group_magn.name_BNS 'F m -3 m'")) is None
        True

        ``None`` (here: a magnetic CIF) means "outside the subset, ask pymatgen".
    """
    if not isinstance(text, str) or not text.isascii():
        return None
    block = _single_data_block(text)
    if block is None:
        return None
    tokens = _tokenize(block)
    if tokens is None:
        return None
    data = _parse_block(*tokens)
    if data is None or _outside_subset(data):
        return None
    lattice = _lattice(data)
    if lattice is None:
        return None
    operations = _symmetry_operations(data)
    if operations is None:
        return None
    sites = _asymmetric_sites(data)
    if sites is None:
        return None
    species, coords, labels = sites
    images = _apply_operations(coords, operations)
    if _sites_would_merge(coords, images):
        return None
    return _build_structure(lattice, species, coords, images, labels)


# ----------------------------------------------------------------------------------------------------------
# Text -> tokens -> {key: value or list of values}, exactly as pymatgen's CifFile/CifBlock tokenizer.


def _single_data_block(text: str) -> str | None:
    """The text of the only data block (from ``data_`` on), or ``None`` for zero or several blocks.

    As in pymatgen, a block starts at a line whose first non-blank characters are ``data_``; lines end at ``\\n``.
    """
    if text.count("data_") == 1:  # the common case: only the block header mentions data_
        start = text.index("data_")
        line_start = text.rfind("\n", 0, start) + 1
        starts = [start] if text[line_start:start].isspace() or line_start == start else []
    else:
        starts = []
        offset = 0
        for line in text.split("\n"):
            stripped = line.lstrip()
            if stripped.startswith("data_"):
                starts.append(offset + len(line) - len(stripped))
            offset += len(line) + 1
    if len(starts) != 1:
        return None
    block = text[starts[0] :]
    if "powder_pattern" in block.split("\n", 1)[0]:
        return None  # pymatgen skips such blocks, leaving nothing to read
    return block


def _without_comments(block: str) -> str:
    """Drop comments as pymatgen does: from a ``#`` at a line start or after whitespace to the end of the line
    (quotes do not protect a ``#``), together with the whitespace before it."""
    lines = block.split("\n")
    for index, line in enumerate(lines):
        position = line.find("#")
        while position > 0 and not line[position - 1].isspace():
            position = line.find("#", position + 1)
        if position == 0:
            lines[index] = ""
        elif position > 0:
            lines[index] = line[: position - 1]
    return "\n".join(lines)


def _tokenize(block: str) -> tuple[list[str], list[str], list[int]] | None:
    """Split a data block into tokens as pymatgen's ``CifBlock`` does (comments, quotes, ``;`` text fields).

    Returns ``(bare, values, marks)``: ``bare[i]`` is the unquoted word ('' for a quoted value), ``values[i]``
    the token's value, and ``marks`` the indices of the tokens that start a key or a loop (bare words starting
    with ``_`` or ``loop_``), so that the parser can jump over loop values instead of testing each one.
    """
    if "#" in block:
        block = _without_comments(block)
    lines = block.splitlines()
    if ";" in block and any(line.startswith(";") for line in lines):
        if block.count("\r") != block.count("\r\n"):
            return None  # lone carriage returns split lines differently in pymatgen's blank-line removal
        # pymatgen removes blank lines first, so they never reach a text field
        lines = [line for line in block.split("\n") if line and not line.isspace()]
        lines = "\n".join(lines).splitlines()
    bare: list[str] = []
    values: list[str] = []
    marks: list[int] = []
    text_field: list[str] | None = None  # lines of an open ';' text field
    for line in lines:
        if text_field is not None:
            if not line.startswith(";"):
                text_field.append(line)
                continue
            # The closing ';' ends the field; the rest of its line holds ordinary tokens.
            bare.append("")
            values.append(" ".join(text_field))
            text_field = None
            line = line[1:].strip()
        if line.startswith(";"):
            text_field = [line[1:].strip()]
            continue
        if "'" in line or '"' in line:
            found = _QUOTED_OR_BARE.findall(line)
            words = [word for _, _, word in found]
            line_values = [single + double + word for single, double, word in found]
        else:
            words = line_values = line.split()
        if "_" in line:  # only such lines can hold a key or a loop_ (both contain '_')
            offset = len(bare)
            marks.extend(offset + k for k, word in enumerate(words) if word.startswith(("_", "loop_")))
        bare.extend(words)
        values.extend(line_values)
    if text_field is not None or not bare or not bare[0].startswith("data_"):
        return None
    return bare, values, marks


def _parse_block(bare: list[str], values: list[str], marks: list[int]) -> dict[str, str | list[str]] | None:
    """Tokens -> data dict, following pymatgen's ``CifBlock.from_str`` (loop values are stripped, scalars not).

    Values between a key's value and the next key or loop are stray: pymatgen warns and skips them.
    """
    data: dict[str, str | list[str]] = {}
    n_tokens = len(bare)
    n_marks = len(marks)
    m = 0  # marks[m] is the first key/loop token at or after position i
    i = 1  # token 0 is the block header
    while True:
        while m < n_marks and marks[m] < i:
            m += 1
        if m == n_marks:
            break
        i = marks[m]
        word = bare[i]
        if word == "_eof":
            break
        if word.startswith("_"):
            data[word] = values[i + 1] if i + 1 < n_tokens else ""
            i += 2
            continue
        # loop_: column names are the consecutive '_' words, then values up to the next key or loop
        i += 1
        start = i
        while i < n_tokens and bare[i].startswith("_"):
            i += 1
        columns = values[start:i]
        while m < n_marks and marks[m] < i:
            m += 1
        end = marks[m] if m < n_marks else n_tokens
        items = values[i:end]
        i = end
        n_columns = len(columns)
        if not n_columns or not items or len(items) % n_columns or len(set(columns)) != n_columns:
            return None  # pymatgen raises (or silently merges columns) here
        for k, column in enumerate(columns):
            data[column] = list(map(str.strip, items[k::n_columns]))
    return data


def _outside_subset(data: dict) -> bool:
    """CIF features that make pymatgen do more than this reader does."""
    keys = "\n".join(data)
    if any(part in keys for part in _MAGNETIC_KEY_PARTS):
        return True
    if "_atom_type_oxidation_number" in data:
        return True  # pymatgen then builds oxidation-state-decorated species
    # pymatgen only warns about implicit hydrogens, but it reads every value as a number first.
    hydrogens = data.get("_atom_site_attached_hydrogens")
    return hydrogens is not None and (not isinstance(hydrogens, list) or _to_floats(hydrogens) is None)


def _to_float(text: str) -> float | None:
    """pymatgen's ``str2float`` (an uncertainty such as ``(3)`` and anything after it is dropped, ``.`` is 0),
    or ``None``; finite numbers only."""
    head, bracket, tail = text.partition("(")
    if bracket and tail:
        text = head
    try:
        value = float(text)
    except ValueError:
        if text.strip() == ".":
            return 0.0
        return None
    return value if math.isfinite(value) else None


def _to_floats(texts: list[str]) -> list[float] | None:
    try:
        values = [float(t) for t in texts]  # plain numbers (the common case) parse identically to str2float
    except ValueError:
        values = [_to_float(t) for t in texts]
        if any(v is None for v in values):
            return None
    if not all(map(math.isfinite, values)):
        return None
    return values


# ----------------------------------------------------------------------------------------------------------
# Lattice, symmetry operations and the asymmetric unit.


def _lattice(data: dict) -> Lattice | None:
    parameters = []
    for key in _CELL_KEYS:
        value = data.get(key)
        if not isinstance(value, str):
            return None
        number = _to_float(value)
        if number is None:
            return None
        parameters.append(number)
    a, b, c = parameters[:3]
    if not (a > 0 and b > 0 and c > 0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # impossible angles give NaN (checked below) with a numpy warning
        lattice = Lattice.from_parameters(*parameters)
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = lattice.matrix.tolist()
    volume = abs(ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx))
    # pymatgen refuses cells thinner than 0.01 A along a direction. The thickness along a is V / |b x c|,
    # at least V / (b c); when any of these lower bounds is small, pymatgen decides.
    if (
        not math.isfinite(volume)
        or min(volume / (b * c), volume / (c * a), volume / (a * b)) < _MIN_THICKNESS
    ):
        return None
    return lattice


@lru_cache(maxsize=4096)
def _parse_symmetry_operation(
    operation: str,
) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]] | None:
    """``"x-y, x, z+1/2"`` -> (rotation rows, translation), computed as pymatgen's ``SymmOp.from_xyz_str`` does.

    Only a strict grammar is accepted (each axis at most once per component with coefficient +-1, at most one
    numeric term, no division by zero); pymatgen is more lenient and silently misreads some malformed strings.
    """
    components = operation.strip().replace(" ", "").lower().split(",")
    if len(components) != 3:
        return None
    rotation = [[0.0, 0.0, 0.0] for _ in range(3)]
    translation = [0.0, 0.0, 0.0]
    for row, component in enumerate(components):
        if not _SYMOP_COMPONENT.fullmatch(component):
            return None
        terms = _SYMOP_SIGNED_TERM.findall(component)
        axes = [term for _, term in terms if term in ("x", "y", "z")]
        if len(set(axes)) != len(axes) or len(terms) - len(axes) > 1:
            return None
        for sign, term in terms:
            if term in ("x", "y", "z"):
                rotation[row]["xyz".index(term)] = -1.0 if sign == "-" else 1.0
                continue
            numerator, _, denominator = term.partition("/")
            if denominator and float(denominator) == 0:
                return None
            # The same float operations as pymatgen: a quotient, then a sign.
            number = float(numerator) / float(denominator) if denominator else float(numerator)
            translation[row] = number * (-1 if sign == "-" else 1)
    return tuple(map(tuple, rotation)), tuple(translation)


class _Operations:
    """Parsed symmetry operations, split into those numpy may apply to all sites at once and the others.

    An operation whose every output coordinate is +-(one input coordinate) + t gives the same bits in any
    summation order; the others (e.g. ``x-y``) are applied point by point with the very ``np.dot`` call of
    pymatgen's ``SymmOp.operate``, so that rounding, and hence wrapping at 0/1, is identical.
    """

    def __init__(self, parsed: list[tuple]) -> None:
        self.count = len(parsed)
        self.rotations = np.array([p[0] for p in parsed], dtype=np.float64)
        self.translations = np.array([p[1] for p in parsed], dtype=np.float64)
        self.elementwise = (np.count_nonzero(self.rotations, axis=2) <= 1).all(axis=1)
        self.is_identity = self.count == 1 and bool(
            (self.rotations[0] == np.eye(3)).all() and not self.translations[0].any()
        )
        affine = np.zeros((self.count, 4, 4))
        affine[:, :3, :3] = self.rotations
        affine[:, :3, 3] = self.translations
        affine[:, 3, 3] = 1.0
        self.affine = [np.ascontiguousarray(m) for m in affine]


@lru_cache(maxsize=1024)
def _operations_of(operations: tuple[str, ...]) -> _Operations | None:
    parsed = [_parse_symmetry_operation(op) for op in operations]
    if not parsed or any(p is None for p in parsed):
        return None
    return _Operations(parsed)


def _symmetry_operations(data: dict) -> _Operations | None:
    for key in _SYMOP_KEYS:
        value = data.get(key)
        if value:  # pymatgen takes the first non-empty key
            return _operations_of((value,) if isinstance(value, str) else tuple(value))
    return None  # symmetry from a space-group name or number: pymatgen's job


class _Species:
    """An element as this reader needs it: the element, its shared Composition and its two sort keys."""

    __slots__ = ("composition", "element", "electronegativity", "element_order", "symbol")

    def __init__(self, element: Element) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns when an element has no electronegativity
            electronegativity = element.X
        self.element = element
        self.symbol = element.symbol
        # Site.__lt__ compares the (possibly NaN) electronegativity; Element.__lt__ maps NaN to +inf.
        self.electronegativity = electronegativity
        self.element_order = (
            math.inf if electronegativity != electronegativity else electronegativity,
            self.symbol,
        )
        # pymatgen gives every site of one species the same Composition object; so do we.
        self.composition = Composition({element: 1.0})


@lru_cache(maxsize=4096)
def _species_of(symbol: str) -> _Species | None:
    """pymatgen's ``CifParser._parse_symbol`` + ``get_el_sp`` for plain element symbols ('Fe', 'Fe2+', 'O12')."""
    if not symbol or symbol.startswith(_SPECIAL_SYMBOL_PREFIXES):
        return None
    if Element.is_valid_symbol(symbol[:2].title()):
        parsed = symbol[:2].title()
    elif Element.is_valid_symbol(symbol[0].upper()):
        parsed = symbol[0].upper()
    else:
        return None
    if parsed in _ISOTOPE_SYMBOLS:
        return None
    element = get_el_sp(parsed)
    return _species_by_element(element) if isinstance(element, Element) else None


@lru_cache(maxsize=256)
def _species_by_element(element: Element) -> _Species:
    return _Species(element)


def _asymmetric_sites(data: dict) -> tuple[list[_Species], np.ndarray, list[str]] | None:
    """Species, fractional coordinates (after pymatgen's snapping to 1/3, 2/3) and labels of the listed sites."""
    labels = data.get("_atom_site_label")
    if not isinstance(labels, list) or not labels:
        return None
    columns = [data.get(f"_atom_site_fract_{axis}") for axis in "xyz"]
    symbols = data.get("_atom_site_type_symbol", labels)
    occupancies = data.get("_atom_site_occupancy")
    for column in (*columns, symbols, occupancies if occupancies is not None else labels):
        if not isinstance(column, list) or len(column) != len(labels):
            return None
    if " + " in "\n".join(symbols) or " + " in "\n".join(labels):
        return None  # Pauling-file composite sites
    if occupancies is not None:
        values = _to_floats(occupancies)
        if values is None or any(v != 1.0 for v in values):
            return None
    species = [_species_of(s) for s in symbols]
    if None in species:
        return None
    coordinate_columns = [_to_floats(c) for c in columns]
    if None in coordinate_columns:
        return None
    coords = np.array(coordinate_columns, dtype=np.float64).T.copy()
    for ideal in _IDEAL_FRACTIONS:
        # pymatgen: math.isclose(value / ideal, 1, abs_tol=frac_tolerance, rel_tol=0) -> value = ideal
        coords[np.abs(coords / ideal - 1) <= FRAC_TOLERANCE] = ideal
    if len(set(map(tuple, coords.tolist()))) != len(coords):
        return None  # identical rows collide in pymatgen's coordinate-keyed dict
    return species, coords, labels


# ----------------------------------------------------------------------------------------------------------
# Symmetry expansion, de-duplication and pymatgen's site order.


def _apply_operations(coords: np.ndarray, operations: _Operations) -> np.ndarray:
    """Images of every site under every operation, unwrapped, shape (sites, operations, 3)."""
    if operations.is_identity:
        return coords[:, None, :] + 0.0  # x*1 + 0 is x (and -0.0 becomes 0.0, as in pymatgen's dot product)
    images = np.einsum("kij,nj->nki", operations.rotations, coords) + operations.translations[None, :, :]
    for k in np.flatnonzero(~operations.elementwise):
        affine = operations.affine[k]
        for n, point in enumerate(coords):
            images[n, k] = np.dot(affine, np.append(point, 1.0))[:3]
    return images


def _matches(reference: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``matches[i, j]``: pymatgen's ``find_in_coord_list_pbc`` test of ``points[i]`` against ``reference[j]``."""
    difference = reference[None, :, :] - points[:, None, :]
    difference -= np.round(difference)
    return (np.abs(difference) < SITE_TOLERANCE).all(axis=2)


def _any_pair_matches(points: np.ndarray) -> bool:
    """Whether two distinct points match (the test is symmetric and every point matches itself)."""
    return int(np.count_nonzero(_matches(points, points))) > len(points)


def _sites_would_merge(coords: np.ndarray, images: np.ndarray) -> bool:
    """Whether an image of a listed site lands on an earlier listed site. pymatgen merges such sites into one
    of summed occupancy, which it then rejects or turns into a disordered site."""
    n_sites = len(coords)
    if n_sites < 2:
        return False
    if images.shape[1] == 1 and n_sites <= 1000:
        return _any_pair_matches(images[:, 0, :])  # identity: the images are the coordinates
    return any(_matches(coords[:i], images[i]).any() for i in range(1, n_sites))


def _first_unique(points: np.ndarray, expect_unique: bool) -> list[int]:
    """Indices kept by pymatgen's ``_unique_coords``: a point is kept unless it matches an earlier kept one.

    ``expect_unique``: test all pairs at once first (worth it when the points are one image per site).
    """
    n_points = len(points)
    if expect_unique and n_points <= 2000 and not _any_pair_matches(points):
        return list(range(n_points))
    # The test is symmetric, so the points an accepted point rules out are exactly the later ones it matches.
    ruled_out = np.zeros(n_points, dtype=bool)
    kept: list[int] = []
    i = 0
    while True:
        kept.append(i)
        ruled_out |= _matches(points, points[i : i + 1])[0]
        remaining = np.flatnonzero(~ruled_out[i + 1 :])
        if remaining.size == 0:
            return kept
        i += 1 + int(remaining[0])


class _SiteOrder:
    """Compares like pymatgen's ``Site.__lt__`` on ordered sites (NaN electronegativities included)."""

    __slots__ = ("electronegativity", "symbol")

    def __init__(self, species: _Species) -> None:
        self.electronegativity = species.electronegativity
        self.symbol = species.symbol

    def __lt__(self, other: _SiteOrder) -> bool:
        if self.electronegativity < other.electronegativity:
            return True
        if self.electronegativity > other.electronegativity:
            return False
        return self.symbol < other.symbol


def _build_structure(
    lattice: Lattice, species: list[_Species], coords: np.ndarray, images: np.ndarray, labels: list[str]
) -> Structure:
    """Expand, de-duplicate and order the sites as ``CifParser._get_structure`` + ``get_sorted_structure`` do.

    pymatgen first groups the sites by species, in descending ``Element`` order (that is how it sorts the
    one-element compositions), expands each group site by site and operation by operation, and then sorts all
    sites by ``Site.__lt__`` (a stable sort on electronegativity, then symbol).
    """
    n_operations = images.shape[1]
    wrapped = images - np.floor(images)
    has_nan = any(s.electronegativity != s.electronegativity for s in species)
    if (
        n_operations == 1
        and not has_nan
        and (np.array_equal(wrapped[:, 0, :], coords) or not _any_pair_matches(wrapped[:, 0, :]))
    ):
        # One operation and no two images match: nothing is dropped, and the two sorts reduce to one stable
        # sort of the listed sites by (electronegativity, symbol).
        order = sorted(range(len(species)), key=lambda i: species[i].element_order)
        site_species = [species[i] for i in order]
        site_labels = [labels[i] for i in order]
        site_coords = wrapped[order, 0, :]
        return _new_structure(lattice, site_species, site_coords, site_labels)
    groups: dict[str, list[int]] = {}
    for index, site_species in enumerate(species):
        groups.setdefault(site_species.symbol, []).append(index)
    group_order = sorted(groups.values(), key=lambda g: species[g[0]].element_order, reverse=True)
    expanded_species: list[_Species] = []
    expanded_labels: list[str] = []
    expanded_coords: list[np.ndarray] = []
    for indices in group_order:
        candidates = wrapped[indices].reshape(-1, 3)
        kept = _first_unique(candidates, expect_unique=n_operations == 1)
        expanded_species.extend([species[indices[0]]] * len(kept))
        expanded_labels.extend(labels[indices[k // n_operations]] for k in kept)
        expanded_coords.append(candidates[kept])
    all_coords = np.concatenate(expanded_coords)
    if has_nan:
        order_keys = [_SiteOrder(s) for s in expanded_species]
        order = sorted(range(len(expanded_species)), key=order_keys.__getitem__)
    else:
        order = sorted(range(len(expanded_species)), key=lambda i: expanded_species[i].element_order)
    return _new_structure(
        lattice, [expanded_species[i] for i in order], all_coords[order], [expanded_labels[i] for i in order]
    )


def _site_constructor_is_known() -> bool:
    """Whether ``PeriodicSite(..., skip_checks=True)`` stores exactly the attributes ``_new_site`` sets."""
    lattice = Lattice.cubic(1.0)
    site = PeriodicSite(Composition({"H": 1.0}), np.zeros(3), lattice, skip_checks=True, label="H1")
    return set(vars(site)) == {"_lattice", "_frac_coords", "_species", "_coords", "properties", "_label"}


_FAST_SITES = _site_constructor_is_known()


def _new_structure(
    lattice: Lattice, species: list[_Species], coords: np.ndarray, labels: list[str]
) -> Structure:
    structure = Structure(lattice, [], [])
    if _FAST_SITES:
        # PeriodicSite.__init__ with skip_checks=True only stores these attributes, but through a Python-level
        # __setattr__ that costs ~7 us per site, as much as the rest of this reader for a small cell.
        new_site = PeriodicSite.__new__
        sites = []
        for s, frac_coords, label in zip(species, coords, labels, strict=True):
            site = new_site(PeriodicSite)
            vars(site).update(
                _lattice=lattice,
                _frac_coords=frac_coords,
                _species=s.composition,
                _coords=None,
                properties={},
                _label=label,
            )
            sites.append(site)
    else:
        sites = [
            PeriodicSite(s.composition, frac_coords, lattice, skip_checks=True, label=label)
            for s, frac_coords, label in zip(species, coords, labels, strict=True)
        ]
    structure.sites = sites
    return structure
