"""Launching the book elsewhere: the repository setting, the chapters' Colab install cell, the Binder environment."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("twi_repository", ROOT / "book" / "_ext" / "twi_repository.py")
twi_repository = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(twi_repository)

URL = "https://github.com/someone/twi"


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


# -- the setting ------------------------------------------------------------------------------------------------------

def test_the_setting_is_valid_and_not_the_invented_address():
    url, branch = twi_repository.read_setting(ROOT)
    assert "twi-book/" not in url          # the address that never existed stays gone
    assert branch
    config = _config()
    assert config["sphinx"]["local_extensions"] == {"twi_repository": "book/_ext"}
    # Jupyter Book raises before Sphinx starts when this is on without an address; the extension decides it instead.
    assert not config["html"].get("use_repository_button")


def test_the_notebooks_agree_with_the_setting():
    stale = twi_repository.sync(ROOT, check=True)
    assert not stale, f"run `python book/_ext/twi_repository.py`: {[str(p.relative_to(ROOT)) for p in stale]}"


@pytest.mark.parametrize("bad", ["https://example.org/someone/twi", "https://github.com/someone", URL + ".git",
                                 URL + "/", "git@github.com:someone/twi", "https://github.com/someone/twi/tree/main"])
def test_malformed_addresses_are_rejected_naming_the_setting(bad):
    with pytest.raises(ValueError, match=r"repository\.url .*expected"):
        twi_repository.check_url(bad)


def test_buttons_follow_the_address():
    launch = {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com"}
    off = twi_repository.apply_to_theme({"repository_url": "", "launch_buttons": dict(launch),
                                         "use_repository_button": True})
    assert off["launch_buttons"] == {} and off["use_repository_button"] is False
    on = twi_repository.apply_to_theme({"repository_url": URL, "launch_buttons": dict(launch)})
    assert on["launch_buttons"] == launch and on["use_repository_button"] is True
    with pytest.raises(ValueError):
        twi_repository.apply_to_theme({"repository_url": "https://example.org/a/b"})


# -- the install cell -------------------------------------------------------------------------------------------------

@pytest.fixture
def book_copy(tmp_path):
    """A book folder with two of the chapters and a _config.yml whose address the test sets."""
    toc = "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_drum\n  - file: book/appendix_models\n"
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text(toc, encoding="utf-8")
    for name in ("01_drum.ipynb", "appendix_models.ipynb", "intro.md"):
        shutil.copy2(ROOT / "book" / name, tmp_path / "book" / name)

    def set_url(url: str) -> Path:
        (tmp_path / "_config.yml").write_text(yaml.safe_dump({"repository": {"url": url, "branch": "pub"}}),
                                              encoding="utf-8")
        return tmp_path
    return set_url


def test_sync_writes_one_hidden_install_cell_after_the_parameters(book_copy):
    root = book_copy(URL)
    before = {p.name: p.read_bytes() for p in (root / "book").glob("*.ipynb")}
    assert sorted(p.name for p in twi_repository.sync(root)) == ["01_drum.ipynb", "appendix_models.ipynb"]
    assert twi_repository.sync(root) == []                                       # a rerun changes nothing
    for path in (root / "book").glob("*.ipynb"):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"]["tags"]                    # papermill's cell stays first
        install = code[1]
        assert install["id"] == twi_repository.INSTALL_CELL_ID and install["metadata"]["tags"] == ["remove-cell"]
        assert f'"twi-core @ git+{URL}@pub"' in "".join(install["source"]) and not install["outputs"]
        assert sum(c.get("id") == twi_repository.INSTALL_CELL_ID for c in cells) == 1
    root = book_copy("")                                                          # the address withdrawn
    assert len(twi_repository.sync(root)) == 2
    assert {p.name: p.read_bytes() for p in (root / "book").glob("*.ipynb")} == before


def _run_cell(source: str, *, has_twi_core: bool, monkeypatch) -> list[tuple[str, str]]:
    """Run the cell as IPython would (magics turned into calls) with a stand-in kernel; return the magics it ran."""
    calls: list[tuple[str, str]] = []

    class Shell:
        def run_line_magic(self, name: str, line: str) -> None:
            calls.append((name, line))

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real(name, *a) if has_twi_core or name != "twi_core" else None))
    exec(TransformerManager().transform_cell(source), {"get_ipython": Shell})  # noqa: S102 (the cell under test)
    return calls


def test_the_install_cell_is_a_no_op_where_twi_core_imports(monkeypatch):
    source = twi_repository.install_source(URL, "main")
    assert _run_cell(source, has_twi_core=True, monkeypatch=monkeypatch) == []
    calls = _run_cell(source, has_twi_core=False, monkeypatch=monkeypatch)
    assert calls == [("pip", f'install --quiet "twi-core @ git+{URL}@main"')]


# -- Binder -----------------------------------------------------------------------------------------------------------

def test_binder_installs_the_pinned_requirements():
    lines = [ln.strip() for ln in (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert "-r ../requirements.txt" in lines
    assert not [ln for ln in lines if "==" in ln], "Binder takes its pins from requirements.txt, not a second list"
    runtime = (ROOT / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    assert runtime == "python-3.11"
