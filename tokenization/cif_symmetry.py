"""The space group a CIF declares, turned into symmetry operations, and checked against the operations it lists.

A CIF states its symmetry in up to four ways: an explicit operation list (``_space_group_symop_operation_xyz`` and
its older and dotted spellings), a Hall symbol, a Hermann-Mauguin (H-M) name with or without a setting suffix, and
an International Tables (IT) number. Readers that look at the operation list only build a different crystal when
the list is missing (pymatgen then "defaults to P1") or incomplete (a C-centred group listed without its centring).
This module

* resolves a declared Hall symbol, H-M name or IT number to a setting of spglib's database of the 530 Hall
  settings (``spglib.get_spacegroup_type`` / ``get_symmetry_from_database``; the settings of the International
  Tables, Vol. A), including origin-choice suffixes (``:1``, ``:2``, ICSD's trailing ``S``/``Z``, ``(origin
  choice 2)``), rhombohedral/hexagonal axes (``:R``, ``:H``, or chosen from the cell when the name alone is given)
  and monoclinic cell choices (``:b1``, ``C 1 2/c 1``, ...), in the spellings real files use: pre-2002 e-glide
  symbols (``C m c a``), Bruker's ``2(1)`` screws, Hall symbols without spaces (``-P2ybc``);
* keeps, of the settings a name allows, those whose rotations preserve the cell's metric (``preserves_metric``:
  the unique axis of a monoclinic short symbol follows the cell);
* closes an operation list under composition (files that list generators only, or an operation twice);
* checks that the closure's pure translations are lattice vectors of the declared (or a conventional) lattice and
  that it holds no more operations than the declared group (``lattice_fault``);
* identifies the space-group type of a list with spglib (``get_spacegroup_type_from_symmetry``), so that a file
  whose operations build another group than the one it declares is refused instead of read as something else.

This module is remote code (copied flat into checkpoints): it imports only numpy and spglib.
"""

from __future__ import annotations

import re
import warnings
from functools import cache, lru_cache

import numpy as np
import spglib

__all__ = [
    "hall_symbol",
    "it_number",
    "it_number_is_unambiguous",
    "setting_choice",
    "centred_variant",
    "close_operations",
    "lattice_fault",
    "lattice_letter",
    "metric_deviation",
    "preserves_metric",
    "hall_numbers_for_name",
    "hall_number_for_symbol",
    "hall_numbers_for_it_number",
    "operations_of_hall_number",
    "space_group_label",
    "space_group_type_of_operations",
]

#: Translations are compared modulo 1 with this tolerance (fractional units); listed operations are written with
#: at most 4-6 decimals (1/3 = 0.3333).
_TRANSLATION_TOLERANCE = 1e-3
#: An operation list closed under composition never exceeds the order of Fm-3m in a conventional cell (192).
_MAX_GROUP_ORDER = 192


def _quiet_spglib(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Set OLD_ERROR_HANDLING", category=DeprecationWarning)
        return function(*args, **kwargs)


@cache
def _spacegroup_type(hall_number: int):
    return _quiet_spglib(spglib.get_spacegroup_type, hall_number)


def space_group_label(hall_number: int) -> str:
    """``"Fm-3m (225)"``: the short H-M symbol and the IT number of a Hall setting, for messages."""
    kind = _spacegroup_type(hall_number)
    return f"{kind.international_short} ({kind.number})"


def _normalize_name(name: str) -> str:
    """An H-M symbol without spaces, underscores or case differences: ``'P 63/m m c'`` -> ``'P63/mmc'``.

    Bruker's screw notation ``2(1)`` (SHELXTL, APEX: ``'P2(1)/c'``) is the screw axis ``2_1``.
    """
    compact = re.sub(r"[\s_]", "", re.sub(r"(\d)\((\d)\)", r"\1\2", name))
    return compact[:1].upper() + compact[1:].lower() if compact else ""


def _monoclinic_short(setting: str) -> str | None:
    """``'P 1 2_1/n 1'`` -> ``'P 2_1/n'``: the usual short spelling of a monoclinic full symbol."""
    parts = setting.split()
    if len(parts) == 4 and sum(part == "1" for part in parts[1:]) == 2:
        return " ".join([parts[0]] + [part for part in parts[1:] if part != "1"])
    return None


def _short_from_full(name: str) -> str:
    """The short H-M symbol of a full one: every ``rotation/plane`` pair becomes its plane, except the principal
    4- or 6-fold axis of a tetragonal or hexagonal group (``P 4/n 21/m 2/m`` -> ``P 4/n m m``, ``P 21/n 21/m 21/a``
    -> ``P n m a``, ``F 4/m -3 2/m`` -> ``F m -3 m``)."""
    tokens = name.split()
    if len(tokens) < 2:
        return name
    cubic = len(tokens) > 2 and tokens[2].lstrip("-") == "3"
    out = [tokens[0]]
    for position, token in enumerate(tokens[1:]):
        if "/" not in token:
            out.append(token)
            continue
        rotation, plane = token.split("/", 1)
        principal = position == 0 and not cubic and rotation.lstrip("-")[:1] in ("4", "6")
        out.append(token if principal else plane)
    return " ".join(out)


# Centrosymmetric cubic groups were written without the bar before 3 in older tables and databases (Fm3m, Pm3,
# Ia3d): numbers 200-206 (m-3) and 221-230 (m-3m).
_BARLESS_CUBIC = tuple(range(200, 207)) + tuple(range(221, 231))


# The symbols that the International Tables used before the glide plane 'e' (double glide) was introduced in 2002
# (ITA, 5th edition, Table 4.3.2.1; the same symbols are still written by many databases and programs): one per
# setting of the five groups with an e-glide, keyed by IT number and spglib's axes code (the setting's ``choice``
# without its origin digit). 'C m c a' is the standard setting of No. 64, today 'C m c e'.
_PRE_2002_E_SYMBOLS = {
    39: {
        "": "A b m 2",
        "ba-c": "B m a 2",
        "cab": "B 2 c m",
        "-cba": "C 2 m b",
        "bca": "C m 2 a",
        "a-cb": "A c 2 m",
    },
    41: {
        "": "A b a 2",
        "ba-c": "B b a 2",
        "cab": "B 2 c b",
        "-cba": "C 2 c b",
        "bca": "C c 2 a",
        "a-cb": "A c 2 a",
    },
    64: {
        "": "C m c a",
        "ba-c": "C c m b",
        "cab": "A b m a",
        "-cba": "A c a m",
        "bca": "B b c m",
        "a-cb": "B m a b",
    },
    67: {
        "": "C m m a",
        "ba-c": "C m m b",
        "cab": "A b m m",
        "-cba": "A c m m",
        "bca": "B m c m",
        "a-cb": "B m a m",
    },
    68: {
        "": "C c c a",
        "ba-c": "C c c b",
        "cab": "A b a a",
        "-cba": "A c a a",
        "bca": "B b c b",
        "a-cb": "B b a b",
    },
}


def _pre_2002_symbol(hall_number: int) -> str | None:
    """The pre-2002 H-M symbol of a setting of Nos. 39, 41, 64, 67 or 68 (``'C m c a'`` for ``'C m c e'``)."""
    kind = _spacegroup_type(hall_number)
    table = _PRE_2002_E_SYMBOLS.get(int(kind.number))
    return None if table is None else table.get(kind.choice.lstrip("12"))


@cache
def _own_names(hall_number: int) -> frozenset[str]:
    """The normalized symbols of one setting itself: its full symbol and the monoclinic short form of it
    (``'P 1 1 21/a'``, ``'P 21/a'``), not the standard short symbol that spglib gives every setting."""
    kind = _spacegroup_type(hall_number)
    names = {kind.international_full, kind.international.split("=")[-1].strip()}  # 'P 2_1/c = P 1 1 2_1/a'
    names |= {short for name in list(names) if (short := _monoclinic_short(name.strip()))}
    old = _pre_2002_symbol(hall_number)
    return frozenset(_normalize_name(name) for name in names | ({old} if old else set()))


@cache
def _name_index() -> dict[str, tuple[int, ...]]:
    """Normalized H-M spellings -> the Hall numbers they name, in spglib's order (the ITA standard setting first)."""
    index: dict[str, list[int]] = {}
    for hall_number in range(1, 531):
        kind = _spacegroup_type(hall_number)
        names = {kind.international_short, kind.international_full, *kind.international.split("=")}
        for setting in list(names):
            short = _monoclinic_short(setting.strip())
            if short:
                names.add(short)
        if kind.number in _BARLESS_CUBIC:
            names |= {name.replace("-3", "3") for name in names}
        old = _pre_2002_symbol(hall_number)
        if old is not None:
            names.add(old)
        for name in names:
            key = _normalize_name(name)
            if key and hall_number not in index.setdefault(key, []):
                index[key].append(hall_number)
    return {key: tuple(numbers) for key, numbers in index.items()}


@cache
def _hall_index() -> dict[str, int]:
    return {" ".join(_spacegroup_type(h).hall_symbol.split()): h for h in range(1, 531)}


@cache
def _compact_hall_index() -> dict[str, int | None]:
    """Hall symbols with every space removed (``'-P2ybc'``, as real COD files write them) -> Hall number, or None
    for the two spellings that then name two groups: ``'P32'`` (``'P 32'``, No. 145, or ``'P 3 2'``, No. 149) and
    ``'P62'`` (``'P 62'``, No. 171, or ``'P 6 2'``, No. 177)."""
    index: dict[str, int | None] = {}
    for spaced, hall_number in _hall_index().items():
        key = spaced.replace(" ", "")
        if key in index and index[key] is not None and it_number(index[key]) != it_number(hall_number):
            index[key] = None
        else:
            index.setdefault(key, hall_number)
    return index


# Setting suffixes: ':2', ':R', ':b1', ICSD's trailing ' Z' (origin choice 2) / ' S' (origin choice 1) / ' H' /
# ' R', and the words '(origin choice 2)'.
_COLON_SUFFIX = re.compile(r"^(.*?)\s*:\s*([-\w]+)\s*$")
_ICSD_SUFFIX = re.compile(r"^(.*\S)\s+([SZHR])$")
_ORIGIN_WORDS = re.compile(r"^(.*?)\s*\(\s*origin\s+choice\s+([12])\s*\)\s*$", re.IGNORECASE)
_ICSD_CHOICES = {"S": "1", "Z": "2", "H": "H", "R": "R"}


def _split_setting(name: str) -> tuple[str, str | None]:
    name = name.strip()
    match = _ORIGIN_WORDS.match(name)
    if match:
        return match.group(1), match.group(2)
    match = _COLON_SUFFIX.match(name)
    if match:
        return match.group(1), match.group(2)
    match = _ICSD_SUFFIX.match(name)
    if match:
        return match.group(1), _ICSD_CHOICES[match.group(2)]
    return name, None


def is_rhombohedral_axes(lattice_parameters: tuple[float, ...], tolerance: float = 1e-3) -> bool:
    """Whether a, b, c and alpha, beta, gamma describe rhombohedral axes (a = b = c, alpha = beta = gamma != 90)."""
    a, b, c, alpha, beta, gamma = lattice_parameters
    same_lengths = abs(a - b) <= tolerance * a and abs(a - c) <= tolerance * a
    same_angles = abs(alpha - beta) <= 0.05 and abs(alpha - gamma) <= 0.05
    return same_lengths and same_angles and abs(alpha - 90.0) > 0.05


def _pick_axes(candidates: list[int], rhombohedral_axes: bool) -> list[int]:
    """For an R group named without ':H'/':R', the cell decides (International Tables: both are standard)."""
    choices = {_spacegroup_type(h).choice for h in candidates}
    if choices == {"H", "R"}:
        wanted = "R" if rhombohedral_axes else "H"
        return [h for h in candidates if _spacegroup_type(h).choice == wanted]
    return candidates


def hall_numbers_for_name(
    name: str, rhombohedral_axes: bool = False, metric: np.ndarray | None = None
) -> list[int]:
    """The Hall settings an H-M name can mean, most likely first; empty when the name is not a space group.

    Several settings remain only when the name leaves an origin choice open (``'F d -3 m'``, groups with two
    origins): the caller decides between them. Monoclinic short symbols (``'P 21/c'``) mean the ITA standard
    unique axis b and cell choice 1 unless the full symbol or a ``:c1``-style suffix says otherwise.

    With ``metric`` (the cell's metric tensor G, 3 x 3 in Å^2), every setting the name allows is considered, the
    other unique axes of a monoclinic short symbol included (``'P 21/a'`` is ``P 1 21/a 1`` or ``P 1 1 21/a``), and
    those whose rotations do not preserve G (:func:`preserves_metric`) are dropped; the ITA reading stays first.

    Example:
        >>> hall_numbers_for_name("I 41/a m d :2")
        [427]
        >>> hall_numbers_for_name("R -3 m", rhombohedral_axes=True)
        [459]
        >>> hall_numbers_for_name("C2:b1")
        [9]
        >>> hall_numbers_for_name("P 21/a"), setting_choice(hall_numbers_for_name("P 21/a")[0])
        ([83], 'b3')
        >>> import numpy as np
        >>> gamma = np.radians(113.84)  # a unique-axis-c cell: alpha = beta = 90
        >>> metric = np.array([[49.8, 46.2 * np.cos(gamma), 0], [46.2 * np.cos(gamma), 43.0, 0], [0, 0, 75.9]])
        >>> [setting_choice(h) for h in hall_numbers_for_name("P 21/a", metric=metric)]
        ['c1']
    """
    numbers = list(_hall_numbers_for_name(name, rhombohedral_axes, metric is not None))
    if metric is None:
        return numbers
    return [h for h in numbers if preserves_metric(h, metric)]


@cache
def _hall_numbers_for_name(name: str, rhombohedral_axes: bool, every_axis: bool = False) -> tuple[int, ...]:
    base, choice = _split_setting(name)
    candidates = list(_name_index().get(_normalize_name(base), ()))
    if not candidates:
        # A full International Tables symbol ('P 4/n 21/m 2/m') read as its short symbol ('P 4/n m m').
        candidates = list(_name_index().get(_normalize_name(_short_from_full(base)), ()))
    if not candidates:
        return ()
    if choice is not None:
        choice_key = choice.lower() if choice not in ("H", "R", "h", "r") else choice.upper()
        chosen = [h for h in candidates if _spacegroup_type(h).choice.lower() == choice_key.lower()]
        if not chosen and choice_key in ("1", "2"):
            # the origin of a non-standard axes setting ('C c c b :1' is spglib's '1ba-c')
            chosen = [h for h in candidates if _spacegroup_type(h).choice.startswith(choice_key)]
        if not chosen and choice_key in ("1", "2"):
            # ':1' on a group with one origin (e.g. 'P 1 21/c 1 :1') adds nothing
            chosen = [h for h in candidates if _spacegroup_type(h).choice in ("", "b", "b1")]
        return tuple(chosen[:1])
    candidates = _pick_axes(candidates, rhombohedral_axes)
    numbers = {_spacegroup_type(h).number for h in candidates}
    if len(numbers) > 1:
        return ()  # cannot happen for valid names; refuse rather than guess
    axes = {_spacegroup_type(h).choice[:1] for h in candidates}
    if every_axis and 3 <= numbers.pop() <= 15 and len(axes) > 1:
        # A monoclinic short symbol ('P 21/a') names one setting per unique axis; b (ITA) first. Only settings
        # whose own symbol is the one written count: spglib gives every setting of No. 14 the short symbol
        # 'P2_1/c', but in a unique-axis-c cell 'P 21/c' names no setting (P 1 1 21/a, /n or /b).
        key = _normalize_name(base)
        own = [h for h in candidates if key in _own_names(h)] or candidates[:1]
        by_axis: dict[str, int] = {}
        for h in own:  # spglib's choice: the unique axis, then the cell choice ('b1'; '-c3' is axis c too)
            by_axis.setdefault(_spacegroup_type(h).choice.lstrip("-")[:1], h)
        return tuple(
            sorted(by_axis.values(), key=lambda h: _spacegroup_type(h).choice.lstrip("-")[:1] != "b")
        )
    origin_choices = [h for h in candidates if _spacegroup_type(h).choice in ("1", "2")]
    if len(origin_choices) == len(candidates) and len(candidates) == 2:
        return tuple(candidates)  # origin choice 1, then 2: left to the caller
    return tuple(candidates[:1])


def centred_variant(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(rotations, translations)`` of a triclinic or monoclinic H-M name written in a centred cell that no ITA
    setting uses (``'C -1'``, ``'A -1'``, ``'B 1 21 1'``, ``'F 1 2/m 1'``; COD writes such cells), or None. The
    space-group type is that of the operations in the file's cell (``'F 1 2/m 1'`` is No. 12, not 10).

    In these crystal systems the symmetry directions do not depend on the centring, so the name means the
    operations of its primitive-lettered form (``'P -1'``, ``'P 1 21 1'``) combined with the centring vectors of
    its lattice letter (:data:`CONVENTIONAL_CENTRINGS`). Only the full monoclinic symbol is read this way (the short
    one does not say the unique axis).

    Example:
        >>> rotations, translations = centred_variant("C -1")
        >>> len(rotations), sorted(translations.round(3).tolist())
        (4, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    """
    base, choice = _split_setting(name)
    letter = lattice_letter(base)
    if choice is not None or letter in (None, "P", "R") or _hall_numbers_for_name(name, False):
        return None
    primitive = "P" + base.strip().lstrip("-").strip()[1:]
    candidates = [h for h in _hall_numbers_for_name(primitive, False) if it_number(h) <= 15]
    if not candidates or (it_number(candidates[0]) > 2 and len(primitive.split()) != 4):
        return None
    rotations, translations = operations_of_hall_number(candidates[0])
    centring = np.vstack([np.zeros((1, 3)), *_centring_sets(letter)[:1]])
    closed = close_operations(
        np.concatenate([rotations] * len(centring)),
        np.concatenate([translations + shift for shift in centring]),
    )
    return closed


def hall_number_for_symbol(hall_symbol: str) -> int | None:
    """The Hall setting of a Hall symbol as spglib's database writes it (``'-F 4 2 3'`` -> 523), else None.

    A symbol written without spaces (``'-P2ybc'``) is read too, unless it then names two groups (``'P32'``,
    ``'P62'``). Hall symbols with a change of basis (``'P 2yb (x,y,-x+z)'``) are not in the database and give None.

    Example:
        >>> hall_number_for_symbol("-P2ybc"), hall_number_for_symbol("-P 2ybc")
        (81, 81)
    """
    text = hall_symbol.replace("'", '"')
    spaced = _hall_index().get(" ".join(text.split()))
    if spaced is not None:
        return spaced
    return _compact_hall_index().get(re.sub(r"\s", "", text))


@cache
def _settings_of_number(number: int) -> tuple[int, ...]:
    return tuple(h for h in range(1, 531) if _spacegroup_type(h).number == number)


#: Relative tolerance of :func:`preserves_metric`: each entry of R^T G R may differ from G by this fraction of
#: sqrt(G_ii G_jj), i.e. cell lengths by ~1 % and angle cosines by 0.02 (~1.1 degrees at 90 degrees). Measured on the
#: 1,248 crystal blocks of the survey's real test CIFs (cod-tools, pymatgen, gemmi, ASE, diffpy; issue 21): 1,234
#: fit to 1e-6, the largest deviation of a right file is 0.0065 (an unconstrained trigonal cell, 90.07/90.15/120.04
#: degrees), the smallest of a wrong one 0.054 (orthorhombic operations with beta = 91.56 degrees); a monoclinic cell
#: read with the wrong unique axis deviates by the cosine of its angle (0.40 for gamma = 113.84 degrees).
METRIC_TOLERANCE = 0.02


def metric_deviation(rotations: np.ndarray, metric: np.ndarray) -> np.ndarray:
    """``(n,)``: for each rotation R (acting on fractional coordinates), max_ij |R^T G R - G|_ij / sqrt(G_ii G_jj).

    Zero for every operation of a space group in a cell of its crystal family (the operations are isometries).
    """
    rotations = np.asarray(rotations, dtype=float).reshape(-1, 3, 3)
    metric = np.asarray(metric, dtype=float)
    scale = np.sqrt(np.outer(np.diag(metric), np.diag(metric)))
    transformed = np.einsum("nji,jk,nkl->nil", rotations, metric, rotations)
    return (np.abs(transformed - metric) / scale).max(axis=(1, 2))


def preserves_metric(hall_number: int, metric: np.ndarray, tolerance: float = METRIC_TOLERANCE) -> bool:
    """Whether every rotation of a Hall setting preserves the cell's metric tensor G (R^T G R = G within
    ``tolerance``, see :data:`METRIC_TOLERANCE`): the setting fits the cell's shape and orientation."""
    rotations, _ = operations_of_hall_number(hall_number)
    return bool(metric_deviation(rotations, metric).max() <= tolerance)


def hall_numbers_for_it_number(
    number: int, rhombohedral_axes: bool = False, every_setting: bool = False
) -> list[int]:
    """The settings of IT number ``number`` a file that gives only the number can mean: the ITA standard setting
    (both origins for groups that have two; the axes chosen from the cell for R groups), or with
    ``every_setting`` all of spglib's settings of that number."""
    if not 1 <= number <= 230:
        return []
    candidates = list(_settings_of_number(number))
    candidates = _pick_axes(candidates, rhombohedral_axes)
    if every_setting:
        return candidates
    if {_spacegroup_type(h).choice for h in candidates[:2]} == {"1", "2"}:
        return candidates[:2]
    return candidates[:1]


def it_number_is_unambiguous(number: int, rhombohedral_axes: bool = False) -> bool:
    """Whether an IT number alone fixes the setting: the group has one Hall setting (the axes of an R group are
    taken from the cell). Monoclinic and orthorhombic groups, and groups with two origins, have several."""
    if not 1 <= number <= 230:
        return False
    return len(_pick_axes(list(_settings_of_number(number)), rhombohedral_axes)) == 1


def it_number(hall_number: int) -> int:
    """The International Tables number (1-230) of a Hall setting."""
    return int(_spacegroup_type(hall_number).number)


def setting_choice(hall_number: int) -> str:
    """spglib's setting code of a Hall setting: ``''``, ``'1'``/``'2'`` (origin), ``'H'``/``'R'`` (axes),
    ``'b1'``... (monoclinic unique axis and cell choice), ``'ba-c'``... (orthorhombic axes)."""
    return _spacegroup_type(hall_number).choice


def hall_symbol(hall_number: int) -> str:
    return _spacegroup_type(hall_number).hall_symbol


def operations_of_hall_number(hall_number: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rotations (n, 3, 3) int, translations (n, 3) float)`` of a Hall setting, centring included."""
    symmetry = _quiet_spglib(spglib.get_symmetry_from_database, hall_number)
    return np.asarray(symmetry["rotations"]), np.asarray(symmetry["translations"], dtype=float)


def close_operations(rotations: np.ndarray, translations: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The group generated by the operations (modulo lattice translations), duplicates removed, in first-seen order.

    Returns None when the closure exceeds any space group's order (the operations are not crystallographic, e.g.
    mistyped). Translations are reduced to [0, 1).
    """
    rotations = np.rint(np.asarray(rotations)).astype(np.int64)
    translations = np.asarray(translations, dtype=float) % 1.0
    return _closed(rotations.tobytes(), translations.tobytes(), len(rotations))


_GRID = int(round(1 / _TRANSLATION_TOLERANCE))
_ROTATION_DIGITS = 5 ** np.arange(9, dtype=np.int64)


def _operation_keys(rotations: np.ndarray, translations: np.ndarray) -> np.ndarray | None:
    """One int64 per operation: the rotation entries (base 5) and the translation on a 1e-3 grid modulo 1.

    Files write 1/3 as 0.3333, so translations are compared on that grid; 0.9999 and 0 are the same. None when a
    rotation entry is outside -2..2 (no crystallographic operation in any cell has one).
    """
    entries = rotations.reshape(len(rotations), 9)
    if entries.size and (entries.min() < -2 or entries.max() > 2):
        return None
    grid = np.rint(translations / _TRANSLATION_TOLERANCE).astype(np.int64) % _GRID
    return (
        ((entries + 2) @ _ROTATION_DIGITS) * _GRID**3 + (grid[:, 0] * _GRID + grid[:, 1]) * _GRID + grid[:, 2]
    )


@lru_cache(maxsize=1024)
def _closed(rotation_bytes: bytes, translation_bytes: bytes, count: int):
    rotations = np.frombuffer(rotation_bytes, dtype=np.int64).reshape(count, 3, 3)
    translations = np.frombuffer(translation_bytes, dtype=float).reshape(count, 3)
    keys = _operation_keys(rotations, translations)
    if keys is None:
        return None
    _, first = np.unique(keys, return_index=True)
    first = np.sort(first)
    group_r, group_t, group_keys = rotations[first], translations[first], keys[first]
    while True:
        # Every product g1 * g2 = (R1 R2, R1 t2 + t1); the group is closed when none is new.
        products_r = np.einsum("aij,bjk->abik", group_r, group_r).reshape(-1, 3, 3)
        products_t = (np.einsum("aij,bj->abi", group_r, group_t) + group_t[:, None, :]).reshape(-1, 3) % 1.0
        product_keys = _operation_keys(products_r, products_t)
        if product_keys is None:
            return None
        new = ~np.isin(product_keys, group_keys)
        if not new.any():
            return group_r.copy(), group_t.copy()
        _, first = np.unique(product_keys[new], return_index=True)
        added = np.flatnonzero(new)[np.sort(first)]
        group_r = np.concatenate([group_r, products_r[added]])
        group_t = np.concatenate([group_t, products_t[added]])
        group_keys = np.concatenate([group_keys, product_keys[added]])
        if len(group_r) > _MAX_GROUP_ORDER:
            return None


#: The centring translations of the conventional lattices (International Tables, Vol. A, Table 1.5.4.1): P, A, B,
#: C, I, F, and R in hexagonal axes, obverse (the ITA setting) and reverse.
CONVENTIONAL_CENTRINGS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "P": (),
    "A": ((0.0, 0.5, 0.5),),
    "B": ((0.5, 0.0, 0.5),),
    "C": ((0.5, 0.5, 0.0),),
    "I": ((0.5, 0.5, 0.5),),
    "F": ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)),
    "R (obverse)": ((2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3)),
    "R (reverse)": ((1 / 3, 2 / 3, 1 / 3), (2 / 3, 1 / 3, 2 / 3)),
}


def pure_translations(rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """``(k, 3)``: the translations t, in [0, 1), of the operations (identity, t) other than the identity itself."""
    rotations = np.asarray(rotations).reshape(-1, 3, 3)
    translations = np.asarray(translations, dtype=float).reshape(-1, 3) % 1.0
    identity = np.all(np.rint(rotations) == np.eye(3), axis=(1, 2))
    grid = np.abs(translations - np.rint(translations))
    nonzero = np.any(grid > _TRANSLATION_TOLERANCE, axis=1)
    return translations[identity & nonzero]


def _within(points: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``(k,)`` bool: each point equals one of ``allowed`` modulo 1 (within the translation tolerance)."""
    if not len(points):
        return np.zeros(0, dtype=bool)
    if not len(allowed):
        return np.zeros(len(points), dtype=bool)
    delta = points[:, None, :] - np.asarray(allowed, dtype=float)[None, :, :]
    return np.all(np.abs(delta - np.rint(delta)) <= _TRANSLATION_TOLERANCE, axis=2).any(axis=1)


def lattice_letter(symbol: str) -> str | None:
    """The lattice letter a Hall or H-M symbol starts with (``'-C 1'`` -> ``'C'``, ``'A -1'`` -> ``'A'``), if it
    is one of P, A, B, C, I, F, R; files write non-standard centred settings this way (``A -1``, ``B 1 21 1``)."""
    letter = symbol.strip().lstrip("-").strip()[:1].upper()
    return letter if letter in "PABCIFR" and letter else None


def _centring_sets(letter: str) -> list[np.ndarray]:
    """The centring translations ``(k, 3)`` a lattice letter can mean (R: obverse or reverse)."""
    return [
        np.asarray(vectors, dtype=float).reshape(-1, 3)
        for name, vectors in CONVENTIONAL_CENTRINGS.items()
        if name.split()[0] == letter
    ]


def lattice_fault(
    rotations: np.ndarray,
    translations: np.ndarray,
    declared_number: int | None = None,
    rhombohedral_axes: bool = False,
    declared_letters: tuple[str, ...] = (),
) -> str | None:
    """Why a closed operation list cannot be the group of a crystal in this cell, or None when it can.

    A pure translation (identity, t) of the closure is a lattice vector of the crystal; a file's cell is its
    conventional cell, so t must be a centring vector of the declared group's lattice: of a setting of IT number
    ``declared_number`` (a C-centred name beside an I-centred list of No. 15 is one group), or of the lattice letter
    the file's H-M or Hall symbol starts with (``declared_letters``: ``A -1`` is P-1 in an A-centred cell), or, when
    no group is declared, of one conventional lattice (:data:`CONVENTIONAL_CENTRINGS`). And the closure cannot hold
    more operations than the declared point group times the lattice points of that centring. A mistyped operation
    (wurtzite's ``-x,-y,z+1/2`` written ``-x,-y,z``) breaks both: its product with the 6_3 screw is the
    translation (0, 0, 1/2).

    Args:
        rotations, translations: the closed group, ``(n, 3, 3)`` and ``(n, 3)`` in fractional coordinates.
        declared_number: the IT number the file declares, or None.
        rhombohedral_axes: the cell is rhombohedral (a = b = c, alpha = beta = gamma != 90): an R group then has a
            primitive lattice.
        declared_letters: lattice letters of the file's H-M and Hall symbols (:func:`lattice_letter`).

    Returns:
        A phrase for the refusal ("generate the pure translation (0, 0, 1/2), which is not a lattice vector of
        ..."), or None.
    """
    pure = pure_translations(rotations, translations)
    if declared_number is not None:
        settings = hall_numbers_for_it_number(declared_number, rhombohedral_axes, every_setting=True)
        operations = [operations_of_hall_number(h) for h in settings]
        centrings = [pure_translations(*ops) for ops in operations]
        point_group_order = len(operations[0][0]) // (1 + len(centrings[0]))
        centrings += [vectors for letter in declared_letters for vectors in _centring_sets(letter)]
        fits = [bool(np.all(_within(pure, centring))) for centring in centrings]
        label = space_group_label(settings[0])
        if not any(fits):
            best = max(range(len(centrings)), key=lambda k: int(_within(pure, centrings[k]).sum()))
            stray = pure[~_within(pure, centrings[best])][0]
            return (
                f"generate the pure translation {_fraction_vector(stray)}, which is not a lattice vector of "
                f"{label} in this cell (its centring vectors: "
                f"{', '.join(_fraction_vector(t) for t in centrings[best]) or 'none, a primitive lattice'})"
            )
        order = point_group_order * max(1 + len(c) for c, fit in zip(centrings, fits, strict=True) if fit)
        if len(rotations) > order:
            return f"generate {len(rotations)} operations, more than the {order} of {label} in this cell"
        return None
    for centring in CONVENTIONAL_CENTRINGS.values():
        if np.all(_within(pure, np.asarray(centring, dtype=float).reshape(-1, 3))):
            return None
    return (
        f"generate the pure translations {', '.join(_fraction_vector(t) for t in pure[:4])}, which are not the "
        "centring vectors of any conventional lattice (P, A, B, C, I, F, R)"
    )


def _fraction_vector(vector: np.ndarray) -> str:
    """``(0, 0, 1/2)``: a translation written with the fractions of 1/24 that operation lists use."""
    parts = []
    for value in np.asarray(vector, dtype=float) % 1.0:
        k = int(round(value * 24)) % 24
        if abs(value * 24 - round(value * 24)) > 24 * _TRANSLATION_TOLERANCE:
            parts.append(f"{value:.4g}")
            continue
        numerator, denominator = k, 24
        for factor in (2, 2, 2, 3):
            if numerator % factor == 0 and denominator % factor == 0:
                numerator //= factor
                denominator //= factor
        parts.append("0" if numerator == 0 else f"{numerator}/{denominator}")
    return "(" + ", ".join(parts) + ")"


def space_group_type_of_operations(
    rotations: np.ndarray, translations: np.ndarray, lattice: np.ndarray
) -> int | None:
    """spglib's space-group type (Hall number) of a closed operation list, or None if it is not a space group."""
    try:
        kind = _quiet_spglib(
            spglib.get_spacegroup_type_from_symmetry,
            np.ascontiguousarray(rotations, dtype=np.intc),
            np.ascontiguousarray(translations, dtype=float),
            lattice=np.ascontiguousarray(lattice, dtype=float),
            symprec=1e-3,
        )
    except (spglib.SpglibError, ValueError, RuntimeError, TypeError):
        return None
    return None if kind is None else int(kind.hall_number)
