"""Notebooks are committed without outputs and start with a ``parameters`` cell of literals."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_notebooks() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        files = [ROOT / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        files = []
    return files or sorted((ROOT / "book").glob("*.ipynb"))


NOTEBOOKS = _tracked_notebooks()


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_parameters_of_literals(path: Path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    first = code[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), f"{path.name}: first code cell is not tagged 'parameters'"
    tree = ast.parse("".join(first["source"]))
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{path.name}: parameters cell may only assign literals"
        ast.literal_eval(node.value)  # raises if not a literal


def test_every_public_module_is_on_an_api_page():
    """The API reference pages (book/api_*.md) document every public module of twi_core, so none is left out."""
    import pkgutil

    import twi_core

    public = [m.name for m in pkgutil.walk_packages(twi_core.__path__, "twi_core.")
              if not any(part.startswith("_") for part in m.name.split(".")[1:])]
    pages = "".join(p.read_text() for p in (ROOT / "book").glob("api_*.md"))
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"book/{p.stem}" in toc for p in (ROOT / "book").glob("api_*.md"))
    missing = [m for m in public if f".. automodule:: {m}\n" not in pages]
    assert not missing, f"modules without an API page: {missing}"
