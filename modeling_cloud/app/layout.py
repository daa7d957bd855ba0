# Copyright 2026 the cloud-crystal developers. MIT licence.
"""The page: a Gradio `Blocks` layout and its callbacks over [`CrystalApp`]. The only module that imports Gradio.

Endpoints (also what `gradio_client` calls; each returns the same outputs, in the order of `OUTPUTS`):

- `/predict_file(file, choice, t_min, t_max)`: an uploaded structure file (CIF, mcif, POSCAR/CONTCAR, extxyz,
  pymatgen JSON or an OPTIMADE record);
- `/predict_text(text, choice, t_min, t_max)`: pasted text in any of those formats;
- `/predict_example(name, choice, t_min, t_max)`: a bundled example crystal by file name (`NaCl.cif`).

`choice` names the crystal to show when the input holds several (a CIF's data blocks, extxyz frames); empty or
unknown: the first. Bad input is answered in the page (the failure record in plain words), never by an exception.
"""

from __future__ import annotations

import logging
import os

# Before Gradio is imported: no usage analytics, no version check against pypi.org, no telemetry.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from .core import T_RANGE_DEFAULT, T_RANGE_SUPPORTED, CrystalApp  # noqa: E402
from .crystal_reading import MAX_ATOMS, MAX_UPLOAD_BYTES, failure  # noqa: E402

logger = logging.getLogger("cloud_crystal.app")
#: Reason of a failure that no reader or check foresaw (caught at the page's boundary, logged with its traceback).
INTERNAL_ERROR = "internal_error"

UPLOAD_LABEL = "Structure file: CIF, mcif, POSCAR/CONTCAR, extxyz, pymatgen JSON or an OPTIMADE record"
PREDICTION_HEADERS = ["model", "property", "value", "ensemble std", "unit"]
ORBIT_HEADERS = ["Wyckoff position", "element or mixture", "occupancy"]
NEIGHBOUR_HEADERS = ["material id", "formula", "space group", "cosine similarity", "labels"]
#: Names of the outputs every endpoint returns, in order.
OUTPUTS = ("summary", "choice", "scope", "orbits", "notes", "predictions", "debye_plot", "structure_view",
           "neighbours", "result")  # fmt: skip


def _intro(app: CrystalApp) -> str:
    models = ", ".join(f"`{m.name}` ({m.kind})" for m in app.models)
    return (
        "# CLOUD: crystal properties from a structure file\n"
        f"Models: {models}. Upload a structure, paste one, or click an example. Limits: files up to "
        f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB, crystals up to {MAX_ATOMS} atoms, {app.time_limit:.0f} s per request."
    )


def build_blocks(app: CrystalApp) -> gr.Blocks:
    """The page for `app` (not launched)."""

    def answer(make_request, previous: dict | None, t_min, t_max):
        """The outputs for one request; `make_request()` builds it (from an upload, a text or an example)."""
        request: dict = {}
        try:
            request = make_request()
            return render(app.analyse(request, t_min, t_max), request, previous)
        except Exception as error:  # noqa: BLE001  (the page's boundary: an error no reader foresaw still gets a record)
            logger.exception("the request on %s failed", request.get("source"))
            source = request.get("source") or "input"
            message = (
                f"the app failed on this input ({type(error).__name__}: {error}); the error is logged on the "
                "server, and the page keeps serving"
            )
            page = {"source": source, "crystals": [], "choice": None,
                    "failure": failure(source, INTERNAL_ERROR, message, type(error).__name__)}  # fmt: skip
            return render(page, {"failure": page["failure"]}, previous)

    def render(page: dict, request: dict, previous: dict | None):
        crystals = page.get("crystals") or []
        choice = gr.update(
            choices=crystals, value=page.get("choice"), visible=len(crystals) > 1, interactive=True
        )
        view = page.get("view", {}).get("path")
        result = {key: value for key, value in page.items() if key != "view"}
        if "view" in page:
            result["view"] = {key: value for key, value in page["view"].items() if key != "path"}
        figure = app.debye_figure(page)
        state = (
            {key: request.get(key) for key in ("source", "path", "text")}
            if not request.get("failure")
            else previous
        )
        return (
            app.summary_markdown(page),
            choice,
            page.get("crystal", {}).get("scope_v2", ""),
            app.orbit_rows(page),
            app.notes_markdown(page),
            app.prediction_rows(page),
            figure,
            view,
            app.neighbour_rows(page),
            result,
            state,
        )

    def predict_file(file, choice, t_min, t_max, previous=None):
        name = os.path.basename(file) if file else None
        return answer(lambda: app.request_file(file, choice or None, source=name), previous, t_min, t_max)

    def predict_text(text, choice, t_min, t_max, previous=None):
        return answer(lambda: app.request_text(text, choice or None), previous, t_min, t_max)

    def predict_example(name, choice, t_min, t_max, previous=None):
        return answer(lambda: app.request_example(name, choice or None), previous, t_min, t_max)

    def choose(choice, t_min, t_max, previous):
        """Another crystal of the last input (kept per session in a `gr.State`)."""
        if not previous:
            return predict_text("", choice, t_min, t_max, previous)
        if previous.get("path"):
            return answer(
                lambda: app.request_file(previous["path"], choice, previous["source"]), previous, t_min, t_max
            )
        return answer(lambda: app.request_text(previous["text"], choice), previous, t_min, t_max)

    with gr.Blocks(
        title="CLOUD crystal properties", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as blocks:
        last_input = gr.State(None)  # per session: which input the crystal chooser refers to
        gr.Markdown(_intro(app))
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Tab("Upload"):
                    # Any file name: POSCAR/CONTCAR have none; the reader says what it cannot read.
                    upload = gr.File(label=UPLOAD_LABEL, type="filepath")
                    upload_button = gr.Button("Predict", variant="primary", elem_id="predict-file")
                with gr.Tab("Paste"):
                    text = gr.Textbox(label="CIF, POSCAR, extxyz, pymatgen JSON or OPTIMADE record", lines=10)
                    text_button = gr.Button("Predict", variant="primary", elem_id="predict-text")
                choice = gr.Dropdown(
                    label="Crystal in the input", choices=[], visible=False, allow_custom_value=True
                )
                with gr.Row():
                    # No `minimum`/`maximum`: Gradio would refuse a value out of range with a bare error toast
                    # and leave the last crystal on the page; the app answers with its failure record instead.
                    low, high = T_RANGE_SUPPORTED
                    t_min = gr.Number(T_RANGE_DEFAULT[0], label="T min (K)", info=f"{low:g} to {high:g} K")
                    t_max = gr.Number(T_RANGE_DEFAULT[1], label="T max (K)", info="for the Debye curves")
                gr.Markdown("**Examples** (one click):")
                example_buttons = []
                with gr.Row():
                    for name in app.examples:
                        example_buttons.append(
                            (name, gr.Button(name.removesuffix(".cif"), size="sm", min_width=60))
                        )
            with gr.Column(scale=3):
                summary = gr.Markdown(elem_id="summary")
                scope = gr.Textbox(label="SCOPE v2", interactive=False, elem_id="scope")
                orbits = gr.Dataframe(
                    headers=ORBIT_HEADERS, label="Orbits", interactive=False, elem_id="orbits"
                )
                notes = gr.Markdown(elem_id="notes")
        # Full width: five columns (a unit such as J/(K·mol-fu), the ensemble's std) do not fit beside the inputs.
        predictions = gr.Dataframe(
            headers=PREDICTION_HEADERS,
            label="Predictions",
            interactive=False,
            elem_id="predictions",
            column_widths=["18%", "30%", "16%", "14%", "22%"],
            wrap=True,
        )
        with gr.Row():
            debye_plot = gr.Plot(label="Debye model: Cv, U, S, F against T", elem_id="debye-plot")
            structure_view = gr.Model3D(
                label="Structure (cell edges; spheres coloured by element)",
                clear_color=(1.0, 1.0, 1.0, 1.0),
                elem_id="structure-view",
            )
        neighbours = gr.Dataframe(
            headers=NEIGHBOUR_HEADERS,
            label="Crystals like this one (bundled Materials Project structures, by the first model's embedding)",
            interactive=False,
            elem_id="neighbours",
        )
        with gr.Accordion("Everything above as JSON", open=False):
            result = gr.JSON(elem_id="result")

        outputs = [summary, choice, scope, orbits, notes, predictions, debye_plot, structure_view, neighbours,
                   result, last_input]  # fmt: skip
        temperatures = [t_min, t_max]
        upload_button.click(predict_file, [upload, choice, *temperatures, last_input], outputs,
                            api_name="predict_file")  # fmt: skip
        text_button.click(
            predict_text, [text, choice, *temperatures, last_input], outputs, api_name="predict_text"
        )
        # One endpoint for the example buttons (and API clients): the button puts its file name in a hidden box.
        example_name = gr.Textbox(visible=False)
        example_go = gr.Button(visible=False)
        example_go.click(predict_example, [example_name, choice, *temperatures, last_input], outputs,
                         api_name="predict_example")  # fmt: skip
        for name, button in example_buttons:
            button.click(lambda n=name: n, None, example_name, api_visibility="private").then(
                predict_example,
                [example_name, choice, *temperatures, last_input],
                outputs,
                api_visibility="private",
            )
        choice.input(choose, [choice, *temperatures, last_input], outputs, api_visibility="private")
        upload.change(lambda: gr.update(choices=[], value=None, visible=False), None, choice,
                      api_visibility="private")  # fmt: skip
    return blocks
