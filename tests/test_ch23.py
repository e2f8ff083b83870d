"""Tests of the figures of chapters 2 and 3 (twi_core.viz.states) and of the chapter modules ch2_polygons, ch3_table1."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from twi_core.viz import states as vs  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------------------------------- viz.states


def test_state_frames_selects_sample_channel_stride_and_crop():
    s = torch.arange(2 * 5 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 5, 3, 4, 6)
    f = vs.state_frames(s, sample=1, channel=2, stride=2, crop=(1, 3, 2, 6))
    assert f.shape == (3, 2, 4) and f.dtype == np.float32
    np.testing.assert_array_equal(f, s.numpy()[1, ::2, 2, 1:3, 2:6])
    with pytest.raises(ValueError, match="channel must be an int in \\[0, 3\\); got 3"):
        vs.state_frames(s, channel=3)
    with pytest.raises(ValueError, match="5 dimensions"):
        vs.state_frames(s[0])
    with pytest.raises(ValueError, match="crop"):
        vs.state_frames(s, crop=(3, 3, 0, 2))


def test_symmetric_limits_centre_on_zero():
    assert vs.symmetric_limits(np.array([-3.0, 1.0])) == (-3.0, 3.0)
    assert vs.symmetric_limits(np.zeros(4)) == (-1.0, 1.0)


def test_class_colors_background_black_distinct_and_colorize():
    for n in (2, 6, 11, 25):
        c = vs.class_colors(n)
        assert c.shape == (n, 3) and (c[0] == 0).all()
        assert len({tuple(row) for row in c}) == min(n, 26)
    rgb = vs.colorize_mask(np.array([[0, 1], [2, 1]]), num_classes=3)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all() and (rgb[0, 1] == rgb[1, 1]).all() and not (rgb[0, 1] == rgb[1, 0]).all()
    with pytest.raises(ValueError, match="expected \\[0, 3\\)"):
        vs.colorize_mask(np.array([[3]]), num_classes=3)


def test_to_rgb_image_grey_and_colour():
    g = vs.to_rgb_image(torch.full((1, 2, 3), 0.25))
    assert g.shape == (2, 3, 3) and np.allclose(g, 0.25)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        vs.to_rgb_image(np.zeros((2, 4, 4)))


def test_channel_panel_one_row_per_channel_with_sequence_wide_symmetric_scale():
    s = np.zeros((1, 10, 2, 5, 5), dtype=np.float32)
    s[0, 9, 0, 2, 2] = 4.0   # the largest value sits at a time step that is not shown
    s[0, 0, 1] = -0.5
    fig = vs.channel_panel(s, times=[0, 3], title="x")
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 4
    assert images[0].get_clim() == (-4.0, 4.0)      # channel 0: scale of the whole sequence
    assert images[2].get_clim() == (-0.5, 0.5)      # channel 1: its own scale
    assert [ax.get_title() for ax in fig.axes[:2]] == ["t = 1", "t = 4"]
    with pytest.raises(ValueError, match="times"):
        vs.channel_panel(s, times=[10])


def test_bins_panel_titles_carry_frequencies_and_each_panel_scales_itself():
    f = np.random.default_rng(0).random((2, 6, 1, 4, 4))
    f[1, 5] *= 100
    fig = vs.bins_panel(f, sample=1, bins=[0, 5], frequencies=np.arange(6) / 10, label="bin")
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles == ["bin 0\nf = 0", "bin 5\nf = 0.5"]
    clims = [ax.get_images()[0].get_clim() for ax in fig.axes if ax.get_images()]
    assert clims[1][1] > 10 * clims[0][1]
    with pytest.raises(ValueError, match="frequencies"):
        vs.bins_panel(f, frequencies=[1, 2])


def test_comparison_panel_rows_and_kinds():
    rows = {"NWM states": (np.random.randn(3, 4, 4), ["a", "b", "c"], "state"),
            "NWM projections": (np.random.rand(2, 4, 4), ["p0", "p1"], "feature")}
    fig = vs.comparison_panel(rows)
    assert sum(1 for ax in fig.axes if ax.get_images()) == 5
    assert fig.axes[0].get_ylabel() == "NWM states"
    with pytest.raises(ValueError, match="unknown panel kind 'wave'"):
        vs.comparison_panel({"x": (np.zeros((1, 2, 2)), ["t"], "wave")})


def test_prediction_panel_shows_input_truth_prediction_and_legend():
    imgs = torch.rand(5, 3, 8, 8)
    gt = torch.randint(0, 4, (5, 8, 8))
    pr = torch.zeros(5, 8, 8, dtype=torch.long)
    fig = vs.prediction_panel(imgs, gt, pr, num_classes=4, class_names=["bg", "a", "b", "c"], max_samples=2)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["input", "truth", "prediction"]
    assert sum(1 for ax in fig.axes if ax.get_images()) == 6
    assert fig.legends and {t.get_text() for t in fig.legends[0].get_texts()} <= {"bg", "a", "b", "c"}
    with pytest.raises(ValueError, match="class_names"):
        vs.prediction_panel(imgs, gt, pr, num_classes=4, class_names=["bg"])
    with pytest.raises(ValueError, match="must agree"):
        vs.prediction_panel(imgs, gt, pr[:, :4], num_classes=4)


def test_readout_bars_marks_the_all_background_baseline_and_the_paper():
    ours = pd.DataFrame({"readout": ["linear", "linear", "last"], "model": ["NWM", "NWM", "NWM"],
                         "fg_iou": [0.5, 0.7, 0.2], "pixel_accuracy": [0.9, 0.95, 0.88]})
    paper = pd.DataFrame({"readout": ["linear", "last"], "model": ["NWM", "NWM"], "fg_iou_mean": [0.98, 0.9],
                          "fg_iou_std": [0.01, 0.09]})
    fig = vs.readout_bars(ours, x="readout", hue="model", metrics=["fg_iou", "pixel_accuracy"], paper=paper,
                          baselines={"pixel_accuracy": 0.86})
    ax_iou, ax_acc = fig.axes[:2]
    heights = sorted(round(p.get_height(), 6) for p in ax_iou.patches)
    assert heights == [0.2, 0.6]                      # mean of the two linear runs, and the last run
    red = [ln for ln in ax_acc.get_lines() if ln.get_linestyle() == "--"]
    assert len(red) == 1 and red[0].get_ydata()[0] == pytest.approx(0.86)
    assert not [ln for ln in ax_iou.get_lines() if ln.get_linestyle() == "--"]
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"NWM", "paper (mean ± std)", "all background"} <= labels
    with pytest.raises(ValueError, match="lacks column 'fg_acc'"):
        vs.readout_bars(ours, x="readout", hue="model", metrics=["fg_acc"])


def test_learning_curves_one_line_per_run_and_log_loss():
    h1 = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [1.0, 0.5, 0.3], "val_fg_iou": [0.1, 0.2, 0.4]})
    h2 = pd.DataFrame({"epoch": [1, 2], "val_loss": [0.9, 0.8]})
    fig = vs.learning_curves({"a": h1, "b": h2}, metrics=["val_loss", "val_fg_iou"])
    assert len(fig.axes[0].get_lines()) == 2 and len(fig.axes[1].get_lines()) == 1
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    with pytest.raises(ValueError, match="empty"):
        vs.learning_curves({})


def test_class_spectrum_plot_one_normalised_curve_per_foreground_class():
    means = np.random.default_rng(0).random((4, 6, 2)) + 0.1
    fig = vs.class_spectrum_plot(means, frequencies=np.arange(6) / 10, class_names=list("bxyz"))
    assert len(fig.axes) >= 2
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["x", "y", "z"]
    np.testing.assert_allclose(lines[0].get_ydata().sum(), 1.0)
    np.testing.assert_allclose(lines[0].get_xdata(), np.arange(1, 6) / 10)
