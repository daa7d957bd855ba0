"""The bundled data: the Materials Project table (built from the matminer 0.3.9 sdist) and the authors' examples."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pymatgen.core import Lattice, Structure

from dataset_builders import (
    MATERIALS_PROJECT_LABELS,
    MATERIALS_PROJECT_PARQUET,
    debye_temperature_anderson,
    load_cloud_example,
    load_materials_project,
    structure_from_json,
)
from dataset_builders.build_materials_project import (
    MATMINER_SDIST_SHA256,
    build_materials_project_table,
    read_matminer_csvs,
    table_content_sha256,
)
from dataset_builders.bundled import MATERIALS_PROJECT_CONTENT_SHA256

EXPECTED_LABEL_COUNTS = {
    "formation_energy_per_atom": 3938,
    "e_above_hull": 3938,
    "K_VRH": 1181,
    "G_VRH": 1181,
    "log10_K_VRH": 1181,
    "log10_G_VRH": 1181,
    "band_gap": 1056,
    "n": 1056,
    "eij_max": 941,
    "debye_temperature": 1181,
}


@pytest.fixture(scope="module")
def materials_project():
    return load_materials_project().to_pandas().set_index("material_id", drop=False)


def test_shipped_table_shape_and_columns(materials_project):
    assert len(materials_project) == 6317
    assert materials_project.material_id.is_unique
    assert list(materials_project.columns) == [
        "material_id",
        "structure",
        "formula",
        "nsites",
        *MATERIALS_PROJECT_LABELS,
    ]
    counts = {label: int(materials_project[label].notna().sum()) for label in MATERIALS_PROJECT_LABELS}
    assert counts == EXPECTED_LABEL_COUNTS
    # Every material has at least one label, and the elastic-derived columns come together.
    assert materials_project[list(MATERIALS_PROJECT_LABELS)].notna().any(axis=1).all()
    elastic = materials_project.K_VRH.notna()
    assert (materials_project.debye_temperature.notna() == elastic).all()
    assert (materials_project.log10_G_VRH.notna() == elastic).all()


def test_shipped_file_is_small_and_matches_recorded_content_checksum():
    assert MATERIALS_PROJECT_PARQUET.stat().st_size < 5_000_000
    metadata = pq.ParquetFile(MATERIALS_PROJECT_PARQUET).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert table_content_sha256(pq.read_table(MATERIALS_PROJECT_PARQUET)) == MATERIALS_PROJECT_CONTENT_SHA256


@pytest.mark.parametrize(
    ("material_id", "formula", "expected_kelvin"),
    [
        ("mp-149", "Si8", 623),
        ("mp-1265", "Mg4O4", 902),
        ("mp-1138", "Li1F1", 723),
        ("mp-22862", "Na4Cl4", 302),
    ],
)
def test_debye_temperature_spot_checks(materials_project, material_id, formula, expected_kelvin):
    row = materials_project.loc[material_id]
    assert row.formula == formula
    assert row.debye_temperature == pytest.approx(expected_kelvin, abs=1.0)
    assert row.log10_K_VRH == pytest.approx(math.log10(row.K_VRH))


def test_debye_formula_scales_as_expected():
    """theta_D ~ sqrt(modulus / density) at fixed cell: x4 moduli -> x2 temperature; bad moduli -> None."""
    silicon = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.469), ["Si"], [[0, 0, 0]])
    base = debye_temperature_anderson(silicon, 83.0, 61.2)
    assert base == pytest.approx(623, abs=2)
    assert debye_temperature_anderson(silicon, 4 * 83.0, 4 * 61.2) == pytest.approx(2 * base)
    assert debye_temperature_anderson(silicon, 83.0, 0.0) is None
    assert debye_temperature_anderson(silicon, float("nan"), 61.2) is None
    assert debye_temperature_anderson(silicon, None, 61.2) is None


def test_structures_match_the_scope_v1_fixture_records(materials_project, v1_fixture_records):
    """The 400 public fixture records were made from the same merge: same cell, sites, formula and size."""
    for record in v1_fixture_records:
        row = materials_project.loc[record["material_id"]]
        ours = structure_from_json(row.structure)
        theirs = Structure.from_dict(record["structure"])
        assert row.formula == record["formula"] and row.nsites == record["nsites"] == len(ours)
        assert [site.species_string for site in ours] == [site.species_string for site in theirs]
        assert ours.lattice.matrix.ravel().tolist() == pytest.approx(theirs.lattice.matrix.ravel().tolist())
        assert ours.frac_coords.ravel().tolist() == pytest.approx(theirs.frac_coords.ravel().tolist())


def test_magnetic_moments_are_kept(materials_project):
    with_magmom = [text for text in materials_project.structure if '"magmom"' in text]
    assert len(with_magmom) == 343
    assert "magmom" in structure_from_json(with_magmom[0]).site_properties


@pytest.mark.skipif(
    not os.environ.get("CLOUD_MATMINER_SDIST"),
    reason="set CLOUD_MATMINER_SDIST to a local matminer-0.3.9.tar.gz to rebuild the table (tests never download)",
)
def test_build_script_reproduces_the_shipped_content():
    """The rebuild gives the shipped table: the same rows, ids, formulas, species, lattices and labels, and numbers
    equal to floating-point noise. Bit-for-bit equality (the content SHA-256 below) holds only with the numpy/BLAS
    build that wrote the file: another one moves Cartesian coordinates and derived Debye temperatures by ~1e-13."""
    import json

    import numpy as np
    import pandas as pd

    sdist = Path(os.environ["CLOUD_MATMINER_SDIST"])
    table = build_materials_project_table(read_matminer_csvs(sdist))
    rebuilt = table.to_pandas()
    shipped = pd.read_parquet(
        Path(__file__).parents[1] / "dataset_builders" / "data" / "materials_project.parquet"
    )
    assert list(rebuilt.columns) == list(shipped.columns) and len(rebuilt) == len(shipped)
    for column in shipped.columns:
        if column == "structure":
            continue
        if shipped[column].dtype.kind == "f":
            np.testing.assert_allclose(rebuilt[column], shipped[column], rtol=1e-9, atol=0, equal_nan=True)
        else:
            assert (rebuilt[column] == shipped[column]).all(), column
    for ours, theirs in zip(rebuilt["structure"], shipped["structure"], strict=True):
        ours, theirs = json.loads(ours), json.loads(theirs)
        assert ours["lattice"]["matrix"] == theirs["lattice"]["matrix"]
        assert [site["species"] for site in ours["sites"]] == [site["species"] for site in theirs["sites"]]
        for key in ("abc", "xyz"):
            np.testing.assert_allclose(
                [site[key] for site in ours["sites"]],
                [site[key] for site in theirs["sites"]],
                rtol=0,
                atol=1e-9,
            )
    if table_content_sha256(table) != MATERIALS_PROJECT_CONTENT_SHA256:
        warnings.warn(
            "the rebuilt table equals the shipped one to 1e-9, not bit for bit (another numpy/BLAS build)",
            stacklevel=1,
        )


def test_build_script_rejects_a_wrong_sdist(tmp_path):
    fake = tmp_path / "matminer-0.3.9.tar.gz"
    fake.write_bytes(b"not the sdist")
    with pytest.raises(ValueError, match=MATMINER_SDIST_SHA256):
        read_matminer_csvs(fake)


def test_cloud_example_loaders():
    pretrain = load_cloud_example("pretrain")
    assert pretrain.num_rows == 10_000 and pretrain.column_names == ["scope"]
    assert len(set(pretrain["scope"])) == 10_000
    dielectric = load_cloud_example("dielectric")
    assert {name: split.num_rows for name, split in dielectric.items()} == {"train": 3811, "test": 953}
    assert dielectric["train"].column_names == ["scope", "n"]
    assert min(dielectric["train"]["n"]) >= 1.0
    cv = load_cloud_example("cv")
    assert {name: split.num_rows for name, split in cv.items()} == {"train": 1213, "test": 299}
    # Cv per mole of cells never exceeds the Dulong-Petit limit 3 R n_atoms.
    ratios = [
        c / (3 * 8.314462618 * n) for c, n in zip(cv["train"]["cv"], cv["train"]["n_atoms"], strict=True)
    ]
    assert max(ratios) <= 1.0
    with pytest.raises(ValueError, match="unknown CLOUD example"):
        load_cloud_example("bandgap")


def test_structure_from_json_names_bad_input():
    with pytest.raises(ValueError, match="row 7"):
        structure_from_json(json.dumps({"lattice": "nonsense"}), source="row 7")
