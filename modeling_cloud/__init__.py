# Copyright 2026 the cloud-crystal developers. MIT licence.
"""CLOUD models for crystals (BERT over SCOPE strings), registered with the transformers Auto classes.

Importing this package registers:

- `AutoConfig` "cloud" -> [`CloudConfig`];
- `AutoModel` -> [`CloudModel`], `AutoModelForMaskedLM` -> [`CloudForMaskedLM`];
- `AutoModelForSequenceClassification` -> the property head a checkpoint was saved from, chosen by
  `config.architectures`: [`CloudForPropertyRegression`] (also the default, for fine-tuning a pretrained encoder),
  [`CloudForPropertyClassification`] or [`CloudDebyeModel`];
- `AutoTokenizer` for CLOUD checkpoints -> `tokenization.CloudTokenizerFast` (same distribution);
- the pipeline task "crystal-property" -> [`CrystalPropertyPipeline`].

Checkpoints carry the same mapping in `config.auto_map`, so they also load without this package through
`trust_remote_code=True`.
"""

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
]
