# Copyright 2026 the cloud-crystal developers. MIT licence.
"""Configuration of CLOUD, a BERT-style encoder over SCOPE strings of crystals (Xu, Zhu & Viswanathan, arXiv 2506.17345).

This file is remote code: it is copied flat into every saved checkpoint, so it imports only pip packages and its
sibling `scope_defaults.py` (the defaults it shares with the tokenizer).
"""

from __future__ import annotations

import math

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .scope_defaults import DEFAULT_MAX_LENGTH, DEFAULT_SCOPE_VERSION, VOCAB_SIZES

_POOLINGS = ("cls", "mean")
_LOSSES = ("l1", "mse", "huber")
_THETA_HEADS = ("softplus", "affine")
_CALIBRATION_METHODS = ("gaussian_nll", "quantile")


@strict
class CloudConfig(PreTrainedConfig):
    r"""
    Configuration of the CLOUD model family: [`CloudModel`], [`CloudForMaskedLM`], [`CloudForPropertyRegression`],
    [`CloudForPropertyClassification`] and [`CloudDebyeModel`].

    The encoder arguments are those of BERT, so the authors' `BertForMaskedLM` checkpoint (12 layers, hidden 768,
    64 positions, `type_vocab_size` 1, `vocab_size` 30522 and `pad_token_id` 0) loads with the same names. The
    defaults describe a fresh CLOUD model that fits a bare `CloudTokenizerFast()`: SCOPE v2
    (`scope_defaults.DEFAULT_SCOPE_VERSION`), its 642 token ids, 64 positions and `[PAD]` id 1.

    Args:
        vocab_size (`int`, defaults to 642):
            Number of token ids: 642 for SCOPE v2, 564 for v1. The authors' checkpoint keeps BERT's 30522 although
            only 564 ids are used.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act, hidden_dropout_prob,
        attention_probs_dropout_prob, max_position_embeddings, type_vocab_size, initializer_range, layer_norm_eps:
            BERT encoder sizes (defaults: BERT-base with 64 positions, the CLOUD setting).
        pad_token_id (`int`, defaults to 1):
            Id whose input embedding is kept at zero. 1 is `[PAD]` in both SCOPE versions; the authors' checkpoint
            uses 0.
        tie_word_embeddings (`bool`, defaults to `True`):
            Tie the MLM decoder to the input embeddings (transformers 5 no longer defaults this).
        sparse_prediction (`bool`, defaults to `False`):
            Masked-LM training only: in training mode with labels, apply the MLM head to the labelled (masked)
            positions alone and return their logits flattened to `(num_labelled, vocab_size)`, as
            `ModernBertForMaskedLM` does. The loss is the same; the head's work drops to the ~15 % of positions that
            are masked. In eval mode or without labels the logits keep their `(batch, sequence, vocab)` shape.
        pooling (`str`, defaults to `"cls"`):
            Crystal embedding used by the heads: `"cls"` (final `[CLS]` hidden state, the authors' choice; not the BERT
            pooler) or `"mean"` (mean over attended tokens).
        head_num_layers (`int`, defaults to 1):
            Depth k of the property head: Dropout, then k x (Linear H->H + SiLU), then Linear -> outputs. The authors
            use k = 1 for MatBench and k = 3 for Debye and Materials Project tasks.
        head_dropout (`float`, defaults to 0.1):
            Dropout applied to the pooled embedding before the head.
        target_names, target_units (`list[str]`):
            One entry per predicted property (regression and classification heads).
        target_means, target_stds (`list[float]`, *optional*):
            z-score statistics of the regression targets. The head predicts z-scores and the model converts them to
            physical units with these values; labels are z-scored inside the model. Defaults: 0 and 1.
        loss (`str`, defaults to `"l1"`):
            Regression and Debye loss: `"l1"` (authors), `"mse"` or `"huber"`.
        huber_delta (`float`, defaults to 1.0):
            Huber threshold, in z-score units for regression and in J/(K mol) for Debye.
        num_ensemble_members (`int`, defaults to 1):
            [`CloudForPropertyRegression`] and [`CloudDebyeModel`]: number K of independently trained members
            (encoder + head each, e.g. `cloud-crystal finetune --ensemble K` or `train-debye --ensemble K`, one seed
            per member) held in one checkpoint. K > 1 returns the members' mean and their spread (`*_std_raw`,
            `*_std`). 1 is a single model, with the parameter names of earlier checkpoints (`bert.*`, `head.*`);
            K > 1 stores `members.<i>.bert.*` and `members.<i>.head.*`. The classification head accepts only 1.
        uncertainty_calibration (`dict`, *optional*):
            How an ensemble's raw spread becomes a calibrated σ, fitted on calibration rows held out from the
            members' training and early-stopping validation rows (`modeling_cloud.training.uncertainty`). Keys:
            `"method"` (`"gaussian_nll"`: the maximum-likelihood Gaussian with σ = k · spread, or
            σ² = a² + (k · spread)² when the floor a is worth its parameter; `"quantile"`: split-conformal
            quantiles of |error| / σ of that Gaussian, used when it cannot cover both ±1σ and ±2σ),
            `"std_factors"` and `"std_floors"` (property name -> k and a: σ = hypot(a, k · spread), the half-width
            of the 68.27 % interval; a missing floor is 0) and `"interval_95_factors"` and `"interval_95_floors"`
            (the half-width of the 95.45 % ("±2σ") interval, the same way; 2k and 2a for the Gaussian method),
            plus bookkeeping (`"calibration_rows"`, the coverage reached on them). A Debye ensemble is calibrated
            on Cv (`"heat_capacity"`) with a factor only, which scales the spread of θ_D and of every
            thermodynamic quantity (all are propagated from the members' θ_D, so to first order their spreads
            scale together; a floor in Cv's unit would not carry over). `None`: not calibrated, σ is the raw
            spread.
        debye_theta_head (`str`, defaults to `"softplus"`):
            How the Debye head output s becomes θ_D. `"affine"`: θ_D = a = scale * s + shift, the authors' form (can
            be negative). `"softplus"`: θ_D = m + w * softplus((a - m) / w), always above m and equal to the affine
            form to within w * exp(-(a - m) / w), i.e. indistinguishable once θ_D is a few w above m.
        debye_theta_scale, debye_theta_shift (`float`, defaults to 1200.0 and 1500.0):
            The authors' affine map, in kelvin.
        debye_softplus_width (`float`, defaults to 50.0):
            Width w of the softplus transition, in kelvin.
        debye_theta_min (`float`, defaults to 1.0):
            Floor m of the softplus form, in kelvin.
        debye_quadrature_nodes (`int`, defaults to 32):
            Gauss-Legendre nodes of the Debye integrals.
        debye_integration_cutoff (`float`, *optional*, defaults to 50.0):
            Upper limit on x = θ_D/T of the numerical integral. Beyond it the integrands are below 1e-15 of their
            peak, so the integral equals its limit; `None` integrates on [0, x_D] as the authors did (inaccurate
            with few nodes at large x_D).
        debye_temperatures (`list[float]`, defaults to `[300.0]`):
            Temperatures (K) used when `CloudDebyeModel.forward` gets none; the authors train at 300 K.
        debye_internal_energy_loss_weight (`float`, defaults to 1.0):
            Weight of the internal-energy term; its error is divided by T so that it is in J/(K mol) like Cv.
        scope_version (`str`, defaults to `"v2"`):
            SCOPE encoding the model was trained on; the pipeline checks it against the tokenizer.
        trained_with_disorder (`bool`, defaults to `False`):
            Whether the training data held disordered crystals (SCOPE v2 strings with a disorder section). The
            pipeline warns, without refusing, when a model trained on ordered crystals only gets a disordered one.
        custom_pipelines (`dict`, *optional*):
            Written by property heads' `save_pretrained` (the "crystal-property" pipeline and its code file), for
            loading without this package. The installed class drops it on load: the task that the package
            registers serves instead.

    Example:

    ```python
    >>> from modeling_cloud import CloudConfig, CloudModel
    >>> config = CloudConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    >>> model = CloudModel(config)
    >>> config.model_type, config.max_position_embeddings, config.pad_token_id
    ('cloud', 64, 1)

    ```
    """

    model_type = "cloud"

    # BERT encoder
    vocab_size: int = VOCAB_SIZES[DEFAULT_SCOPE_VERSION]
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = DEFAULT_MAX_LENGTH
    type_vocab_size: int = 1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 1
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    tie_word_embeddings: bool = True
    # BertLayer reads these two; CLOUD is an encoder only.
    is_decoder: bool = False
    add_cross_attention: bool = False
    sparse_prediction: bool = False

    # Property heads
    pooling: str = "cls"
    head_num_layers: int = 1
    head_dropout: float | int = 0.1
    target_names: list[str] | None = None
    target_units: list[str | None] | None = None
    target_means: list[float | int] | None = None
    target_stds: list[float | int] | None = None
    loss: str = "l1"
    huber_delta: float | int = 1.0
    num_ensemble_members: int = 1
    uncertainty_calibration: dict | None = None

    # CLOUD-DEBYE
    debye_theta_head: str = "softplus"
    debye_theta_scale: float | int = 1200.0
    debye_theta_shift: float | int = 1500.0
    debye_softplus_width: float | int = 50.0
    debye_theta_min: float | int = 1.0
    debye_quadrature_nodes: int = 32
    debye_integration_cutoff: float | int | None = 50.0
    debye_temperatures: list[float | int] | None = None
    debye_internal_energy_loss_weight: float | int = 1.0

    scope_version: str = DEFAULT_SCOPE_VERSION
    trained_with_disorder: bool = False

    def __post_init__(self, **kwargs):
        # A BERT config.json loaded into this class (the authors' checkpoint) carries model_type "bert"; the class
        # attribute must win so that the config saves as "cloud".
        kwargs.pop("model_type", None)
        if not type(self).__module__.startswith("transformers_modules."):
            # `custom_pipelines` tells transformers where a checkpoint's pipeline code is when this package is not
            # installed. Loaded by the installed class, the task registered by the package serves instead
            # (transformers would otherwise refuse the checkpoint's own copy without trust_remote_code).
            kwargs.pop("custom_pipelines", None)
        if self.target_names is None:
            self.target_names = ["target"]
        self.target_names = [str(name) for name in self.target_names]
        num_targets = len(self.target_names)
        if self.target_units is None:
            self.target_units = [None] * num_targets
        if self.target_means is None:
            self.target_means = [0.0] * num_targets
        if self.target_stds is None:
            self.target_stds = [1.0] * num_targets
        self.target_means = [float(value) for value in self.target_means]
        self.target_stds = [float(value) for value in self.target_stds]
        if self.debye_temperatures is None:
            self.debye_temperatures = [300.0]
        self.debye_temperatures = [float(value) for value in self.debye_temperatures]
        super().__post_init__(**kwargs)

    def uncertainty_factors(self, name: str) -> tuple[float, float] | None:
        """`(k, k95)` of property `name` from `uncertainty_calibration`: σ = k · spread and the half-width of the
        95.45 % interval = k95 · spread; `None` when the model is not calibrated (or not for `name`).

        Example:

        ```python
        >>> from modeling_cloud import CloudConfig
        >>> config = CloudConfig(uncertainty_calibration={"method": "gaussian_nll", "std_factors": {"n": 1.5},
        ...                                               "interval_95_factors": {"n": 3.0}})
        >>> config.uncertainty_factors("n"), config.uncertainty_factors("band_gap")
        ((1.5, 3.0), None)

        ```
        """
        calibration = self.uncertainty_calibration
        if not calibration or name not in calibration["std_factors"]:
            return None
        return float(calibration["std_factors"][name]), float(calibration["interval_95_factors"][name])

    def uncertainty_floors(self, name: str) -> tuple[float, float]:
        """`(a, a95)` of property `name` from `uncertainty_calibration`: σ = hypot(a, k · spread) and the 95.45 %
        half-width hypot(a95, k95 · spread) with `(k, k95)` of [`uncertainty_factors`]; `(0.0, 0.0)` when the
        calibration has no floor for `name` (one factor, or a checkpoint saved before floors existed).

        Example:

        ```python
        >>> from modeling_cloud import CloudConfig
        >>> config = CloudConfig(uncertainty_calibration={"method": "gaussian_nll", "std_factors": {"n": 1.5},
        ...     "interval_95_factors": {"n": 3.0}, "std_floors": {"n": 0.1}, "interval_95_floors": {"n": 0.2}})
        >>> config.uncertainty_floors("n"), config.uncertainty_floors("band_gap")
        ((0.1, 0.2), (0.0, 0.0))

        ```
        """
        calibration = self.uncertainty_calibration or {}
        return (
            float(calibration.get("std_floors", {}).get(name, 0.0)),
            float(calibration.get("interval_95_floors", {}).get(name, 0.0)),
        )

    @property
    def num_targets(self) -> int:
        """Number of properties predicted by the regression and classification heads."""
        return len(self.target_names)

    def validate_cloud_settings(self):
        """Part of `@strict` validation: the CLOUD-specific settings are consistent."""
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        if self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {self.loss!r}")
        if self.debye_theta_head not in _THETA_HEADS:
            raise ValueError(f"debye_theta_head must be one of {_THETA_HEADS}, got {self.debye_theta_head!r}")
        if self.num_ensemble_members < 1:
            raise ValueError(f"num_ensemble_members must be >= 1, got {self.num_ensemble_members}")
        calibration = self.uncertainty_calibration
        if calibration is not None:
            if calibration.get("method") not in _CALIBRATION_METHODS:
                raise ValueError(
                    f"uncertainty_calibration['method'] must be one of {_CALIBRATION_METHODS}, "
                    f"got {calibration.get('method')!r}"
                )
            for key in ("std_factors", "interval_95_factors"):
                factors = calibration.get(key)
                if not isinstance(factors, dict) or not factors:
                    raise ValueError(f"uncertainty_calibration[{key!r}] must map property names to factors")
                for name, factor in factors.items():
                    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
                        raise ValueError(
                            f"uncertainty_calibration[{key!r}][{name!r}] must be finite and > 0, got {factor!r}"
                        )
            for key in ("std_floors", "interval_95_floors"):
                floors = calibration.get(key, {})
                if not isinstance(floors, dict):
                    raise ValueError(f"uncertainty_calibration[{key!r}] must map property names to floors")
                for name, floor in floors.items():
                    if not (isinstance(floor, (int, float)) and math.isfinite(floor) and floor >= 0):
                        raise ValueError(
                            f"uncertainty_calibration[{key!r}][{name!r}] must be finite and >= 0, got {floor!r}"
                        )
        if self.head_num_layers < 0:
            raise ValueError(f"head_num_layers must be >= 0, got {self.head_num_layers}")
        if len(self.target_names) == 0:
            raise ValueError("target_names must name at least one property")
        if len(set(self.target_names)) != len(self.target_names):
            raise ValueError(f"target_names must be unique, got {self.target_names}")
        for field_name in ("target_units", "target_means", "target_stds"):
            values = getattr(self, field_name)
            if len(values) != len(self.target_names):
                raise ValueError(
                    f"{field_name} has {len(values)} entries but target_names has {len(self.target_names)}: "
                    f"{field_name}={values}, target_names={self.target_names}"
                )
        for name, mean, std in zip(self.target_names, self.target_means, self.target_stds, strict=True):
            if not math.isfinite(mean):
                raise ValueError(f"target_means for {name!r} must be finite, got {mean}")
            if not (math.isfinite(std) and std > 0):
                raise ValueError(f"target_stds for {name!r} must be finite and > 0, got {std}")
        if self.debye_quadrature_nodes < 2:
            raise ValueError(f"debye_quadrature_nodes must be >= 2, got {self.debye_quadrature_nodes}")
        if self.debye_integration_cutoff is not None and self.debye_integration_cutoff <= 0:
            raise ValueError(
                f"debye_integration_cutoff must be > 0 or None, got {self.debye_integration_cutoff}"
            )
        if self.debye_theta_min < 0:
            raise ValueError(f"debye_theta_min must be >= 0, got {self.debye_theta_min}")
        if self.debye_softplus_width <= 0:
            raise ValueError(f"debye_softplus_width must be > 0, got {self.debye_softplus_width}")
        if not self.debye_temperatures or any(
            not (t > 0 and math.isfinite(t)) for t in self.debye_temperatures
        ):
            raise ValueError(
                f"debye_temperatures must be positive finite kelvin values, got {self.debye_temperatures}"
            )

    @classmethod
    def from_bert_config(cls, bert_config, **overrides) -> CloudConfig:
        """Build a `CloudConfig` with the encoder sizes of a `BertConfig` (e.g. the authors' released checkpoint).

        `vocab_size` and `pad_token_id` are kept as they are (30522 and 0 for the authors' checkpoint) so that the
        weights load unchanged, and `scope_version` is the authors' `"v1"`; pass overrides for the head settings.

        Example:

        ```python
        >>> from transformers import BertConfig
        >>> from modeling_cloud import CloudConfig
        >>> bert = BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
        ...                   max_position_embeddings=64, type_vocab_size=1)
        >>> config = CloudConfig.from_bert_config(bert, head_num_layers=3)
        >>> config.vocab_size, config.pad_token_id, config.head_num_layers
        (30522, 0, 3)

        ```
        """
        encoder_fields = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "hidden_act",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "max_position_embeddings",
            "type_vocab_size",
            "initializer_range",
            "layer_norm_eps",
            "pad_token_id",
        )
        if getattr(bert_config, "position_embedding_type", "absolute") not in ("absolute", None):
            raise ValueError(
                f"only absolute position embeddings are supported, got {bert_config.position_embedding_type!r}"
            )
        values = {name: getattr(bert_config, name) for name in encoder_fields}
        values["scope_version"] = (
            "v1"  # a BERT-layout checkpoint is the authors', trained on their v1 strings
        )
        values.update(overrides)
        return cls(**values)


CloudConfig.register_for_auto_class()

__all__ = ["CloudConfig"]
