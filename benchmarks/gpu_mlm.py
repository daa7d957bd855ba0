"""MLM pretraining throughput on a CUDA GPU in bf16: tokens/s and achieved TFLOP/s (not run without a GPU).

Trains `CloudForMaskedLM` (SCOPE v1 vocabulary, SDPA attention) on the authors' 10 k pretraining strings with the
standard 15 % masking, bf16 autocast, length-grouped dynamic padding, for each model size given, and reports real
(non-pad) tokens/s, samples/s and achieved TFLOP/s (training FLOPs = 3 x forward matmul FLOPs, MLM decoder included),
timed with CUDA synchronisation after `--warmup` steps. Optionally also the authors' layout (vocab 30522, pad to 64).

    python -m benchmarks.gpu_mlm --sizes base4 bert-base --batch-size 1024 --steps 50 [--authors]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def run(
    sizes=("base4", "bert-base"), batch_size=1024, steps=50, warmup=10, authors=False, compile_model=False
):
    import torch
    from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling

    from benchmarks.bench_inference import authors_tokenizer
    from benchmarks.common import SIZES
    from benchmarks.speed_mlm import mlm_flops_per_sample
    from dataset_builders import load_cloud_example
    from modeling_cloud import CloudConfig, CloudForMaskedLM
    from tokenization import CloudTokenizerFast

    if not torch.cuda.is_available():
        raise SystemExit("gpu_mlm needs a CUDA device (torch.cuda.is_available() is False)")
    device = torch.device("cuda")
    strings = list(load_cloud_example("pretrain")["scope"])
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    for size in sizes:
        dims = BERT_BASE if size == "bert-base" else SIZES[size]
        for side in ["ours"] + (["authors"] if authors else []):
            if side == "ours":
                tokenizer = CloudTokenizerFast.from_scope_version("v1")
                config = CloudConfig(vocab_size=len(tokenizer), **dims)
                config._attn_implementation = "sdpa"
                model = CloudForMaskedLM(config)
                encoded = tokenizer(strings, truncation=True, max_length=64)
            else:
                tokenizer = authors_tokenizer()
                config = BertConfig(
                    vocab_size=30522, pad_token_id=0, max_position_embeddings=64, type_vocab_size=1, **dims
                )
                model = BertForMaskedLM(config)
                encoded = tokenizer(
                    strings, max_length=64, padding="max_length", truncation=True, return_token_type_ids=False
                )
            model.to(device).train()
            if compile_model:
                model = torch.compile(model)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
            collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0)
            order = np.argsort([len(x) for x in encoded["input_ids"]])  # length grouping
            batches = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
            rng = np.random.RandomState(0)
            real_tokens = padded_tokens = 0
            start = None
            for step in range(steps + warmup):
                idx = batches[rng.randint(len(batches))]
                batch = collator(
                    [
                        {"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i]}
                        for i in idx
                    ]
                )
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                if step == warmup:
                    torch.cuda.synchronize()
                    start = time.perf_counter()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if step >= warmup:
                    real_tokens += int(batch["attention_mask"].sum())
                    padded_tokens += int(batch["input_ids"].numel())
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            mean_padded = padded_tokens / (steps * batch_size)
            flops = mlm_flops_per_sample(
                mean_padded,
                config.vocab_size,
                dims["hidden_size"],
                dims["num_hidden_layers"],
                dims["intermediate_size"],
                mean_padded,
            )
            results["runs"].append(
                {
                    "size": size,
                    "side": side,
                    "batch_size": batch_size,
                    "samples_per_second": steps * batch_size / seconds,
                    "real_tokens_per_second": real_tokens / seconds,
                    "achieved_tflops": flops * steps * batch_size / seconds / 1e12,
                    "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                }
            )
            del model, optimizer
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["base4", "bert-base"])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--authors", action="store_true", help="also the authors' layout (vocab 30522, pad to 64)"
    )
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    print(
        json.dumps(
            run(args.sizes, args.batch_size, args.steps, args.warmup, args.authors, args.compile), indent=2
        )
    )


if __name__ == "__main__":
    main()
