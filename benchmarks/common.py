"""Shared pieces of the benchmark suite: small CLOUD models, MLM pretraining and fine-tuning through `Trainer`,
composition features for the baselines, a SCOPE-string cache for the bundled Materials Project structures.

Training runs carry a wall-clock budget (`TimeBudget`): the suite must fit on 2 shared CPU cores, so every run
stops at its epoch limit or its time limit, whichever comes first, and records which one it hit.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

#: Model size of the accuracy runs (see the note on "base4" in SIZES).
ACCURACY_SIZE = os.environ.get("CLOUD_BENCH_SIZE", "small4")
CACHE_DIR = Path(os.environ.get("CLOUD_BENCH_CACHE", Path(tempfile.gettempdir()) / "cloud-bench-cache"))

SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256),
    "mini": dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=4, intermediate_size=384),
    "small": dict(hidden_size=128, num_hidden_layers=3, num_attention_heads=4, intermediate_size=512),
    # The accuracy runs' size: 4 layers like the brief's CPU size, hidden 128 so that on 2 idle cores an epoch of the
    # dielectric fold takes ~7 s (hidden 256 takes ~20 s, too slow for 2 h in all).
    "small4": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
    # The brief's 4-layer size (used by the speed benchmark). On the shared 2-core machine it measured 6.1 s per MLM
    # step of 64 strings on one thread against 0.54 s for "small", too slow for the accuracy runs' time budgets.
    "base4": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
}


def quiet():
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()


# ----------------------------------------------------------------------------------------------------------------
# Data helpers


def tokenization_fingerprint() -> str:
    """A short hash of every `tokenization/*.py` file: what SCOPE strings depend on."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parents[1] / "tokenization").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def mp_scope_strings(version: str) -> list[str | None]:
    """SCOPE strings of the 6,317 bundled MP structures in table order (None where encoding fails), cached on disk."""
    from dataset_builders import load_materials_project, structure_from_json
    from tokenization import CloudTokenizerFast

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Keyed on the encoder's source: a cache written before a change to tokenization/ must not be reused.
    path = CACHE_DIR / f"mp_scope_{version}_{tokenization_fingerprint()}.json"
    if path.exists():
        return json.loads(path.read_text())
    tokenizer = CloudTokenizerFast.from_scope_version(version)
    table = load_materials_project()
    strings = []
    for material_id, text in zip(table["material_id"], table["structure"], strict=True):
        try:
            strings.append(tokenizer.encode_structure(structure_from_json(text, source=material_id)))
        except ValueError as error:  # ScopeError subclasses ValueError; the failure is counted by the caller
            print(f"[mp_scope_strings] {material_id}: {error}")
            strings.append(None)
    path.write_text(json.dumps(strings))
    return strings


_PAIR = re.compile(r"([A-Z][a-z]?)\s+(\d+(?:\.\d+)?)")


def composition_from_scope(scope: str) -> dict[str, float]:
    """Element -> atomic fraction from the composition part (after the last ' | ') of a v1 SCOPE string."""
    part = scope.rsplit(" | ", 1)[-1]
    pairs = _PAIR.findall(part)
    if not pairs:
        raise ValueError(f"no 'El fraction' pairs in the composition part of SCOPE string {scope!r}")
    return {element: float(fraction) for element, fraction in pairs}


def composition_matrix(compositions: list[dict[str, float]]) -> np.ndarray:
    """Rows of element fractions over the 103 elements H..Lr (the composition-only baseline's features)."""
    from pymatgen.core.periodic_table import Element

    index = {Element.from_Z(z).symbol: z - 1 for z in range(1, 104)}
    matrix = np.zeros((len(compositions), len(index)))
    for row, composition in enumerate(compositions):
        for element, fraction in composition.items():
            matrix[row, index[element]] += fraction
    return matrix


def random_forest_mae(x_train, y_train, x_test, y_test, seed: int = 0) -> tuple[float, np.ndarray]:
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=2)
    forest.fit(x_train, y_train)
    prediction = forest.predict(x_test)
    return float(np.mean(np.abs(prediction - y_test))), prediction


def split_validation(num_rows: int, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: a seeded random `fraction` of a TRAINING set held out for model selection."""
    order = np.random.RandomState(seed).permutation(num_rows)
    n_val = max(1, int(round(num_rows * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# ----------------------------------------------------------------------------------------------------------------
# Models and training


def model_config(tokenizer, size: str, **kwargs):
    from modeling_cloud import CloudConfig

    config = CloudConfig(
        vocab_size=len(tokenizer), scope_version=tokenizer.scope_version, **SIZES[size], **kwargs
    )
    config._attn_implementation = "sdpa"
    return config


def encoder_parameters(size: str) -> int:
    """Non-embedding encoder parameters (the N of scaling laws)."""
    s = SIZES[size]
    h, f, n = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"]
    return n * (4 * h * h + 4 * h + 2 * h * f + h + f + 4 * h)


def training_flops(size: str, tokens: float, vocab: int, with_mlm_head: bool) -> float:
    """6 N D-style estimate: 6 x (encoder params) per token + attention scores + the MLM decoder when present."""
    s = SIZES[size]
    per_token = 2 * encoder_parameters(size) + 2 * 2 * s["num_hidden_layers"] * 32 * s["hidden_size"]
    if with_mlm_head:
        per_token += 2 * (s["hidden_size"] ** 2 + s["hidden_size"] * vocab)
    return 3.0 * per_token * tokens


class TimeBudget(TrainerCallback):
    """Stops training when `seconds` of wall time have passed; records the steps and epochs done."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = None
        self.hit = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start > self.seconds:
            self.hit = True
            control.should_training_stop = True
            control.should_epoch_stop = True


class BestByValidation(TrainerCallback):
    """At each epoch end, computes the validation MAE with `evaluate(model)`; keeps the best weights in memory."""

    def __init__(self, evaluate):
        self.evaluate = evaluate
        self.best = math.inf
        self.best_state = None
        self.history = []

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        mae = self.evaluate(model)
        self.history.append(mae)
        if mae < self.best:
            self.best = mae
            self.best_state = copy.deepcopy(model.state_dict())


class BudgetCosineTrainer(Trainer):
    """`Trainer` whose learning rate follows warm-up then a cosine over the progress of the run, where progress is
    the larger of (steps done / max steps) and (time spent / time budget): the rate decays to ~0 by the end of the
    run whichever limit ends it, so a time-limited run is not cut off at a high learning rate."""

    def __init__(self, *args, seconds: float, warmup_steps: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget_seconds = seconds
        self.budget_warmup = warmup_steps
        self.budget_start = None

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            self.budget_start = time.perf_counter()

            def factor(step: int) -> float:
                progress = max(
                    step / max(1, num_training_steps),
                    (time.perf_counter() - self.budget_start) / self.budget_seconds,
                )
                warm = min(1.0, (step + 1) / max(1, self.budget_warmup))
                return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
        return self.lr_scheduler


def _arguments(
    output_dir, batch_size, lr, epochs, warmup, weight_decay, scheduler, sampling="group_by_length", **kw
):
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        num_train_epochs=epochs,
        learning_rate=lr,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup,
        weight_decay=weight_decay,
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        train_sampling_strategy=sampling,
        length_column_name="length",
        remove_unused_columns=False,
        seed=0,
        data_seed=0,
        disable_tqdm=True,
        **kw,
    )


def encode(tokenizer, strings: list[str]) -> list[dict]:
    encoded = tokenizer(list(strings), truncation=True, max_length=64)
    return [
        {"input_ids": ids, "attention_mask": mask, "length": len(ids)}
        for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)
    ]


def pretrain_mlm(
    tokenizer,
    strings: list[str],
    size: str,
    seconds: float,
    max_epochs: float = 40,
    batch_size: int = 64,
    lr: float = 5e-4,
    validation_strings: list[str] | None = None,
) -> tuple[object, dict]:
    """MLM pretraining of a new CLOUD encoder on `strings` (15 % masking, AdamW, warm-up then constant lr)."""
    from modeling_cloud import CloudForMaskedLM

    torch.manual_seed(0)
    model = CloudForMaskedLM(model_config(tokenizer, size, sparse_prediction=True))
    records = encode(tokenizer, strings)
    mlm = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0)

    def collate(features):
        return mlm([{k: f[k] for k in ("input_ids", "attention_mask")} for f in features])

    budget = TimeBudget(seconds)
    steps_per_epoch = len(records) // batch_size
    with tempfile.TemporaryDirectory() as output_dir:
        args = _arguments(
            output_dir,
            batch_size,
            lr,
            max_epochs,
            warmup=min(200, max(10, steps_per_epoch // 2)),
            weight_decay=0.0,
            scheduler="constant_with_warmup",
            dataloader_drop_last=True,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=records, data_collator=collate, callbacks=[budget]
        )
        start = time.perf_counter()
        output = trainer.train()
        seconds_used = time.perf_counter() - start
    steps = output.global_step
    mean_length = float(np.mean([r["length"] for r in records]))
    info = {
        "strings": len(records),
        "size": size,
        "steps": steps,
        "epochs": steps * batch_size / len(records),
        "seconds": seconds_used,
        "stopped_by_time_budget": budget.hit,
        "train_loss": float(output.training_loss),
        "flops": training_flops(size, steps * batch_size * mean_length, len(tokenizer), True),
    }
    if validation_strings:
        info["validation_mlm_loss"] = mlm_loss(model, tokenizer, validation_strings)
    return model, info


@torch.no_grad()
def mlm_loss(model, tokenizer, strings: list[str], batch_size: int = 256) -> float:
    """Mean MLM loss over `strings` with a fixed masking seed (so every model sees the same masks)."""
    model.eval()
    records = encode(tokenizer, strings)
    mlm = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=1234, return_tensors="pt")
    total, count = 0.0, 0
    for start in range(0, len(records), batch_size):
        batch = mlm(
            [{k: r[k] for k in ("input_ids", "attention_mask")} for r in records[start : start + batch_size]]
        )
        masked = int((batch["labels"] != -100).sum())
        total += float(model(**batch).loss) * masked
        count += masked
    model.train()
    return total / count


def _pad(features, pad_id: int) -> dict:
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, feature in enumerate(features):
        ids[row, : len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
        mask[row, : len(feature["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask}


def make_collator(pad_id: int, with_n_atoms: bool):
    def collate(features):
        batch = _pad(features, pad_id)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
        if with_n_atoms:
            batch["n_atoms"] = torch.tensor([f["n_atoms"] for f in features], dtype=torch.float32)
        return batch

    return collate


@torch.no_grad()
def predict(
    model,
    records: list[dict],
    pad_id: int,
    debye: bool = False,
    batch_size: int = 256,
    all_targets: bool = False,
) -> np.ndarray:
    """Predictions in physical units (Cv at 300 K for a Debye model), in record order: shape (rows,), or
    (rows, targets) with `all_targets` for a multi-target model."""
    model.eval()
    collate = make_collator(pad_id, debye)
    out = []
    for start in range(0, len(records), batch_size):
        batch = collate(
            [{k: v for k, v in r.items() if k != "labels"} for r in records[start : start + batch_size]]
        )
        result = model(**batch)
        if debye:
            values = result.heat_capacity[:, 0]
        else:
            values = result.predictions if all_targets else result.predictions[:, 0]
        out.append(values.float().numpy())
    model.train()
    return np.concatenate(out)


def finetune(
    model,
    tokenizer,
    train_records: list[dict],
    validation_records: list[dict],
    seconds: float,
    max_epochs: int = 60,
    batch_size: int = 64,
    lr: float = 3e-4,
    debye: bool = False,
) -> tuple[object, dict]:
    """Fine-tune `model` (regression or Debye) on records with `labels` (and `n_atoms`); keep the epoch with the best
    validation MAE (validation comes from the training data, never from a test split)."""
    pad_id = tokenizer.pad_token_id
    validation_labels = np.array([r["labels"] for r in validation_records])
    multi_target = validation_labels.ndim == 2

    def evaluate(current):
        predictions = predict(current, validation_records, pad_id, debye, all_targets=multi_target)
        if multi_target:  # targets in different units: the mean of each target's MAE over its spread
            errors = np.mean(np.abs(predictions - validation_labels), axis=0)
            return float(np.mean(errors / validation_labels.std(axis=0)))
        return float(np.mean(np.abs(predictions - validation_labels)))

    best = BestByValidation(evaluate)
    budget = TimeBudget(seconds)
    steps_per_epoch = math.ceil(len(train_records) / batch_size)
    with tempfile.TemporaryDirectory() as output_dir:
        args = _arguments(
            output_dir,
            batch_size,
            lr,
            max_epochs,
            warmup=max(1, steps_per_epoch * max_epochs // 20),
            weight_decay=0.01,
            scheduler="cosine",
            max_grad_norm=5.0 if debye else 1.0,
            label_names=["labels"],
        )
        trainer = BudgetCosineTrainer(
            model=model,
            args=args,
            train_dataset=train_records,
            data_collator=make_collator(pad_id, debye),
            callbacks=[budget, best],
            seconds=seconds,
            warmup_steps=max(1, steps_per_epoch),
        )
        trainer.model_accepts_loss_kwargs = False
        start = time.perf_counter()
        output = trainer.train()
        seconds_used = time.perf_counter() - start
    if best.best_state is not None:
        model.load_state_dict(best.best_state)
    model.eval()
    return model, {
        "epochs_run": len(best.history),
        "best_epoch": int(np.argmin(best.history)) + 1 if best.history else None,
        "validation_mae": best.best,
        "seconds": seconds_used,
        "stopped_by_time_budget": budget.hit,
        "steps": output.global_step,
    }


def labelled_records(tokenizer, strings, labels, n_atoms=None) -> list[dict]:
    records = encode(tokenizer, strings)
    labels = np.asarray(labels, dtype=float)
    for i, record in enumerate(records):
        record["labels"] = labels[i].tolist() if labels.ndim == 2 else float(labels[i])
        if n_atoms is not None:
            record["n_atoms"] = float(n_atoms[i])
    return records


def transfer_encoder(pretrained_mlm, target_model) -> None:
    """Copy the pretrained encoder (`bert.*`) into a task model (the head stays freshly initialised)."""
    missing, unexpected = target_model.bert.load_state_dict(pretrained_mlm.bert.state_dict(), strict=False)
    if unexpected or [k for k in missing if "pooler" not in k]:
        raise RuntimeError(f"encoder transfer mismatch: missing {missing}, unexpected {unexpected}")
