"""Call the app's endpoints with `gradio_client` and print the answers as JSON (run as a subprocess by the tests).

`gradio_client.Client` looks up huggingface.co unless `HF_HUB_OFFLINE=1`, which huggingface_hub reads at import;
the local Hub tests need it unset, so the tests run this script in a child process with it set.

Usage: python app_client.py URL < calls.json, where calls.json is `[{"api_name": "/predict_file", "args": [...],
"files": [indexes of args that are file paths]}, ...]`. Prints `[{"outputs": [...], "seconds": s} or {"exception":
"..."}]` with each output made JSON-able (files by path).
"""

from __future__ import annotations

import json
import os
import sys
import time

if os.environ.get("HF_HUB_OFFLINE") != "1":
    sys.exit("app_client.py needs HF_HUB_OFFLINE=1 (gradio_client would look up huggingface.co)")

from gradio_client import Client, handle_file  # noqa: E402


def main() -> None:
    url = sys.argv[1]
    calls = json.load(sys.stdin)
    client = Client(url, verbose=False, download_files=sys.argv[2] if len(sys.argv) > 2 else False)
    answers = []
    for call in calls:
        args = [handle_file(a) if i in call.get("files", []) else a for i, a in enumerate(call["args"])]
        started = time.perf_counter()
        try:
            outputs = client.predict(*args, api_name=call["api_name"])
            answers.append({"outputs": list(outputs), "seconds": time.perf_counter() - started})
        except Exception as error:  # noqa: BLE001  (reported to the test, which asserts there is none)
            answers.append({"exception": f"{type(error).__name__}: {error}"})
    print(json.dumps(answers, default=str))


if __name__ == "__main__":
    main()
