# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Model cards (README.md) for CLOUD checkpoints, rendered from the Jinja template in `templates/`.

The code lives in `model_cards/card.py`; this package re-exports it. The training commands fill a
[`ModelCardContext`] from the run and call [`write_model_card`].
"""

from .card import (
    CITATIONS,
    KINDS,
    METRIC_NAMES,
    TEMPLATE_PATH,
    EvaluationRecord,
    ModelCardContext,
    build_card_data,
    format_number,
    metric_label,
    render_model_card,
    write_model_card,
)

__all__ = [
    "CITATIONS",
    "KINDS",
    "METRIC_NAMES",
    "TEMPLATE_PATH",
    "EvaluationRecord",
    "ModelCardContext",
    "build_card_data",
    "format_number",
    "metric_label",
    "render_model_card",
    "write_model_card",
]
