# Copyright 2026 the cloud-crystal developers. MIT licence.
"""CLOUD: a BERT encoder over SCOPE strings of crystals, with masked-LM, property and Debye heads.

The encoder is assembled from transformers' own BERT blocks (`BertEmbeddings`, `BertEncoder`, `BertOnlyMLMHead`) and
uses the attention-function interface (SDPA by default, `attn_implementation="eager"` available). Parameter names are
those of `BertForMaskedLM` (`bert.embeddings.*`, `bert.encoder.*`, `cls.predictions.*`), so the authors' released
checkpoint loads as it is.

This file is remote code: it is copied flat into saved checkpoints and imports only pip packages and its siblings
(`from .x import y`).
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutputWithPooling, MaskedLMOutput
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertEncoder,
    BertLayer,
    BertLMPredictionHead,
    BertOnlyMLMHead,
    BertSelfAttention,
)
from transformers.utils import ModelOutput, can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_cloud import CloudConfig
from .debye_functions import debye_thermodynamics

_PROPERTY_HEAD_AUTO_CLASS = "AutoModelForSequenceClassification"
#: The pipeline a property checkpoint declares in `config.json` (`custom_pipelines`), with its remote-code file.
PIPELINE_TASK = "crystal-property"
PIPELINE_FILE = "pipeline_crystal_property.py"
PIPELINE_REGISTRATION = {
    "impl": "pipeline_crystal_property.CrystalPropertyPipeline",
    "pt": ["AutoModelForSequenceClassification"],
    "type": "text",
}


@dataclass
class CloudPropertyRegressionOutput(ModelOutput):
    r"""
    Output of [`CloudForPropertyRegression`].

    loss (`torch.Tensor` of shape `()`, *optional*, returned when `labels` is given):
        Loss on z-scored targets (`config.loss`), averaged over the labels that are not NaN.
    predictions (`torch.Tensor` of shape `(batch_size, num_targets)`):
        Predicted properties in physical units (`config.target_units`), i.e. the head's z-scores times
        `config.target_stds` plus `config.target_means`. For an ensemble (`config.num_ensemble_members` K > 1),
        the mean of the K members' predictions.
    predictions_std (`torch.Tensor` of shape `(batch_size, num_targets)`, *optional*, returned by ensembles):
        The predictive σ in the same physical units. For a calibrated ensemble (`config.uncertainty_calibration`)
        it is hypot(a, k · spread) of the raw spread (k alone when the floor a is 0), with a and k fitted on
        held-out calibration rows so that ±σ covers about 68 % of the errors (the 95 % half-width is the same with
        `config.uncertainty_factors(name)[1]` and `config.uncertainty_floors(name)[1]`); for an ensemble that was
        not calibrated it equals `predictions_std_raw`. `None` for K = 1.
    predictions_std_raw (`torch.Tensor` of shape `(batch_size, num_targets)`, *optional*, returned by ensembles):
        Standard deviation of the K members' predictions, in the same physical units: the population form
        sqrt(mean_k (p_k - mean)^2), i.e. the spread of the ensemble's members themselves (divide by K, not K - 1).
        It measures how much the members disagree, not the error against the true value. `None` for K = 1.
    member_predictions (`torch.Tensor` of shape `(batch_size, num_members, num_targets)`, *optional*, returned by ensembles):
        Each member's predictions in physical units. `None` for K = 1.
    embeddings (`torch.Tensor` of shape `(batch_size, hidden_size)`, *optional*, returned with `return_embeddings=True`):
        Pooled crystal embedding fed to the head; for an ensemble, each member's, of shape
        `(batch_size, num_members, hidden_size)`.
    hidden_states, attentions:
        As in BERT, when `output_hidden_states` / `output_attentions` are set (single models only: `None` for an
        ensemble, whose members have one set each).
    """

    loss: torch.Tensor | None = None
    predictions: torch.Tensor | None = None
    predictions_std: torch.Tensor | None = None
    predictions_std_raw: torch.Tensor | None = None
    member_predictions: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class CloudPropertyClassificationOutput(ModelOutput):
    r"""
    Output of [`CloudForPropertyClassification`].

    loss (`torch.Tensor` of shape `()`, *optional*, returned when `labels` is given):
        Binary cross-entropy averaged over the labels that are not NaN.
    logits (`torch.Tensor` of shape `(batch_size, num_targets)`):
        One independent logit per target; `torch.sigmoid(logits)` is the probability that the property holds.
    embeddings (`torch.Tensor` of shape `(batch_size, hidden_size)`, *optional*, returned with `return_embeddings=True`):
        Pooled crystal embedding fed to the head.
    hidden_states, attentions:
        As in BERT, when `output_hidden_states` / `output_attentions` are set.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class CloudDebyeOutput(ModelOutput):
    r"""
    Output of [`CloudDebyeModel`]. Thermodynamic values are per mole of units of `n_atoms` atoms (cells, formula units,
    ...: whatever `n_atoms` counted), or per mole of atoms when `n_atoms` was not given. The class owns the units:
    `CloudDebyeOutput.unit(name, basis)` spells them, naming the basis when one is given.

    loss (`torch.Tensor` of shape `()`, *optional*, returned when labels are given):
        `config.loss` on Cv in J/(K mol) plus `config.debye_internal_energy_loss_weight` times the loss on U/T.
    theta_debye (`torch.Tensor` of shape `(batch_size,)`):
        Debye temperature θ_D in K.
    temperatures (`torch.Tensor` of shape `(batch_size, num_temperatures)`):
        Temperatures (K) of the columns below.
    heat_capacity (`torch.Tensor` of shape `(batch_size, num_temperatures)`):
        Cv in J/(K mol).
    internal_energy (`torch.Tensor` of shape `(batch_size, num_temperatures)`):
        U in J/mol, zero-point energy 9/8 n R θ_D included.
    entropy (`torch.Tensor` of shape `(batch_size, num_temperatures)`):
        Vibrational entropy S in J/(K mol).
    free_energy (`torch.Tensor` of shape `(batch_size, num_temperatures)`):
        Vibrational free energy F = U - T S in J/mol.
    theta_debye_std, heat_capacity_std, internal_energy_std, entropy_std, free_energy_std (*optional*, ensembles):
        The predictive σ of each field above, same shape and unit: for an ensemble (`config.num_ensemble_members`
        K > 1) the raw spread times the calibration factor of `config.uncertainty_calibration` (fitted on Cv and
        applied to every field), or the raw spread when the ensemble was not calibrated. `None` for K = 1.
    theta_debye_std_raw, heat_capacity_std_raw, internal_energy_std_raw, entropy_std_raw, free_energy_std_raw (*optional*, ensembles):
        The members' population standard deviation of each field. Each member's θ_D goes through the Debye
        functions (`debye_functions.py`) on its own and the spread is taken over the members' values, so the
        spread of Cv, U, S and F at each temperature is propagated exactly (not linearised) from the spread of θ_D.
        For an ensemble the fields above are the members' means (of Cv, U, ...; not the functions of the mean θ_D).
    member_theta_debye (`torch.Tensor` of shape `(batch_size, num_members)`, *optional*, ensembles):
        Each member's θ_D in K.
    embeddings (`torch.Tensor` of shape `(batch_size, hidden_size)`, *optional*, returned with `return_embeddings=True`):
        Pooled crystal embedding fed to the head; for an ensemble, each member's, `(batch_size, num_members, hidden_size)`.
    hidden_states, attentions:
        As in BERT, when `output_hidden_states` / `output_attentions` are set (single models only).
    """

    loss: torch.Tensor | None = None
    theta_debye: torch.Tensor | None = None
    temperatures: torch.Tensor | None = None
    heat_capacity: torch.Tensor | None = None
    internal_energy: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    free_energy: torch.Tensor | None = None
    theta_debye_std: torch.Tensor | None = None
    heat_capacity_std: torch.Tensor | None = None
    internal_energy_std: torch.Tensor | None = None
    entropy_std: torch.Tensor | None = None
    free_energy_std: torch.Tensor | None = None
    theta_debye_std_raw: torch.Tensor | None = None
    heat_capacity_std_raw: torch.Tensor | None = None
    internal_energy_std_raw: torch.Tensor | None = None
    entropy_std_raw: torch.Tensor | None = None
    free_energy_std_raw: torch.Tensor | None = None
    member_theta_debye: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None

    #: The temperature-dependent fields, in output order.
    THERMODYNAMIC_FIELDS: ClassVar[tuple[str, ...]] = (
        "heat_capacity",
        "internal_energy",
        "entropy",
        "free_energy",
    )
    #: The field whose calibration factor a Debye ensemble fits (Cv, the only labelled quantity) and applies to all.
    CALIBRATED_FIELD: ClassVar[str] = "heat_capacity"
    #: Units of the fields, per mole of the `n_atoms` units.
    UNITS: ClassVar[dict[str, str]] = {
        "theta_debye": "K",
        "temperatures": "K",
        "heat_capacity": "J/(K·mol)",
        "internal_energy": "J/mol",
        "entropy": "J/(K·mol)",
        "free_energy": "J/mol",
    }
    #: How a unit names its basis: "J/(K·mol)" per mole of formula units is written "J/(K·mol-fu)".
    BASIS_SUFFIXES: ClassVar[dict[str, str]] = {
        "formula_unit": "mol-fu",
        "atom": "mol-atoms",
        "cell": "mol-cells",
    }

    @classmethod
    def unit(cls, name: str, basis: str | None = None) -> str:
        """The unit of output field `name`; with `basis` ("formula_unit", "atom" or "cell") the mole names it.

        Example:

        ```python
        >>> CloudDebyeOutput.unit("heat_capacity", "formula_unit"), CloudDebyeOutput.unit("theta_debye", "atom")
        ('J/(K·mol-fu)', 'K')

        ```
        """
        unit = cls.UNITS[name]
        if basis is None or "mol" not in unit:
            return unit
        if basis not in cls.BASIS_SUFFIXES:
            raise ValueError(f"basis must be one of {tuple(cls.BASIS_SUFFIXES)}, got {basis!r}")
        return unit.replace("mol", cls.BASIS_SUFFIXES[basis])


class CloudPreTrainedModel(PreTrainedModel):
    """Weight initialisation, checkpoint layout and Auto-class wiring shared by the CLOUD models."""

    config_class = CloudConfig
    config: CloudConfig
    base_model_prefix = "bert"
    supports_gradient_checkpointing = True
    # The losses are means over observed labels; the Trainer must not pass `num_items_in_batch` into forward.
    accepts_loss_kwargs = False
    _no_split_modules = ["BertEmbeddings", "BertLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": BertLayer, "attentions": BertSelfAttention}
    # Older BERT checkpoints store the position-id buffer; heads ignore the MLM decoder of a pretrained checkpoint.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"^cls\.", r"^head\."]

    def __init__(self, config: CloudConfig, *inputs, **kwargs):
        super().__init__(config, *inputs, **kwargs)
        self._fill_auto_map()

    def _fill_auto_map(self):
        # `save_pretrained` writes only the saved class into `auto_map`; the other Auto classes must be listed so a
        # checkpoint of any CLOUD class loads through every Auto class with `trust_remote_code=True`. The property-head
        # entry points at the head this checkpoint was trained with (regression by default, for fine-tuning).
        modeling_module = type(self).__module__.split(".")[-1]
        config_module = type(self.config).__module__.split(".")[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoConfig", f"{config_module}.{type(self.config).__name__}")
        auto_map.setdefault("AutoModel", f"{modeling_module}.CloudModel")
        auto_map.setdefault("AutoModelForMaskedLM", f"{modeling_module}.CloudForMaskedLM")
        if getattr(type(self), "_auto_class", None) == _PROPERTY_HEAD_AUTO_CLASS:
            auto_map[_PROPERTY_HEAD_AUTO_CLASS] = f"{modeling_module}.{type(self).__name__}"
        else:
            auto_map.setdefault(_PROPERTY_HEAD_AUTO_CLASS, f"{modeling_module}.CloudForPropertyRegression")
        self.config.auto_map = auto_map

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; a property head (regression, classification, Debye) also writes the
        "crystal-property" pipeline: its entry in `config.json` (`custom_pipelines`) and its code file, so that
        `pipeline("crystal-property", model=folder, trust_remote_code=True)` works from the folder alone.

        Example:

        ```python
        >>> import json, tempfile
        >>> from modeling_cloud import CloudConfig, CloudDebyeModel
        >>> folder = tempfile.mkdtemp()
        >>> config = CloudConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
        >>> CloudDebyeModel(config).save_pretrained(folder)
        >>> json.load(open(f"{folder}/config.json"))["custom_pipelines"]["crystal-property"]["impl"]
        'pipeline_crystal_property.CrystalPropertyPipeline'

        ```
        """
        pipeline_code = Path(__file__).with_name(PIPELINE_FILE)
        if getattr(type(self), "_auto_class", None) == _PROPERTY_HEAD_AUTO_CLASS and pipeline_code.is_file():
            pipelines = dict(getattr(self.config, "custom_pipelines", None) or {})
            pipelines[PIPELINE_TASK] = dict(PIPELINE_REGISTRATION)
            self.config.custom_pipelines = pipelines
            # Copied first, so that a `push_to_hub=True` save uploads it too. Its sibling imports are this file's.
            os.makedirs(save_directory, exist_ok=True)
            target = Path(save_directory) / PIPELINE_FILE
            if not (target.exists() and target.samefile(pipeline_code)):
                shutil.copyfile(pipeline_code, target)
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module):
        """Initialise the weights (BERT scheme: normal(0, initializer_range), zero biases, unit LayerNorms)."""
        super()._init_weights(module)
        if isinstance(module, BertLMPredictionHead):
            init.zeros_(module.bias)
        elif isinstance(module, BertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)


class CloudModel(CloudPreTrainedModel):
    """
    Bare CLOUD encoder: BERT embeddings and layers, returning the last hidden states and a pooled crystal embedding.

    The pooled embedding (`pooler_output`) is the final `[CLS]` hidden state (`config.pooling="cls"`, the authors'
    choice) or the mean over attended tokens (`"mean"`). There is no BERT pooler layer.

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud import CloudConfig, CloudModel
    >>> config = CloudConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    >>> model = CloudModel(config).eval()
    >>> input_ids = torch.tensor([[0, 7, 10, 40, 6, 66, 2, 1]])  # [CLS] ... [SEP] [PAD]
    >>> out = model(input_ids, attention_mask=(input_ids != 1).long())
    >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)
    ((1, 8, 32), (1, 32))

    ```
    """

    def __init__(self, config: CloudConfig):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def pool(self, last_hidden_state: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Crystal embedding of shape (batch, hidden) according to `config.pooling`."""
        if self.config.pooling == "cls":
            return last_hidden_state[:, 0]
        if attention_mask is None:
            return last_hidden_state.mean(dim=1)
        weights = attention_mask.to(last_hidden_state.dtype).unsqueeze(-1)
        return (last_hidden_state * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    @capture_outputs
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Token ids of SCOPE strings from the CLOUD tokenizer (at most `config.max_position_embeddings` long).
        attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 for real tokens, 0 for padding. Pass it whenever the batch is padded.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("CloudModel.forward needs exactly one of input_ids or inputs_embeds")
        sequence_length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if sequence_length > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {sequence_length} tokens is longer than the model's "
                f"max_position_embeddings={self.config.max_position_embeddings}"
            )
        embedding_output = self.embeddings(
            input_ids=input_ids,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
        )
        encoder_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=embedding_output, attention_mask=attention_mask
        )
        encoder_outputs = self.encoder(embedding_output, attention_mask=encoder_mask, **kwargs)
        last_hidden_state = encoder_outputs.last_hidden_state
        return BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=self.pool(last_hidden_state, attention_mask),
        )


class CloudForMaskedLM(CloudPreTrainedModel):
    """
    CLOUD with the BERT masked-language-modelling head, decoder tied to the input embeddings.

    Same module tree and parameter names as `BertForMaskedLM`, so the authors' pretrained checkpoint loads directly
    (see `convert_bert_checkpoint.py`).

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud import CloudConfig, CloudForMaskedLM
    >>> config = CloudConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    >>> model = CloudForMaskedLM(config).eval()
    >>> input_ids = torch.tensor([[0, 7, 4, 40, 6, 66, 2]])  # 4 = [MASK]
    >>> labels = torch.full_like(input_ids, -100)
    >>> labels[0, 2] = 10
    >>> out = model(input_ids, labels=labels)
    >>> tuple(out.logits.shape), bool(out.loss > 0)
    ((1, 7, 642), True)
    >>> model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    True

    ```
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"^head\."]

    def __init__(self, config: CloudConfig):
        super().__init__(config)
        self.bert = CloudModel(config)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Token ids to predict at masked positions; -100 elsewhere (ignored).
        """
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        if labels is not None and self.config.sparse_prediction and self.training:
            # Only the labelled positions enter the loss, so only they need the transform and the decoder. Training
            # only: evaluation keeps per-position logits for metrics such as masked-token accuracy.
            labels = labels.to(hidden.device).reshape(-1)
            labelled = labels != -100
            hidden, labels = hidden.reshape(-1, hidden.shape[-1])[labelled], labels[labelled]
        logits = self.cls(hidden)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.view(-1, self.config.vocab_size), labels.to(logits.device).view(-1), ignore_index=-100
            )
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class CloudPropertyHead(nn.Module):
    """The authors' fine-tuning head: Dropout, then k x (Linear H->H + SiLU), then Linear H->num_outputs."""

    def __init__(self, config: CloudConfig, num_outputs: int):
        super().__init__()
        self.dropout = nn.Dropout(config.head_dropout)
        self.hidden_layers = nn.ModuleList(
            [nn.Linear(config.hidden_size, config.hidden_size) for _ in range(config.head_num_layers)]
        )
        self.activation = nn.SiLU()
        self.out_proj = nn.Linear(config.hidden_size, num_outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(pooled)
        for layer in self.hidden_layers:
            hidden = self.activation(layer(hidden))
        return self.out_proj(hidden)


def _elementwise_loss(
    kind: str, prediction: torch.Tensor, target: torch.Tensor, huber_delta: float
) -> torch.Tensor:
    if kind == "l1":
        return nn.functional.l1_loss(prediction, target, reduction="none")
    if kind == "mse":
        return nn.functional.mse_loss(prediction, target, reduction="none")
    if kind == "huber":
        return nn.functional.huber_loss(prediction, target, reduction="none", delta=huber_delta)
    raise ValueError(f"unknown loss {kind!r}; expected 'l1', 'mse' or 'huber'")


def _masked_mean(values: torch.Tensor, observed: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    # Mean over observed entries. With nothing observed, return a zero that is still connected to the graph so
    # that distributed training sees a gradient for every parameter.
    if bool(observed.any()):
        return values[observed].mean()
    return anchor.sum() * 0.0


def _refuse_ensemble(model: nn.Module, config: CloudConfig) -> None:
    if config.num_ensemble_members != 1:
        raise ValueError(
            f"{type(model).__name__} is a single model; num_ensemble_members={config.num_ensemble_members} is for "
            "CloudForPropertyRegression and CloudDebyeModel only"
        )


def _labels_2d(labels: torch.Tensor, batch_size: int, width: int, name: str) -> torch.Tensor:
    if labels.dim() == 1 and width == 1:
        labels = labels.unsqueeze(-1)
    if labels.shape != (batch_size, width):
        raise ValueError(f"{name} must have shape ({batch_size}, {width}), got {tuple(labels.shape)}")
    return labels


#: Config entries that may differ between the members of an ensemble (bookkeeping, not the model).
_MEMBER_FREE_CONFIG_KEYS = (
    "_name_or_path",
    "transformers_version",
    "auto_map",
    "custom_pipelines",
    "uncertainty_calibration",
)


class CloudRegressionMember(nn.Module):
    """One member of an ensemble ([`CloudForPropertyRegression`], [`CloudDebyeModel`]): its own encoder and head
    (`num_outputs` outputs; default `config.num_targets`)."""

    def __init__(self, config: CloudConfig, num_outputs: int | None = None):
        super().__init__()
        self.bert = CloudModel(config)
        self.head = CloudPropertyHead(config, config.num_targets if num_outputs is None else num_outputs)


def _assemble_ensemble(cls, members: list) -> CloudPreTrainedModel:
    """An ensemble of `cls` from single (K = 1) models of `cls` with the same config (see `from_members`)."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
    reference = members[0].config.to_dict()
    for index, member in enumerate(members):
        if member.config.num_ensemble_members != 1:
            raise ValueError(f"member {index} is itself an ensemble; give single models")
        differing = sorted(
            key
            for key, value in member.config.to_dict().items()
            if key not in _MEMBER_FREE_CONFIG_KEYS and reference.get(key) != value
        )
        if differing:
            raise ValueError(f"member {index} differs from member 0 in its config: {differing}")
    config = copy.deepcopy(members[0].config)
    config.num_ensemble_members = len(members)
    config.uncertainty_calibration = None  # fitted for the ensemble, later (training.uncertainty)
    ensemble = cls(config)
    for slot, member in zip(ensemble.members, members, strict=True):
        slot.bert.load_state_dict(member.bert.state_dict())
        slot.head.load_state_dict(member.head.state_dict())
    return ensemble.to(device=members[0].device, dtype=members[0].dtype)


def _calibrated_std(config: CloudConfig, name: str, spread: torch.Tensor) -> torch.Tensor:
    """σ of property `name` from the members' raw spread: hypot(a, k · spread) when calibrated (a = 0 for one
    factor, see `CloudConfig.uncertainty_calibration`), else the spread."""
    factors = config.uncertainty_factors(name)
    if factors is None:
        return spread
    floor = config.uncertainty_floors(name)[0]
    return (
        spread * factors[0]
        if floor == 0
        else torch.hypot(torch.full_like(spread, floor), spread * factors[0])
    )


class CloudForPropertyRegression(CloudPreTrainedModel):
    """
    CLOUD with the authors' regression head on the pooled embedding, for one or more properties.

    The head predicts z-scores; the model returns `predictions` in physical units using `config.target_means` and
    `config.target_stds`, and z-scores the labels with the same statistics, so the loss (`config.loss`, L1 by
    default) is computed on z-scores as the authors did. NaN labels are left out of the loss, so targets with
    missing values can be trained together.

    With `config.num_ensemble_members` K > 1 the model is a seed ensemble: K members (`members[i].bert`,
    `members[i].head`, built with [`~CloudForPropertyRegression.from_members`] or by `cloud-crystal finetune
    --ensemble K`) each predict, and the output carries their mean (`predictions`), their population standard
    deviation (`predictions_std_raw`), the calibrated σ (`predictions_std`: the spread times the factor fitted on
    held-out rows and stored in `config.uncertainty_calibration`, or the spread itself when not calibrated) and each
    member's values (`member_predictions`), all in physical units.

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud import CloudConfig, CloudForPropertyRegression
    >>> config = CloudConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    ...                      target_names=["band_gap", "e_form"], target_units=["eV", "eV/atom"],
    ...                      target_means=[1.0, -1.5], target_stds=[1.2, 0.9])
    >>> model = CloudForPropertyRegression(config).eval()
    >>> input_ids = torch.tensor([[0, 7, 10, 40, 6, 66, 2], [0, 7, 8, 40, 6, 66, 2]])
    >>> labels = torch.tensor([[0.5, float("nan")], [2.0, -1.0]])  # NaN = not measured
    >>> out = model(input_ids, labels=labels)
    >>> tuple(out.predictions.shape), bool(torch.isfinite(out.loss))
    ((2, 2), True)

    ```
    """

    def __init__(self, config: CloudConfig):
        super().__init__(config)
        if config.num_ensemble_members == 1:
            self.bert = CloudModel(config)
            self.head = CloudPropertyHead(config, config.num_targets)
        else:
            self.members = nn.ModuleList(
                [CloudRegressionMember(config) for _ in range(config.num_ensemble_members)]
            )
        self.post_init()

    @property
    def is_ensemble(self) -> bool:
        """Whether this model holds several members (`config.num_ensemble_members` > 1)."""
        return self.config.num_ensemble_members > 1

    @classmethod
    def from_members(cls, members: list[CloudForPropertyRegression]) -> CloudForPropertyRegression:
        """An ensemble of single (K = 1) regression models with the same config, targets and target statistics.

        The ensemble's config is the first member's with `num_ensemble_members=len(members)`; every member's encoder
        and head weights are copied unchanged, so member i of the ensemble predicts exactly what `members[i]` does.

        Example:

        ```python
        >>> import torch
        >>> from modeling_cloud import CloudConfig, CloudForPropertyRegression
        >>> config = CloudConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
        >>> members = [CloudForPropertyRegression(config).eval() for _ in range(3)]
        >>> ensemble = CloudForPropertyRegression.from_members(members).eval()
        >>> input_ids = torch.tensor([[0, 7, 10, 40, 6, 66, 2]])
        >>> out = ensemble(input_ids)
        >>> mean = torch.stack([m(input_ids).predictions for m in members]).mean(0)
        >>> tuple(out.predictions_std.shape), torch.allclose(out.predictions, mean)
        ((1, 1), True)

        ```
        """
        return _assemble_ensemble(cls, members)

    def _target_stats(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Read from the config at every call, so statistics set after construction are honoured.
        means = torch.tensor(self.config.target_means, dtype=reference.dtype, device=reference.device)
        stds = torch.tensor(self.config.target_stds, dtype=reference.dtype, device=reference.device)
        return means, stds

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_embeddings: bool = False,
        **kwargs,
    ) -> CloudPropertyRegressionOutput:
        r"""
        labels (`torch.FloatTensor` of shape `(batch_size, num_targets)` or `(batch_size,)` for one target, *optional*):
            Targets in physical units (not z-scored); NaN marks a missing value.
        return_embeddings (`bool`, defaults to `False`):
            Also return the pooled crystal embedding.
        """
        encoder_inputs = dict(
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        if self.is_ensemble:
            return self._ensemble_forward(input_ids, encoder_inputs, labels, return_embeddings)
        outputs = self.bert(input_ids, **encoder_inputs)
        z_predictions = self.head(outputs.pooler_output)
        means, stds = self._target_stats(z_predictions)
        predictions = z_predictions * stds + means

        return CloudPropertyRegressionOutput(
            loss=self._loss(z_predictions, labels, means, stds),
            predictions=predictions,
            embeddings=outputs.pooler_output if return_embeddings else None,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _loss(
        self,
        z_predictions: torch.Tensor,
        labels: torch.Tensor | None,
        means: torch.Tensor,
        stds: torch.Tensor,
    ) -> torch.Tensor | None:
        """`config.loss` on z-scores, averaged over the labels that are not NaN. `z_predictions` is
        `(batch, num_targets)`, or `(batch, num_members, num_targets)` for an ensemble: each member is scored against
        the same labels, so the loss is the mean of the members' losses and the members train independently."""
        if labels is None:
            return None
        labels = _labels_2d(
            labels.to(device=z_predictions.device, dtype=z_predictions.dtype),
            z_predictions.shape[0],
            self.config.num_targets,
            "labels",
        )
        if z_predictions.dim() == 3:
            labels = labels.unsqueeze(1).expand_as(z_predictions)
        observed = ~torch.isnan(labels)
        z_labels = torch.where(observed, (labels - means) / stds, torch.zeros_like(labels))
        elementwise = _elementwise_loss(self.config.loss, z_predictions, z_labels, self.config.huber_delta)
        return _masked_mean(elementwise, observed, z_predictions)

    def _ensemble_forward(
        self, input_ids, encoder_inputs: dict, labels, return_embeddings: bool
    ) -> CloudPropertyRegressionOutput:
        pooled = [member.bert(input_ids, **encoder_inputs).pooler_output for member in self.members]
        z_predictions = torch.stack(
            [member.head(embedding) for member, embedding in zip(self.members, pooled, strict=True)], dim=1
        )  # (batch, num_members, num_targets)
        means, stds = self._target_stats(z_predictions)
        member_predictions = z_predictions * stds + means
        spread = member_predictions.std(dim=1, correction=0)
        calibrated = torch.stack(
            [
                _calibrated_std(self.config, name, spread[:, index])
                for index, name in enumerate(self.config.target_names)
            ],
            dim=-1,
        )
        return CloudPropertyRegressionOutput(
            loss=self._loss(z_predictions, labels, means, stds),
            predictions=member_predictions.mean(dim=1),
            predictions_std=calibrated,
            predictions_std_raw=spread,
            member_predictions=member_predictions,
            embeddings=torch.stack(pooled, dim=1) if return_embeddings else None,
        )


class CloudForPropertyClassification(CloudPreTrainedModel):
    """
    CLOUD with the authors' head for binary or multi-label properties (e.g. is-metal), one logit per target.

    The loss is binary cross-entropy with logits, averaged over labels that are not NaN.

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud import CloudConfig, CloudForPropertyClassification
    >>> config = CloudConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    ...                      target_names=["is_metal"])
    >>> model = CloudForPropertyClassification(config).eval()
    >>> out = model(torch.tensor([[0, 7, 10, 40, 6, 66, 2]]), labels=torch.tensor([1.0]))
    >>> tuple(out.logits.shape), bool(out.loss > 0)
    ((1, 1), True)

    ```
    """

    def __init__(self, config: CloudConfig):
        super().__init__(config)
        _refuse_ensemble(self, config)
        self.bert = CloudModel(config)
        self.head = CloudPropertyHead(config, config.num_targets)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_embeddings: bool = False,
        **kwargs,
    ) -> CloudPropertyClassificationOutput:
        r"""
        labels (`torch.Tensor` of shape `(batch_size, num_targets)` or `(batch_size,)` for one target, *optional*):
            0/1 (or probabilities) per target; NaN marks a missing value.
        return_embeddings (`bool`, defaults to `False`):
            Also return the pooled crystal embedding.
        """
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.head(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = _labels_2d(
                labels.to(device=logits.device, dtype=logits.dtype),
                logits.shape[0],
                self.config.num_targets,
                "labels",
            )
            observed = ~torch.isnan(labels)
            if bool(((labels[observed] < 0) | (labels[observed] > 1)).any()):
                raise ValueError("classification labels must be in [0, 1] (or NaN for missing)")
            targets = torch.where(observed, labels, torch.zeros_like(labels))
            elementwise = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            loss = _masked_mean(elementwise, observed, logits)

        return CloudPropertyClassificationOutput(
            loss=loss,
            logits=logits,
            embeddings=outputs.pooler_output if return_embeddings else None,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class CloudDebyeModel(CloudPreTrainedModel):
    """
    CLOUD-DEBYE: predicts the Debye temperature θ_D of a crystal and, from it, Cv, U, S and F at any temperature.

    The head (the same Dropout / k x (Linear + SiLU) / Linear as the property heads, k = 3 in the paper) outputs s,
    mapped to θ_D by `config.debye_theta_head`: `"softplus"` (default, positive by construction) or `"affine"`
    (θ_D = 1200 s + 1500 K, the authors' form). Because only θ_D is learned, every prediction obeys Cv = dU/dT, the
    3nR high-temperature limit and the T^3 law.

    With `config.num_ensemble_members` K > 1 the model is a seed ensemble (`members[i].bert`, `members[i].head`,
    built with [`~CloudDebyeModel.from_members`] or `cloud-crystal train-debye --ensemble K`): each member's θ_D goes
    through the Debye functions on its own; the output holds the members' means, their spread (`*_std_raw`) and the
    calibrated σ (`*_std`) of θ_D and of Cv, U, S and F at every temperature. The loss is the mean of the members'
    losses, so the members train independently.

    Label contract (all optional, NaN = missing, any number of temperatures):

    - `labels`: heat capacity Cv in J/(K mol of cells), shape `(batch, n_label_temperatures)` (or `(batch,)` for one);
    - `internal_energy_labels`: U in J/mol of cells (zero-point energy included), same shape;
    - `label_temperatures`: the temperatures of the label columns, `(n,)` shared or `(batch, n)`; defaults to
      `temperatures`.

    The loss is `config.loss` (L1 by default) on Cv plus `config.debye_internal_energy_loss_weight` times the loss on
    U/T, both in J/(K mol). With `n_atoms=None` all values, labels included, are per mole of atoms.

    With the `Trainer`, set `TrainingArguments(label_names=["labels"])` (add `"internal_energy_labels"` when used):
    the Trainer otherwise treats every forward argument whose name contains "label" as a required label.

    Example:

    ```python
    >>> import torch
    >>> from modeling_cloud import CloudConfig, CloudDebyeModel
    >>> config = CloudConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    ...                      head_num_layers=3)
    >>> model = CloudDebyeModel(config).eval()
    >>> input_ids = torch.tensor([[0, 7, 10, 40, 6, 66, 2], [0, 7, 8, 40, 6, 66, 2]])
    >>> out = model(input_ids, n_atoms=torch.tensor([2, 8]), temperatures=torch.tensor([100.0, 300.0]),
    ...             labels=torch.tensor([[30.0, 48.0], [150.0, float("nan")]]))
    >>> tuple(out.theta_debye.shape), tuple(out.heat_capacity.shape), bool(out.loss > 0)
    ((2,), (2, 2), True)

    ```
    """

    def __init__(self, config: CloudConfig):
        super().__init__(config)
        if config.num_ensemble_members == 1:
            self.bert = CloudModel(config)
            self.head = CloudPropertyHead(config, 1)
        else:
            self.members = nn.ModuleList(
                [CloudRegressionMember(config, 1) for _ in range(config.num_ensemble_members)]
            )
        self.post_init()

    @property
    def is_ensemble(self) -> bool:
        """Whether this model holds several members (`config.num_ensemble_members` > 1)."""
        return self.config.num_ensemble_members > 1

    @classmethod
    def from_members(cls, members: list[CloudDebyeModel]) -> CloudDebyeModel:
        """An ensemble of single (K = 1) Debye models with the same config; member i of the ensemble predicts
        exactly the θ_D of `members[i]`.

        Example:

        ```python
        >>> import torch
        >>> from modeling_cloud import CloudConfig, CloudDebyeModel
        >>> config = CloudConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
        >>> members = [CloudDebyeModel(config).eval() for _ in range(3)]
        >>> ensemble = CloudDebyeModel.from_members(members).eval()
        >>> out = ensemble(torch.tensor([[0, 7, 10, 40, 6, 66, 2]]), temperatures=torch.tensor([100.0, 300.0]))
        >>> thetas = torch.stack([m(torch.tensor([[0, 7, 10, 40, 6, 66, 2]])).theta_debye for m in members], 1)
        >>> torch.allclose(out.member_theta_debye, thetas), tuple(out.heat_capacity_std_raw.shape)
        (True, (1, 2))

        ```
        """
        return _assemble_ensemble(cls, members)

    def theta_from_head(self, head_output: torch.Tensor) -> torch.Tensor:
        """Map the raw head output s (shape (batch,)) to θ_D in K according to `config.debye_theta_head`."""
        affine = self.config.debye_theta_scale * head_output + self.config.debye_theta_shift
        if self.config.debye_theta_head == "affine":
            return affine
        width, floor = self.config.debye_softplus_width, self.config.debye_theta_min
        return floor + width * nn.functional.softplus((affine - floor) / width)

    def _temperature_grid(
        self, temperatures, batch_size: int, reference: torch.Tensor, name: str
    ) -> torch.Tensor:
        grid = torch.as_tensor(temperatures, dtype=reference.dtype, device=reference.device)
        if grid.dim() == 0:
            grid = grid.reshape(1)
        if grid.dim() == 1:
            grid = grid.unsqueeze(0).expand(batch_size, -1)
        if grid.dim() != 2 or grid.shape[0] != batch_size:
            raise ValueError(f"{name} must have shape (n,) or ({batch_size}, n), got {tuple(grid.shape)}")
        return grid

    def thermodynamics(self, theta: torch.Tensor, temperatures: torch.Tensor, n_atoms: torch.Tensor | None):
        """Debye thermodynamics for θ_D of shape (batch,) at temperatures (batch, n) with the config's quadrature."""
        return debye_thermodynamics(
            theta.unsqueeze(-1),
            temperatures,
            None if n_atoms is None else n_atoms.unsqueeze(-1),
            num_nodes=self.config.debye_quadrature_nodes,
            cutoff=self.config.debye_integration_cutoff,
        )

    def _label_loss(
        self,
        name: str,
        labels: torch.Tensor,
        predicted: torch.Tensor,
        scale: torch.Tensor | None,
        anchor: torch.Tensor,
    ) -> torch.Tensor:
        """`config.loss` between `predicted` and `labels` (both `(batch_size, n)`, divided by `scale` when given),
        averaged over the labels that are not NaN; `name` names the labels in shape errors."""
        labels = _labels_2d(
            labels.to(device=anchor.device, dtype=anchor.dtype), predicted.shape[0], predicted.shape[1], name
        )
        observed = ~torch.isnan(labels)
        target = torch.where(observed, labels, torch.zeros_like(labels))
        if scale is not None:
            predicted, target = predicted / scale, target / scale
        elementwise = _elementwise_loss(self.config.loss, predicted, target, self.config.huber_delta)
        return _masked_mean(elementwise, observed, anchor)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        n_atoms: torch.Tensor | None = None,
        temperatures: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        internal_energy_labels: torch.Tensor | None = None,
        label_temperatures: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        return_embeddings: bool = False,
        **kwargs,
    ) -> CloudDebyeOutput:
        r"""
        n_atoms (`torch.Tensor` of shape `(batch_size,)`, *optional*):
            Atoms per cell; outputs and labels are then per mole of cells. `None`: per mole of atoms.
        temperatures (`torch.Tensor` of shape `(n,)` or `(batch_size, n)`, *optional*):
            Output temperatures in K, shared or per structure. Defaults to `config.debye_temperatures` ([300.0]).
        labels (`torch.Tensor` of shape `(batch_size, n)`, *optional*):
            Heat capacity Cv in J/(K mol) at `label_temperatures`; NaN = missing.
        internal_energy_labels (`torch.Tensor` of shape `(batch_size, n)`, *optional*):
            Internal energy U in J/mol (zero-point energy included) at `label_temperatures`; NaN = missing.
        label_temperatures (`torch.Tensor` of shape `(n,)` or `(batch_size, n)`, *optional*):
            Temperatures of the label columns; defaults to `temperatures`.
        return_embeddings (`bool`, defaults to `False`):
            Also return the pooled crystal embedding.
        """
        encoder_inputs = dict(
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        label_inputs = (labels, internal_energy_labels, label_temperatures)
        if self.is_ensemble:
            return self._ensemble_forward(
                input_ids, encoder_inputs, n_atoms, temperatures, label_inputs, return_embeddings
            )
        outputs = self.bert(input_ids, **encoder_inputs)
        theta, grid, thermo, loss = self._member_forward(
            self.head, outputs.pooler_output, n_atoms, temperatures, label_inputs
        )
        return CloudDebyeOutput(
            loss=loss,
            theta_debye=theta,
            temperatures=grid,
            heat_capacity=thermo.heat_capacity,
            internal_energy=thermo.internal_energy,
            entropy=thermo.entropy,
            free_energy=thermo.free_energy,
            embeddings=outputs.pooler_output if return_embeddings else None,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _ensemble_forward(
        self, input_ids, encoder_inputs: dict, n_atoms, temperatures, label_inputs, return_embeddings: bool
    ) -> CloudDebyeOutput:
        pooled, thetas, thermos, losses = [], [], [], []
        grid = None
        for member in self.members:
            embedding = member.bert(input_ids, **encoder_inputs).pooler_output
            theta, grid, thermo, loss = self._member_forward(
                member.head, embedding, n_atoms, temperatures, label_inputs
            )
            pooled.append(embedding)
            thetas.append(theta)
            thermos.append(thermo)
            losses.append(loss)
        fields = {"theta_debye": torch.stack(thetas, dim=1)}  # (batch, num_members)
        for name in CloudDebyeOutput.THERMODYNAMIC_FIELDS:  # (batch, num_members, num_temperatures)
            fields[name] = torch.stack([getattr(thermo, name) for thermo in thermos], dim=1)
        values = {}
        for name, members in fields.items():
            spread = members.std(dim=1, correction=0)
            values[name] = members.mean(dim=1)
            values[f"{name}_std_raw"] = spread
            values[f"{name}_std"] = _calibrated_std(self.config, CloudDebyeOutput.CALIBRATED_FIELD, spread)
        return CloudDebyeOutput(
            loss=None if losses[0] is None else torch.stack(losses).mean(),
            temperatures=grid,
            member_theta_debye=fields["theta_debye"],
            embeddings=torch.stack(pooled, dim=1) if return_embeddings else None,
            **values,
        )

    def _member_forward(self, head, pooled, n_atoms, temperatures, label_inputs):
        """θ_D (batch,), the temperature grid (batch, n), the thermodynamics on it and the loss (or `None`) of one
        encoder's pooled embedding through `head`."""
        labels, internal_energy_labels, label_temperatures = label_inputs
        theta = self.theta_from_head(head(pooled).squeeze(-1))
        batch_size = theta.shape[0]
        if n_atoms is not None:
            n_atoms = torch.as_tensor(n_atoms, dtype=theta.dtype, device=theta.device).reshape(-1)
            if n_atoms.shape[0] != batch_size:
                raise ValueError(f"n_atoms must have shape ({batch_size},), got {tuple(n_atoms.shape)}")
        if temperatures is None:
            temperatures = self.config.debye_temperatures
        grid = self._temperature_grid(temperatures, batch_size, theta, "temperatures")
        thermo = self.thermodynamics(theta, grid, n_atoms)

        loss = None
        if labels is not None or internal_energy_labels is not None:
            if label_temperatures is None:
                label_grid, label_thermo = grid, thermo
            else:
                label_grid = self._temperature_grid(
                    label_temperatures, batch_size, theta, "label_temperatures"
                )
                label_thermo = self.thermodynamics(theta, label_grid, n_atoms)
            loss = theta.sum() * 0.0
            # U/T is in J/(K mol), like Cv, so the two terms have comparable scales.
            for name, target, weight, predicted, scale in (
                ("labels", labels, 1.0, label_thermo.heat_capacity, None),
                (
                    "internal_energy_labels",
                    internal_energy_labels,
                    self.config.debye_internal_energy_loss_weight,
                    label_thermo.internal_energy,
                    label_grid,
                ),
            ):
                if target is not None:
                    loss = loss + weight * self._label_loss(name, target, predicted, scale, theta)
        return theta, grid, thermo, loss


CloudModel.register_for_auto_class("AutoModel")
CloudForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
CloudForPropertyRegression.register_for_auto_class(_PROPERTY_HEAD_AUTO_CLASS)
CloudForPropertyClassification.register_for_auto_class(_PROPERTY_HEAD_AUTO_CLASS)
CloudDebyeModel.register_for_auto_class(_PROPERTY_HEAD_AUTO_CLASS)

__all__ = [
    "CloudDebyeModel",
    "CloudDebyeOutput",
    "CloudForMaskedLM",
    "CloudForPropertyClassification",
    "CloudForPropertyRegression",
    "CloudModel",
    "CloudPreTrainedModel",
    "CloudPropertyClassificationOutput",
    "CloudPropertyHead",
    "CloudPropertyRegressionOutput",
]
