"""The dataset cache: ``.npz`` files keyed by dataset, split, size, seed and generator version, with a SHA-256 sidecar.

A file is written atomically (``_io.atomic_write``), then its sidecar ``<file>.sha256.json`` (hash, byte size). On
reading, a missing sidecar, a size or hash mismatch or an unreadable archive means the file is corrupt: it is deleted
with a ``warnings.warn`` naming it, and the caller regenerates. A corrupt file is never used.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .. import _io

__all__ = ["cache_file", "read_arrays", "write_arrays", "cached"]


def cache_file(folder: Path, key: dict) -> Path:
    """``folder/<k1>-<v1>_<k2>-<v2>....npz`` from an ordered key (values made file-name safe)."""
    parts = [f"{k}-{re.sub(r'[^A-Za-z0-9.]+', '', str(v))}" for k, v in key.items()]
    return Path(folder) / ("_".join(parts) + ".npz")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (uncompressed npz) atomically, then its hash sidecar."""
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    _io.atomic_write(path, writer)
    _io.atomic_write_json(_sidecar(path), {"sha256": _io.sha256_file(path), "bytes": path.stat().st_size})
    return path


def read_arrays(path: Path, *, delete_corrupt: bool = True) -> dict[str, np.ndarray] | None:
    """The arrays in ``path`` if it exists and matches its sidecar hash; ``None`` (after a warning if corrupt) otherwise.

    A corrupt file is deleted (so that it is regenerated) unless ``delete_corrupt=False`` (files shipped with the
    package).
    """
    def _discard(path: Path, why: str) -> None:
        action = "deleting it and regenerating" if delete_corrupt else "ignoring it"
        warnings.warn(f"dataset cache file {path} is {why}; {action}", RuntimeWarning, stacklevel=4)
        if delete_corrupt:
            path.unlink(missing_ok=True)
            _sidecar(path).unlink(missing_ok=True)

    path = Path(path)
    if not path.exists():
        return None
    try:
        meta = _io.read_json(_sidecar(path))
        expected, size = meta["sha256"], meta["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        _discard(path, "missing its hash sidecar (interrupted write?)")
        return None
    if path.stat().st_size != size:
        _discard(path, f"truncated or altered ({path.stat().st_size} bytes, expected {size})")
        return None
    if _io.sha256_file(path) != expected:
        _discard(path, "corrupt (SHA-256 mismatch)")
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        _discard(path, f"unreadable ({err})")
        return None


def cached(folder: Path, key: dict, n: int, make: Callable[[int], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The first ``n`` items of a generated split, from the cache or from ``make(n)``.

    ``key`` must not contain ``n``: any valid cached file of the same key with at least ``n`` items serves a prefix
    (generators are prefix-stable, so the first ``n`` of a larger file equal a fresh ``make(n)``). Otherwise
    ``make(n)`` runs and its result is cached under ``n``.
    """
    folder = Path(folder)
    stem = cache_file(folder, key).stem
    candidates = []
    for path in folder.glob(stem + "_n-*.npz"):
        match = re.fullmatch(re.escape(stem) + r"_n-(\d+)\.npz", path.name)
        if match and int(match.group(1)) >= n:
            candidates.append((int(match.group(1)), path))
    for _, path in sorted(candidates):
        arrays = read_arrays(path)
        if arrays is not None:
            return {k: v[:n] for k, v in arrays.items()}
    arrays = make(n)
    write_arrays(cache_file(folder, {**key, "n": n}), arrays)
    return arrays
