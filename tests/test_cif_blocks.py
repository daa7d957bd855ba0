"""Items written before a CIF's first ``data_`` line belong to no data block (CIF 1.1). Readers, pymatgen's among
them, drop them without a word; a cell, symmetry or atom-site item dropped there changes the crystal. The package
refuses such a file naming the line and the item, and keeps a file whose stray items describe nothing of the crystal
(a journal name, an audit line), with a note. Data: the bundled example CIFs (``dataset_builders/data/examples``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenization import ScopeError, StructureParseError, structure_to_scope
from tokenization.structure_io import load_structure

EXAMPLE = Path(__file__).parents[1] / "dataset_builders" / "data" / "examples" / "ZnO.cif"


@pytest.mark.parametrize(
    ("stray", "first"),
    [
        ("_symmetry_space_group_name_H-M 'P 1'", "line 2: _symmetry_space_group_name_H-M"),
        ("_cell_length_a 10.0", "line 2: _cell_length_a"),
        ("loop_\n_atom_site_label\n_atom_site_fract_x\nX 0", "line 3: _atom_site_label"),
    ],
)
def test_crystal_items_before_the_first_block_are_refused_naming_them(tmp_path, stray, first):
    path = tmp_path / "stray.cif"
    path.write_text("# written by hand\n" + stray + "\n" + EXAMPLE.read_text())
    with pytest.raises(ScopeError) as caught:
        load_structure(path)
    assert isinstance(caught.value, StructureParseError)
    message = str(caught.value)
    assert "stray.cif" in message and f"before the first data_ line ({first})" in message


def test_other_items_before_the_first_block_are_ignored_with_a_note(tmp_path):
    path = tmp_path / "journal.cif"
    path.write_text("_journal_name_full 'Acta Cryst.'\n_journal_year 1998\n" + EXAMPLE.read_text())
    structure = load_structure(path)
    assert structure_to_scope(structure, version="v2") == structure_to_scope(
        load_structure(EXAMPLE), version="v2"
    )
    notes = structure.properties["reader_notes"]
    assert any(
        "2 item(s) before the first data_ line ignored (line 1: _journal_name_full)" in note for note in notes
    )
