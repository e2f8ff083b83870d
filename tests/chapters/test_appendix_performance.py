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


def test_time_to_accuracy_one_row_per_model_and_the_time_to_a_target():
    from twi_core.chapters import time_to_accuracy as tta

    def curve(family, variant, recipe, lr, ious):
        return {"family": family, "variant": variant, "recipe": recipe, "lr": lr, "batch_size": 16, "n_train": 2000,
                "history": [{"images_seen": 2000 * (i + 1), "elapsed_s": 60.0 * (i + 1), "val_fg_iou": v}
                            for i, v in enumerate(ious)]}

    data = {"curves": [curve("nwm", "linear", "paper", 1e-3, [0.3, 0.85]),
                       curve("nwm", "linear", "fast", 3e-3, [0.2, 0.4]),
                       curve("cnn", 4, "paper", 1e-3, [0.1, 0.2]), curve("lstm", "linear", "fast", 3e-3, [0.9])]}
    table = tta.summary_table(data, threshold=0.8)
    assert table["model"].tolist() == ["CNN L = 4", "Conv-LSTM-linear", "NWM-linear", "NWM-linear"]
    assert table["minutes to 0.8"].tolist() == ["not reached", 1.0, "not reached", 2.0]
    fig = tta.figure(data, threshold=0.8)
    rows = [ax.get_ylabel().split("\n")[0] for ax in fig.axes[::2]]
    assert rows == ["CNN L = 4", "Conv-LSTM-linear", "NWM-linear"]
    assert len(fig.axes[4].get_lines()) == 3          # NWM row: two recipes and the target line
    plt.close(fig)


def test_the_stored_time_to_accuracy_measurements_set_both_nwm_settings_side_by_side():
    """Every machine's stored measurement has the NWM-linear under the authors' protocol and the fast recipe at
    12,000 images, so the appendix's cross-machine table has both rows in every column group."""
    from twi_core.chapters import time_to_accuracy as tta

    measured = tta.load_all(Path(__file__).resolve().parents[2] / "book" / "_data")
    assert measured, "no book/_data/time_to_accuracy*.json"
    table = tta.machines_table(measured, model="NWM-linear", threshold=0.8)
    assert list(table.index[:2]) == ["authors' protocol (B 16)", "fast recipe (lr 0.001, B 4)"]
    assert len({machine for machine, _ in table.columns}) == len(measured)
    for name, data in measured.items():
        assert data["machine"]["cpu"], name
        for curve in data["curves"]:
            assert curve["history"][-1]["images_seen"] == curve["n_train"] * len(curve["history"]), name
