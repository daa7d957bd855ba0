# Copyright 2026 the cloud-crystal developers. MIT licence.
"""The defaults that the tokenizer, the model configuration and the command line share, declared once.

Standard library only, and remote code: saved checkpoints carry it flat beside `configuration_cloud.py` and
`tokenization_cloud.py`, which both import it as `from .scope_defaults import ...`. It is one file:
`modeling_cloud/scope_defaults.py` is a symbolic link to `tokenization/scope_defaults.py`.

Example:

```python
>>> from tokenization.scope_defaults import DEFAULT_SCOPE_VERSION, VOCAB_SIZES
>>> DEFAULT_SCOPE_VERSION, VOCAB_SIZES[DEFAULT_SCOPE_VERSION]
('v2', 642)

```
"""

#: SCOPE version of new tokenizers, models and commands: v2, the canonical encoding (`tokenization/SCOPE_V2.md`).
DEFAULT_SCOPE_VERSION = "v2"
#: Symmetry tolerance of the space-group search, in Å (pymatgen's and spglib's default).
DEFAULT_SYMPREC = 0.01
#: Angle tolerance of the space-group search, in degrees (pymatgen's default).
DEFAULT_ANGLE_TOLERANCE = 5.0
#: Longest token sequence, `[CLS]` and `[SEP]` included: the tokenizer's `model_max_length` and the model's
#: `max_position_embeddings` (the authors' setting).
DEFAULT_MAX_LENGTH = 64
#: Token ids of each SCOPE version's vocabulary: v1 is the authors' 564 (463 WordPiece entries and 101 fractions),
#: v2 is 5 special tokens, the 635 grammar tokens of ordered crystals and the 2 disorder tokens (`|`, `Vac`).
VOCAB_SIZES = {"v1": 564, "v2": 642}
#: What SCOPE does with partially occupied or mixed sites: "encode" them (v2's disorder section, v1 as the
#: authors' code through pymatgen's atom types) or "raise" `DisorderedStructureError`.
DEFAULT_DISORDER = "encode"
DISORDER_POLICIES = ("encode", "raise")
#: An occupancy within this of 1 counts as full (refinements report 0.9999 or 1.0001 for a full site), below the
#: two-decimal resolution of SCOPE's fractions; a site's occupancies may sum to at most 1 plus this.
OCCUPANCY_TOLERANCE = 0.005

__all__ = [
    "DEFAULT_ANGLE_TOLERANCE",
    "DEFAULT_DISORDER",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_SCOPE_VERSION",
    "DEFAULT_SYMPREC",
    "DISORDER_POLICIES",
    "OCCUPANCY_TOLERANCE",
    "VOCAB_SIZES",
]
