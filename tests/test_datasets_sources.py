"""Generic structure sources -> datasets: files, JSON/JSONL/Parquet records, ASE databases and extxyz."""

from __future__ import annotations

import json

import datasets
import pandas as pd
import pytest
from pymatgen.io.ase import AseAtomsAdaptor

from dataset_builders import load_materials_project, structure_from_json
from dataset_builders.reporting import FailureReport
from dataset_builders.sources import dataset_from_ase, dataset_from_files, dataset_from_records
from tokenization import StructureParseError, structure_to_scope

BROKEN_CIF = "data_broken\n_cell_length_a 3.0\nthis is not a CIF loop\n"


@pytest.fixture(scope="module")
def mp_rows():
    """Six real MP crystals with a refractive index."""
    return load_materials_project().filter(lambda row: row["n"] is not None).select(range(6)).to_list()


@pytest.fixture
def cif_dir(tmp_path, mp_rows):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for row in mp_rows[:4]:
        structure_from_json(row["structure"]).to(filename=str(folder / f"{row['material_id']}.cif"))
    structure_from_json(mp_rows[4]["structure"]).to(filename=str(folder / "POSCAR"), fmt="poscar")
    return folder


def test_directory_of_cif_and_poscar_files_with_a_broken_one(cif_dir, mp_rows):
    (cif_dir / "broken.cif").write_text(BROKEN_CIF)
    with pytest.raises(StructureParseError, match="broken.cif"):
        dataset_from_files(cif_dir)
    report = FailureReport(errors_path=cif_dir.parent / "errors.jsonl")
    dataset = dataset_from_files(cif_dir, report=report)
    assert dataset.num_rows == 5 and report.num_failed == 1 and report.rows_seen == 6
    assert report.counts() == {"parse_error": 1}
    logged = [json.loads(line) for line in (cif_dir.parent / "errors.jsonl").read_text().splitlines()]
    assert logged[0]["source"].endswith("broken.cif") and logged[0]["type"] == "StructureParseError"
    # The stored crystal encodes to the same SCOPE string as the original (CIF round trip keeps the symmetry).
    by_name = dict(zip(dataset["source"], dataset["structure"], strict=True))
    original = mp_rows[0]
    stored = by_name[str(cif_dir / f"{original['material_id']}.cif")]
    assert sorted(structure_to_scope(stored).split(" | ")[2].split()) == sorted(
        structure_to_scope(original["structure"]).split(" | ")[2].split()
    )


def test_label_table_joins_by_file_name_and_reports_missing_labels(cif_dir, mp_rows):
    labels = pd.DataFrame(
        {"id": [row["material_id"] for row in mp_rows[:3]], "n": [row["n"] for row in mp_rows[:3]]}
    )
    report = FailureReport()
    dataset = dataset_from_files(cif_dir, labels=labels, report=report)
    assert dataset.num_rows == 3
    assert report.counts() == {"missing_label": 2}  # the 4th CIF and the POSCAR have no label row
    assert sorted(dataset["n"]) == sorted(row["n"] for row in mp_rows[:3])


def test_jsonl_records_with_malformed_lines(tmp_path, mp_rows):
    path = tmp_path / "records.jsonl"
    with open(path, "w") as handle:
        for row in mp_rows[:3]:
            record = {
                "structure": json.loads(row["structure"]),
                "material_id": row["material_id"],
                "n": row["n"],
            }
            record["dielectric_tensor"] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]  # nested: not a label column
            handle.write(json.dumps(record) + "\n")
        handle.write("{not json\n")
        handle.write(json.dumps({"n": 2.0}) + "\n")  # no structure
    report = FailureReport()
    dataset = dataset_from_records(path, report=report)
    assert dataset.column_names == ["structure", "source", "material_id", "n"]
    assert dataset.num_rows == 3 and report.num_failed == 2
    assert sorted(failure.source for failure in report.failures) == [f"{path}:4", f"{path}:5"]


def test_parquet_and_json_records_and_cif_strings(tmp_path, mp_rows):
    parquet = tmp_path / "mp.parquet"
    datasets.Dataset.from_list(mp_rows).to_parquet(str(parquet))
    from_parquet = dataset_from_records(parquet)
    assert from_parquet.num_rows == 6 and from_parquet["material_id"] == [
        row["material_id"] for row in mp_rows
    ]
    cifs = [
        {"cif": str(structure_from_json(row["structure"]).to(fmt="cif")), "y": index}
        for index, row in enumerate(mp_rows)
    ]
    path = tmp_path / "cifs.json"
    path.write_text(json.dumps(cifs))
    from_json = dataset_from_records(path, structure_column="cif")
    assert from_json["y"] == list(range(6)) and from_json["source"][1] == f"{path}#1"


def test_streaming_is_lazy_and_reports(tmp_path, mp_rows):
    path = tmp_path / "records.jsonl"
    lines = [json.dumps({"structure": row["structure"], "n": row["n"]}) for row in mp_rows[:2]]
    path.write_text("\n".join([lines[0], "{oops", lines[1]]) + "\n")
    report = FailureReport()
    stream = dataset_from_records(path, streaming=True, report=report)
    assert isinstance(stream, datasets.IterableDataset) and report.rows_seen == 0  # nothing read yet
    rows = list(stream)
    assert len(rows) == 2 and report.num_failed == 1 and report.rows_seen == 3


def test_ase_database_and_extxyz(tmp_path, mp_rows):
    import ase.db
    import ase.io
    from ase import Atoms

    atoms = [AseAtomsAdaptor.get_atoms(structure_from_json(row["structure"])) for row in mp_rows[:3]]
    database = tmp_path / "crystals.db"
    with ase.db.connect(str(database)) as handle:
        for index, item in enumerate(atoms):
            handle.write(item, target=float(index), name=f"c{index}")
    from_db = dataset_from_ase(database)
    assert from_db["target"] == [0.0, 1.0, 2.0] and from_db["name"] == ["c0", "c1", "c2"]

    for index, item in enumerate(atoms):
        item.info["band_gap"] = 0.5 * index
    molecule = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])  # no cell: not a crystal
    extxyz = tmp_path / "frames.extxyz"
    ase.io.write(str(extxyz), [*atoms, molecule], format="extxyz")
    report = FailureReport()
    from_xyz = dataset_from_ase(extxyz, report=report)
    assert from_xyz["band_gap"] == [0.0, 0.5, 1.0]
    assert report.num_failed == 1 and report.failures[0].source == f"{extxyz}#3"
    assert (
        structure_from_json(from_xyz["structure"][2]).composition
        == structure_from_json(mp_rows[2]["structure"]).composition
    )
