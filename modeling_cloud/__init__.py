# Copyright 2026 the cloud-crystal developers. MIT licence.
"""CLOUD models for crystals (BERT over SCOPE strings), registered with the transformers Auto classes.

The package is lazy, like a transformers model folder: `import modeling_cloud` (and so `cloud-crystal --help`) imports
neither torch nor pymatgen. The first use of any of its names (`from modeling_cloud import CloudForMaskedLM`,
`modeling_cloud.CloudConfig`, ...) imports the models and registers:

- `AutoConfig` "cloud" -> [`CloudConfig`];
- `AutoModel` -> [`CloudModel`], `AutoModelForMaskedLM` -> [`CloudForMaskedLM`];
- `AutoModelForSequenceClassification` -> the property head a checkpoint was saved from, chosen by
  `config.architectures`: [`CloudForPropertyRegression`] (also the default, for fine-tuning a pretrained encoder),
  [`CloudForPropertyClassification`] or [`CloudDebyeModel`];
- `AutoTokenizer` for CLOUD checkpoints -> `tokenization.CloudTokenizerFast` (same distribution);
- the pipeline task "crystal-property" -> [`CrystalPropertyPipeline`].

[`register_auto_classes`] does the same explicitly. Checkpoints carry the same mapping in `config.auto_map` (and
property heads the pipeline in `custom_pipelines`), so they also load without this package through
`trust_remote_code=True`.

Example:

```python
>>> import sys
>>> import modeling_cloud
>>> "torch" in sys.modules or "pymatgen" in sys.modules  # doctest: +SKIP
False
>>> from modeling_cloud import CloudForMaskedLM  # imports the models and registers them
>>> from transformers.pipelines import PIPELINE_REGISTRY
>>> "crystal-property" in PIPELINE_REGISTRY.get_supported_tasks()
True

```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> submodule that defines it.
_EXPORTS = {
    "CloudConfig": "configuration_cloud",
    "CloudDebyeModel": "modeling_cloud",
    "CloudDebyeOutput": "modeling_cloud",
    "CloudForMaskedLM": "modeling_cloud",
    "CloudForPropertyClassification": "modeling_cloud",
    "CloudForPropertyRegression": "modeling_cloud",
    "CloudModel": "modeling_cloud",
    "CloudPreTrainedModel": "modeling_cloud",
    "CloudPropertyClassificationOutput": "modeling_cloud",
    "CloudPropertyRegressionOutput": "modeling_cloud",
    "CrystalPropertyPipeline": "pipeline_crystal_property",
}
_registered = False

if TYPE_CHECKING:
    from .configuration_cloud import CloudConfig
    from .modeling_cloud import (
        CloudDebyeModel,
        CloudDebyeOutput,
        CloudForMaskedLM,
        CloudForPropertyClassification,
        CloudForPropertyRegression,
        CloudModel,
        CloudPreTrainedModel,
        CloudPropertyClassificationOutput,
        CloudPropertyRegressionOutput,
    )
    from .pipeline_crystal_property import CrystalPropertyPipeline


def register_auto_classes() -> None:
    """Register the CLOUD config, models, tokenizer and the "crystal-property" pipeline with transformers (once).

    Example:

    ```python
    >>> from modeling_cloud import register_auto_classes
    >>> register_auto_classes()
    >>> from transformers import AutoConfig
    >>> type(AutoConfig.for_model("cloud")).__name__
    'CloudConfig'

    ```
    """
    global _registered
    if _registered:
        return
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from transformers.pipelines import PIPELINE_REGISTRY

    from tokenization import CloudTokenizerFast

    from .configuration_cloud import CloudConfig
    from .modeling_cloud import (
        CloudDebyeModel,
        CloudForMaskedLM,
        CloudForPropertyClassification,
        CloudForPropertyRegression,
        CloudModel,
    )
    from .pipeline_crystal_property import CrystalPropertyPipeline

    AutoConfig.register(CloudConfig.model_type, CloudConfig, exist_ok=True)
    AutoModel.register(CloudConfig, CloudModel, exist_ok=True)
    AutoModelForMaskedLM.register(CloudConfig, CloudForMaskedLM, exist_ok=True)
    # A tuple is resolved by `config.architectures`; its first entry is the default.
    AutoModelForSequenceClassification.register(
        CloudConfig,
        (CloudForPropertyRegression, CloudForPropertyClassification, CloudDebyeModel),
        exist_ok=True,
    )
    # Lets a saved checkpoint's tokenizer load from the installed package, without trust_remote_code.
    AutoTokenizer.register(CloudConfig, tokenizer_class=CloudTokenizerFast, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        "crystal-property",
        pipeline_class=CrystalPropertyPipeline,
        pt_model=AutoModelForSequenceClassification,
        type="text",
    )
    _registered = True


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register_auto_classes()
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "CloudConfig",
    "CloudDebyeModel",
    "CloudDebyeOutput",
    "CloudForMaskedLM",
    "CloudForPropertyClassification",
    "CloudForPropertyRegression",
    "CloudModel",
    "CloudPreTrainedModel",
    "CloudPropertyClassificationOutput",
    "CloudPropertyRegressionOutput",
    "CrystalPropertyPipeline",
    "register_auto_classes",
]
