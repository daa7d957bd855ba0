"""Loading a property checkpoint as ``pipeline("crystal-property")``: one function that the command line, the
screening runner and the web app share (a library module, so none of them imports the CLI).

The heavy imports (torch, transformers) happen inside the function, so importing this module costs nothing.
"""

from __future__ import annotations


def load_property_pipeline(model: str, trust_remote_code: bool = False, device=None):
    """``pipeline("crystal-property")`` for a checkpoint folder or Hub repo.

    Without ``trust_remote_code`` the installed package's classes are used, whatever code the checkpoint carries
    (a checkpoint that lists ``custom_pipelines`` would otherwise make transformers insist on its own copy).
    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) is where the model runs; ``None`` leaves it where it loads.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as transformers_logging

    from . import CrystalPropertyPipeline

    transformers_logging.disable_progress_bar()  # no bar per weights file on a command line

    placement = {"device": device} if device is not None else {}
    if trust_remote_code:
        return pipeline("crystal-property", model=model, trust_remote_code=True, **placement)
    return CrystalPropertyPipeline(
        model=AutoModelForSequenceClassification.from_pretrained(model),
        tokenizer=AutoTokenizer.from_pretrained(model),
        **placement,
    )
