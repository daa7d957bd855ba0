"""Build the bundled Materials Project table ``dataset_builders/data/materials_project.parquet``.

The four Materials Project datasets shipped inside the ``matminer==0.3.9`` source distribution are read
straight from the tarball (matminer itself is never installed or imported: its pins are old), merged by
``material_id`` and written as one zstd-compressed parquet file with one ordered crystal per row.

Sources, in priority order (when a material appears in several sets, the structure comes from the first
one; the labels of every set are kept):

==========================  =====  ==================================  ===============================
file                        rows   labels                              structure read from
==========================  =====  ==================================  ===============================
``flla_2015.csv``           3,938  formation_energy_per_atom,          ``structure`` (Python-literal
                                   e_above_hull                        pymatgen dict)
``elastic_tensor.csv``      1,181  K_VRH, G_VRH (GPa)                  ``poscar``
``dielectric_constant.csv`` 1,056  band_gap (eV), n                    ``poscar``
``piezoelectric_tensor.csv``  941  eij_max (C/m^2)                     ``poscar``
==========================  =====  ==================================  ===============================

Derived labels:

* ``log10_K_VRH`` / ``log10_G_VRH``: base-10 logarithm of the moduli in GPa, missing when the modulus is
  not strictly positive (as in MatBench ``log_kvrh`` / ``log_gvrh``).
* ``debye_temperature`` (K): Anderson's formula (O. L. Anderson, J. Phys. Chem. Solids 24, 909 (1963))
  from the Voigt-Reuss-Hill moduli and the cell of the *elastic* set (the cell the moduli were computed on):

  .. math::

      v_t = \\sqrt{G/\\rho},\\quad v_l = \\sqrt{(K + 4G/3)/\\rho},\\quad
      v_m = \\Big[\\tfrac13\\big(2/v_t^3 + 1/v_l^3\\big)\\Big]^{-1/3},\\quad
      \\theta_D = \\frac{h}{k_B}\\Big(\\frac{3N}{4\\pi V}\\Big)^{1/3} v_m

  with :math:`\\rho` = cell mass / :math:`V`, :math:`N` the number of atoms in the cell, SI units.
  Spot checks against experiment: Si 623 K (645), MgO 902 K (946), LiF 723 K (732), NaCl 302 K (321).

Run it (about a minute on one core)::

    pip download --no-deps --no-binary :all: matminer==0.3.9 -d /tmp/matminer
    python -m dataset_builders.build_materials_project --sdist /tmp/matminer/matminer-0.3.9.tar.gz

or let it call ``pip download`` itself with ``--download``. The sdist checksum is verified against
:data:`MATMINER_SDIST_SHA256`; the script prints the checksum of the content it wrote (independent of the
pyarrow version, see :func:`table_content_sha256`), which must equal the one in ``data/README.md``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import math
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pymatgen.core import Structure
from pymatgen.io.vasp import Poscar

from .bundled import COLUMNS, LABEL_COLUMNS
from .elastic_debye import debye_temperature_anderson

#: sha256 of ``matminer-0.3.9.tar.gz`` as served by PyPI.
MATMINER_SDIST_SHA256 = "3faf9e83464f3d48f68a759bf476ad24da4c8c3e950c8f340cb917d3bb906400"
MATMINER_VERSION = "0.3.9"

#: Dataset files in priority order: (file stem, structure column, kind of that column, label columns).
MATMINER_SOURCES = (
    ("flla_2015", "structure", "pymatgen_dict_literal", ("formation_energy_per_atom", "e_above_hull")),
    ("elastic_tensor", "poscar", "poscar", ("K_VRH", "G_VRH")),
    ("dielectric_constant", "poscar", "poscar", ("band_gap", "n")),
    ("piezoelectric_tensor", "poscar", "poscar", ("eij_max",)),
)


DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "materials_project.parquet"


def sha256_of_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_matminer_sdist(destination: str | Path) -> Path:
    """Fetch the matminer 0.3.9 sdist with pip (no install) and return the path of the tarball."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"matminer=={MATMINER_VERSION}",
        "-d",
        str(destination),
    ]
    subprocess.run(command, check=True)
    return destination / f"matminer-{MATMINER_VERSION}.tar.gz"


def read_matminer_csvs(sdist_path: str | Path, verify_checksum: bool = True) -> dict[str, pd.DataFrame]:
    """Read the four dataset CSVs from the sdist tarball without extracting it.

    Returns a dict ``{file stem: DataFrame}`` in :data:`MATMINER_SOURCES` order.
    """
    sdist_path = Path(sdist_path)
    if verify_checksum:
        actual = sha256_of_file(sdist_path)
        if actual != MATMINER_SDIST_SHA256:
            raise ValueError(
                f"{sdist_path}: sha256 {actual} does not match the expected matminer {MATMINER_VERSION} "
                f"sdist {MATMINER_SDIST_SHA256}"
            )
    frames = {}
    with tarfile.open(sdist_path, "r:gz") as archive:
        for stem, *_ in MATMINER_SOURCES:
            member = f"matminer-{MATMINER_VERSION}/matminer/datasets/{stem}.csv"
            handle = archive.extractfile(member)
            if handle is None:
                raise ValueError(f"{sdist_path}: {member} is missing or not a regular file")
            # `comment="#"`: the CSVs start with a reference line and CIF banners written as comments.
            frames[stem] = pd.read_csv(io.BytesIO(handle.read()), comment="#")
    return frames


def _parse_structure(text: str, kind: str, where: str) -> Structure:
    try:
        if kind == "pymatgen_dict_literal":
            # The column holds `repr(dict)`, i.e. a Python literal (single quotes, True/False):
            # ast.literal_eval parses literals only and never executes code.
            return Structure.from_dict(ast.literal_eval(text))
        if kind == "poscar":
            return Poscar.from_str(text).structure
    except (ValueError, SyntaxError, KeyError, TypeError) as error:
        raise ValueError(f"{where}: cannot parse the {kind} structure: {error}") from error
    raise ValueError(f"{where}: unknown structure kind {kind!r}")


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _log10_or_none(value: float | None) -> float | None:
    return math.log10(value) if value is not None and value > 0 else None


def structure_to_json(structure: Structure) -> str:
    """Compact JSON of ``Structure.as_dict()`` (site properties such as ``magmom`` are kept)."""
    return json.dumps(structure.as_dict(), separators=(",", ":"), allow_nan=False)


def build_materials_project_table(frames: dict[str, pd.DataFrame]) -> pa.Table:
    """Merge the four datasets by ``material_id`` into one arrow table with :data:`COLUMNS`.

    Rows are ordered by first appearance (flla_2015 rows first, then the new ids of each later set).
    """
    records: dict[str, dict] = {}
    elastic_structures: dict[str, Structure] = {}
    for stem, structure_column, kind, labels in MATMINER_SOURCES:
        frame = frames[stem]
        for row_index, row in enumerate(frame.itertuples(index=False)):
            row = row._asdict()
            material_id = str(row["material_id"])
            record = records.get(material_id)
            if record is None:
                structure = _parse_structure(
                    row[structure_column], kind, f"{stem}.csv row {row_index} ({material_id})"
                )
                record = {"material_id": material_id, "_structure": structure}
                record.update(dict.fromkeys(LABEL_COLUMNS))
                records[material_id] = record
            for label in labels:
                if record[label] is not None:
                    raise ValueError(f"{stem}.csv: duplicate label {label} for {material_id}")
                record[label] = _finite_or_none(row[label])
            if stem == "elastic_tensor":
                # The moduli belong to this cell; use it (not the flla cell) for the Debye temperature.
                elastic_structures[material_id] = (
                    record["_structure"]
                    if structure_column == "structure"
                    else _parse_structure(
                        row[structure_column], kind, f"{stem}.csv row {row_index} ({material_id})"
                    )
                )

    for material_id, record in records.items():
        record["log10_K_VRH"] = _log10_or_none(record["K_VRH"])
        record["log10_G_VRH"] = _log10_or_none(record["G_VRH"])
        if material_id in elastic_structures:
            record["debye_temperature"] = debye_temperature_anderson(
                elastic_structures[material_id], record["K_VRH"], record["G_VRH"]
            )

    columns = {name: [] for name in COLUMNS}
    for record in records.values():
        structure = record["_structure"]
        columns["material_id"].append(record["material_id"])
        columns["structure"].append(structure_to_json(structure))
        # Cell formula without spaces, e.g. "Si1Os1" (the convention of the SCOPE v1 fixtures).
        columns["formula"].append(structure.formula.replace(" ", ""))
        columns["nsites"].append(len(structure))
        for label in LABEL_COLUMNS:
            columns[label].append(record[label])

    schema = pa.schema(
        [
            ("material_id", pa.string()),
            ("structure", pa.string()),
            ("formula", pa.string()),
            ("nsites", pa.int32()),
            *[(label, pa.float64()) for label in LABEL_COLUMNS],
        ]
    )
    return pa.table(columns, schema=schema)


def table_content_sha256(table: pa.Table) -> str:
    """A checksum of the table *content* (column names, then every row as canonical JSON).

    Unlike the sha256 of the parquet file, it does not depend on the pyarrow version that wrote the file.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(table.column_names).encode())
    for row in table.to_pylist():
        digest.update(json.dumps(row, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def write_materials_project_parquet(table: pa.Table, output: str | Path = DEFAULT_OUTPUT) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, output, compression="zstd", compression_level=19, row_group_size=len(table))
    return output


def summarize(table: pa.Table) -> dict:
    frame = table.to_pandas()
    return {
        "rows": len(frame),
        "unique_material_ids": int(frame.material_id.nunique()),
        "label_counts": {label: int(frame[label].notna().sum()) for label in LABEL_COLUMNS},
        "elements": len(
            {element for structure in frame.structure for element in _elements_of_json(structure)}
        ),
    }


def _elements_of_json(structure_json: str) -> set[str]:
    return {species["element"] for site in json.loads(structure_json)["sites"] for species in site["species"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sdist", type=Path, help="path to matminer-0.3.9.tar.gz")
    source.add_argument("--download", action="store_true", help="fetch the sdist with pip download first")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        sdist = download_matminer_sdist(scratch) if args.download else args.sdist
        print(f"sdist {sdist} sha256 {sha256_of_file(sdist)}")
        frames = read_matminer_csvs(sdist)
    table = build_materials_project_table(frames)
    output = write_materials_project_parquet(table, args.output)
    report = summarize(table)
    report["content_sha256"] = table_content_sha256(table)
    report["file_sha256"] = sha256_of_file(output)
    report["file_bytes"] = output.stat().st_size
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "COLUMNS",
    "LABEL_COLUMNS",
    "MATMINER_SDIST_SHA256",
    "build_materials_project_table",
    "debye_temperature_anderson",
    "download_matminer_sdist",
    "read_matminer_csvs",
    "table_content_sha256",
    "write_materials_project_parquet",
]
