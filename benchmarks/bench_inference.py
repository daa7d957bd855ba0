"""End-to-end inference benchmark: CIF text -> predicted property, this package vs the authors' path.

Both paths run in the same process, on the same CIF texts, with encoders of equal size and identical weights (the
authors' `BertModel` keeps its 30522-row embedding; ours uses the first 564 rows, the only ids SCOPE v1 produces),
so the predictions must agree and the timings compare only the data path and batching:

- ours: `pipeline("crystal-property")` on the list of CIF texts: `tokenizer.load_structure` (pymatgen CIF parser)
  + spglib SCOPE v1 encoding + CLOUD tokenizer (in `--num-workers` processes if asked), length-sorted batches
  with dynamic padding, SDPA, `torch.inference_mode`;
- authors': for each CIF `Structure.from_str(cif, "cif")`, `SpacegroupAnalyzer(structure)` for the space group and
  Wyckoff letters, the v1 string, `BertTokenizerFast` (v1 vocabulary, `do_lower_case=False`, fraction tokens added)
  padded to 64, then `BertModel` (vocab 30522) + the regression head on the [CLS] state, batches in input order,
  `torch.no_grad`.

With `--scope-version v2` (the package's default) our side encodes SCOPE v2 (shorter strings, v2 vocabulary; the
embedding takes the first 642 rows of the authors' matrix, the rest of the weights are shared as before). The
strings then differ from the authors' v1 strings by design, so the SCOPE and prediction checks do not apply; the
accuracy of the two encodings is compared in `RESULTS.md` (the v1/v2 ablation), not here.

CIF texts come from `tests/fixtures/scope_v1/structures.jsonl.gz` (field `cif`, 400 Materials Project structures),
repeated to reach `--n`. This is a benchmark, not a test.

    python benchmarks/bench_inference.py                       # BERT-base (the authors' size), 400 CIFs
    python benchmarks/bench_inference.py --scope-version v2    # the package's default encoding (SCOPE v2)
    python benchmarks/bench_inference.py --scope-version v2 --dtype bfloat16   # bf16 weights on our side
    python benchmarks/bench_inference.py --layers 4 --hidden-size 256 --heads 4 --intermediate-size 1024 --n 800
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import platform
import time
from pathlib import Path

import torch
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizerFast, pipeline

from modeling_cloud import CloudConfig, CloudForPropertyRegression
from tokenization import CloudTokenizerFast
from tokenization.scope_defaults import VOCAB_SIZES
from tokenization.scope_tables import (
    GENERATOR_STRINGS,
    V1_ADDED_TOKENS,
    V1_WORDPIECE_VOCAB,
    WYCKOFF_MULTIPLICITIES,
)

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "scope_v1" / "structures.jsonl.gz"


def authors_scope(structure: Structure) -> str:
    """The v1 string computed the way the authors' code does it: pymatgen SpacegroupAnalyzer with its defaults."""
    analyzer = SpacegroupAnalyzer(structure)  # symprec 0.01, angle_tolerance 5
    number = analyzer.get_space_group_number()
    wyckoffs = analyzer.get_symmetry_dataset().wyckoffs
    multiplicities = WYCKOFF_MULTIPLICITIES[number]
    symbols = list(dict.fromkeys(f"{multiplicities[letter]}{letter}" for letter in wyckoffs))
    composition = " ".join(
        f"{el} {round(x, 2)}" for el, x in structure.composition.fractional_composition.items()
    )
    return f"{' '.join(GENERATOR_STRINGS[number])} | {' '.join(symbols)} | {composition}"


def authors_tokenizer() -> BertTokenizerFast:
    """`BertTokenizerFast` over the authors' v1 WordPiece vocabulary with the 101 fraction tokens added (ids 463-563)."""
    # transformers 5 builds BERT tokenizers from a `vocab` mapping (a `vocab_file` argument is ignored).
    tokenizer = BertTokenizerFast(
        vocab={token: i for i, token in enumerate(V1_WORDPIECE_VOCAB)}, do_lower_case=False
    )
    tokenizer.add_tokens(list(V1_ADDED_TOKENS))
    return tokenizer


class AuthorsRegressor(nn.Module):
    """`BertModel` (no pooler) + the authors' head on the [CLS] hidden state."""

    def __init__(self, config: BertConfig, head_num_layers: int):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        layers = [nn.Dropout(0.1)]
        for _ in range(head_num_layers):
            layers += [nn.Linear(config.hidden_size, config.hidden_size), nn.SiLU()]
        layers.append(nn.Linear(config.hidden_size, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden[:, 0])


def run_authors(cifs, tokenizer, model, batch_size):
    predictions, scopes = [], []
    timings = {"parse+symmetry": 0.0, "tokenize": 0.0, "model": 0.0}
    with torch.no_grad():
        for start in range(0, len(cifs), batch_size):
            t0 = time.perf_counter()
            batch_scopes = [
                authors_scope(Structure.from_str(cif, "cif")) for cif in cifs[start : start + batch_size]
            ]
            t1 = time.perf_counter()
            encoded = [
                tokenizer(
                    s, max_length=64, padding="max_length", truncation=True, return_token_type_ids=False
                )
                for s in batch_scopes
            ]
            input_ids = torch.tensor([e["input_ids"] for e in encoded])
            attention_mask = torch.tensor([e["attention_mask"] for e in encoded])
            t2 = time.perf_counter()
            predictions += model(input_ids, attention_mask).squeeze(-1).tolist()
            t3 = time.perf_counter()
            scopes += batch_scopes
            timings["parse+symmetry"] += t1 - t0
            timings["tokenize"] += t2 - t1
            timings["model"] += t3 - t2
    return scopes, predictions, timings


def paired_models(sizes: dict, head_layers: int, scope_version: str, device: str = "cpu"):
    """The authors' `AuthorsRegressor` (seed 0) and our `CloudForPropertyRegression` with the same weights.

    Same weights: the first rows of the authors' 30522-row embedding (all 564 SCOPE v1 ids; for v2 the first 642),
    the encoder and the head as they are. Both in eval mode on `device`.
    """
    torch.manual_seed(0)
    authors_config = BertConfig(
        vocab_size=30522, pad_token_id=0, max_position_embeddings=64, type_vocab_size=1, **sizes
    )
    authors_model = AuthorsRegressor(authors_config, head_layers).eval().to(device)
    vocab_size = VOCAB_SIZES[scope_version]
    ours = CloudForPropertyRegression(
        CloudConfig(head_num_layers=head_layers, vocab_size=vocab_size, scope_version=scope_version, **sizes)
    ).eval()
    state = {f"bert.{k}": v for k, v in authors_model.bert.state_dict().items()}
    state["bert.embeddings.word_embeddings.weight"] = state["bert.embeddings.word_embeddings.weight"][
        :vocab_size
    ]
    for ours_name, authors_index in [("out_proj", len(authors_model.head) - 1)] + [
        (f"hidden_layers.{i}", 1 + 2 * i) for i in range(head_layers)
    ]:
        for tensor_name in ("weight", "bias"):
            state[f"head.{ours_name}.{tensor_name}"] = getattr(authors_model.head[authors_index], tensor_name)
    ours.load_state_dict(state, strict=True)
    return authors_model, ours.to(device)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=400, help="number of CIF texts (the 400 fixtures, repeated)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--intermediate-size", type=int, default=3072)
    parser.add_argument("--head-layers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="pipeline preprocessing processes (0: in process, like the authors)",
    )
    parser.add_argument(
        "--scope-version",
        choices=["v1", "v2"],
        default="v1",
        help="our side's encoding (v1: exact comparison with identical predictions; v2: the package's default)",
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="our model's weights (the authors' side stays float32); bfloat16 pays off on CPUs with native bf16",
    )
    args = parser.parse_args(argv)
    if args.dtype == "bfloat16" and args.scope_version == "v1":
        parser.error("--dtype bfloat16 is for the v2 comparison; the v1 run checks identical predictions")
    if args.threads:
        torch.set_num_threads(args.threads)

    with gzip.open(FIXTURE, "rt") as handle:
        fixture_cifs = [json.loads(line)["cif"] for line in handle]
    cifs = [fixture_cifs[i % len(fixture_cifs)] for i in range(args.n)]

    sizes = dict(
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate_size,
    )
    authors_model, ours = paired_models(sizes, args.head_layers, args.scope_version, args.device)
    reference_fp32 = None
    if args.dtype == "bfloat16":
        # bf16 weights (what `pipeline(..., dtype=torch.bfloat16)` gives); an fp32 copy measures what it costs.
        reference_fp32 = copy.deepcopy(ours)
        ours.to(torch.bfloat16)

    bert_tokenizer = authors_tokenizer()
    predictor = pipeline(
        "crystal-property",
        model=ours,
        tokenizer=CloudTokenizerFast.from_scope_version(args.scope_version),
        device=args.device,
    )

    # Warm-up (allocator, kernels, pymatgen/spglib imports), not timed.
    predictor(cifs[:8], batch_size=8)
    run_authors(cifs[:8], bert_tokenizer, authors_model, 8)

    t0 = time.perf_counter()
    results = predictor(cifs, batch_size=args.batch_size, num_workers=args.num_workers)
    ours_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    authors_scopes, authors_predictions, authors_timings = run_authors(
        cifs, bert_tokenizer, authors_model, args.batch_size
    )
    authors_seconds = time.perf_counter() - t0

    bf16_note = ""
    if reference_fp32 is not None:
        fp32_predictor = pipeline(
            "crystal-property", model=reference_fp32, tokenizer=predictor.tokenizer, device=args.device
        )
        check = cifs[:64]
        exact = [r["properties"][0]["value"] for r in fp32_predictor(check, batch_size=args.batch_size)]
        fast = [r["properties"][0]["value"] for r in results[: len(check)]]
        spread = max(exact) - min(exact)
        worst = max(abs(a - b) for a, b in zip(exact, fast, strict=True))
        bf16_note = f"; bf16 vs fp32 on {len(check)} CIFs: max |difference| {worst:.2e} ({worst / spread:.1e} of the range)"
    failures = [r for r in results if "properties" not in r]
    if failures:
        raise SystemExit(f"{len(failures)} of {len(cifs)} CIFs gave no prediction, e.g. {failures[0]}")
    ours_rate, authors_rate = len(cifs) / ours_seconds, len(cifs) / authors_seconds
    mean_tokens = sum(len(predictor.tokenizer(r["scope"])["input_ids"]) for r in results) / len(results)
    n_params = sum(p.numel() for p in ours.bert.parameters())

    print(
        f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"cpu={platform.processor() or platform.machine()}"
    )
    print(
        f"encoder: {args.layers} layers, hidden {args.hidden_size}, {n_params / 1e6:.1f} M parameters (ours); "
        f"batch {args.batch_size}; {len(cifs)} CIFs; mean tokens {mean_tokens:.1f} (authors pad to 64); "
        f"pipeline preprocessing workers: {args.num_workers}"
    )
    print(
        f"authors' path: {authors_rate:8.1f} structures/s  ({authors_seconds:.2f} s; "
        + ", ".join(f"{k} {v:.2f} s" for k, v in authors_timings.items())
        + ")"
    )
    print(f"this package:  {ours_rate:8.1f} structures/s  ({ours_seconds:.2f} s)")
    print(f"speed-up: {ours_rate / authors_rate:.2f}x")
    if args.scope_version == "v1":
        same_scope = sum(r["scope"] == s for r, s in zip(results, authors_scopes, strict=True))
        same_ids = sum(
            predictor.tokenizer(r["scope"])["input_ids"] == bert_tokenizer(s)["input_ids"]
            for r, s in zip(results, authors_scopes, strict=True)
        )
        max_difference = max(
            abs(r["properties"][0]["value"] - p) for r, p in zip(results, authors_predictions, strict=True)
        )
        print(
            f"check: identical SCOPE strings {same_scope}/{len(cifs)}, identical token ids {same_ids}/{len(cifs)}; "
            f"max |prediction difference| {max_difference:.2e}"
        )
    else:
        print(
            f"check: SCOPE v2 strings {len(results)}/{len(cifs)} (v1 identity checks do not apply to v2){bf16_note}"
        )


if __name__ == "__main__":
    main()
