"""The book's public repository address: one setting, ``repository.url`` in ``_config.yml``, and what follows from it.

The address drives three things, which must agree:

- the repository button and the Binder / Colab launch buttons of the HTML pages (sphinx-book-theme builds the launch
  links from it);
- the hidden install cell of each chapter notebook, which installs ``twi_core`` from that repository when a bare kernel
  (Colab) lacks it, and does nothing wherever ``twi_core`` imports (a checkout, Binder, the book's own build).

The setting is empty until the book has a public home, and nothing invents one. Empty, the build shows no repository or
launch button (the theme cannot build a launch link without an address, and Jupyter Book refuses a repository button
without one) and the notebooks carry no install cell. To publish, set ``repository.url`` (``https://github.com/OWNER/
REPO``) and ``repository.branch``, then run ``python book/_ext/twi_repository.py`` to write the install cells;
``--check`` only reports notebooks that disagree with the setting (``tests/test_launch.py`` runs it).

This file is a local Sphinx extension of the book (``sphinx.local_extensions`` in ``_config.yml``) and a script; it is
not part of the ``twi_core`` package because only the book's build and its maintainers use it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SETTING = "repository.url"

#: Hosts the theme can build launch links for, and the shape of an address on them.
URL_PATTERN = re.compile(r"https://(github\.com|gitlab\.com|bitbucket\.org)/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")

#: The install cell is recognised by its id, so a rerun replaces it instead of adding a second one.
INSTALL_CELL_ID = "twi-install-twi-core"
#: Jupyter Book drops cells tagged ``remove-cell`` from the pages: readers of the book never see the cell.
INSTALL_CELL_TAGS = ["remove-cell"]


def check_url(url: str | None) -> str:
    """``url`` if it is empty or a repository address the launch buttons understand.

    Raises
    ------
    ValueError
        For anything else; the message names the setting and the accepted shape.

    Examples
    --------
    >>> check_url("https://github.com/someone/twi")
    'https://github.com/someone/twi'
    >>> check_url(None)
    ''
    """
    url = (url or "").strip()
    if url and (not URL_PATTERN.fullmatch(url) or url.endswith(".git")):
        raise ValueError(f"{SETTING} in _config.yml is {url!r}; expected an empty value or "
                         "https://github.com/OWNER/REPO (or gitlab.com, bitbucket.org), without a trailing .git or /")
    return url


def read_setting(root: Path = ROOT) -> tuple[str, str]:
    """``(repository.url, repository.branch)`` of ``root/_config.yml``: the URL checked, the branch default ``main``."""
    import yaml  # Jupyter Book's own dependency; only the script and the tests need it here

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    return check_url(repo.get("url")), str(repo.get("branch") or "main")


def install_source(url: str, branch: str) -> str:
    """The source of the install cell for a repository ``url`` at ``branch``."""
    # find_spec, not a bare import: the cell must not import twi_core itself (its import is the next cell's job and
    # would hide a broken install behind this cell). `%pip` installs into the running kernel's environment; IPython
    # turns the indented magic into a call, so the cell stays valid wherever it runs.
    return ("# Colab and other bare kernels: install twi_core when this kernel lacks it; a no-op wherever it imports.\n"
            f"# Written by book/_ext/twi_repository.py from {SETTING} in _config.yml.\n"
            "import importlib.util\n"
            "\n"
            'if importlib.util.find_spec("twi_core") is None:\n'
            f'    %pip install --quiet "twi-core @ git+{url}@{branch}"')


def install_cell(url: str, branch: str) -> dict[str, Any]:
    """The install cell as nbformat 4.5 JSON (no outputs; the build executes it)."""
    lines = install_source(url, branch).splitlines(keepends=True)
    return {"cell_type": "code", "execution_count": None, "id": INSTALL_CELL_ID,
            "metadata": {"tags": list(INSTALL_CELL_TAGS)}, "outputs": [], "source": lines}


def chapter_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks the table of contents names (the pages with launch buttons), in its order."""
    toc = (root / "_toc.yml").read_text(encoding="utf-8")
    names = re.findall(r"^\s*(?:-\s*)?(?:root|file):\s*(\S+)\s*$", toc, flags=re.MULTILINE)
    return [root / f"{name}.ipynb" for name in names if (root / f"{name}.ipynb").is_file()]


def with_install_cell(nb: dict[str, Any], url: str, branch: str) -> dict[str, Any]:
    """``nb`` with exactly one install cell right after its ``parameters`` cell (none when ``url`` is empty).

    The ``parameters`` cell stays the first code cell (papermill and the book's conventions rely on it); the install
    cell comes before the next one, the first that imports ``twi_core``.

    Raises
    ------
    ValueError
        If the notebook has no code cell tagged ``parameters``.
    """
    cells = [c for c in nb["cells"] if c.get("id") != INSTALL_CELL_ID]
    if url:
        where = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"
                      and "parameters" in c.get("metadata", {}).get("tags", [])), None)
        if where is None:
            raise ValueError("the notebook has no code cell tagged 'parameters' to put the install cell after")
        cells.insert(where + 1, install_cell(url, branch))
    return {**nb, "cells": cells}


def _dumps(nb: dict[str, Any]) -> str:
    # nbformat's own layout (one-space indent, non-ASCII kept, final newline), so an untouched notebook keeps its bytes
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def sync(root: Path = ROOT, *, check: bool = False) -> list[Path]:
    """Make every chapter notebook's install cell follow the setting; return the notebooks that disagreed.

    With ``check=True`` nothing is written.
    """
    url, branch = read_setting(root)
    stale = []
    for path in chapter_notebooks(root):
        text = path.read_text(encoding="utf-8")
        wanted = _dumps(with_install_cell(json.loads(text), url, branch))
        if wanted != text:
            stale.append(path)
            if not check:
                path.write_text(wanted, encoding="utf-8")
    return stale


def apply_to_theme(theme_options: dict[str, Any]) -> dict[str, Any]:
    """Turn the repository and launch buttons on when the address is set, and off when it is empty.

    ``theme_options`` is sphinx-book-theme's ``html_theme_options`` as Jupyter Book fills it from ``_config.yml``; it is
    changed in place and returned. Without an address the theme would fail while building a launch link.

    Raises
    ------
    ValueError
        If the address is set but malformed (:func:`check_url`).
    """
    url = check_url(theme_options.get("repository_url"))
    theme_options["repository_url"] = url
    theme_options["use_repository_button"] = bool(url)
    if not url:
        theme_options["launch_buttons"] = {}
    return theme_options


def _config_inited(app: Any, config: Any) -> None:
    apply_to_theme(config.html_theme_options)


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: adjust the buttons once the configuration is read."""
    app.connect("config-inited", _config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    """``python book/_ext/twi_repository.py [--check]``: write (or check) the chapters' install cells."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report disagreeing notebooks, write nothing")
    args = parser.parse_args(argv)
    try:
        stale = sync(check=args.check)
    except ValueError as err:
        print(f"twi_repository: error: {err}", file=sys.stderr)
        return 2
    verb = "disagrees with" if args.check else "updated from"
    for path in stale:
        print(f"{path.relative_to(ROOT)} {verb} {SETTING}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
