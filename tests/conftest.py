"""Shared test configuration: small presets, private caches, a headless matplotlib."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TWI_PRESET", "smoke")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private data cache and run store for one test."""
    monkeypatch.setenv("TWI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TWI_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path
