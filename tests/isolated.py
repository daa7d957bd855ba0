"""Run Python code in a fresh interpreter where this project's packages cannot be imported.

Used to prove that saved checkpoints and tokenizers stand alone. The child runs with ``-I -S`` (no user site, no
``.pth`` processing, so no editable-install finder), gets this interpreter's module path minus every folder that
holds one of the project's packages, and a meta-path hook makes ``import tokenization`` / ``modeling_cloud`` /
``dataset_builders`` fail even if a copy is installed elsewhere. The child checks that before running the code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT_PACKAGES = ("tokenization", "modeling_cloud", "dataset_builders")

_PRELUDE = """
import importlib.abc, sys
sys.path[:] = {paths!r}
_BLOCKED = {blocked!r}

class _BlockProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: the project must not be importable here)")
        return None

sys.meta_path.insert(0, _BlockProject())
for _name in _BLOCKED:
    try:
        __import__(_name)
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit(f"isolation failed: {{_name}} is importable")
"""


def _site_paths() -> list[str]:
    """This interpreter's module path, minus every folder that holds one of the project's packages and minus
    transformers' remote-code cache: once this process has loaded remote code, that cache is on its path, and the
    child would find this process's `transformers_modules` package there instead of building its own."""
    home = os.environ.get("HF_HOME")
    modules_cache = os.environ.get("HF_MODULES_CACHE") or (os.path.join(home, "modules") if home else None)
    paths = []
    for entry in sys.path:
        folder = Path(entry or os.getcwd())
        if not folder.is_dir() or any((folder / name).exists() for name in PROJECT_PACKAGES):
            continue
        if modules_cache is not None and folder.resolve() == Path(modules_cache).resolve():
            continue
        paths.append(str(folder))
    return paths


def run_without_project(
    code: str, cwd: str | os.PathLike, env: dict[str, str] | None = None, timeout: int = 600
):
    """Run ``code`` in a child interpreter that cannot import this project; return the CompletedProcess."""
    script = _PRELUDE.format(paths=_site_paths(), blocked=PROJECT_PACKAGES) + "\n" + textwrap.dedent(code)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if env:
        child_env.update(env)
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        cwd=os.fspath(cwd),
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
