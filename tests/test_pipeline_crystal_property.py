"""The "crystal-property" pipeline: every input kind, batching, Debye outputs, errors, and both loading paths
(installed package without trust_remote_code; a saved folder alone, in an interpreter without the package)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from isolated import run_without_project
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.vasp import Poscar
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, pipeline

from modeling_cloud import (
    CloudConfig,
    CloudDebyeModel,
    CloudForMaskedLM,
    CloudForPropertyClassification,
    CloudForPropertyRegression,
    CrystalPropertyPipeline,
)
from modeling_cloud.debye_functions import debye_thermodynamics
from modeling_cloud.pipeline_crystal_property import CrystalInputError
from tokenization import CloudTokenizerFast

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


@pytest.fixture(scope="module")
def tokenizer():
    return CloudTokenizerFast.from_scope_version("v1")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tokenizer):
    """Tiny regression, classification, Debye and MLM checkpoints, each saved with the v1 tokenizer."""
    root = tmp_path_factory.mktemp("pipeline_checkpoints")
    specs = {
        "regression": (
            CloudForPropertyRegression,
            dict(
                target_names=["band_gap", "log_kvrh"],
                target_units=["eV", "log10(GPa)"],
                target_means=[1.3, 1.9],
                target_stds=[1.4, 0.3],
            ),
        ),
        "classification": (CloudForPropertyClassification, dict(target_names=["is_metal"])),
        "debye": (CloudDebyeModel, dict(head_num_layers=3, debye_temperatures=[300.0])),
        "mlm": (CloudForMaskedLM, {}),
    }
    folders = {}
    for name, (model_class, overrides) in specs.items():
        torch.manual_seed(21)
        folder = root / name
        model_class(CloudConfig(**TINY, **overrides)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.fixture(scope="module")
def records(v1_fixture_records):
    return v1_fixture_records[:12]


def _direct_predictions(model, tokenizer, scopes, **kwargs):
    with torch.inference_mode():
        return model(**tokenizer(scopes, padding=True, return_tensors="pt"), **kwargs)


def test_installed_package_pipeline_reads_every_input_kind(checkpoints, tokenizer, records, tmp_path):
    predictor = pipeline("crystal-property", model=str(checkpoints["regression"]), device="cpu")
    assert type(predictor) is CrystalPropertyPipeline  # the installed class, no trust_remote_code needed
    assert type(predictor.model) is CloudForPropertyRegression
    assert predictor.model.config._attn_implementation == "sdpa"

    record = records[3]
    structure = Structure.from_dict(record["structure"])
    cif_path = tmp_path / "input.cif"
    cif_path.write_text(record["cif"])
    poscar_text = Poscar(structure).get_str()
    inputs = {
        "structure": (structure, record["scope_v1"]),
        "ase": (AseAtomsAdaptor.get_atoms(structure), record["scope_v1"]),
        "poscar": (poscar_text, record["scope_v1"]),
        "cif_text": (record["cif"], record["scope_v1_cif"]),  # pymatgen's CIF parser reorders the sites
        "cif_path": (str(cif_path), record["scope_v1_cif"]),
        "scope": (record["scope_v1"], record["scope_v1"]),
    }
    model = predictor.model
    for kind, (item, expected_scope) in inputs.items():
        out = predictor(item)
        assert out["scope"] == expected_scope, kind
        assert out["n_atoms"] == (None if kind == "scope" else len(structure)), kind
        reference = _direct_predictions(model, tokenizer, [expected_scope]).predictions[0]
        assert [p["name"] for p in out["properties"]] == ["band_gap", "log_kvrh"]
        assert [p["unit"] for p in out["properties"]] == ["eV", "log10(GPa)"]
        torch.testing.assert_close(torch.tensor([p["value"] for p in out["properties"]]), reference)
        assert "embedding" not in out

    dict_input = predictor({"scope": record["scope_v1"], "n_atoms": 7})
    assert dict_input["n_atoms"] == 7 and dict_input["scope"] == record["scope_v1"]


def test_length_sorted_batches_keep_input_order(checkpoints, tokenizer, records):
    predictor = pipeline("crystal-property", model=str(checkpoints["regression"]), device="cpu")
    cifs = [record["cif"] for record in records]
    batched = predictor(cifs, batch_size=5, return_embeddings=True)
    one_by_one = [predictor(cif, return_embeddings=True) for cif in cifs]
    assert [out["scope"] for out in batched] == [record["scope_v1_cif"] for record in records]
    lengths = [len(tokenizer(out["scope"])["input_ids"]) for out in batched]
    assert len(set(lengths)) > 3  # the batches really mix lengths, so padding and sorting are exercised
    # The model sees batches of similar length: padded tokens are those of the sorted lengths cut in fives.
    seen_shapes = []
    forward = predictor.model.forward

    def recording_forward(*args, **kwargs):
        seen_shapes.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    predictor.model.forward = recording_forward
    try:
        predictor(cifs, batch_size=5)
    finally:
        del predictor.model.forward
    ordered = sorted(lengths)
    sorted_tokens = sum(max(ordered[i : i + 5]) * len(ordered[i : i + 5]) for i in range(0, len(ordered), 5))
    input_order_tokens = sum(
        max(lengths[i : i + 5]) * len(lengths[i : i + 5]) for i in range(0, len(lengths), 5)
    )
    assert sorted_tokens < input_order_tokens  # the fixture order is not already sorted
    assert sum(rows * width for rows, width in seen_shapes) == sorted_tokens
    for many, single in zip(batched, one_by_one, strict=True):
        assert many["n_atoms"] == single["n_atoms"]
        torch.testing.assert_close(
            torch.tensor([p["value"] for p in many["properties"]]),
            torch.tensor([p["value"] for p in single["properties"]]),
            rtol=1e-5,
            atol=1e-5,
        )
        torch.testing.assert_close(
            torch.tensor(many["embedding"]), torch.tensor(single["embedding"]), rtol=1e-5, atol=1e-5
        )
    embeddings = _direct_predictions(
        predictor.model, tokenizer, [out["scope"] for out in batched], return_embeddings=True
    ).embeddings
    torch.testing.assert_close(
        torch.tensor([out["embedding"] for out in batched]), embeddings, rtol=1e-5, atol=1e-5
    )


def test_worker_processes_give_the_same_results_and_errors(checkpoints, records):
    predictor = pipeline("crystal-property", model=str(checkpoints["regression"]), device="cpu")
    items = [record["cif"] for record in records[:8]] + ["not\na crystal"]
    in_process = predictor(items, errors="return", batch_size=4)
    with_workers = predictor(items, errors="return", batch_size=4, num_workers=2)
    assert with_workers == in_process
    assert with_workers[8]["error"]["type"] == "StructureParseError"
    with pytest.raises(CrystalInputError, match="input 8"):
        predictor(items, num_workers=2)


def test_debye_pipeline_gives_theta_and_thermodynamics_per_cell_or_per_atom(checkpoints, tokenizer, records):
    predictor = pipeline("crystal-property", model=str(checkpoints["debye"]), device="cpu")
    structure = Structure.from_dict(records[5]["structure"])
    scope = records[5]["scope_v1"]
    temperatures = [50.0, 300.0, 1200.0]
    from_structure, per_cell = predictor(
        [structure, {"scope": scope, "n_atoms": len(structure)}], temperatures=temperatures, basis="cell"
    )
    per_atom = predictor(
        scope, temperatures=temperatures
    )  # a bare v1 string fixes no formula: per mole of atoms
    assert from_structure["n_atoms"] == len(structure) and per_atom["n_atoms"] is None
    names = [p["name"] for p in from_structure["properties"]]
    assert names == ["theta_debye", "heat_capacity", "internal_energy", "entropy", "free_energy"]
    theta = from_structure["properties"][0]
    assert theta["unit"] == "K" and theta["value"] > 0
    reference_theta = _direct_predictions(predictor.model, tokenizer, [scope]).theta_debye[0]
    assert theta["value"] == pytest.approx(float(reference_theta), rel=1e-5)

    expected = debye_thermodynamics(torch.tensor(theta["value"]), torch.tensor(temperatures), len(structure))
    for cell_entry, atom_entry, explicit_entry in zip(
        from_structure["properties"][1:], per_atom["properties"][1:], per_cell["properties"][1:], strict=True
    ):
        assert cell_entry["temperatures"] == temperatures
        assert cell_entry["basis"] == "cell" and atom_entry["basis"] == "atom"
        assert "mol-atoms" in atom_entry["unit"] and "mol-cells" in cell_entry["unit"]
        torch.testing.assert_close(torch.tensor(cell_entry["value"]), getattr(expected, cell_entry["name"]))
        torch.testing.assert_close(
            torch.tensor(atom_entry["value"]) * len(structure),
            torch.tensor(cell_entry["value"]),
            rtol=1e-5,
            atol=1e-3,
        )
        assert explicit_entry["value"] == cell_entry["value"]

    # The default temperatures come from the config.
    default = predictor(scope, n_atoms=2)
    assert default["properties"][1]["temperatures"] == [300.0]
    # Per-item atom counts go in dict items; a list of counts cannot be matched to the items of a stream.
    with pytest.raises(TypeError, match="per-item counts in dict inputs"):
        predictor([scope, scope], n_atoms=[2])
    with pytest.raises(ValueError, match="basis must be one of"):
        predictor(scope, basis="mole")
    (refused,) = predictor([scope], basis="cell", errors="return")
    assert refused["error"]["reason"] == "invalid_input" and "n_atoms" in refused["error"]["message"]


def test_debye_outputs_are_per_formula_unit_for_every_cell_of_a_crystal(tmp_path):
    """Primitive and conventional cells of one crystal give the same numbers (per mole of formula units)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    torch.manual_seed(3)
    folder = tmp_path / "debye_v2"
    CloudDebyeModel(
        CloudConfig(**{**TINY, "scope_version": "v2", "vocab_size": 642}, head_num_layers=2)
    ).save_pretrained(folder)
    v2 = CloudTokenizerFast.from_scope_version("v2")
    v2.save_pretrained(folder)
    predictor = pipeline("crystal-property", model=str(folder), device="cpu")

    conventional = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    primitive = SpacegroupAnalyzer(conventional).get_primitive_standard_structure()
    assert (len(conventional), len(primitive)) == (8, 2)
    temperatures = [100.0, 300.0]
    conv, prim, scope_only = predictor(
        [conventional, primitive, "SG225 Na 0.5 4a Cl 0.5 4b"], temperatures=temperatures
    )
    assert conv["formula"] == prim["formula"] == scope_only["formula"] == "NaCl"
    for a, b, c in zip(
        conv["properties"][1:], prim["properties"][1:], scope_only["properties"][1:], strict=True
    ):
        assert a["basis"] == b["basis"] == c["basis"] == "formula_unit" and "mol-fu" in a["unit"]
        torch.testing.assert_close(torch.tensor(a["value"]), torch.tensor(b["value"]))
        torch.testing.assert_close(torch.tensor(a["value"]), torch.tensor(c["value"]))
    theta = conv["properties"][0]["value"]
    expected = debye_thermodynamics(torch.tensor(theta), torch.tensor(temperatures), 2)  # 2 atoms per NaCl
    torch.testing.assert_close(torch.tensor(conv["properties"][1]["value"]), expected.heat_capacity)
    # Per cell the two cells differ by their atom counts, 8 : 2.
    conv_cell, prim_cell = predictor([conventional, primitive], temperatures=temperatures, basis="cell")
    torch.testing.assert_close(
        torch.tensor(conv_cell["properties"][1]["value"]),
        4 * torch.tensor(prim_cell["properties"][1]["value"]),
    )


def test_classification_and_embedding_only_checkpoints(checkpoints, tokenizer, records):
    classifier = pipeline("crystal-property", model=str(checkpoints["classification"]), device="cpu")
    out = classifier(records[0]["scope_v1"])
    (entry,) = out["properties"]
    logit = _direct_predictions(classifier.model, tokenizer, [records[0]["scope_v1"]]).logits[0, 0]
    assert entry["name"] == "is_metal"
    assert entry["score"] == pytest.approx(float(torch.sigmoid(logit)), rel=1e-5)
    assert entry["value"] is (entry["score"] >= 0.5)

    # A pretrained (MLM) checkpoint opens with an untrained head: the pipeline returns embeddings, not predictions.
    encoder_only = pipeline("crystal-property", model=str(checkpoints["mlm"]), device="cpu")
    assert not encoder_only.has_trained_head
    out = encoder_only(records[0]["scope_v1"])
    assert out["properties"] == [] and len(out["embedding"]) == 32
    mlm = CloudForMaskedLM.from_pretrained(checkpoints["mlm"]).eval()
    with torch.inference_mode():
        pooled = mlm.bert(**tokenizer([records[0]["scope_v1"]], return_tensors="pt")).pooler_output[0]
    torch.testing.assert_close(torch.tensor(out["embedding"]), pooled, rtol=1e-5, atol=1e-6)


def test_bad_items_are_named_or_returned_in_place(checkpoints, records):
    predictor = pipeline("crystal-property", model=str(checkpoints["regression"]), device="cpu")
    disordered = Structure(Lattice.cubic(3.6), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    good = records[0]["scope_v1"]
    items = [good, "data_x\nnot a crystal\n", disordered, "1 0 0 | 1a | Xq 1.0", records[1]["cif"]]

    with pytest.raises(CrystalInputError, match=r"input 1 \(text starting 'data_x'\)") as caught:
        predictor(items)
    assert caught.value.index == 1 and caught.value.error_type == "StructureParseError"
    assert isinstance(caught.value.__cause__, ValueError)

    results = predictor(items, errors="return", batch_size=2, disorder="raise")
    assert len(results) == 5
    assert results[0]["scope"] == good and results[4]["scope"] == records[1]["scope_v1_cif"]
    assert all(set(r["error"]) == {"source", "reason", "type", "message"} for r in results[1:4])
    assert (
        results[1]["error"]["source"].startswith("input 1 ")
        and results[1]["error"]["type"] == "StructureParseError"
    )
    assert results[1]["error"]["reason"] == "parse_error"
    assert (
        results[2]["error"]["type"] == "DisorderedStructureError"
        and "Structure" in results[2]["error"]["source"]
        and results[2]["error"]["reason"] == "disordered_structure"
    )
    assert results[3]["error"]["source"].startswith("input 3 ") and "Xq" in results[3]["error"]["message"]
    # The default policy encodes the disordered crystal (pymatgen's atom types in v1), with a warning that this
    # model was trained on ordered crystals only.
    encoded = predictor(disordered)
    assert encoded["scope"].endswith("| 1a | Fe 0.5 Co 0.5") and encoded["properties"]

    # v1 WordPiece would split unknown words silently ("Xq" -> "X ##q"); element symbols it splits are legitimate.
    with pytest.raises(CrystalInputError, match=r"outside the SCOPE v1 vocabulary: \['9z', '0.333'\]"):
        predictor("1 0 0 | 9z | Cu 0.333")
    assert predictor("1 0 0 | 1a | Og 1.0")["properties"]

    with pytest.raises(ValueError, match="errors must be one of"):
        predictor(good, errors="ignore")
    with pytest.raises(TypeError, match="unknown options"):
        predictor(good, temperature=300)


def test_tokenizer_must_match_the_model(checkpoints):
    model = CloudForPropertyRegression.from_pretrained(checkpoints["regression"])
    with pytest.raises(ValueError, match="SCOPE v2 but the model was trained on SCOPE v1"):
        CrystalPropertyPipeline(
            model=model, tokenizer=CloudTokenizerFast.from_scope_version("v2"), device="cpu"
        )
    plain = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    )
    with pytest.raises(TypeError, match="needs the CLOUD tokenizer"):
        CrystalPropertyPipeline(model=model, tokenizer=plain, device="cpu")


def test_saved_pipeline_runs_from_its_folder_without_the_package(checkpoints, tokenizer, records, tmp_path):
    model = CloudDebyeModel.from_pretrained(checkpoints["debye"])
    folder = tmp_path / "debye_pipeline"
    pipeline("crystal-property", model=model, tokenizer=tokenizer, device="cpu").save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["custom_pipelines"]["crystal-property"] == {
        "impl": "pipeline_crystal_property.CrystalPropertyPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "type": "text",
    }
    assert (folder / "pipeline_crystal_property.py").is_file()

    inputs = [
        records[2]["cif"],
        {"scope": records[7]["scope_v1"], "n_atoms": 4},
        records[9]["cif"],
        "garbage\ntext",
    ]
    options = dict(
        temperatures=[100.0, 300.0],
        basis="cell",
        errors="return",
        batch_size=2,
        return_embeddings=True,
    )
    # Reference: the installed pipeline on the very same weight files.
    local = pipeline(
        "crystal-property", model=CloudDebyeModel.from_pretrained(folder), tokenizer=tokenizer, device="cpu"
    )
    expected = local(inputs, **options)

    code = f"""
        import sys
        sys.path.extend(p for p in {DYNLOAD_PATHS!r} if p not in sys.path)
        import json
        from transformers import pipeline
        predictor = pipeline("crystal-property", model={str(folder)!r}, trust_remote_code=True, device="cpu")
        inputs = json.loads({json.dumps(json.dumps(inputs))})
        options = json.loads({json.dumps(json.dumps(options))})
        out = predictor(inputs, **options)
        print(json.dumps({{"pipeline": type(predictor).__module__, "model": type(predictor.model).__module__,
                          "tokenizer": type(predictor.tokenizer).__module__, "out": out}}))
    """
    result = run_without_project(
        code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("pipeline", "model", "tokenizer"):
        assert payload[key].startswith("transformers_modules."), payload[key]
    assert payload["out"] == json.loads(json.dumps(expected))
    assert payload["out"][3]["error"]["type"] == "StructureParseError"
    assert payload["out"][1]["properties"][1]["basis"] == "cell"


def _values(results):
    return [
        r if "error" in r else [r["scope"], [p["value"] for p in r["properties"]], r.get("embedding")]
        for r in results
    ]


@pytest.mark.parametrize("bad_items", [False, True], ids=["good", "with-bad-items"])
def test_dataset_keydataset_and_generator_match_a_list(checkpoints, records, bad_items):
    import datasets
    from transformers.pipelines.pt_utils import KeyDataset

    items = [record["cif"] for record in records[:7]] + [records[7]["scope_v1"]]
    if bad_items:
        items[2], items[5] = "data_x\nnot a crystal\n", "1 0 0 | 1a | Xq 1.0"
    predictor = pipeline("crystal-property", model=str(checkpoints["regression"]), device="cpu")
    options = dict(errors="return", return_embeddings=True)
    expected = predictor(items, batch_size=3, **options)
    assert [("error" in r) for r in expected] == [bad_items and i in (2, 5) for i in range(8)]

    table = datasets.Dataset.from_dict({"structure": items, "material_id": [f"mp-{i}" for i in range(8)]})
    from_keydataset = list(predictor(KeyDataset(table, "structure"), batch_size=3, **options))
    from_generator = list(predictor((item for item in items), batch_size=3, **options))
    from_dataset = list(
        pipeline("crystal-property", model=str(checkpoints["regression"]), device="cpu", batch_size=3)(
            table, **options
        )
    )
    for name, results in (
        ("KeyDataset", from_keydataset),
        ("generator", from_generator),
        ("Dataset", from_dataset),
    ):
        assert len(results) == len(items), name
        for got, want in zip(_values(results), _values(expected), strict=True):
            if isinstance(want, dict):
                assert (
                    got["error"]["type"] == want["error"]["type"]
                    and got["error"]["reason"] == want["error"]["reason"]
                )
            else:
                assert got[0] == want[0], name
                torch.testing.assert_close(torch.tensor(got[1]), torch.tensor(want[1]), rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(torch.tensor(got[2]), torch.tensor(want[2]), rtol=1e-5, atol=1e-5)
    if bad_items:
        # Rows of a Dataset are named by their material_id; list items by their index.
        assert from_dataset[2]["error"]["source"] == "input 2 (mp-2)"
        assert from_generator[5]["error"]["source"].startswith("input 5 (SCOPE")
        with pytest.raises(CrystalInputError, match="input 2"):
            list(predictor(KeyDataset(table, "structure"), batch_size=3))


PLAIN_SAVE_RUN = """
import json, sys
sys.path.extend(p for p in {dynload!r} if p not in sys.path)
from transformers import pipeline
predictor = pipeline("crystal-property", model={folder!r}, trust_remote_code=True, device="cpu")
out = predictor({inputs!r}, temperatures=[300.0], errors="return")
print(json.dumps({{"pipeline": type(predictor).__module__, "project_imported": "modeling_cloud" in sys.modules,
                  "out": out}}))
"""


def test_plain_save_pretrained_checkpoint_runs_the_pipeline_in_a_fresh_process(tokenizer, records, tmp_path):
    """The README's Trainer path saves with model.save_pretrained + tokenizer.save_pretrained only."""
    import subprocess

    torch.manual_seed(5)
    folder = tmp_path / "plain"
    CloudDebyeModel(CloudConfig(**TINY, head_num_layers=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert (
        saved["custom_pipelines"]["crystal-property"]["impl"]
        == "pipeline_crystal_property.CrystalPropertyPipeline"
    )
    assert (folder / "pipeline_crystal_property.py").is_file()

    inputs = [records[2]["cif"], "garbage\ntext"]
    expected = pipeline("crystal-property", model=str(folder), device="cpu")(
        inputs, temperatures=[300.0], errors="return"
    )
    code = PLAIN_SAVE_RUN.format(dynload=DYNLOAD_PATHS, folder=str(folder), inputs=inputs)
    env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    # 1. The package is importable but not imported.
    importable = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={**__import__("os").environ, **env},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    # 2. The package cannot be imported at all.
    isolated = run_without_project(code, cwd=tmp_path, env=env)
    for result in (importable, isolated):
        assert result.returncode == 0, result.stderr[-4000:]
        payload = json.loads(result.stdout.strip().splitlines()[-1])
        assert payload["pipeline"].startswith("transformers_modules.") and not payload["project_imported"]
        assert payload["out"] == json.loads(json.dumps(expected))
    assert payload["out"][1]["error"]["reason"] == "parse_error"


def test_a_file_with_several_crystals_gives_one_result_per_crystal(checkpoints):
    predictor = pipeline("crystal-property", model=str(checkpoints["regression"]), device="cpu")
    two_blocks = Path(__file__).parent / "fixtures" / "realworld" / "16b-two-crystal-blocks.cif"
    results = predictor([str(two_blocks), str(two_blocks) + "#KCl"])
    assert isinstance(results[0], list) and len(results[0]) == 2  # NaCl and KCl, in file order
    nacl, kcl = results[0]
    assert nacl["properties"][0]["value"] != kcl["properties"][0]["value"]
    assert results[1]["properties"] == kcl["properties"]  # the block named alone gives the same prediction
