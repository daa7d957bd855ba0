"""Throughput of structure -> SCOPE -> token ids through the dataset_builders encoders (not a test).

Measures encoded structures per second on real Materials Project crystals (the bundled table) for

* map-style pre-encoding (``pre_encode``) with ``num_proc`` 1 and 2 (no cache, so every row is encoded);
* on-the-fly map-style reads (``encode_on_the_fly`` + ``with_transform``), batch 64;
* streaming (``encode_on_the_fly`` on an ``IterableDataset``).

Usage::

    python benchmarks/bench_datasets.py --rows 1000 --version v1 [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="bench-hf-home-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402

from dataset_builders import encode_on_the_fly, load_materials_project, pre_encode  # noqa: E402
from tokenization import CloudTokenizerFast  # noqa: E402


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--version", default="v1", choices=["v1", "v2"])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    datasets.disable_progress_bars()
    tokenizer = CloudTokenizerFast.from_scope_version(args.version)
    rows = load_materials_project().shuffle(seed=0).select(range(args.rows))
    results = {
        "rows": args.rows,
        "scope_version": args.version,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "structures_per_second": {},
    }
    rates = results["structures_per_second"]
    # Warm up (lazy imports in pymatgen/spglib, tokenizer caches) so the first measurement is not penalised.
    pre_encode(rows.select(range(min(32, args.rows))), tokenizer, use_cache=False)
    for num_proc in (1, 2):
        seconds, encoded = _timed(lambda n=num_proc: pre_encode(rows, tokenizer, num_proc=n, use_cache=False))
        assert len(encoded) == args.rows
        rates[f"pre_encode_num_proc_{num_proc}"] = args.rows / seconds

    lazy = encode_on_the_fly(rows, tokenizer)
    seconds, _ = _timed(lambda: [lazy[start : start + 64] for start in range(0, args.rows, 64)])
    rates["on_the_fly_batch_64"] = args.rows / seconds

    stream = encode_on_the_fly(rows.to_iterable_dataset(num_shards=1), tokenizer)
    seconds, count = _timed(lambda: sum(1 for _ in stream))
    assert count == args.rows
    rates["streaming"] = args.rows / seconds

    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
