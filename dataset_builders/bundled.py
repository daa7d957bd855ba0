"""Loaders for the data files shipped inside the package (no network, no cache directory).

* :func:`load_materials_project`: 6,317 Materials Project crystals with DFT labels (CC BY 4.0, see
  ``data/LICENSE-MP.md``), built by :mod:`dataset_builders.build_materials_project`.
* :func:`load_cloud_example`: the CLOUD authors' example SCOPE data (MIT, see ``data/cloud_example/LICENSE-CLOUD``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import datasets
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"
MATERIALS_PROJECT_PARQUET = DATA_DIR / "materials_project.parquet"
CLOUD_EXAMPLE_DIR = DATA_DIR / "cloud_example"

#: sha256 of the *content* of ``materials_project.parquet`` (see ``build_materials_project.table_content_sha256``).
MATERIALS_PROJECT_CONTENT_SHA256 = "b1cf5fc63e1b2c9471fd2b95f3f436ed964a6e1efde8c6e7d85841033f8abd18"

#: The label columns, as the build script writes them.
#: Label columns of the bundled Materials Project table, and all its columns (`build_materials_project` writes them).
LABEL_COLUMNS = (
    "formation_energy_per_atom",
    "e_above_hull",
    "K_VRH",
    "G_VRH",
    "log10_K_VRH",
    "log10_G_VRH",
    "band_gap",
    "n",
    "eij_max",
    "debye_temperature",
)
COLUMNS = ("material_id", "structure", "formula", "nsites", *LABEL_COLUMNS)
MATERIALS_PROJECT_LABELS = LABEL_COLUMNS

# name -> (train file, test file or None, {original column: our column})
_CLOUD_EXAMPLE_FILES = {
    "pretrain": ("pretrain_cloud_10k.csv.gz", None, {"cloud": "scope"}),
    "dielectric": ("finetune_dielectric_train_and_val.csv.gz", "finetune_dielectric_test.csv.gz", {}),
    "cv": ("cloud_cv_train_and_val.csv.gz", "cloud_cv_test.csv.gz", {"cloud": "scope"}),
}

#: sha256 of the uncompressed CSVs, identical to the authors' files (commit 043de9e of ChangwenXu98/CLOUD).
CLOUD_EXAMPLE_SHA256 = {
    "cloud_cv_test.csv": "972e5dfc876232883b8d7129550fd44e612d3ba454dd3c1961ab3fe3049d8c54",
    "cloud_cv_train_and_val.csv": "a86ce0aedb5ca621d55818e80c50e88c11cf59afab9b501c38b04dbb56fb802b",
    "finetune_dielectric_test.csv": "727dae9182e0beba1badee3774535586e50dc0b99e54aa9ede0c996d133d5eee",
    "finetune_dielectric_train_and_val.csv": "de9265f4d5bd75162dcecce1420b36f26359db4b4dc7944c6007418ddcf5a895",
    "pretrain_cloud_10k.csv": "35e7afcf01b4c3f03ed87c456159bf55971ed61538db405d1bba92ac35133cc3",
}


def load_materials_project() -> datasets.Dataset:
    """The bundled Materials Project table as a :class:`datasets.Dataset` (6,317 rows).

    Columns: ``material_id``, ``structure`` (JSON of pymatgen ``Structure.as_dict()``), ``formula`` (cell formula),
    ``nsites`` and the labels ``formation_energy_per_atom`` (eV/atom), ``e_above_hull`` (eV/atom), ``K_VRH``,
    ``G_VRH`` (GPa), ``log10_K_VRH``, ``log10_G_VRH``, ``band_gap`` (eV), ``n`` (refractive index), ``eij_max``
    (C/m^2) and ``debye_temperature`` (K, Anderson's formula); ``None`` where a material has no such label.
    Most rows carry only some labels: filter before training, e.g. ``ds.filter(lambda r: r["n"] is not None)``.

    :func:`structure_from_json` turns one ``structure`` cell into a pymatgen ``Structure``.

    Example:
        >>> ds = load_materials_project()
        >>> len(ds), ds[0]["material_id"]
        (6317, 'mp-10')
        >>> round(ds.filter(lambda r: r["material_id"] == "mp-149")[0]["debye_temperature"])
        623
    """
    import pyarrow.parquet as pq

    # From the arrow table directly: Dataset.from_parquet would write a cache copy under HF_HOME.
    return datasets.Dataset(pq.read_table(MATERIALS_PROJECT_PARQUET))


def structure_from_json(text: str, source: str | None = None):
    """Parse one ``structure`` cell (pymatgen dict as JSON) into a pymatgen ``Structure``."""
    from pymatgen.core import Structure

    try:
        return Structure.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{source or 'structure'}: not a pymatgen Structure dict as JSON: {error}"
        ) from error


def _read_cloud_csv(file_name: str, renames: dict[str, str]) -> datasets.Dataset:
    path = CLOUD_EXAMPLE_DIR / file_name
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    expected = CLOUD_EXAMPLE_SHA256[file_name.removesuffix(".gz")]
    if hashlib.sha256(raw).hexdigest() != expected:
        raise ValueError(
            f"{path}: content differs from the authors' file (sha256 mismatch); reinstall the package"
        )
    frame = pd.read_csv(io.BytesIO(raw), dtype={"cloud": str, "scope": str}, keep_default_na=False)
    frame = frame.rename(columns=renames)
    return datasets.Dataset.from_pandas(frame, preserve_index=False)


def load_cloud_example(name: str) -> datasets.Dataset | datasets.DatasetDict:
    """The CLOUD authors' example data (SCOPE v1 strings made with their code), with the SCOPE column named ``scope``.

    * ``"pretrain"``: a :class:`datasets.Dataset` of 10,000 unlabelled SCOPE strings (column ``scope``).
    * ``"dielectric"``: a :class:`datasets.DatasetDict` with ``"train"`` (3,811 rows) and ``"test"`` (953 rows); columns
      ``scope`` and ``n`` (refractive index; one MatBench ``matbench_dielectric`` fold).
    * ``"cv"``: a :class:`datasets.DatasetDict` with ``"train"`` (1,213) and ``"test"`` (299); columns ``scope``, ``cv``
      (heat capacity at 300 K in J/K per mole of cells) and ``n_atoms``.

    **The "test" splits are for final evaluation only.** Never train, early-stop, tune or select models on them;
    carve validation data out of ``"train"`` (the authors' ``*_train_and_val.csv``).

    Example:
        >>> dielectric = load_cloud_example("dielectric")
        >>> dielectric["train"].num_rows, dielectric["test"].num_rows
        (3811, 953)
        >>> load_cloud_example("pretrain")[0]["scope"]
        '1 4 a D D D b O O O g O O O c O O O 0 | 2b 4d 2a | Bi 0.25 B 0.5 Ru 0.25'
    """
    if name not in _CLOUD_EXAMPLE_FILES:
        raise ValueError(f"unknown CLOUD example {name!r}; expected one of {sorted(_CLOUD_EXAMPLE_FILES)}")
    train_file, test_file, renames = _CLOUD_EXAMPLE_FILES[name]
    train = _read_cloud_csv(train_file, renames)
    if test_file is None:
        return train
    return datasets.DatasetDict({"train": train, "test": _read_cloud_csv(test_file, renames)})
