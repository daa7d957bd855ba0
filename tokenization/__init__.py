"""Structure -> SCOPE string -> token ids.

The first two steps of CLOUD's data path: read a crystal (:func:`load_structure`), encode it as a SCOPE string
(:func:`structure_to_scope`, versions ``"v1"``, the authors', and ``"v2"``, canonical), and tokenize it
(:class:`CloudTokenizerFast`).
"""

from .scope_encoding import (
    DEFAULT_ANGLE_TOLERANCE,
    DEFAULT_SYMPREC,
    SCOPE_VERSIONS,
    ScopeAnalyzer,
    encode_v1,
    structure_to_scope,
    structures_to_scope,
)
from .scope_errors import (
    DisorderedStructureError,
    EmptyStructureError,
    InternalEncodingError,
    InvalidGeometryError,
    OverlappingSitesError,
    ResourceLimitError,
    ScopeError,
    ScopeTooLongError,
    StructureParseError,
    SymmetrySearchError,
    TimeLimitError,
    UnknownSpeciesError,
    UnsupportedScopeVersionError,
    typed_error,
)
from .structure_io import load_structure
from .tokenization_cloud import CloudTokenizerFast, is_scope_string

CloudTokenizerFast.register_for_auto_class("AutoTokenizer")

__all__ = [
    "DEFAULT_ANGLE_TOLERANCE",
    "DEFAULT_SYMPREC",
    "SCOPE_VERSIONS",
    "ScopeAnalyzer",
    "CloudTokenizerFast",
    "DisorderedStructureError",
    "EmptyStructureError",
    "InternalEncodingError",
    "InvalidGeometryError",
    "OverlappingSitesError",
    "ResourceLimitError",
    "ScopeError",
    "ScopeTooLongError",
    "StructureParseError",
    "SymmetrySearchError",
    "TimeLimitError",
    "UnknownSpeciesError",
    "UnsupportedScopeVersionError",
    "encode_v1",
    "is_scope_string",
    "load_structure",
    "structure_to_scope",
    "structures_to_scope",
    "typed_error",
]
