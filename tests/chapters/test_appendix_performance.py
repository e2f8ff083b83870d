"""The appendix page "Performance": twi_core.chapters.appendix_performance, on the stored GPU measurement."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from twi_core.chapters import appendix_performance as perf
from twi_core.presets import PRESETS

STORED_GPU = Path(__file__).resolve().parents[2] / "book" / "_data" / "perf_gpu.json"


def test_page_presets_cover_every_preset():
    assert set(perf.TABLE) == set(PRESETS)
    assert perf.page_settings("smoke", live_batch=3).live_batch == 3


@pytest.mark.skipif(not STORED_GPU.exists(), reason="no stored GPU measurement")
def test_gpu_report_of_the_stored_measurement():
    report = perf.gpu_report(json.loads(STORED_GPU.read_text()))
    assert set(report) == {"lines", "steps", "epochs", "figure", "glue"}
    assert set(report["glue"]) == {"gpu_ratio64", "gpu_ms64", "gpu_epoch_s", "gpu_epoch_plain_s"}
    assert report["lines"][0].startswith("measured on: ")
    assert list(report["steps"].index.names) == ["batch", "TF32", "variant"]
    plt.close(report["figure"])
