"""Every CLOUD class through one `CloudModelTester` (after transformers' `BertModelTester`): output shapes, loss with
labels, save and reload to identical outputs, tuple output with `return_dict=False`, and hidden states and attentions.

Cases are `parametrize`d over the classes, so one failing class does not hide the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from modeling_cloud import (
    CloudConfig,
    CloudDebyeModel,
    CloudForMaskedLM,
    CloudForPropertyClassification,
    CloudForPropertyRegression,
    CloudModel,
)


@dataclass
class CloudModelTester:
    """A tiny configuration and random inputs, and the output shapes every class must produce for them."""

    batch_size: int = 3
    seq_length: int = 9
    vocab_size: int = 99
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 37
    max_position_embeddings: int = 64
    target_names: list[str] = field(default_factory=lambda: ["band_gap", "n"])
    temperatures: tuple[float, ...] = (100.0, 300.0)
    pad_token_id: int = 1
    seed: int = 0

    def get_config(self, **overrides) -> CloudConfig:
        settings = dict(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            pad_token_id=self.pad_token_id,
            target_names=list(self.target_names),
            target_means=[1.0] * len(self.target_names),
            target_stds=[2.0] * len(self.target_names),
            debye_temperatures=list(self.temperatures),
        )
        settings.update(overrides)
        return CloudConfig(**settings)

    def prepare_inputs(self) -> dict[str, torch.Tensor]:
        """Token ids and an attention mask with a padded tail on the last row."""
        generator = torch.Generator().manual_seed(self.seed)
        input_ids = torch.randint(5, self.vocab_size, (self.batch_size, self.seq_length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        input_ids[-1, -3:] = self.pad_token_id
        attention_mask[-1, -3:] = 0
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def labels_for(self, model_class) -> dict[str, torch.Tensor]:
        """Labels of the class's loss (its `forward` keyword names)."""
        generator = torch.Generator().manual_seed(self.seed + 1)
        batch, targets = self.batch_size, len(self.target_names)
        if model_class is CloudForMaskedLM:
            labels = torch.full((batch, self.seq_length), -100)
            labels[:, 2] = torch.randint(5, self.vocab_size, (batch,), generator=generator)
            return {"labels": labels}
        if model_class is CloudForPropertyRegression:
            return {"labels": torch.randn(batch, targets, generator=generator)}
        if model_class is CloudForPropertyClassification:
            return {"labels": torch.randint(0, 2, (batch, targets), generator=generator).float()}
        if model_class is CloudDebyeModel:
            cv = 20.0 + 5.0 * torch.rand(batch, len(self.temperatures), generator=generator)
            return {"labels": cv, "n_atoms": torch.tensor([2.0, 8.0, 4.0][:batch])}
        return {}

    def expected_shapes(self, model_class) -> dict[str, tuple[int, ...]]:
        """Output field -> shape, for the inputs above."""
        batch, length, hidden = self.batch_size, self.seq_length, self.hidden_size
        targets, temperatures = len(self.target_names), len(self.temperatures)
        if model_class is CloudModel:
            return {"last_hidden_state": (batch, length, hidden), "pooler_output": (batch, hidden)}
        if model_class is CloudForMaskedLM:
            return {"logits": (batch, length, self.vocab_size)}
        if model_class is CloudForPropertyRegression:
            return {"predictions": (batch, targets)}
        if model_class is CloudForPropertyClassification:
            return {"logits": (batch, targets)}
        if model_class is CloudDebyeModel:
            grid = (batch, temperatures)
            return {"theta_debye": (batch,), "temperatures": grid, "heat_capacity": grid,
                    "internal_energy": grid, "entropy": grid, "free_energy": grid}  # fmt: skip
        raise AssertionError(f"no expectations for {model_class.__name__}")

    def create_model(self, model_class, **config_overrides):
        torch.manual_seed(self.seed)
        return model_class(self.get_config(**config_overrides)).eval()


MODEL_CLASSES = [CloudModel, CloudForMaskedLM, CloudForPropertyRegression, CloudForPropertyClassification,
                 CloudDebyeModel]  # fmt: skip
HAS_LOSS = [cls for cls in MODEL_CLASSES if cls is not CloudModel]


@pytest.fixture(scope="module")
def tester() -> CloudModelTester:
    return CloudModelTester()


def _ids(cls) -> str:
    return cls.__name__


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=_ids)
def test_output_shapes(tester, model_class):
    model = tester.create_model(model_class)
    with torch.no_grad():
        outputs = model(**tester.prepare_inputs())
    for name, shape in tester.expected_shapes(model_class).items():
        assert tuple(outputs[name].shape) == shape, name
        assert torch.isfinite(outputs[name]).all(), name


@pytest.mark.parametrize("model_class", HAS_LOSS, ids=_ids)
def test_labels_give_a_finite_scalar_loss_with_gradients(tester, model_class):
    model = tester.create_model(model_class).train()
    outputs = model(**tester.prepare_inputs(), **tester.labels_for(model_class))
    assert outputs.loss.shape == () and torch.isfinite(outputs.loss)
    outputs.loss.backward()
    grads = [p.grad for p in model.bert.embeddings.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=_ids)
def test_save_and_reload_give_identical_outputs(tester, model_class, tmp_path):
    model = tester.create_model(model_class)
    inputs = tester.prepare_inputs()
    model.save_pretrained(tmp_path)
    reloaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
    reloaded.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert type(reloaded.config) is CloudConfig
    # `_name_or_path` records where it came from; `custom_pipelines` is written to config.json on save (the
    # crystal-property registration) but not kept as an attribute on load.
    ignored = ("_name_or_path", "custom_pipelines")
    original, loaded = model.config.to_dict(), reloaded.config.to_dict()
    assert {k: v for k, v in loaded.items() if k not in ignored} == {
        k: v for k, v in original.items() if k not in ignored
    }
    with torch.no_grad():
        before, after = model(**inputs), reloaded(**inputs)
    for name in tester.expected_shapes(model_class):
        assert torch.equal(before[name], after[name]), name


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=_ids)
def test_tuple_output_matches_the_dataclass(tester, model_class):
    model = tester.create_model(model_class)
    inputs = {**tester.prepare_inputs(), **tester.labels_for(model_class)}
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple)
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    for got, want in zip(as_tuple, expected, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=_ids)
def test_hidden_states_and_attentions(tester, model_class):
    model = tester.create_model(model_class, attn_implementation="eager")
    with torch.no_grad():
        outputs = model(**tester.prepare_inputs(), output_hidden_states=True, output_attentions=True)
    assert len(outputs.hidden_states) == tester.num_hidden_layers + 1
    assert outputs.hidden_states[-1].shape == (tester.batch_size, tester.seq_length, tester.hidden_size)
    assert len(outputs.attentions) == tester.num_hidden_layers
    assert outputs.attentions[0].shape == (
        tester.batch_size,
        tester.num_attention_heads,
        tester.seq_length,
        tester.seq_length,
    )
    # Padded keys get no attention.
    assert outputs.attentions[0][-1, :, :, -3:].abs().max() == 0
