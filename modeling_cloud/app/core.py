# Copyright 2026 the cloud-crystal developers. MIT licence.
"""What the page computes for one crystal, without Gradio: read and encode it (in a worker process with a time
limit), run every model's `crystal-property` pipeline on its SCOPE string, find similar bundled crystals, draw the
Debye curves and write the 3D view.

[`CrystalApp.analyse`] returns one JSON-able dict, the page's whole content (see its docstring); the Gradio
callbacks in `layout.py` only lay it out. The app holds no model logic: predictions, units, ensemble spreads and
Debye thermodynamics all come from the pipeline.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .crystal_reading import (
    MAX_UPLOAD_BYTES,
    NO_INPUT,
    TIME_LIMIT,
    TIME_LIMIT_S,
    CrystalReader,
    EncodingSettings,
    bundled_examples,
    check_size,
    failure,
    request_for_file,
    request_for_text,
)
from .neighbours import NeighbourIndex, pooled_embedding

logger = logging.getLogger("cloud_crystal.app")

JANAF_FILE = (
    Path(__file__).resolve().parents[2] / "dataset_builders" / "data" / "reference_heat_capacity_janaf.json"
)
#: Temperature range the Debye functions support (K), and the page's default.
T_RANGE_SUPPORTED = (1.0, 5000.0)
T_RANGE_DEFAULT = (10.0, 1000.0)
T_POINTS = 60
#: The temperature at which the predictions table reports the Debye model's thermodynamic values.
T_TABLE = 300.0
BAD_TEMPERATURES = "invalid_temperature_range"
VIEW_LIFETIME_S = 3600


@dataclass
class LoadedModel:
    """One checkpoint the page shows: its name, pipeline, tokenizer settings and kind."""

    name: str
    predictor: Any
    settings: EncodingSettings

    @property
    def kind(self) -> str:
        """ "debye", "ensemble", "regression", "classification" or "encoder" (no property head)."""
        predictor = self.predictor
        if predictor.is_debye:
            return "debye"
        if not predictor.has_trained_head:
            return "encoder"
        if predictor.architecture == "CloudForPropertyClassification":
            return "classification"
        return "ensemble" if getattr(predictor.model.config, "num_ensemble_members", 1) > 1 else "regression"


def model_display_name(model: str) -> str:
    """A folder's own name, or the Hub repo id as given."""
    path = Path(model)
    return path.name if path.exists() else model


def janaf_reference() -> dict[str, dict]:
    """The bundled JANAF Cp(T) references (J/(K·mol) per formula unit), by reduced formula."""
    return json.loads(JANAF_FILE.read_text())["crystals"]


def _rounded(value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    return f"{value:.4g}"


class CrystalApp:
    """The models, the reader and the neighbour index behind one page; `analyse` answers one request.

    Args:
        models: checkpoint folders or Hub repo ids, in the order the page lists them; the first model's embedding
            finds "Crystals like this one".
        neighbours: how many similar bundled crystals to show (0: no index, no search).
        cache_dir: where the neighbour index is kept (default `neighbours.default_cache_dir()`).
        time_limit: seconds per request (60), spent on reading and encoding in the worker.
        output_dir: where 3D views are written (a fresh temporary folder by default).

    Every model is loaded once, at construction, with the installed package's classes; the index of the first model
    is built (or read from the cache) then too. The object is shared by every user but only read after construction,
    and Gradio's queue runs one request at a time, so users never see each other's data.
    """

    def __init__(
        self,
        models: list[str],
        neighbours: int = 5,
        cache_dir: str | Path | None = None,
        time_limit: float = TIME_LIMIT_S,
        output_dir: str | Path | None = None,
    ):
        from ..loading import load_property_pipeline

        if not models:
            raise ValueError("the app needs at least one model (checkpoint folder or Hub repo id)")
        self.models: list[LoadedModel] = []
        for model in models:
            predictor = load_property_pipeline(model)
            self.models.append(
                LoadedModel(model_display_name(model), predictor, EncodingSettings.of(predictor.tokenizer))
            )
        self.settings = list(dict.fromkeys(model.settings for model in self.models))
        self.time_limit = time_limit
        self.reader = CrystalReader(time_limit)
        self.output_dir = (
            Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="cloud-app-views-"))
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.neighbours = neighbours
        self.index = NeighbourIndex.for_model(self.models[0].predictor, cache_dir) if neighbours else None
        self.examples = bundled_examples()
        self.janaf = janaf_reference()
        # The worker's server starts and imports the readers now, not on the first user's request.
        self.reader.read(request_for_file(self.examples["NaCl.cif"], self.settings))

    # -- requests -----------------------------------------------------------------------------------------------
    def request_file(
        self, path: str | Path | None, choice: str | None = None, source: str | None = None
    ) -> dict:
        if not path:
            return {"failure": failure("upload", NO_INPUT, "no file was uploaded")}
        path = Path(path)
        if not path.is_file():  # a chooser's second look at an upload that Gradio's cache has deleted since
            message = f"the uploaded file {source or path.name} is no longer on the server; upload it again"
            return {"failure": failure(source or path.name, NO_INPUT, message)}
        too_large = check_size(source or path.name, path.stat().st_size)
        if too_large:
            return {"failure": too_large}
        return request_for_file(path, self.settings, choice, source)

    def request_text(self, text: str | None, choice: str | None = None) -> dict:
        if not text or not text.strip():
            return {"failure": failure("pasted text", NO_INPUT, "the text box is empty")}
        too_large = check_size("pasted text", len(text.encode()))
        if too_large:
            return {"failure": too_large}
        return request_for_text(text, self.settings, choice)

    def request_example(self, name: str, choice: str | None = None) -> dict:
        if name not in self.examples:
            message = f"no bundled example named {name!r}; the examples are {', '.join(self.examples)}"
            return {"failure": failure(str(name), NO_INPUT, message)}
        return request_for_file(self.examples[name], self.settings, choice, source=name)

    # -- the analysis -------------------------------------------------------------------------------------------
    def analyse(
        self, request: dict, t_min: float = T_RANGE_DEFAULT[0], t_max: float = T_RANGE_DEFAULT[1]
    ) -> dict:
        """The page's content for one request (from `request_file`, `request_text` or `request_example`).

        Returns:
            `dict` with `source`, `crystals` (names of the crystals in the input), `choice` (the one shown),
            `failure` (`None` or a failure record `{"source", "reason", "type", "message"}`), and on success:
            `crystal` (formula, space group number and symbol, lattice parameters, atoms, SCOPE v2, orbits,
            notes), `models` (per model: `name`, `kind`, `scope`, `properties` as the pipeline gives them, or
            `error`), `neighbours` (rows), `janaf` (measured Cp points in range, or `None`), `view` (path of the
            GLB file and its summary), `timings` (s).
        """
        started = time.perf_counter()
        page: dict[str, Any] = {
            "source": request.get("source"),
            "crystals": [],
            "choice": None,
            "failure": None,
        }
        if request.get("failure"):
            page["failure"] = request["failure"]
            return page
        temperatures = self._temperatures(request["source"], t_min, t_max, page)
        if temperatures is None:
            return page
        answer = self.reader.read(request, self.time_limit)
        read_s = time.perf_counter() - started
        page.update(crystals=answer["crystals"], choice=answer["choice"], failure=answer["failure"])
        if answer["failure"]:
            return page
        page["crystal"] = {
            key: answer[key]
            for key in ("formula", "formula_cell", "n_atoms", "n_sites", "is_ordered", "space_group",
                        "space_group_symbol", "lattice", "scope_v2", "orbits", "notes")
        }  # fmt: skip
        page["models"] = [
            self._predict(model, answer, temperatures, i == 0, page) for i, model in enumerate(self.models)
        ]
        predict_s = time.perf_counter() - started - read_s
        page["janaf"] = self._janaf_points(answer["formula"], t_min, t_max)
        page["view"] = self._write_view(answer["structure"])
        page["timings"] = {
            "read_and_encode_s": round(read_s, 3),
            "predict_s": round(predict_s, 3),
            "total_s": round(time.perf_counter() - started, 3),
        }
        if page["timings"]["total_s"] > self.time_limit:
            page["failure"] = failure(
                answer["choice"], TIME_LIMIT, f"the request took {page['timings']['total_s']:.0f} s, above the "
                f"{self.time_limit:.0f} s limit per request",
            )  # fmt: skip
        return page

    def _temperatures(self, source: str, t_min, t_max, page: dict) -> list[float] | None:
        low, high = T_RANGE_SUPPORTED
        try:
            t_min, t_max = float(t_min), float(t_max)
        except (TypeError, ValueError):
            t_min = t_max = float("nan")
        if not (low <= t_min < t_max <= high):
            page["failure"] = failure(
                source,
                BAD_TEMPERATURES,
                f"the temperature range must satisfy {low:g} K <= T min < T max <= {high:g} K, got {t_min} to {t_max}",
                "ValueError",
            )
            return None
        grid = set(np.linspace(t_min, t_max, T_POINTS).round(3).tolist())
        if t_min <= T_TABLE <= t_max:
            grid.add(T_TABLE)
        return sorted(grid)

    def _predict(
        self, model: LoadedModel, answer: dict, temperatures: list[float], first: bool, page: dict
    ) -> dict:
        item = {
            "scope": answer["scopes"][model.settings.key],
            "n_atoms": answer["n_atoms"],
            "formula": answer["formula_cell"],
            "source": answer["choice"],
        }
        options: dict[str, Any] = {"errors": "return"}
        if model.predictor.is_debye:
            options["temperatures"] = temperatures
        want_embedding = first and self.index is not None
        if want_embedding:
            options["return_embeddings"] = True
        result = model.predictor(item, **options)
        entry: dict[str, Any] = {"name": model.name, "kind": model.kind, "scope": item["scope"]}
        if "error" in result:
            entry["error"] = result["error"]
            return entry
        entry["properties"] = result["properties"]
        if want_embedding:
            embedding = pooled_embedding(result)
            if embedding is not None:
                hits = self.index.search(embedding, self.neighbours)
                page["neighbours"] = self.index.describe(hits)
                page["neighbours_model"] = model.name
        return entry

    def _janaf_points(self, formula: str, t_min: float, t_max: float) -> dict | None:
        reference = self.janaf.get(formula)
        if reference is None:
            return None
        points = [
            (t, cp)
            for t, cp in zip(reference["temperature"], reference["heat_capacity"], strict=True)
            if t > 0 and float(t_min) <= t <= float(t_max)
        ]
        return {
            "formula": formula,
            "temperatures": [t for t, _ in points],
            "heat_capacity": [cp for _, cp in points],
            "unit": "J/(K·mol-fu)",
            "source": "NIST-JANAF (1998), Cp at constant pressure",
        }

    def _write_view(self, structure_dict: dict) -> dict:
        from pymatgen.core import Structure

        from .structure_view import structure_to_glb

        # Gradio copies each answer's file into its own cache, so views older than an hour are no longer needed.
        for old in self.output_dir.glob("*.glb"):
            if time.time() - old.stat().st_mtime > VIEW_LIFETIME_S:
                old.unlink(missing_ok=True)
        path = self.output_dir / f"{uuid.uuid4().hex}.glb"
        summary = structure_to_glb(Structure.from_dict(structure_dict), path)
        return {"path": str(path), **summary}

    # -- views of a page ------------------------------------------------------------------------------------------
    @staticmethod
    def prediction_rows(page: dict) -> list[list[str]]:
        """`[model, property, value, ± std, unit]` rows; a Debye model's curves are reported at 300 K."""
        rows = []
        for model in page.get("models", []):
            if "error" in model:
                error = model["error"]
                rows.append([model["name"], "error", f"{error['reason']}: {error['message']}", "", ""])
                continue
            if not model["properties"]:
                rows.append([model["name"], "(pretrained encoder: no property head)", "", "", ""])
            for prop in model["properties"]:
                value = prop["value"]
                name = prop["name"]
                if isinstance(value, list):
                    temperatures = prop["temperatures"]
                    if T_TABLE not in temperatures:
                        continue
                    value = value[temperatures.index(T_TABLE)]
                    name = f"{name} at {T_TABLE:g} K"
                elif isinstance(value, bool):
                    value = f"{value} (score {prop['score']:.3f})"
                std = f"± {_rounded(prop['std'])}" if "std" in prop else ""
                shown = value if isinstance(value, str) else _rounded(value)
                rows.append([model["name"], name, shown, std, prop.get("unit") or ""])
        return rows

    @staticmethod
    def orbit_rows(page: dict) -> list[list[str]]:
        return [
            [o["wyckoff"], o["species"], o["occupancy"]] for o in page.get("crystal", {}).get("orbits", [])
        ]

    @staticmethod
    def neighbour_rows(page: dict) -> list[list[Any]]:
        return [
            [n["material_id"], n["formula"], n["space_group"], n["similarity"], n["labels"]]
            for n in page.get("neighbours", [])
        ]

    @staticmethod
    def summary_markdown(page: dict) -> str:
        """The page's header: the crystal (formula, space group, lattice) or the failure in plain words."""
        if page.get("failure"):
            error = page["failure"]
            lines = [
                f"### Could not use this input: {error['reason'].replace('_', ' ')}",
                f"**{error['source']}** — {error['message']}",
                f"(reason `{error['reason']}`, {error['type']})",
            ]
            if page.get("crystals") and len(page["crystals"]) > 1:
                lines.append(f"The input holds {len(page['crystals'])} crystals; choose another one above.")
            return "\n\n".join(lines)
        crystal = page["crystal"]
        lattice = crystal["lattice"]
        lines = [
            f"### {crystal['formula']} — space group {crystal['space_group']} ({crystal['space_group_symbol']})",
            f"Lattice of the input cell: a = {lattice['a']:.4f} Å, b = {lattice['b']:.4f} Å, c = {lattice['c']:.4f} Å, "
            f"α = {lattice['alpha']:.2f}°, β = {lattice['beta']:.2f}°, γ = {lattice['gamma']:.2f}°, "
            f"V = {lattice['volume']:.2f} Å³; {crystal['n_sites']} sites, {_rounded(crystal['n_atoms'])} atoms "
            f"({'ordered' if crystal['is_ordered'] else 'disordered'}).",
        ]
        if len(page["crystals"]) > 1:
            lines.append(f"Crystal **{page['choice']}**, one of {len(page['crystals'])} in the input.")
        return "\n\n".join(lines)

    @staticmethod
    def notes_markdown(page: dict) -> str:
        notes = page.get("crystal", {}).get("notes") or []
        if not notes:
            return "The reader changed nothing in this input." if page.get("crystal") else ""
        return "**The reader's notes:**\n\n" + "\n".join(f"- {note}" for note in notes)

    def debye_figure(self, page: dict):
        """A 2×2 matplotlib figure of Cv, U, S and F against T for every Debye model (`None` when there is none);
        the JANAF points, when the crystal is a bundled reference, on the Cv panel."""
        debye = [m for m in page.get("models", []) if m.get("kind") == "debye" and "properties" in m]
        if not debye:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        titles = {"heat_capacity": "Cv", "internal_energy": "U", "entropy": "S", "free_energy": "F"}
        fig, axes = plt.subplots(2, 2, figsize=(8, 5.6))
        for model in debye:
            theta = next(p["value"] for p in model["properties"] if p["name"] == "theta_debye")
            for axis, prop in zip(
                axes.flat, [p for p in model["properties"] if p["name"] in titles], strict=True
            ):
                axis.plot(prop["temperatures"], prop["value"], label=f"{model['name']} (θD = {theta:.0f} K)")
                axis.set_title(f"{titles[prop['name']]} ({prop['unit']})", fontsize=9)
                axis.set_xlabel("T (K)", fontsize=8)
        janaf = page.get("janaf")
        if janaf and janaf["temperatures"]:
            axes[0, 0].plot(janaf["temperatures"], janaf["heat_capacity"], "o", ms=4, color="k",
                            label=f"JANAF Cp, measured ({janaf['formula']})")  # fmt: skip
        axes[0, 0].legend(fontsize=7)
        for axis in axes.flat:
            axis.tick_params(labelsize=7)
            axis.grid(alpha=0.3)
        fig.tight_layout(rect=(0, 0, 1, 0.95))  # room at the top for the page's own label of the plot
        return fig


__all__ = ["MAX_UPLOAD_BYTES", "CrystalApp", "LoadedModel"]
