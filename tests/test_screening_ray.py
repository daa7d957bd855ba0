"""`cloud-crystal predict --output FILE --ray`: a Ray Data job writes the same file as the single-process run.

Ray probes the network at start-up (the cloud-metadata address 169.254.169.254, `metadata.google.internal`, a route
to 8.8.8.8; measured with ray 2.60, no setting turns it off). So Ray runs only in a child process inside a network
namespace that has loopback alone (`unshare -n`, then `ip link set lo up`; a PID namespace as well, so that no Ray process outlives the test), with `_node_ip_address="127.0.0.1"`: that
traffic cannot leave the machine. Where such a namespace cannot be made the test is skipped, except under `CI=true`
(CI runs as root, where `unshare -n` works), where it fails instead.

Data: 45 Materials Project structures of the bundled table (CC BY 4.0, see dataset_builders/data/LICENSE-MP.md)
as a Parquet table, one row that is not a structure, and two real-world CIF files (one of them refused).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from modeling_cloud.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def _loopback_namespace() -> str | None:
    """`None` when a loopback-only network namespace can be made here, else the reason why not."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "unshare or ip is not installed"
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", "ip link set lo up"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a loopback-only network namespace (unshare -n): {probe.stderr.strip()[:200]}"
    return None


def _tiny_checkpoint(folder: Path) -> Path:
    import torch

    from modeling_cloud import CloudConfig, CloudForPropertyRegression
    from tokenization import CloudTokenizerFast
    from tokenization.scope_defaults import VOCAB_SIZES

    torch.manual_seed(0)
    config = CloudConfig(
        vocab_size=VOCAB_SIZES["v2"], hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, scope_version="v2", target_names=["formation_energy_per_atom"],
        target_units=["eV/atom"],
    )  # fmt: skip
    CloudForPropertyRegression(config).save_pretrained(folder)
    CloudTokenizerFast.from_scope_version("v2").save_pretrained(folder)
    return folder


def _inputs(folder: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataset_builders.bundled import load_materials_project

    rows = load_materials_project().select(range(0, 4500, 100))
    table = pa.table(
        {
            "material_id": [*rows["material_id"], "not-a-crystal"],
            "structure": [*rows["structure"], json.dumps({"lattice": "nonsense"})],
        }
    )
    pq.write_table(table, folder / "mp.parquet", row_group_size=16)
    cifs = folder / "cifs"
    cifs.mkdir()
    for name in ("17a-anatase-HM-origin-suffix.cif", "08-declared-Fm-3m-but-only-identity-op.cif"):
        shutil.copy(FIXTURES / "realworld" / name, cifs / name)
    return [str(folder / "mp.parquet"), str(cifs)]


#: The child process: start a local Ray on loopback, then run each command line (a JSON list of argument lists)
#: with --ray; the job joins this Ray. Prints each exit code and its stderr summary line.
_CHILD = """
import json, os, sys
import ray
ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, object_store_memory=150 * 2**20,
         _temp_dir=os.environ["CLOUD_TEST_RAY_TMP"], log_to_driver=False)
from modeling_cloud.cli import main
codes = [main(arguments) for arguments in json.loads(sys.argv[1])]
ray.shutdown()
print(json.dumps(codes))
"""


def _run_ray(runs: list[list[str]], home: Path) -> subprocess.CompletedProcess:
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "RAY_USAGE_STATS_ENABLED": "0",
        "CLOUD_TEST_RAY_TMP": ray_tmp,
        "HOME": str(home),  # nothing under the real ~ (~/.cache, ~/.ray)
    }
    child = [sys.executable, "-c", _CHILD, json.dumps(runs)]
    command = "ip link set lo up && exec " + " ".join(map(shlex.quote, child))
    try:
        return subprocess.run(
            # A PID namespace too: every process Ray started dies with the child (no worker outlives the test).
            ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", command],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _assert_same_rows(expected: list[dict], found: list[dict]) -> None:
    assert [row["source"] for row in found] == [row["source"] for row in expected]
    for want, got in zip(expected, found, strict=True):
        assert set(got) == set(want)
        for key, value in want.items():
            if isinstance(value, float) and not math.isnan(value):
                assert got[key] == pytest.approx(value, abs=1e-6), (want["source"], key)
            else:
                assert got[key] == value, (want["source"], key)


def test_ray_goes_with_output_and_names_its_extra(tmp_path, monkeypatch, capsys):
    """Neither call can start Ray: the first is refused before anything loads, the second cannot import it."""
    model = _tiny_checkpoint(tmp_path / "model")
    cif = str(FIXTURES / "realworld" / "10a-rutile-clean.vasp")
    assert main(["predict", "--model", str(model), cif, "--ray"]) == 2
    assert "--ray go with --output FILE" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert (
        main(["predict", "--model", str(model), cif, "--output", str(tmp_path / "out.parquet"), "--ray"]) == 2
    )
    assert "pip install 'cloud-crystal[ray]'" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_job_writes_the_single_process_file_and_resumes_it(tmp_path):
    from modeling_cloud.screening import ScreeningOutput, read_metadata, read_rows

    pytest.importorskip("ray.data")
    reason = _loopback_namespace()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Ray test: {reason}")
        pytest.skip(reason)
    model = _tiny_checkpoint(tmp_path / "model")
    inputs = _inputs(tmp_path)
    single = tmp_path / "single.parquet"
    common = ["predict", "--model", str(model), *inputs, "--chunk-size", "8"]
    assert main([*common, "--output", str(single)]) == 1  # some inputs fail: exit 1, every row written
    expected = read_rows(single)
    assert len(expected) == 48
    failed = [row["source"] for row in expected if row["error_reason"] is not None]
    assert len(failed) == 2 and failed[0].endswith("not-a-crystal")

    # A killed single-process run (parts for positions 0-15 and 24-31 written), to be finished by Ray.
    resumed = tmp_path / "resumed.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modeling_cloud.screening.writers import METADATA_KEY

    found = json.loads(pq.read_schema(single).metadata[METADATA_KEY])
    schema = pa.schema([field.remove_metadata() for field in pq.read_schema(single).remove_metadata()])
    partial = ScreeningOutput(resumed, schema, found["run"], found["columns"], found["versions"])
    partial.write_part(0, pa.Table.from_pylist(expected[:16], schema=schema))
    partial.write_part(24, pa.Table.from_pylist(expected[24:32], schema=schema))
    partial.close()  # as a killed run: its lock is gone

    # A whole run on Ray, then the resumed one, on one local Ray.
    whole = tmp_path / "ray.parquet"
    completed = _run_ray(
        [[*common, "--output", str(whole), "--ray"], [*common, "--output", str(resumed), "--ray"]], tmp_path
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == [1, 1]  # some inputs fail: exit 1
    _assert_same_rows(expected, read_rows(whole))
    assert read_metadata(whole)["run"] == read_metadata(single)["run"]
    assert "computed 48 in" in completed.stderr and "computed 24 in" in completed.stderr  # 24 were written
    _assert_same_rows(expected, read_rows(resumed))
