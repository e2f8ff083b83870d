"""Shared test configuration: small presets, private caches, a headless matplotlib, a read-only shipped store."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TWI_PRESET", "smoke")
# `pytest -n 2` runs two workers (and their notebook kernels) on a 2-core machine: one BLAS/OpenMP thread each, or the
# spinning thread pools oversubscribe the cores and a training step gets ~10x slower (measured). Kernels inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# The equality tests compare fused and fast paths with fp32 tolerances; the bf16 head (the default on AMX CPUs) has its
# own tests in tests/models/test_head.py, which turn it on explicitly.
os.environ.setdefault("TWI_HEAD_BF16", "0")


# Private caches for the whole run, so neither the tests nor the notebook kernels they start (nbmake; kernels inherit
# this environment) write into the user's ~/.cache. Set here, at import, because kernels and xdist workers are started
# later and inherit it: `-n 2` workers then share one data cache and one run store (a run trained by one is loaded by
# the other, as in one store). A TWI_DATA_DIR or TWI_RUNS_DIR set by the caller is kept (CI points them at the caches
# its book build filled); XDG_CACHE_HOME (the compiled CPU kernels, matplotlib's font list) is always private.
_CACHE_ROOT: Path | None = None
if "TWI_TESTS_CACHE" not in os.environ:  # the first pytest process of the run (not an xdist worker) makes the caches
    _CACHE_ROOT = Path(tempfile.mkdtemp(prefix="twi-tests-"))
    os.environ["TWI_TESTS_CACHE"] = str(_CACHE_ROOT)
    os.environ["XDG_CACHE_HOME"] = str(_CACHE_ROOT / "xdg")
    os.environ.setdefault("TWI_DATA_DIR", str(_CACHE_ROOT / "data"))
    os.environ.setdefault("TWI_RUNS_DIR", str(_CACHE_ROOT / "runs"))

import torch  # noqa: E402  (after the thread settings above)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private data cache and run store for one test."""
    monkeypatch.setenv("TWI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TWI_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


# -- the shipped run store stays read-only ----------------------------------------------------------------------------

_SHIPPED = Path(__file__).resolve().parents[1] / "book" / "_runs"
_SHIPPED_KEY = pytest.StashKey[dict]()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime in ns)} of every file under ``root``."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()} if root.is_dir() else {}


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or the only process) watches for the whole run
        config.stash[_SHIPPED_KEY] = _snapshot(_SHIPPED)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_SHIPPED_KEY, None)
    if before is None:
        return
    after = _snapshot(_SHIPPED)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the tests wrote into the shipped run store book/_runs (read-only for tests): {changed[:10]}"
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_ROOT is not None:  # only the process that made the caches removes them, after its workers are gone
        shutil.rmtree(_CACHE_ROOT, ignore_errors=True)
