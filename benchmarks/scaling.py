"""A small scaling grid for CPU: 3 model sizes x 3 pretraining-data fractions.

Each cell pretrains a fresh CLOUD encoder (SCOPE v1) with MLM for a fixed number of epochs over its data fraction
(so compute grows with both model and data), reports the validation MLM loss on 500 held-out strings (fixed masks)
and one downstream number: the dielectric MAE on a validation split of the authors' training fold after a short
fine-tune (the test fold is not touched). A Hoffmann-style law L(N, D) = E + A N^-alpha + B D^-beta is fitted to the
9 validation losses, N = non-embedding encoder parameters, D = training tokens seen. Compute: 6ND-style FLOPs.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import common

FRACTIONS = (0.25, 0.5, 1.0)
SIZES = ("tiny", "mini", "small")


def fit_power_law(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> dict:
    from scipy.optimize import curve_fit

    def law(x, e, a, alpha, b, beta):
        return e + a * x[0] ** (-alpha) + b * x[1] ** (-beta)

    try:
        params, _ = curve_fit(
            law,
            np.vstack([n, d]),
            loss,
            p0=[max(loss.min() - 0.5, 0.1), 10.0, 0.3, 10.0, 0.3],
            bounds=([0, 0, 0, 0, 0], [10, 1e6, 2, 1e6, 2]),
            maxfev=20000,
        )
        residual = loss - law(np.vstack([n, d]), *params)
        return {
            "form": "L = E + A*N^-alpha + B*D^-beta",
            "E": params[0],
            "A": params[1],
            "alpha": params[2],
            "B": params[3],
            "beta": params[4],
            "rms_residual": float(np.sqrt(np.mean(residual**2))),
        }
    except (RuntimeError, ValueError) as error:
        return {"form": "L = E + A*N^-alpha + B*D^-beta", "error": str(error)}


def run(budget_scale: float = 1.0, epochs: float = 2.0, corpus_size: int = 6000) -> dict:
    import torch

    from benchmarks.accuracy import pretraining_corpus_v1
    from dataset_builders import load_cloud_example
    from modeling_cloud import CloudForPropertyRegression
    from tokenization import CloudTokenizerFast

    common.quiet()
    tokenizer = CloudTokenizerFast.from_scope_version("v1")
    dielectric = load_cloud_example("dielectric")
    cv = load_cloud_example("cv")
    corpus, _ = pretraining_corpus_v1(set(dielectric["test"]["scope"]) | set(cv["test"]["scope"]))
    order = np.random.RandomState(1).permutation(len(corpus))
    validation = [corpus[i] for i in order[:500]]
    pool = [corpus[i] for i in order[500 : 500 + corpus_size]]

    train = dielectric["train"]
    labels = np.array(train["n"])
    fit_idx, val_idx = common.split_validation(len(train))
    fit_idx = fit_idx[:1500]
    fit_records = common.labelled_records(tokenizer, [train["scope"][i] for i in fit_idx], labels[fit_idx])
    val_records = common.labelled_records(tokenizer, [train["scope"][i] for i in val_idx], labels[val_idx])

    cells = []
    t0 = time.perf_counter()
    for size in SIZES:
        for fraction in FRACTIONS:
            strings = pool[: int(len(pool) * fraction)]
            model, info = common.pretrain_mlm(
                tokenizer,
                strings,
                size,
                seconds=120 * budget_scale,
                max_epochs=epochs,
                validation_strings=validation,
            )
            torch.manual_seed(0)
            regressor = CloudForPropertyRegression(
                common.model_config(
                    tokenizer,
                    size,
                    head_num_layers=1,
                    target_means=[float(labels[fit_idx].mean())],
                    target_stds=[float(labels[fit_idx].std())],
                )
            )
            common.transfer_encoder(model, regressor)
            _, tune = common.finetune(
                regressor, tokenizer, fit_records, val_records, seconds=90 * budget_scale, max_epochs=40
            )
            mean_length = float(np.mean([len(s.split()) + 2 for s in strings]))
            cell = {
                "size": size,
                "fraction": fraction,
                "parameters_non_embedding": common.encoder_parameters(size),
                "tokens_seen": info["steps"] * 64 * mean_length,
                "pretraining": info,
                "validation_mlm_loss": info["validation_mlm_loss"],
                "pretrain_flops": info["flops"],
                "downstream_dielectric_validation_mae": tune["validation_mae"],
            }
            cells.append(cell)
            print(f"[scaling] {size} x {fraction}: {cell}", flush=True)
    n = np.array([c["parameters_non_embedding"] for c in cells], dtype=float)
    d = np.array([c["tokens_seen"] for c in cells], dtype=float)
    loss = np.array([c["validation_mlm_loss"] for c in cells], dtype=float)
    flops = np.array([c["pretrain_flops"] for c in cells], dtype=float)
    slope, intercept = np.polyfit(np.log(flops), np.log(loss), 1)
    return {
        "cells": cells,
        "power_law": fit_power_law(n, d, loss),
        "loss_vs_compute_loglog_slope": float(slope),
        "total_pretrain_flops": float(flops.sum()),
        "seconds": time.perf_counter() - t0,
        "note": "validation MLM loss on 500 held-out strings; downstream = dielectric MAE on a validation split of "
        "the training fold after <= 40 epochs on 1,500 rows (test fold untouched)",
    }
