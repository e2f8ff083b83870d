"""The figures of chapter 5 (twi_core.viz.wavelengths), on small made-up inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from twi_core.viz import wavelengths as vw  # noqa: E402


def test_wavelength_distributions_one_curve_per_epoch_of_the_seed():
    bins = np.geomspace(2, 64, 9)
    hists = {(s, e): np.full(8, 0.1 + e) for s in (0, 1) for e in (0, 1, 3)}
    ax = vw.wavelength_distributions(hists, bins, seed=1, threshold=8.0)
    assert [line.get_label() for line in ax.get_lines()[:3]] == ["init", "epoch 1", "epoch 3"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    plt.close(ax.figure)


def test_threshold_vs_loss_two_axes_one_line_per_seed_each():
    curves = pd.DataFrame({"seed": [0, 0, 1, 1], "epoch": [0, 1, 0, 1], "frac_above": [0.1, 0.3, 0.2, 0.4],
                           "val_loss": [1.0, 0.5, 0.9, 0.6]})
    ax, right = vw.threshold_vs_loss(curves)
    assert len(ax.get_lines()) == 2 and len(right.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [10.0, 30.0])
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), [-0.9, -0.6])
    plt.close(ax.figure)


def test_separability_plot_skips_models_without_moving_samples():
    table = pd.DataFrame({"model": ["NWM", "NWM", "LSTM"], "moving": [True, True, False],
                          "separability": [0.6, 0.9, 0.7]})
    spectra = {"NWM": np.array([0.8, 0.15, 0.05]), "LSTM": np.array([np.nan, np.nan, np.nan])}
    fig = vw.separability_plot(table, spectra, k_max=2)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["NWM"]
    assert len(right.get_lines()) == 1 and len(right.get_lines()[0].get_xdata()) == 2
    plt.close(fig)
