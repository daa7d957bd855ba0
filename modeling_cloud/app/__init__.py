# Copyright 2026 the cloud-crystal developers. MIT licence.
"""The web page of CLOUD (`cloud-crystal serve`, and the same page on a Hub Space: `cloud-crystal space`).

Modules, from data to page:

- `crystal_reading`: read and encode one crystal in a worker process stopped at the time limit;
- `structure_view`: the crystal as a glTF file (spheres by element, cell edges), written with numpy;
- `neighbours`: similar bundled Materials Project crystals by the first model's pooled embedding (cached index);
- `core`: [`CrystalApp`], the page's content for one request as a JSON-able dict, calling the pipeline;
- `layout`: the Gradio `Blocks` and callbacks (the only module of the package that imports Gradio);
- `serving`: `serve()` for the command line and Spaces; `space`: the Space's files and their upload.

Importing this package imports nothing heavy; Gradio comes with the `app` extra (`pip install "cloud-crystal[app]"`).
"""
