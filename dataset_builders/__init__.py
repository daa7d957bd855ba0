"""Dataset builders for CLOUD: bundled data, generic structure sources, on-the-fly SCOPE encoding and splits.

Bundled (offline) data:

* :func:`load_materials_project`: 6,317 Materials Project crystals with DFT labels (CC BY 4.0, ``data/LICENSE-MP.md``).
* :func:`load_cloud_example`: the CLOUD authors' example SCOPE strings (MIT); its "test" splits are evaluation-only.

Your own crystals: :func:`dataset_from_files` (CIF/POSCAR/JSON directories), :func:`dataset_from_records`
(JSON/JSONL/Parquet), :func:`dataset_from_ase` (ASE ``.db``, extxyz). Model inputs: :func:`encode_on_the_fly`,
:func:`pre_encode`. Splits: :func:`kfold_indices` (MatBench), :func:`scope_group_kfold` (no SCOPE string on both
sides). Rows that cannot be used are never dropped silently: see :class:`FailureReport`.

Example:
    >>> from dataset_builders import load_materials_project, encode_on_the_fly
    >>> from tokenization import CloudTokenizerFast
    >>> rows = load_materials_project().filter(lambda r: r["debye_temperature"] is not None)
    >>> encoded = encode_on_the_fly(rows, CloudTokenizerFast.from_scope_version("v1"), label_columns="debye_temperature")
    >>> len(encoded), sorted(encoded[0])
    (1181, ['attention_mask', 'input_ids', 'labels'])
"""

from .bundled import (
    CLOUD_EXAMPLE_DIR,
    MATERIALS_PROJECT_LABELS,
    MATERIALS_PROJECT_PARQUET,
    load_cloud_example,
    load_materials_project,
    structure_from_json,
)
from .elastic_debye import debye_temperature_anderson
from .encoding import (
    StructureEncoder,
    encode_on_the_fly,
    encoding_fingerprint,
    pre_encode,
    tokenizer_fingerprint,
    validate_rows,
)
from .reporting import FailedRow, FailureReport, MissingLabelError, RowEncodingError
from .sources import dataset_from_ase, dataset_from_files, dataset_from_records, structure_json
from .splits import MATBENCH_SEED, kfold_indices, scope_group_kfold, scope_groups

__all__ = [
    "CLOUD_EXAMPLE_DIR",
    "MATBENCH_SEED",
    "MATERIALS_PROJECT_LABELS",
    "MATERIALS_PROJECT_PARQUET",
    "FailedRow",
    "FailureReport",
    "MissingLabelError",
    "RowEncodingError",
    "StructureEncoder",
    "dataset_from_ase",
    "dataset_from_files",
    "dataset_from_records",
    "debye_temperature_anderson",
    "encode_on_the_fly",
    "encoding_fingerprint",
    "kfold_indices",
    "load_cloud_example",
    "load_materials_project",
    "pre_encode",
    "scope_group_kfold",
    "scope_groups",
    "structure_from_json",
    "structure_json",
    "tokenizer_fingerprint",
    "validate_rows",
]
