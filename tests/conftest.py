"""Shared test configuration: small presets, private caches, a headless matplotlib."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TWI_PRESET", "smoke")
# `pytest -n 2` runs two workers (and their notebook kernels) on a 2-core machine: one BLAS/OpenMP thread each, or the
# spinning thread pools oversubscribe the cores and a training step gets ~10x slower (measured). Kernels inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# The equality tests compare fused and fast paths with fp32 tolerances; the bf16 head (the default on AMX CPUs) has its
# own tests in tests/test_head.py, which turn it on explicitly.
os.environ.setdefault("TWI_HEAD_BF16", "0")

import torch  # noqa: E402  (after the thread settings above)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private data cache and run store for one test."""
    monkeypatch.setenv("TWI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TWI_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path
