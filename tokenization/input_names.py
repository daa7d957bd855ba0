# Copyright 2026 the cloud-crystal developers. MIT licence.
"""One name for every kind of input, used wherever an error or a row must say which input it is about.

Standard library only, and remote code: the tokenizer's and the pipeline's checkpoint files import it as
`from .input_names import describe_source`. It is one file: `modeling_cloud/input_names.py` is a symbolic link to
`tokenization/input_names.py` (as for `scope_defaults.py`).

Example:

```python
>>> from tokenization.input_names import describe_source
>>> describe_source("SG225 Na 0.5 4a Cl 0.5 4b"), describe_source("data_x\\n_cell_length_a 4\\n")
("SCOPE 'SG225 Na 0.5 4a Cl 0.5 4b'", "text starting 'data_x'")

```
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["describe_source"]

# A one-line SCOPE string: v1 holds ' | ' separators, v2 starts with its space-group token.
_SCOPE = re.compile(r"^(SG\d{1,3} |.* \| )")


def describe_source(item: Any) -> str:
    """A short name for an input: a path as given (in full), `SCOPE '...'`, `text starting '...'` for CIF or
    POSCAR text, `Structure NaCl (8 sites)` for pymatgen structures, `Atoms Na4Cl4` for ASE, else the type name."""
    if isinstance(item, os.PathLike):
        return os.fspath(item)
    if isinstance(item, str):
        if "\n" not in item and _SCOPE.match(item):
            return f"SCOPE {item[:60]!r}" + ("..." if len(item) > 60 else "")
        if "\n" not in item and len(item) <= 4096:
            return item  # a path (or a one-line text that the reader will name as unreadable)
        first_line = item.strip().splitlines()[0] if item.strip() else ""
        return f"text starting {first_line[:60]!r}"
    composition = getattr(item, "composition", None)
    if composition is not None and hasattr(item, "lattice"):
        try:
            return f"{type(item).__name__} {composition.reduced_formula} ({len(item)} sites)"
        except (AttributeError, TypeError, ValueError):
            return type(item).__name__
    formula = getattr(item, "get_chemical_formula", None)
    if callable(formula):
        try:
            return f"{type(item).__name__} {formula()}"
        except (TypeError, ValueError):
            return type(item).__name__
    if isinstance(item, dict) and item.get("id") is not None:
        return f"{type(item).__name__} {item['id']}"
    return type(item).__name__
