"""CLOUD config and models (modeling_cloud/): BERT checkpoint compatibility, heads, losses and Debye model."""

import gzip
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
)

from modeling_cloud import (
    CloudConfig,
    CloudDebyeModel,
    CloudForMaskedLM,
    CloudForPropertyClassification,
    CloudForPropertyRegression,
    CloudModel,
)
from modeling_cloud.convert_bert_checkpoint import load_bert_checkpoint
from modeling_cloud.convert_bert_checkpoint import main as convert_main
from modeling_cloud.debye_functions import GAS_CONSTANT, debye_thermodynamics

FIXTURES = Path(__file__).parent / "fixtures" / "scope_v1"
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
# SCOPE v1 sizes: these tests feed the authors' v1 token ids.
V1 = dict(vocab_size=564, scope_version="v1")
PAD_V1 = 1


@pytest.fixture(scope="module")
def official_batch():
    """First 50 rows of the authors' token ids (padded to 64 with [PAD] = 1)."""
    with gzip.open(FIXTURES / "pretrain10k_official_ids.jsonl.gz", "rt") as handle:
        rows = [json.loads(line) for _, line in zip(range(50), handle, strict=False)]
    input_ids = torch.tensor([row["input_ids"] for row in rows])
    attention_mask = torch.tensor([row["attention_mask"] for row in rows])
    return input_ids, attention_mask


@pytest.fixture(scope="module")
def authors_layout_checkpoint(tmp_path_factory):
    """A random `BertForMaskedLM` with the authors' released layout: vocab 30522, pad 0, 64 positions, 1 type."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, pad_token_id=0, max_position_embeddings=64, type_vocab_size=1, **TINY
    )
    model = BertForMaskedLM(config).eval()
    folder = tmp_path_factory.mktemp("authors_bert")
    model.save_pretrained(folder)
    return folder, model


def tiny_config(**overrides):
    return CloudConfig(**{**TINY, **V1, **overrides})


def test_config_defaults_and_validation(tmp_path):
    config = CloudConfig()
    # Bare defaults fit a bare CloudTokenizerFast(): SCOPE v2, its 642 ids, the same [PAD] id (1 in v1 and v2).
    assert (config.model_type, config.vocab_size, config.pad_token_id) == ("cloud", 642, PAD_V1)
    assert config.scope_version == "v2"
    assert (config.max_position_embeddings, config.type_vocab_size, config.tie_word_embeddings) == (
        64,
        1,
        True,
    )
    assert config.target_names == ["target"] and config.target_means == [0.0] and config.target_stds == [1.0]
    assert config.debye_theta_head == "softplus" and config.debye_temperatures == [300.0]

    config = tiny_config(
        target_names=["gap", "ef"],
        target_units=["eV", "eV/atom"],
        target_means=[1, -1.5],
        target_stds=[2, 0.5],
        loss="huber",
        pooling="mean",
        head_num_layers=3,
    )
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, CloudConfig)
    assert reloaded.to_diff_dict() == config.to_diff_dict()
    assert reloaded.target_means == [1.0, -1.5] and reloaded.target_units == ["eV", "eV/atom"]

    for bad, message in [
        (dict(pooling="max"), "pooling"),
        (dict(loss="l2"), "loss"),
        (dict(debye_theta_head="exp"), "debye_theta_head"),
        (dict(target_names=["a", "b"], target_stds=[1.0]), "target_stds has 1 entries"),
        (dict(target_names=["a"], target_stds=[0.0]), "finite and > 0"),
        (dict(target_names=["a", "a"]), "unique"),
        (dict(hidden_size=30, num_attention_heads=4), "multiple of num_attention_heads"),
        (dict(debye_temperatures=[300.0, -1.0]), "debye_temperatures"),
    ]:
        with pytest.raises(StrictDataclassClassValidationError, match=message):
            tiny_config(**bad)


def test_authors_bert_checkpoint_loads_with_identical_logits(
    authors_layout_checkpoint, official_batch, tmp_path
):
    folder, bert = authors_layout_checkpoint
    input_ids, attention_mask = official_batch
    cloud = load_bert_checkpoint(str(folder)).eval()
    assert cloud.config.vocab_size == 30522 and cloud.config.pad_token_id == 0
    assert cloud.bert.embeddings.word_embeddings.weight[0].abs().sum() == 0  # [CLS] row zero, as released
    bert_names = set(bert.state_dict())
    assert set(cloud.state_dict()) == bert_names
    with torch.inference_mode():
        expected = bert(input_ids, attention_mask=attention_mask).logits
        got = cloud(input_ids, attention_mask=attention_mask).logits
    assert torch.equal(got, expected)

    # Direct `from_pretrained` on the BERT folder works too, and saves as a "cloud" checkpoint.
    direct = CloudForMaskedLM.from_pretrained(folder).eval()
    direct.save_pretrained(tmp_path / "direct")
    saved = json.loads((tmp_path / "direct" / "config.json").read_text())
    assert saved["model_type"] == "cloud" and saved["architectures"] == ["CloudForMaskedLM"]
    with torch.inference_mode():
        assert torch.equal(direct(input_ids, attention_mask=attention_mask).logits, expected)

    # Command-line conversion with the vocabulary cut to the 564 SCOPE v1 ids keeps those logits exactly.
    assert convert_main([str(folder), str(tmp_path / "converted"), "--shrink-vocab", "564"]) == 0
    converted = AutoModelForMaskedLM.from_pretrained(tmp_path / "converted").eval()
    assert isinstance(converted, CloudForMaskedLM) and converted.config.vocab_size == 564
    assert converted.cls.predictions.decoder.weight is converted.bert.embeddings.word_embeddings.weight
    with torch.inference_mode():
        assert torch.equal(converted(input_ids, attention_mask=attention_mask).logits, expected[..., :564])


def test_bert_checkpoint_into_property_head_keeps_encoder(authors_layout_checkpoint, official_batch):
    folder, bert = authors_layout_checkpoint
    input_ids, attention_mask = official_batch
    head_model = load_bert_checkpoint(str(folder), CloudForPropertyRegression, head_num_layers=3).eval()
    assert len(head_model.head.hidden_layers) == 3
    with torch.inference_mode():
        encoder = bert.bert(input_ids, attention_mask=attention_mask).last_hidden_state
        ours = head_model.bert(input_ids, attention_mask=attention_mask)
    assert torch.equal(ours.last_hidden_state, encoder)
    assert torch.equal(ours.pooler_output, encoder[:, 0])
    with pytest.raises(ValueError, match="expected a BERT checkpoint"):
        tiny = CloudForMaskedLM(tiny_config())
        tiny.save_pretrained(folder.parent / "not_bert")
        load_bert_checkpoint(str(folder.parent / "not_bert"))


def test_mlm_is_tied_and_loss_is_cross_entropy(official_batch):
    torch.manual_seed(1)
    model = CloudForMaskedLM(tiny_config()).eval()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.bert.embeddings.word_embeddings.weight[PAD_V1].abs().sum() == 0
    input_ids, attention_mask = official_batch
    labels = torch.full_like(input_ids, -100)
    labels[:, 3] = input_ids[:, 3]
    masked = input_ids.clone()
    masked[:, 3] = 4
    out = model(masked, attention_mask=attention_mask, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits[:, 3], input_ids[:, 3])
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_sparse_prediction_gives_the_same_loss_and_gradients(official_batch):
    """`sparse_prediction` runs the MLM head on the labelled positions only: same loss, same gradients."""
    input_ids, attention_mask = official_batch
    generator = torch.Generator().manual_seed(3)
    chosen = (torch.rand(input_ids.shape, generator=generator) < 0.15) & attention_mask.bool()
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    masked = torch.where(chosen, torch.full_like(input_ids, 4), input_ids)
    results = {}
    for sparse in (False, True):
        torch.manual_seed(1)
        # Training mode (where sparse prediction applies) without dropout, so both runs are deterministic.
        config = tiny_config(
            sparse_prediction=sparse, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
        model = CloudForMaskedLM(config).train()
        out = model(masked, attention_mask=attention_mask, labels=labels)
        out.loss.backward()
        results[sparse] = (out, {n: p.grad.clone() for n, p in model.named_parameters()})
        # Without labels, or in eval mode (metrics need per-position logits), the logits keep their full shape.
        assert model(masked, attention_mask=attention_mask).logits.shape == (*input_ids.shape, 564)
        evaluated = model.eval()(masked, attention_mask=attention_mask, labels=labels)
        assert evaluated.logits.shape == (*input_ids.shape, 564)
        torch.testing.assert_close(evaluated.loss, out.loss)
    (dense, dense_grads), (sparse, sparse_grads) = results[False], results[True]
    assert sparse.logits.shape == (int(chosen.sum()), 564)
    torch.testing.assert_close(sparse.logits, dense.logits[chosen])
    torch.testing.assert_close(sparse.loss, dense.loss)
    for name, grad in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], grad, msg=name)


def test_sdpa_default_matches_eager_and_padding_is_ignored(official_batch):
    torch.manual_seed(2)
    input_ids, attention_mask = official_batch
    for pooling in ("cls", "mean"):
        sdpa = CloudModel(tiny_config(pooling=pooling)).eval()
        assert sdpa.config._attn_implementation == "sdpa"
        eager = CloudModel(tiny_config(pooling=pooling, attn_implementation="eager")).eval()
        eager.load_state_dict(sdpa.state_dict())
        with torch.inference_mode():
            batch = sdpa(input_ids, attention_mask=attention_mask)
            eager_out = eager(input_ids, attention_mask=attention_mask, output_attentions=True)
            torch.testing.assert_close(batch.pooler_output, eager_out.pooler_output, rtol=1e-5, atol=1e-5)
            assert len(eager_out.attentions) == 2 and eager_out.attentions[0].shape == (50, 4, 64, 64)
            # Dynamic padding: each structure alone, unpadded, gives the same embedding as in the padded batch.
            for row in (0, 7, 31):
                length = int(attention_mask[row].sum())
                alone = sdpa(input_ids[row : row + 1, :length]).pooler_output
                torch.testing.assert_close(alone[0], batch.pooler_output[row], rtol=1e-5, atol=1e-5)
        if pooling == "mean":
            masked_mean = (batch.last_hidden_state * attention_mask[..., None]).sum(1) / attention_mask.sum(
                1, True
            )
            torch.testing.assert_close(batch.pooler_output, masked_mean)
    with pytest.raises(ValueError, match="longer than the model's max_position_embeddings=64"):
        sdpa(torch.zeros(1, 65, dtype=torch.long))


def test_hidden_states_and_tuple_outputs(official_batch):
    model = CloudForPropertyRegression(tiny_config()).eval()
    input_ids, attention_mask = official_batch
    out = model(input_ids[:4], attention_mask=attention_mask[:4], output_hidden_states=True)
    assert len(out.hidden_states) == 3
    as_tuple = model(input_ids[:4], attention_mask=attention_mask[:4], return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.predictions)


def test_regression_zscores_inside_the_model_and_masks_nan_labels(official_batch):
    torch.manual_seed(3)
    config = tiny_config(
        target_names=["band_gap", "e_form"],
        target_units=["eV", "eV/atom"],
        target_means=[1.5, -1.2],
        target_stds=[2.0, 0.5],
        head_num_layers=3,
    )
    model = CloudForPropertyRegression(config).eval()
    input_ids, attention_mask = official_batch[0][:6], official_batch[1][:6]
    assert len(model.head.hidden_layers) == 3
    with torch.no_grad():
        pooled = model.bert(input_ids, attention_mask=attention_mask).pooler_output
        z = model.head(pooled)
    labels = torch.tensor(
        [
            [1.0, -1.0],
            [float("nan"), -0.5],
            [3.0, float("nan")],
            [0.2, -2.0],
            [float("nan"), float("nan")],
            [2.5, -1.1],
        ]
    )
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    means, stds = torch.tensor([1.5, -1.2]), torch.tensor([2.0, 0.5])
    torch.testing.assert_close(out.predictions, z * stds + means)
    observed = ~torch.isnan(labels)
    expected = (z - (labels - means) / stds).abs()[observed].mean()
    torch.testing.assert_close(out.loss, expected)

    for loss_name, function in [
        ("mse", torch.nn.functional.mse_loss),
        ("huber", torch.nn.functional.huber_loss),
    ]:
        model.config.loss = loss_name
        out = model(input_ids, attention_mask=attention_mask, labels=labels)
        torch.testing.assert_close(out.loss, function(z[observed], ((labels - means) / stds)[observed]))
    model.config.loss = "l1"

    # Statistics are read from the config at call time (a trainer may set them after construction).
    model.config.target_means = [0.0, 0.0]
    torch.testing.assert_close(model(input_ids, attention_mask=attention_mask).predictions, z * stds)

    # All labels missing: zero loss that still reaches every head parameter (no DDP unused-parameter errors).
    model.train()
    out = model(input_ids, attention_mask=attention_mask, labels=torch.full((6, 2), float("nan")))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert model.head.out_proj.weight.grad is not None

    with pytest.raises(ValueError, match=r"labels must have shape \(6, 2\)"):
        model(input_ids, attention_mask=attention_mask, labels=torch.zeros(6))


def test_regression_trains_in_physical_units(official_batch):
    # A few optimiser steps on real token ids move the predictions towards labels given in physical units.
    torch.manual_seed(4)
    config = tiny_config(
        target_names=["n"],
        target_means=[2.4],
        target_stds=[0.9],
        head_dropout=0.0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pooling="mean",
    )
    model = CloudForPropertyRegression(config)
    input_ids, attention_mask = official_batch[0][:8], official_batch[1][:8]
    labels = 2.4 + 0.9 * torch.linspace(-1.5, 1.5, 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model(input_ids, attention_mask=attention_mask, labels=labels).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Labels span z in [-1.5, 1.5]: the first L1 is ~0.86 on z-scores (it would be ~2.4 on raw values).
    assert 0.6 < first < 1.0
    assert loss.item() < 0.5 * first


def test_classification_masks_nan_and_checks_labels(official_batch):
    torch.manual_seed(5)
    model = CloudForPropertyClassification(tiny_config(target_names=["is_metal", "is_magnetic"])).eval()
    input_ids, attention_mask = official_batch[0][:4], official_batch[1][:4]
    labels = torch.tensor([[1.0, 0.0], [0.0, float("nan")], [1.0, 1.0], [float("nan"), 0.0]])
    out = model(input_ids, attention_mask=attention_mask, labels=labels, return_embeddings=True)
    observed = ~torch.isnan(labels)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits[observed], labels[observed])
    torch.testing.assert_close(out.loss, expected)
    assert out.embeddings.shape == (4, 32)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model(input_ids, attention_mask=attention_mask, labels=torch.full((4, 2), 2.0))


def test_debye_model_outputs_follow_debye_functions(official_batch):
    torch.manual_seed(6)
    model = CloudDebyeModel(tiny_config(head_num_layers=3)).eval()
    input_ids, attention_mask = official_batch[0][:3], official_batch[1][:3]
    n_atoms = torch.tensor([2.0, 5.0, 8.0])
    temperatures = torch.tensor([10.0, 100.0, 300.0, 1000.0])
    with torch.inference_mode():
        out = model(input_ids, attention_mask=attention_mask, n_atoms=n_atoms, temperatures=temperatures)
        default = model(input_ids, attention_mask=attention_mask, n_atoms=n_atoms)
        per_atom = model(input_ids, attention_mask=attention_mask, temperatures=temperatures)
        per_structure = model(
            input_ids,
            attention_mask=attention_mask,
            n_atoms=n_atoms,
            temperatures=torch.stack([temperatures, temperatures * 2, temperatures / 2]),
        )
    assert out.theta_debye.shape == (3,) and out.heat_capacity.shape == (3, 4)
    expected = debye_thermodynamics(out.theta_debye[:, None], temperatures, n_atoms[:, None])
    for name in ("heat_capacity", "internal_energy", "entropy", "free_energy"):
        torch.testing.assert_close(getattr(out, name), getattr(expected, name))
        torch.testing.assert_close(getattr(per_atom, name) * n_atoms[:, None], getattr(out, name))
    assert default.temperatures.tolist() == [[300.0]] * 3
    torch.testing.assert_close(default.heat_capacity[:, 0], out.heat_capacity[:, 2])
    torch.testing.assert_close(per_structure.heat_capacity[0], out.heat_capacity[0])
    torch.testing.assert_close(per_structure.temperatures[1], temperatures * 2)
    assert (out.heat_capacity <= 3 * n_atoms[:, None] * GAS_CONSTANT).all()


def test_debye_theta_heads():
    config = tiny_config()
    softplus_model = CloudDebyeModel(config)
    s = torch.tensor([-50.0, -1.25, 0.0, 0.5])
    theta = softplus_model.theta_from_head(s)
    assert (theta >= 1.0).all() and theta[0] == 1.0  # floor debye_theta_min = 1 K, even for a very negative s
    torch.testing.assert_close(
        theta[2:], 1200 * s[2:] + 1500
    )  # equal to the affine form well above the floor
    s_grad = torch.tensor([-1.25, 0.0], requires_grad=True)
    softplus_model.theta_from_head(s_grad).sum().backward()
    assert 0 < s_grad.grad[0] < 1200 and s_grad.grad[1] == pytest.approx(1200, rel=1e-6)
    affine_model = CloudDebyeModel(tiny_config(debye_theta_head="affine"))
    torch.testing.assert_close(affine_model.theta_from_head(s), 1200 * s + 1500)


def test_debye_label_contract_and_training(official_batch):
    torch.manual_seed(7)
    config = tiny_config(
        head_num_layers=3, head_dropout=0.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model = CloudDebyeModel(config)
    input_ids, attention_mask = official_batch[0][:8], official_batch[1][:8]
    n_atoms = torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    target_theta = torch.linspace(150.0, 900.0, 8, dtype=torch.float64)
    label_temperatures = torch.tensor([50.0, 300.0])
    truth = debye_thermodynamics(
        target_theta[:, None], label_temperatures.double(), n_atoms[:, None].double()
    )
    cv_labels = truth.heat_capacity.float()
    u_labels = truth.internal_energy.float()
    cv_labels[0, 1] = float("nan")
    u_labels[3, 0] = float("nan")

    out = model(
        input_ids,
        attention_mask=attention_mask,
        n_atoms=n_atoms,
        labels=cv_labels,
        label_temperatures=label_temperatures,
    )
    thermo = debye_thermodynamics(out.theta_debye[:, None], label_temperatures, n_atoms[:, None])
    observed = ~torch.isnan(cv_labels)
    torch.testing.assert_close(out.loss, (thermo.heat_capacity - cv_labels).abs()[observed].mean())
    assert (
        out.temperatures.tolist() == [[300.0]] * 8
    )  # outputs at the default temperature, labels at their own

    both = model(
        input_ids,
        attention_mask=attention_mask,
        n_atoms=n_atoms,
        temperatures=label_temperatures,
        labels=cv_labels,
        internal_energy_labels=u_labels,
    )
    observed_u = ~torch.isnan(u_labels)
    u_term = ((both.internal_energy - u_labels) / label_temperatures).abs()[observed_u].mean()
    torch.testing.assert_close(both.loss, out.loss + u_term)

    with pytest.raises(ValueError, match=r"labels must have shape \(8, 1\)"):
        model(input_ids, attention_mask=attention_mask, labels=cv_labels)

    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = model(
            input_ids,
            attention_mask=attention_mask,
            n_atoms=n_atoms,
            labels=cv_labels,
            internal_energy_labels=u_labels,
            label_temperatures=label_temperatures,
        ).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0]


def test_auto_classes_resolve_every_head(tmp_path, official_batch):
    input_ids, attention_mask = official_batch[0][:5], official_batch[1][:5]
    expected_auto_map = {
        "AutoConfig": "configuration_cloud.CloudConfig",
        "AutoModel": "modeling_cloud.CloudModel",
        "AutoModelForMaskedLM": "modeling_cloud.CloudForMaskedLM",
    }
    for model_class in (CloudForPropertyRegression, CloudForPropertyClassification, CloudDebyeModel):
        torch.manual_seed(8)
        model = model_class(tiny_config(head_num_layers=2)).eval()
        folder = tmp_path / model_class.__name__
        model.save_pretrained(folder)
        saved = json.loads((folder / "config.json").read_text())
        assert saved["auto_map"] == {
            **expected_auto_map,
            "AutoModelForSequenceClassification": f"modeling_cloud.{model_class.__name__}",
        }
        # The remote code: model, configuration and their siblings, and the pipeline that property heads declare.
        assert sorted(p.name for p in folder.glob("*.py")) == [
            "configuration_cloud.py",
            "debye_functions.py",
            "modeling_cloud.py",
            "pipeline_crystal_property.py",
            "scope_defaults.py",
        ]
        reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        assert type(reloaded) is model_class
        direct = model_class.from_pretrained(folder).eval()
        encoder = AutoModel.from_pretrained(folder).eval()
        assert type(encoder) is CloudModel
        with torch.inference_mode():
            original = model(input_ids, attention_mask=attention_mask).to_tuple()
            via_auto = reloaded(input_ids, attention_mask=attention_mask).to_tuple()
            via_class = direct(input_ids, attention_mask=attention_mask).to_tuple()
            for a, b, c in zip(original, via_auto, via_class, strict=True):
                assert torch.equal(b, c)
                # Weights memory-mapped from safetensors may be aligned differently from freshly allocated ones,
                # which changes the CPU kernel's summation order in the last bits.
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
            assert torch.equal(
                encoder(input_ids, attention_mask=attention_mask).pooler_output,
                direct.bert(input_ids, attention_mask=attention_mask).pooler_output,
            )
    # A pretrained (MLM) checkpoint opens as the default regression head, for fine-tuning.
    CloudForMaskedLM(tiny_config()).save_pretrained(tmp_path / "mlm")
    assert (
        type(AutoModelForSequenceClassification.from_pretrained(tmp_path / "mlm"))
        is CloudForPropertyRegression
    )


def test_bare_config_and_tokenizer_fit_each_other(tmp_path):
    """One defaults module (`tokenization/scope_defaults.py`, linked into `modeling_cloud/`) serves both."""
    from pathlib import Path

    import modeling_cloud.scope_defaults as model_side
    from tokenization import CloudTokenizerFast, scope_defaults

    config, tokenizer = CloudConfig(), CloudTokenizerFast()
    assert config.scope_version == tokenizer.scope_version == scope_defaults.DEFAULT_SCOPE_VERSION
    assert config.vocab_size == len(tokenizer) == scope_defaults.VOCAB_SIZES[config.scope_version]
    assert config.max_position_embeddings == tokenizer.model_max_length == scope_defaults.DEFAULT_MAX_LENGTH
    assert config.pad_token_id == tokenizer.pad_token_id
    assert (tokenizer.symprec, tokenizer.angle_tolerance) == (
        scope_defaults.DEFAULT_SYMPREC,
        scope_defaults.DEFAULT_ANGLE_TOLERANCE,
    )
    for version, size in scope_defaults.VOCAB_SIZES.items():
        assert len(CloudTokenizerFast.from_scope_version(version)) == size
    assert Path(model_side.__file__).resolve() == Path(scope_defaults.__file__).resolve()

    small = CloudConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    model = CloudForMaskedLM(small).eval()
    batch = tokenizer(["SG225 Na 0.5 4a Cl 0.5 4b", "SG227 Si 1.0 8a"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert model(**batch).logits.shape == (*batch["input_ids"].shape, len(tokenizer))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    # The checkpoint carries the defaults flat, once, for configuration_cloud.py and tokenization_cloud.py alike.
    assert (tmp_path / "scope_defaults.py").read_text() == Path(scope_defaults.__file__).read_text()
