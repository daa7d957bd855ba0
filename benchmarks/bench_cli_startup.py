"""How long `cloud-crystal --help` takes to start, against `python -c "import transformers"` (not a test).

Both are timed in the same run, interleaved, each in a fresh interpreter, so that a busy machine slows them alike.
Also timed: `cloud-crystal encode --help` and `cloud-crystal predict --help`, and the bare interpreter
(`python -c pass`) as the floor. Each child also reports whether torch or pymatgen got imported (they must not).
The goal of issue 13 is `--help` in at most 0.5 s.

Usage:

```bash
python -m benchmarks.bench_cli_startup [--repeats 7] [--json benchmarks/results/cli_startup.json]
```
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from modeling_cloud.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
TRANSFORMERS = 'python -c "import transformers"'
HEAVY = "\nprint(sorted(m for m in ('torch', 'pymatgen') if m in sys.modules), file=sys.stderr)"
CASES = {
    "python -c pass": "import sys",
    TRANSFORMERS: "import sys, transformers",
    "cloud-crystal --help": CLI.format(argv=["--help"]),
    "cloud-crystal encode --help": CLI.format(argv=["encode", "--help"]),
    "cloud-crystal predict --help": CLI.format(argv=["predict", "--help"]),
}


def _time(code: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code + HEAVY], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, result.stderr.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=7, help="fresh interpreters per case (median reported)"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    heavy: dict[str, str] = {}
    for _ in range(args.repeats):
        for name, code in CASES.items():  # interleaved: load changes hit every case alike
            seconds, imported = _time(code)
            times[name].append(seconds)
            heavy[name] = imported
    results = {
        name: {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3)}
        for name, values in times.items()
    }
    print(f"{'command':<34}{'median (s)':>12}{'min (s)':>10}  heavy modules imported")
    for name, row in results.items():
        print(f"{name:<34}{row['median_s']:>12.3f}{row['min_s']:>10.3f}  {heavy[name]}")
    help_time = results["cloud-crystal --help"]["median_s"]
    transformers_time = results[TRANSFORMERS]["median_s"]
    print(
        f"\ncloud-crystal --help: {help_time:.3f} s (goal <= 0.5 s); import transformers: {transformers_time:.3f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"repeats": args.repeats, "results": results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
