"""Every CLOUD class saved with its tokenizer loads through the Auto classes with trust_remote_code=True in a fresh
interpreter where neither `modeling_cloud` nor `tokenization` can be imported, and gives identical outputs."""

from __future__ import annotations

import json
import sys

import torch
from isolated import run_without_project
from safetensors.torch import load_file

from modeling_cloud import (
    CloudConfig,
    CloudDebyeModel,
    CloudForMaskedLM,
    CloudForPropertyClassification,
    CloudForPropertyRegression,
    CloudModel,
)
from tokenization import CloudTokenizerFast

# The interpreter's compiled stdlib modules (_ctypes, needed by torch), in case the isolation helper's path list
# misses them in a virtual environment.
DYNLOAD_PATHS = [p for p in sys.path if p.endswith("lib-dynload")]
# SCOPE v1 sizes: these tests feed the authors' v1 token ids.
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    vocab_size=564,
    scope_version="v1",
)
# (class, Auto class the user would call, config overrides)
CASES = [
    (CloudModel, "AutoModel", dict(pooling="mean")),
    (CloudForMaskedLM, "AutoModelForMaskedLM", {}),
    (
        CloudForPropertyRegression,
        "AutoModelForSequenceClassification",
        dict(
            target_names=["band_gap", "n"],
            target_units=["eV", None],
            target_means=[1.2, 2.4],
            target_stds=[1.5, 0.8],
        ),
    ),
    (CloudForPropertyClassification, "AutoModelForSequenceClassification", dict(target_names=["is_metal"])),
    (
        CloudDebyeModel,
        "AutoModelForSequenceClassification",
        dict(head_num_layers=3, debye_temperatures=[50.0, 300.0]),
    ),
]
OUTPUT_NAMES = {
    "CloudModel": ["last_hidden_state", "pooler_output"],
    "CloudForMaskedLM": ["logits"],
    "CloudForPropertyRegression": ["predictions"],
    "CloudForPropertyClassification": ["logits"],
    "CloudDebyeModel": ["theta_debye", "heat_capacity", "internal_energy", "entropy", "free_energy"],
}


def test_checkpoints_load_as_remote_code_without_the_package(tmp_path, v1_fixture_records):
    tokenizer = CloudTokenizerFast.from_scope_version("v1")
    cifs = [record["cif"] for record in v1_fixture_records[:6]]
    batch = tokenizer(cifs, padding=True, return_tensors="pt")
    expected_ids = batch["input_ids"].tolist()

    folders, expected = {}, {}
    for model_class, _, overrides in CASES:
        torch.manual_seed(11)
        folder = tmp_path / model_class.__name__
        model_class(CloudConfig(**TINY, **overrides)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[model_class.__name__] = str(folder)
        # Reference from the installed package, loading the same files (so memory layout matches the child's).
        reloaded = model_class.from_pretrained(folder).eval()
        with torch.inference_mode():
            outputs = reloaded(**batch)
        for name in OUTPUT_NAMES[model_class.__name__]:
            expected[f"{model_class.__name__}.{name}"] = getattr(outputs, name)

    code = f"""
        import sys
        sys.path.extend(p for p in {DYNLOAD_PATHS!r} if p not in sys.path)
        import json
        import torch
        import transformers
        from safetensors.torch import save_file
        # The parent's thread count: a matmul's summation order, and so its last bit, depends on it.
        torch.set_num_threads({torch.get_num_threads()})
        cases = {json.dumps([(c.__name__, auto) for c, auto, _ in CASES])}
        folders = {json.dumps(folders)}
        output_names = {json.dumps(OUTPUT_NAMES)}
        cifs = json.loads({json.dumps(json.dumps(cifs))})
        tensors, report = {{}}, {{}}
        for class_name, auto_name in cases:
            folder = folders[class_name]
            config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
            model = getattr(transformers, auto_name).from_pretrained(folder, trust_remote_code=True).eval()
            batch = tokenizer(cifs, padding=True, return_tensors="pt")
            with torch.inference_mode():
                outputs = model(**batch)
            for name in output_names[class_name]:
                tensors[class_name + "." + name] = getattr(outputs, name).contiguous()
            report[class_name] = {{
                "config": type(config).__name__, "model": type(model).__name__, "module": type(model).__module__,
                "tokenizer": type(tokenizer).__name__, "ids": batch["input_ids"].tolist(),
                "attn": model.config._attn_implementation,
            }}
        save_file(tensors, "outputs.safetensors")
        print(json.dumps(report))
    """
    result = run_without_project(
        code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    got = load_file(tmp_path / "outputs.safetensors")

    for model_class, _, _ in CASES:
        entry = report[model_class.__name__]
        assert entry["config"] == "CloudConfig"
        assert entry["model"] == model_class.__name__
        assert entry["module"].startswith("transformers_modules.")  # remote code, not the package
        assert entry["tokenizer"] == "CloudTokenizerFast"
        assert entry["ids"] == expected_ids
        assert entry["attn"] == "sdpa"
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
