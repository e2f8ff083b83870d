"""The summaries and figures of twi_core.chapters.appendix_datasets."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from twi_core import data
from twi_core.chapters import appendix_datasets as page
from twi_core.presets import PRESETS, resolve


def test_presets_cover_every_preset():
    assert set(page.TABLE) == set(PRESETS)
    assert resolve(page.TABLE, "smoke", env=False).n_samples == 4


def test_tables_and_figures_of_a_small_split():
    d = data.load("tetrominoes", "val", n=6)
    freq = page.class_frequencies(d.masks, d.info.num_classes)
    assert freq.shape == (d.info.num_classes,) and abs(freq.sum() - 1) < 1e-12
    counts = page.objects_per_image(d)
    assert counts.shape == (6,) and counts.dtype == int and (counts >= 1).all()
    table = page.summary_table({"tetrominoes": d})
    assert table.loc["tetrominoes", "images used"] == 6
    assert table.loc["tetrominoes", "objects/image (mean)"] == round(float(np.mean(counts)), 2)
    fig, axes = plt.subplots(2, 3)
    page.show_samples(d, n=3, ax_row_images=axes[0], ax_row_masks=axes[1])
    handles = page.legend_handles(d.info)
    assert [h.get_label() for h in handles] == list(d.info.class_names)
    plt.close(fig)
