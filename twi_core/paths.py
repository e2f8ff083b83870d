"""Where the package keeps data and runs: explicit folders, never the current working directory.

- Data cache: ``$TWI_DATA_DIR`` or the user cache folder (``~/.cache/twi/data`` on Linux).
- Run store: ``$TWI_RUNS_DIR`` or ``~/.cache/twi/runs``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root", "data_dir", "runs_dir"]


def cache_root() -> Path:
    """The root of the user cache: ``$XDG_CACHE_HOME/twi`` or ``~/.cache/twi``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "twi"


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder of the dataset cache: ``root`` if given, else ``$TWI_DATA_DIR``, else ``cache_root()/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("TWI_DATA_DIR")
    return Path(env).expanduser() if env else cache_root() / "data"


def runs_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder of the run store: ``root`` if given, else ``$TWI_RUNS_DIR``, else ``cache_root()/runs``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("TWI_RUNS_DIR")
    return Path(env).expanduser() if env else cache_root() / "runs"
