"""Training defaults by starting point (issue 24): `finetune` and `train-debye` take the learning rate, warm-up,
epochs, early stopping and batch size from `defaults.DEFAULTS` for what they start from, and any flag overrides."""

from __future__ import annotations

import json

import pytest

from modeling_cloud.training.defaults import (
    DEFAULTS,
    MEASURED_SIZES,
    TABLE_FIELDS,
    markdown_table,
    starting_point,
)
from modeling_cloud.training.options import parse_settings, settings_from_dict

COMMON = ["--train", "bundled:cloud-cv", "--output-dir", "out"]
REQUIRED = {"finetune": [*COMMON, "--target", "n"], "train-debye": COMMON}


def _resolved(settings) -> dict:
    values = {name: getattr(settings.training, name, None) for name in TABLE_FIELDS}
    values["early_stopping_patience"] = settings.data.early_stopping_patience
    return values


def _checkpoint(folder, **config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.mark.parametrize("command", ["finetune", "train-debye"])
@pytest.mark.parametrize("size", ["tiny", "small", None])
def test_a_new_model_takes_the_from_scratch_row_of_its_size(command, size):
    argv = REQUIRED[command] + (["--model-size", size] if size else [])
    settings = parse_settings(command, argv)
    expected = DEFAULTS[(command, "scratch", size or "small")]
    assert _resolved(settings) == expected.values()
    assert (
        settings.defaults_note.endswith(expected.source)
        and f"size {size or 'small'}" in settings.defaults_note
    )


@pytest.mark.parametrize("command", ["finetune", "train-debye"])
def test_a_flag_overrides_its_entry_and_leaves_the_others(command):
    settings = parse_settings(
        command, [*REQUIRED[command], "--learning-rate", "2e-4", "--early-stopping-patience", "0"]
    )
    expected = DEFAULTS[(command, "scratch", "small")].values()
    assert settings.training.learning_rate == 2e-4 and settings.data.early_stopping_patience == 0
    assert settings.training.num_train_epochs == expected["num_train_epochs"]
    assert "learning_rate" not in settings.defaults_note and "num_train_epochs" in settings.defaults_note
    # training_config.json repeats the run: the values the table gave are written out.
    written = settings.to_dict()
    assert written["learning_rate"] == 2e-4 and written["num_train_epochs"] == expected["num_train_epochs"]
    assert written["per_device_train_batch_size"] == expected["per_device_train_batch_size"]


def test_the_starting_point_is_read_from_the_checkpoint(tmp_path):
    tiny_cloud = _checkpoint(tmp_path / "tiny", model_type="cloud", num_hidden_layers=2, hidden_size=128)
    _checkpoint(tmp_path / "small" / "ckpt", model_type="cloud", num_hidden_layers=4, hidden_size=256)
    base_cloud = _checkpoint(tmp_path / "base", model_type="cloud", num_hidden_layers=12, hidden_size=768)
    _checkpoint(tmp_path / "authors" / "ckpt", model_type="bert", num_hidden_layers=12, hidden_size=768)
    assert starting_point(tiny_cloud, None) == ("cloud", "tiny")
    assert starting_point(str(tmp_path / "small"), None) == (
        "cloud",
        "small",
    )  # the one sub-folder with a config
    assert starting_point(base_cloud, None) == ("cloud", "base")
    assert starting_point(str(tmp_path / "authors"), None, "ckpt") == ("authors", None)
    assert starting_point("ChangwenXu/CLOUD", None) == ("authors", None)
    assert starting_point(None, "tiny") == ("scratch", "tiny")
    for command in ("finetune", "train-debye"):
        settings = settings_from_dict(
            command,
            {
                "train": ["x.csv"],
                "output_dir": "o",
                "pretrained": tiny_cloud,
                **({"target": ["n"]} if command == "finetune" else {}),
            },
        )
        assert _resolved(settings) == DEFAULTS[(command, "cloud", "tiny")].values()
        # base and large were not measured here: the authors' recipe, and the note says why.
        settings = settings_from_dict(
            command,
            {
                "train": ["x.csv"],
                "output_dir": "o",
                "pretrained": base_cloud,
                **({"target": ["n"]} if command == "finetune" else {}),
            },
        )
        assert _resolved(settings) == DEFAULTS[(command, "authors", None)].values()
        assert "no measured entry" in settings.defaults_note and "not measured here" in settings.defaults_note


def test_every_entry_names_its_source_and_the_readme_table_lists_them():
    for (command, start, size), recipe in DEFAULTS.items():
        assert recipe.source, (command, start, size)
        if start == "authors":
            assert "not measured here" in recipe.source
        assert 0 <= recipe.warmup_steps < 1 and recipe.learning_rate > 0 and recipe.num_train_epochs >= 1
    table = markdown_table()
    assert table.count("\n") == len(DEFAULTS) + 1


def test_the_readme_shows_the_table_as_it_is():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- defaults-table -->\n", 1)[1].split("\n<!-- /defaults-table -->", 1)[0]
    assert shown == markdown_table()


def test_the_sweep_reads_early_stopping_off_a_curve_as_transformers_stops():
    """`patience_outcome` (the sweep's reading of a long curve) stops where transformers' EarlyStoppingCallback
    stops the run and keeps the epoch `load_best_model_at_end` keeps, on every recorded validation curve."""
    from pathlib import Path

    from transformers import EarlyStoppingCallback, TrainerControl, TrainerState, TrainingArguments

    from benchmarks.sweep_defaults import patience_outcome

    sweep = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "sweep_defaults.json"
    curves = [run["validation_curve"] for run in json.loads(sweep.read_text())["runs"]]
    assert len(curves) >= 20
    args = TrainingArguments(output_dir="unused", metric_for_best_model="mae", greater_is_better=False)
    stopped_early = 0
    for curve in curves:
        for patience in (1, 2, 3, 5):
            callback, state, control = EarlyStoppingCallback(patience), TrainerState(), TrainerControl()
            stop, best = len(curve), None
            for epoch, value in enumerate(curve):
                callback.on_evaluate(args, state, control, metrics={"eval_mae": value})
                # The Trainer records a new best after the callbacks have seen the evaluation.
                if state.best_metric is None or value < state.best_metric:
                    state.best_metric, best = value, epoch
                if control.should_training_stop:
                    stop = epoch + 1
                    break
            outcome = patience_outcome(curve, patience)
            assert (outcome["stop_epoch"], outcome["best_epoch"]) == (stop, best + 1), (curve, patience)
            assert outcome["best_validation_mae"] == curve[best]
            stopped_early += stop < len(curve)
        assert patience_outcome(curve, None)["best_validation_mae"] == min(curve)
    assert stopped_early > 0  # the curves exercise the stopping rule, not only runs that never stop


def test_the_measured_defaults_are_what_the_sweep_chooses():
    """Every (command, start, size) the recorded sweep measured has in `DEFAULTS` the learning rate, warm-up, batch
    size and patience that `sweep_defaults.recommend` reads off the records, and its source names the sweep."""
    from pathlib import Path

    from benchmarks.sweep_defaults import recommend

    sweep = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "sweep_defaults.json"
    chosen = {
        (c["command"], c["start"], c["size"]): c for c in recommend(json.loads(sweep.read_text())["runs"])
    }
    # The grid: both commands, from scratch and from a checkpoint pretrained here, tiny and small.
    assert set(chosen) == {
        (command, start, size)
        for command in ("finetune", "train-debye")
        for start in ("scratch", "cloud")
        for size in MEASURED_SIZES
    }
    for key, c in chosen.items():
        recipe = DEFAULTS[key]
        assert recipe.learning_rate == c["learning_rate"], c
        for field, name in (
            ("warmup_steps", "warmup"),
            ("per_device_train_batch_size", "batch_size"),
            ("early_stopping_patience", "patience"),
        ):
            # every setting is read off the records: warm-up and batch from each task of the rate's comparison,
            # patience from a long curve on each
            assert c[name] is not None, (name, c)
            assert getattr(recipe, field) == c[name], (field, c)
        assert "sweep_defaults" in recipe.source, c
        assert "not swept" not in recipe.source and "not run" not in recipe.source, c
