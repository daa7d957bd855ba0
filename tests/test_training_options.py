"""Training command lines, settings files and the small pieces of the training stack (no training here)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from modeling_cloud.training.commands import BUNDLED_HELP, TRAINING_COMMANDS, add_training_commands
from modeling_cloud.training.options import (
    BUNDLED_SET_NAMES,
    DebyeOptions,
    FinetuneOptions,
    PretrainOptions,
    TrainingConfigError,
    add_options_arguments,
    resolve_options,
)


@pytest.fixture(autouse=True)
def keep_global_logging(monkeypatch):
    # The command handlers configure process-wide logging for a CLI run; inside the shared pytest process that
    # would reach other people's tests, so it is skipped here (the subprocess runs cover it).
    monkeypatch.setattr("modeling_cloud.training.engine.configure_logging", lambda process_index=0: None)


def _cli_parser() -> argparse.ArgumentParser:
    """The `cloud-crystal` parser as the lead's cli.py builds it, with the training commands added."""
    from modeling_cloud.cli import _add_command

    parser = argparse.ArgumentParser(prog="cloud-crystal")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_training_commands(subparsers, _add_command)
    return parser


@pytest.mark.parametrize("command", ["pretrain", "finetune", "train-debye", "push"])
def test_every_command_help_shows_a_runnable_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert f"example:\n  cloud-crystal {command} " in help_text
    # The example itself parses with the same parser (no stale flags in the help).
    example = help_text.split("example:\n  cloud-crystal ", 1)[1].splitlines()[0]
    args = _cli_parser().parse_args(example.split())
    assert args.command == command
    if command != "push":
        assert "bundled:cloud-pretrain" in help_text and "--resume-from-checkpoint" in help_text


@pytest.mark.parametrize("module", ["pretrain", "finetune", "train_debye"])
def test_modules_run_standalone_with_the_same_help(module, capsys):
    import importlib

    main = importlib.import_module(f"modeling_cloud.training.{module}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m modeling_cloud.training.{module}")
    assert "example:\n  cloud-crystal" in out


def test_bundled_names_in_help_match_the_data_module():
    from modeling_cloud.training.data import BUNDLED_SETS

    assert tuple(BUNDLED_SETS) == BUNDLED_SET_NAMES
    assert all(f"bundled:{name}" in BUNDLED_HELP for name in BUNDLED_SETS)


def _parse(options_class, argv):
    parser = argparse.ArgumentParser()
    add_options_arguments(parser, options_class)
    return resolve_options(options_class, parser.parse_args(argv))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_then_command_line_overrides(tmp_path, suffix):
    settings = {
        "train": ["train.csv"],
        "target": "band_gap",  # a single value is accepted for a list option
        "output-dir": str(tmp_path / "run"),
        "learning_rate": 3e-4,
        "num_train_epochs": 7,
        "group_by_length": False,
    }
    path = tmp_path / f"settings{suffix}"
    if suffix == ".yaml":
        import yaml

        path.write_text(yaml.safe_dump(settings))
    else:
        path.write_text(json.dumps(settings))
    options = _parse(FinetuneOptions, ["--config", str(path), "--num-train-epochs", "2", "--group-by-length"])
    assert options.learning_rate == 3e-4  # from the file
    assert options.num_train_epochs == 2.0  # command line wins
    assert options.group_by_length is True
    assert options.target == ["band_gap"]
    assert options.weight_decay == 0.01 and options.min_learning_rate == 1e-7  # finetune defaults


def test_commands_have_their_own_defaults():
    common = ["--train", "a.csv", "--output-dir", "out"]
    pretrain = _parse(PretrainOptions, common)
    finetune = _parse(FinetuneOptions, [*common, "--target", "n"])
    debye = _parse(DebyeOptions, common)
    assert (pretrain.learning_rate, pretrain.weight_decay, pretrain.mlm_probability) == (1e-4, 0.0, 0.15)
    assert (finetune.learning_rate, finetune.head_num_layers, finetune.loss) == (5e-5, 1, "l1")
    assert (debye.learning_rate, debye.max_grad_norm, debye.head_num_layers, debye.target) == (
        1e-4,
        5.0,
        3,
        ["cv"],
    )
    assert debye.temperature == 300.0 and debye.n_atoms_column == "n_atoms"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("learning_rate: 1e-4\nlearnig_rate: 2e-4\n", "unknown option(s) learnig_rate"),
        ("learning_rate: fast\n", "learning_rate must be float"),
        ("- a\n- b\n", "expected a mapping"),
        ("train: [unclosed\n", "unreadable YAML"),
    ],
)
def test_bad_config_files_are_named_errors(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(TrainingConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _parse(
            FinetuneOptions, ["--config", str(path), "--train", "a.csv", "--target", "n", "--output-dir", "o"]
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train", "a.csv", "--output-dir", "o"], "--target is required"),
        (["--target", "n", "--output-dir", "o"], "--train is required"),
        (["--train", "a.csv", "--target", "n", "--output-dir", "o", "--bf16", "--fp16"], "one of --bf16"),
        (
            ["--train", "a.csv", "--target", "n", "--output-dir", "o", "--cv-folds", "1"],
            "--cv-folds must be >= 2",
        ),
        (["--train", "a.csv", "--target", "n", "--output-dir", "o", "--push-to-hub"], "--hub-model-id"),
        (
            [
                "--train",
                "a.csv",
                "--target",
                "n",
                "--output-dir",
                "o",
                "--cv-folds",
                "5",
                "--validation",
                "v.csv",
            ],
            "drop --validation",
        ),
    ],
)
def test_inconsistent_settings_are_refused(argv, message):
    with pytest.raises(TrainingConfigError, match=message):
        _parse(FinetuneOptions, argv)


def test_command_line_errors_exit_2_with_one_line(tmp_path, capsys):
    args = _cli_parser().parse_args(
        [
            "finetune",
            "--train",
            str(tmp_path / "missing.csv"),
            "--target",
            "n",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.csv: no such file" in err


def test_all_training_commands_are_registered():
    parser = _cli_parser()
    for name in TRAINING_COMMANDS:
        args = parser.parse_args([name, "--train", "x.csv", "--output-dir", "o"])
        assert args.command == name and args.train == ["x.csv"]


# -- metrics ---------------------------------------------------------------------------------------------------


def test_regression_metrics_in_physical_units():
    from modeling_cloud.training.metrics import regression_metrics

    truth = np.array([[1.0], [2.0], [4.0], [5.0]])
    predicted = np.array([[1.5], [2.0], [3.0], [5.5]])
    metrics = regression_metrics(predicted, truth, ["n"])
    assert metrics["mae"] == pytest.approx(0.5)
    assert metrics["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 1 + 0.25) / 4))
    assert metrics["mad"] == pytest.approx(1.5)  # mean |y - 3|
    assert metrics["mae_over_mad"] == pytest.approx(0.5 / 1.5)
    assert metrics["r2"] == pytest.approx(1 - 1.5 / 10.0)


def test_regression_metrics_with_several_targets_and_missing_labels():
    from modeling_cloud.training.metrics import regression_metrics, selection_metric

    truth = np.array([[1.0, 10.0], [2.0, np.nan], [3.0, 30.0]])
    predicted = np.array([[1.0, 12.0], [3.0, 0.0], [3.0, 28.0]])
    metrics = regression_metrics(predicted, truth, ["a", "b"])
    assert metrics["mae_a"] == pytest.approx(1 / 3)
    assert metrics["mae_b"] == pytest.approx(2.0)  # the NaN row is left out for b only
    assert metrics["mae_over_mad"] == pytest.approx(((1 / 3) / (2 / 3) + 2.0 / 10.0) / 2)
    assert selection_metric(1) == "mae" and selection_metric(2) == "mae_over_mad"


# -- masking and sampling --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretraining_ids():
    from dataset_builders import load_cloud_example
    from tokenization import CloudTokenizerFast

    tokenizer = CloudTokenizerFast.from_scope_version("v1")
    strings = load_cloud_example("pretrain")["scope"][:2000]
    return tokenizer, tokenizer(strings)["input_ids"]


def test_masking_is_bert_style_on_real_scope_strings(pretraining_ids):
    from modeling_cloud.training.data import ReproducibleMaskingCollator

    tokenizer, ids = pretraining_ids
    collator = ReproducibleMaskingCollator(tokenizer, mlm_probability=0.15, seed=3)
    selected = replaced_by_mask = replaced_randomly = kept = real_tokens = 0
    special = torch.tensor(tokenizer.all_special_ids)
    for start in range(0, len(ids), 100):
        rows = [
            {"input_ids": row, "example_index": start + i} for i, row in enumerate(ids[start : start + 100])
        ]
        batch = collator(rows)
        original = tokenizer.pad({"input_ids": ids[start : start + 100]}, return_tensors="pt")["input_ids"]
        masked = batch["labels"] != -100
        assert not torch.isin(original[masked], special).any()  # [CLS], [SEP], [PAD] are never selected
        assert torch.equal(batch["labels"][masked], original[masked])
        real_tokens += int((~torch.isin(original, special)).sum())
        selected += int(masked.sum())
        replaced_by_mask += int((batch["input_ids"][masked] == tokenizer.mask_token_id).sum())
        unchanged = batch["input_ids"][masked] == original[masked]
        kept += int(unchanged.sum())
        replaced_randomly += int((~unchanged & (batch["input_ids"][masked] != tokenizer.mask_token_id)).sum())
    assert selected / real_tokens == pytest.approx(0.15, abs=0.01)
    assert replaced_by_mask / selected == pytest.approx(0.8, abs=0.02)
    # "random" replacements that happen to draw the original token count as kept (1/564 of them).
    assert replaced_randomly / selected == pytest.approx(0.1, abs=0.015)
    assert kept / selected == pytest.approx(0.1, abs=0.015)


def test_masks_depend_only_on_seed_epoch_and_examples(pretraining_ids):
    from modeling_cloud.training.data import ReproducibleMaskingCollator

    tokenizer, ids = pretraining_ids
    rows = [{"input_ids": row, "example_index": i} for i, row in enumerate(ids[:64])]

    def masks(seed, epoch):
        collator = ReproducibleMaskingCollator(tokenizer, seed=seed)
        collator.epoch = epoch
        collator([dict(r) for r in rows[:8]])  # consuming other batches first must not matter
        return collator([dict(r) for r in rows])["labels"]

    assert torch.equal(masks(1, 0), masks(1, 0))
    assert not torch.equal(masks(1, 0), masks(1, 1))  # a new epoch re-masks
    assert not torch.equal(masks(1, 0), masks(2, 0))


def test_length_grouped_sampler_is_seeded_by_epoch():
    from modeling_cloud.training.engine import EpochSeededLengthGroupedSampler

    lengths = [int(v) for v in np.random.RandomState(0).randint(10, 60, size=500)]
    sampler = EpochSeededLengthGroupedSampler(batch_size=16, lengths=lengths, seed=5)
    torch.manual_seed(0)
    first = list(sampler)
    torch.manual_seed(123)  # the global RNG plays no part
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == list(range(500))
    # Batches are of similar length: the spread inside a batch is far below the spread of the data.
    spreads = [np.ptp([lengths[i] for i in first[k : k + 16]]) for k in range(0, 496, 16)]
    assert np.median(spreads) < 0.25 * np.ptp(lengths)
