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
  and monoclinic cell choices (``:b1``, ``C 1 2/c 1``, ...);
* closes an operation list under composition (files that list generators only, or an operation twice);
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
    "close_operations",
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
    """An H-M symbol without spaces, underscores or case differences: ``'P 63/m m c'`` -> ``'P63/mmc'``."""
    compact = re.sub(r"[\s_]", "", name)
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
        for name in names:
            key = _normalize_name(name)
            if key and hall_number not in index.setdefault(key, []):
                index[key].append(hall_number)
    return {key: tuple(numbers) for key, numbers in index.items()}


@cache
def _hall_index() -> dict[str, int]:
    return {" ".join(_spacegroup_type(h).hall_symbol.split()): h for h in range(1, 531)}


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


def hall_numbers_for_name(name: str, rhombohedral_axes: bool = False) -> list[int]:
    """The Hall settings an H-M name can mean, most likely first; empty when the name is not a space group.

    Several settings remain only when the name leaves an origin choice open (``'F d -3 m'``, groups with two
    origins): the caller decides between them. Monoclinic short symbols (``'P 21/c'``) mean the ITA standard
    unique axis b and cell choice 1 unless the full symbol or a ``:c1``-style suffix says otherwise.

    Example:
        >>> hall_numbers_for_name("I 41/a m d :2")
        [427]
        >>> hall_numbers_for_name("R -3 m", rhombohedral_axes=True)
        [459]
        >>> hall_numbers_for_name("C2:b1")
        [9]
    """
    return list(_hall_numbers_for_name(name, rhombohedral_axes))


@cache
def _hall_numbers_for_name(name: str, rhombohedral_axes: bool) -> tuple[int, ...]:
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
            # ':1' on a group with one origin (e.g. 'P 1 21/c 1 :1') adds nothing
            chosen = [h for h in candidates if _spacegroup_type(h).choice in ("", "b", "b1")]
        return tuple(chosen[:1])
    candidates = _pick_axes(candidates, rhombohedral_axes)
    numbers = {_spacegroup_type(h).number for h in candidates}
    if len(numbers) > 1:
        return ()  # cannot happen for valid names; refuse rather than guess
    origin_choices = [h for h in candidates if _spacegroup_type(h).choice in ("1", "2")]
    if len(origin_choices) == len(candidates) and len(candidates) == 2:
        return tuple(candidates)  # origin choice 1, then 2: left to the caller
    return tuple(candidates[:1])


def hall_number_for_symbol(hall_symbol: str) -> int | None:
    """The Hall setting of a Hall symbol as spglib's database writes it (``'-F 4 2 3'`` -> 523), else None.

    Hall symbols with a change of basis (``'P 2yb (x,y,-x+z)'``) are not in the database and give None.
    """
    return _hall_index().get(" ".join(hall_symbol.replace("'", '"').split()))


@cache
def _settings_of_number(number: int) -> tuple[int, ...]:
    return tuple(h for h in range(1, 531) if _spacegroup_type(h).number == number)


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
