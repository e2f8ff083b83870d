"""Chapter 5, wavelength analysis: the paper's Figure 10, its estimator validated, and travelling vs standing waves.

Three parts, each a few calls from the notebook:

1. :func:`synthetic_validation`: the Hilbert-transform wavelength estimator (:mod:`twi_core.analysis.wavelength`) on
   plane waves of known wavelength and direction, and on a standing wave.
2. :func:`figure10`: the NWM trained on Polygons in chapter 2 (the same run, through
   :func:`twi_core.chapters.ch2_polygons.polygon_config` and the run store) is re-loaded at every epoch checkpoint; its
   hidden states on a fixed set of validation images give the distribution of wavelengths and the share of locations
   above the 1.5 px threshold, paired with the validation loss at the same checkpoint. Extra seeds (four at the ``book``
   preset on seed 0's schedule, one on a shorter schedule at ``smoke``; stated on the page) give the spread of the
   correlation. The shipped runs carry these statistics (:data:`STATS_FILE`, written by ``python -m
   twi_core.chapters.ch5_wavelengths summarise``) instead of every epoch checkpoint; seed 0 keeps its checkpoints.
3. :func:`separability_table`: space–time separability and the travelling index
   (:mod:`twi_core.analysis.separability`) of the hidden states of trained NWMs, a trained Conv-LSTM, and untrained
   NWMs, reusing chapters 2 and 3's runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from twi_core import presets
from twi_core.analysis import separability as sep
from twi_core.analysis import wavelength as wl

__all__ = ["TABLE", "BINS", "STATS_FILE", "settings", "describe", "synthetic_validation", "figure10_configs",
           "figure10_runs", "initial_model", "initial_statistics", "checkpoint_statistics", "epoch_statistics",
           "write_epoch_statistics", "stored_statistics", "figure10", "correlations", "figure10_claim",
           "figure10_caption", "separability_models", "separability_table", "summarise_shipped"]

#: Wavelength histogram bin edges (px), logarithmic from 1 to 256.
BINS = np.geomspace(1.0, 256.0, 49)

#: The chapter's scales. ``extra_seeds``: seeds run beside chapter 2's (seed 0) for the correlation's spread;
#: ``extra_epochs`` / ``extra_n_train`` / ``extra_n_val``: their schedule and validation set (None: chapter 2's); ``n_wave``: validation images whose hidden
#: states are analysed at each checkpoint; ``threshold``: the paper's wavelength threshold (px); ``scheme``: phase
#: difference scheme; ``trim``: fraction of steps dropped at each end (Hilbert edge effects); ``time_stride``: keep
#: every n-th of the remaining steps in the wavelength statistics (the Hilbert transform still sees every step; at the
#: ``book`` preset 5, so the 500-step Polygons rollouts give 80 analysed steps, as many as 100 steps did before);
#: ``n_sep``: images per model in the separability comparison.
TABLE: dict[str, dict[str, Any]] = {
    "smoke": {"extra_seeds": [1], "extra_epochs": 1, "extra_n_train": 16, "extra_n_val": 8, "n_wave": 2,
              "threshold": 1.5, "scheme": "wrapped", "trim": 0.1, "time_stride": 1, "n_sep": 2},
    "book": {"extra_seeds": [1, 2, 3, 4], "extra_epochs": None, "extra_n_train": None, "extra_n_val": None, "n_wave": 4,
             "threshold": 1.5, "scheme": "wrapped", "trim": 0.1, "time_stride": 5,
             "n_sep": 8},
    "paper": {"extra_seeds": [1, 2, 3, 4], "extra_epochs": None, "extra_n_train": None, "extra_n_val": None,
              "n_wave": 32, "threshold": 1.5, "scheme": "wrapped", "trim": 0.1, "time_stride": 1,
              "n_sep": 32},
}


def settings(preset: str | None = "book", **overrides: Any) -> presets.Settings:
    """The chapter's settings at ``preset`` (``$TWI_PRESET`` replaces it), with ``None``-valued overrides ignored."""
    s = presets.resolve(TABLE, preset, **overrides)
    if s.scheme not in wl.SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(wl.SCHEMES)}; got {s.scheme!r}")
    if isinstance(s.time_stride, bool) or not isinstance(s.time_stride, int) or s.time_stride < 1:
        raise ValueError(f"time_stride must be an int >= 1; got {s.time_stride!r}")
    bad = [k for k in s.extra_seeds if isinstance(k, bool) or not isinstance(k, int) or k <= 0]
    if bad:
        raise ValueError(f"extra_seeds must be positive ints (seed 0 is chapter 2's run); got {s.extra_seeds!r}")
    return s


def describe(s: presets.Settings) -> str:
    """One sentence on the scale of the page."""
    from twi_core.chapters import ch2_polygons as ch2

    c2 = ch2.settings(s.preset)
    extra = ("the same schedule" if s.extra_epochs is None and s.extra_n_train is None else
             f"{s.extra_epochs or c2.epochs} epoch(s) on {s.extra_n_train or c2.n_train} images")
    return (f"preset {s.preset!r}: seed 0 is chapter 2's run ({c2.epochs} epochs on {c2.n_train} polygon images, "
            f"T = {c2.steps}); extra seeds {list(s.extra_seeds)} with {extra}; {1 + len(s.extra_seeds)} seeds in all "
            f"(the paper: 5). Wavelengths on {s.n_wave} validation images"
            f"{'' if s.time_stride == 1 else f', every {s.time_stride}th step'}, "
            f"{'the paper’s estimator (wrapped-phase differences)' if s.scheme == wl.PAPER_SCHEME else s.scheme + ' differences'}, "
            f"threshold {s.threshold} px.")


# ----------------------------------------------------------------------------------------------------------------------
# 1. The estimator on synthetic waves
# ----------------------------------------------------------------------------------------------------------------------

def synthetic_validation(*, size: int = 64, steps: int = 60, period: float = 12.0,
                         wavelengths=(5.0, 8.0, 16.0), directions=(0.0, np.pi / 4, 2.0)) -> pd.DataFrame:
    """The estimator on plane waves of known wavelength and direction, with both schemes, and on standing waves.

    Returns
    -------
    pandas.DataFrame
        One row per (wave, wavelength, direction, scheme): ``median`` and ``max_rel_error`` of the estimate (plane
        waves), ``frac_above_1.5`` and ``frac_above_image`` (share of locations with a wavelength beyond the image
        side, i.e. a uniform phase).
    """
    rows = []
    for kind, make in (("travelling", wl.plane_wave), ("standing", wl.standing_wave)):
        for lam in wavelengths:
            for direction in directions:
                x = make(size=(size, size), steps=steps, wavelength=float(lam), direction=float(direction),
                         period=period)                                   # (T, H, W)
                for scheme in sorted(wl.SCHEMES):  # the two exact schemes and the paper's (wrapped) one
                    est = wl.wavelength_field(x, time_axis=0, scheme=scheme, periodic=False)
                    defined = est[~np.isnan(est)]
                    rows.append({"wave": kind, "wavelength": lam, "direction_deg": round(np.degrees(direction), 1),
                                 "scheme": scheme, "median": float(np.median(defined)),
                                 "max_rel_error": float(np.max(np.abs(defined / lam - 1))),
                                 "frac_above_1.5": wl.fraction_above(est, 1.5),
                                 "frac_above_image": float(np.mean(defined > size))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------------
# 2. Figure 10: wavelengths through training
# ----------------------------------------------------------------------------------------------------------------------

def figure10_configs(s: presets.Settings) -> list[tuple[int, Any]]:
    """``[(seed, TrainConfig)]``: chapter 2's run (seed 0, its exact configuration) and the extra seeds."""
    from twi_core.chapters import ch2_polygons as ch2

    configs = [(0, ch2.run_config(ch2.settings(s.preset)))]
    for seed in s.extra_seeds:
        overrides = {k: v for k, v in (("epochs", s.extra_epochs), ("n_train", s.extra_n_train),
                                       ("n_val", s.extra_n_val)) if v is not None}
        configs.append((seed, ch2.polygon_config(s.preset, save_epoch_checkpoints=True, seed=seed, **overrides)))
    return configs


def figure10_runs(s: presets.Settings, *, store=None, progress: bool = True) -> dict[int, Any]:
    """``{seed: Run}`` for :func:`figure10_configs`, each from the store or trained and stored.

    Raises
    ------
    RuntimeError
        If a run ended in an error.
    """
    from twi_core import runs

    out = {}
    for seed, config in figure10_configs(s):
        labels = {"grid": "chapter5" if seed else "chapter2", "dataset": config.dataset, "family": "nwm",
                  "variant": config.model.get("readout"), "seed": seed, "preset": s.preset}
        out[seed] = runs.obtain(config, store=store, progress=progress, labels=labels).raise_for_error()
    return out


def initial_model(config) -> torch.nn.Module:
    """The untrained model of a run (:func:`twi_core.train.initial_model`: the initialisation the run started from)."""
    from twi_core.train import initial_model as start

    return start(config)


@torch.no_grad()
def _states(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    from twi_core.models import logits_and_states

    return logits_and_states(model, images, batch_size=batch_size, states=True)


#: The file in a run folder that holds :func:`epoch_statistics` of its epoch checkpoints, so that a shipped run need
#: not keep the checkpoints themselves (0.8 MB each in half precision at T = 500; 4 MB a seed).
STATS_FILE = "wavelengths.json"


def _analysis(s: presets.Settings) -> dict[str, Any]:
    """The settings a checkpoint's wavelength statistics depend on (stored with them, compared before reuse)."""
    return {"n_wave": int(s.n_wave), "threshold": float(s.threshold), "scheme": s.scheme, "trim": float(s.trim),
            "time_stride": int(s.time_stride), "bins": [float(b) for b in BINS]}


def _wave_images(config, s: presets.Settings) -> torch.Tensor:
    """The validation images whose hidden states are analysed: the first ``n_wave`` of the run's validation split."""
    from twi_core import data

    return data.load(config.dataset, "val", n=config.n_val).images[:s.n_wave]


def _fingerprint(images: torch.Tensor) -> str:
    """SHA-256 of the analysed images' bytes: stored statistics are reused only for the very same images."""
    import hashlib

    return hashlib.sha256(images.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def checkpoint_statistics(model: torch.nn.Module, images: torch.Tensor, s: presets.Settings
                          ) -> tuple[dict[str, float], np.ndarray]:
    """The wavelength statistics of one checkpoint on ``images`` (:func:`figure10`'s columns, without the loss).

    Returns
    -------
    stats : dict
        ``frac_above`` (share of defined locations above ``threshold``, the paper's scheme), ``frac_above_forward``
        (the same with forward differences), ``median_wavelength`` and ``frac_uniform`` (share with a wavelength beyond
        the image side).
    hist : numpy.ndarray
        Densities of the finite wavelengths over :data:`BINS`.
    """
    _, states = _states(model, images)
    fields = wl.wavelength_fields(states, schemes=(s.scheme, "forward"), time_axis=1, periodic=True,
                                  trim=s.trim, time_stride=s.time_stride)
    lam = fields[s.scheme]
    side = states.shape[-1]
    defined = lam[~np.isnan(lam)]
    stats = {"frac_above": wl.fraction_above(lam, s.threshold),
             "frac_above_forward": wl.fraction_above(fields["forward"], s.threshold),
             "median_wavelength": float(np.median(defined)) if defined.size else float("nan"),
             "frac_uniform": float(np.mean(defined > side)) if defined.size else float("nan")}
    return stats, wl.wavelength_histogram(lam, bins=BINS)


def initial_statistics(config, s: presets.Settings, images: torch.Tensor | None = None
                       ) -> tuple[dict[str, float], np.ndarray]:
    """Epoch 0 of :func:`figure10`: :func:`checkpoint_statistics` of the run's initialisation (:func:`initial_model`),
    plus its ``val_loss`` on the run's whole validation split (what the run's history gives for every later epoch).

    The validation pass is most of the cost (the T = 500 Polygons NWM on 100 images), which is why the shipped runs
    store this epoch too (:func:`epoch_statistics`)."""
    from twi_core import data, metrics

    val = data.load(config.dataset, "val", n=config.n_val)
    start = initial_model(config)
    stats, hist = checkpoint_statistics(start, val.images[:s.n_wave] if images is None else images, s)
    loss = metrics.evaluate(start, val, batch_size=config.batch_size)["pixel_loss"]
    return {"val_loss": float(loss), **stats}, hist


def _entry(stats: dict[str, float], hist: np.ndarray) -> dict[str, Any]:
    """One epoch of :data:`STATS_FILE`: the statistics and the histogram as plain floats (JSON)."""
    return {**stats, "hist": [float(v) for v in hist]}


def epoch_statistics(run, s: presets.Settings) -> dict[str, Any]:
    """:func:`checkpoint_statistics` of the initialisation (epoch 0, :func:`initial_statistics`, with its validation
    loss) and of every epoch checkpoint of ``run`` (epochs 1 to its last), with the settings and the fingerprint of
    the images they were computed on: what :data:`STATS_FILE` holds."""
    images = _wave_images(run.config, s)
    epochs = {"0": _entry(*initial_statistics(run.config, s, images))}
    for epoch in range(1, run.config.epochs + 1):
        epochs[str(epoch)] = _entry(*checkpoint_statistics(run.epoch_model(epoch), images, s))
    return {"format": 2, "key": run.record.key, "analysis": _analysis(s), "images_sha256": _fingerprint(images),
            "epochs": epochs}


def write_epoch_statistics(run, s: presets.Settings) -> Path:
    """Compute :func:`epoch_statistics` of ``run`` and write them to its :data:`STATS_FILE`; the path written."""
    from twi_core._io import atomic_write_json

    return atomic_write_json(run.path / STATS_FILE, epoch_statistics(run, s))


def stored_statistics(run, s: presets.Settings, images: torch.Tensor | None = None) -> dict[str, Any] | None:
    """The run's :data:`STATS_FILE` when it was computed for this run, with these settings, on these images, and
    covers every epoch (1 to the last; epoch 0, the initialisation, since format 2); None otherwise (then the
    statistics come from the epoch checkpoints)."""
    from twi_core._io import read_json

    path = run.path / STATS_FILE
    if not path.exists():
        return None
    data = read_json(path)
    images = _wave_images(run.config, s) if images is None else images
    if (data.get("key") != run.record.key or data.get("analysis") != _analysis(s)
            or data.get("images_sha256") != _fingerprint(images)
            or set(data.get("epochs", {})) - {"0"} != {str(e) for e in range(1, run.config.epochs + 1)}):
        return None
    return data


def figure10(s: presets.Settings, runs: dict[int, Any]) -> tuple[pd.DataFrame, dict[tuple[int, int], np.ndarray]]:
    """Wavelength statistics of every epoch checkpoint of every run (epoch 0 = the initialisation).

    The hidden states of the first ``n_wave`` validation images give, per checkpoint, the wavelength at every location,
    channel and (trimmed, every ``time_stride``-th) time step (:func:`twi_core.analysis.wavelength.wavelength_fields`,
    periodic: the NWM pads circularly). A run whose folder holds matching statistics (:func:`stored_statistics`, as
    the shipped Polygons runs do) is read from them instead of its epoch checkpoints; the initialisation is always
    computed unless the statistics hold it too (format 2).

    Returns
    -------
    curves : pandas.DataFrame
        One row per (seed, epoch): ``val_loss`` (the run's history; recomputed on the same validation images at epoch
        0), ``frac_above`` (share of defined locations above ``threshold``), ``median_wavelength``,
        ``frac_uniform`` (share of locations with a wavelength beyond the image side), ``images_seen``, and
        ``source`` (``"computed"`` or ``"stored statistics"``).
    hists : dict
        ``{(seed, epoch): densities over BINS}`` of the finite wavelengths.

    Raises
    ------
    ValueError
        A run has neither the epoch checkpoints nor statistics for these settings.
    """
    from twi_core import data
    from twi_core.train import EPOCH_DIR

    rows, hists = [], {}
    for seed, run in runs.items():
        cfg = run.config
        val = data.load(cfg.dataset, "val", n=cfg.n_val)
        images = val.images[:s.n_wave]
        stored = stored_statistics(run, s, images)
        history = run.history.set_index("epoch") if len(run.history) else pd.DataFrame()
        n_train = run.record.n_images.get("train", cfg.n_train)
        if stored is None and not all((run.path / EPOCH_DIR / f"epoch_{e:03d}.pt").exists()
                                      for e in range(1, cfg.epochs + 1)):
            raise ValueError(f"run {run.path.name} has neither its epoch checkpoints ({EPOCH_DIR}/) nor wavelength "
                             f"statistics ({STATS_FILE}) for these settings {_analysis(s)} on these images; retrain it "
                             f"with save_epoch_checkpoints=True or use the preset its statistics were computed at")
        for epoch in range(0, cfg.epochs + 1):
            entry = dict(stored["epochs"].get(str(epoch), {})) if stored is not None else {}
            if entry:
                hist, source = np.asarray(entry.pop("hist")), "stored statistics"
                loss = entry.pop("val_loss") if epoch == 0 else float(history.loc[epoch, "val_loss"])
                stats = entry
            elif epoch == 0:
                stats, hist = initial_statistics(cfg, s, images)
                loss, source = stats.pop("val_loss"), "computed"
            else:
                loss = float(history.loc[epoch, "val_loss"])
                stats, hist = checkpoint_statistics(run.epoch_model(epoch), images, s)
                source = "computed"
            rows.append({"seed": seed, "epoch": epoch, "images_seen": epoch * (n_train or 0), "val_loss": loss,
                         **stats, "source": source})
            hists[(seed, epoch)] = hist
    return pd.DataFrame(rows), hists


def correlations(curves: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Pearson correlation between the share above threshold and the negative validation loss over checkpoints.

    Returns
    -------
    per_seed : pandas.DataFrame
        ``seed``, ``checkpoints``, ``r`` (``nan`` with fewer than 3 checkpoints or a constant series).
    summary : dict
        ``mean_r``, ``std_r`` (over seeds, ddof = 1; ``nan`` for one seed), ``n_seeds``, and ``r_of_mean`` — the
        correlation of the seed-averaged curves over the epochs every seed has (the paper's "averaged over 5 seeds").
    """
    def pearson(a, b) -> float:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
            return float("nan")
        return float(np.corrcoef(a, b)[0, 1])

    rows = []
    for seed, g in curves.groupby("seed"):
        rows.append({"seed": seed, "checkpoints": len(g), "r": pearson(g["frac_above"], -g["val_loss"])})
    per_seed = pd.DataFrame(rows)
    common = curves.groupby("epoch").filter(lambda g: g["seed"].nunique() == curves["seed"].nunique())
    mean = common.groupby("epoch")[["frac_above", "val_loss"]].mean()
    r = per_seed["r"].dropna()
    summary = {"mean_r": float(r.mean()) if len(r) else float("nan"),
               "std_r": float(r.std(ddof=1)) if len(r) > 1 else float("nan"),
               "n_seeds": int(curves["seed"].nunique()),
               "r_of_mean": pearson(mean["frac_above"], -mean["val_loss"])}
    return per_seed, summary


def figure10_claim(curves: pd.DataFrame, *, n_permutations: int = 10_000, from_epoch: int = 1) -> dict[str, Any]:
    """The paper's Figure 10 claim as a check that can fail: the share of locations above the threshold rises with
    −validation loss over the checkpoints of training, mean Pearson r over seeds against a permutation null
    (:func:`twi_core.analysis.claims.correlation`; ≥ 3 seeds with a defined r, else *not testable*).

    The checkpoints start at ``from_epoch`` (default 1, the first trained one): the jump from the initialisation to
    the first epoch changes nearly everything at once, and with it alone any two quantities that move in the first
    epoch correlate across a few checkpoints (it decides the sign of r and, with six checkpoints, p ≈ 6⁻ⁿ for n seeds).
    """
    from twi_core.analysis import claims

    trained = curves[curves["epoch"] >= from_epoch]
    series = [(g.sort_values("epoch")["frac_above"].to_numpy(), -g.sort_values("epoch")["val_loss"].to_numpy())
              for _, g in trained.groupby("seed")]
    return claims.correlation(series, n_permutations=n_permutations)


def figure10_caption(s: presets.Settings, per_seed: pd.DataFrame, summary: dict[str, float],
                     claim: dict[str, Any], curves: pd.DataFrame | None = None) -> str:
    """Figure 10's caption (Markdown), every number and the verdict computed from the runs; with ``curves``
    (:func:`figure10`'s) it also says which seeds' checkpoints were read from stored statistics."""
    n_r = int(per_seed["r"].notna().sum())
    if n_r == 0:
        spread = "undefined (a correlation needs at least 3 checkpoints per seed and a share that changes)"
    elif n_r == 1:
        spread = f"{per_seed['r'].dropna().iloc[0]:.3f} (one seed with a defined correlation)"
    else:
        spread = f"{summary['mean_r']:.3f} ± {summary['std_r']:.3f} (mean ± std over {n_r} seeds)"
    r_mean = "undefined" if np.isnan(summary["r_of_mean"]) else f"{summary['r_of_mean']:.3f}"
    text = (f"*Figure 10 (preset `{s.preset}`).* Left: the density of finite wavelengths, seed 0, from the "
            "initialisation (dark) to the last epoch (yellow). Infinite wavelengths, where the phase is uniform, fall "
            f"outside the histogram. Right: the share of locations above {s.threshold} px (solid) and the negative "
            f"validation loss (dashed) at each checkpoint. **Correlation between the two over checkpoints: {spread}.** "
            f"The correlation of the seed-averaged curves, the paper's way (0.961 over 5 seeds), is **{r_mean}** over "
            f"the epochs every seed has. **Check** (share above threshold rises with −loss over the trained "
            f"checkpoints, epoch 1 on; mean r over seeds against {claim['n_permutations']:,} within-seed "
            f"permutations): **{claim['verdict']}** ({claim['reason']}). "
            "Both quantities follow training, so *holds* says that they move together, not that one causes the other.")
    if s.preset != "paper":
        n_seeds, lo, hi = len(per_seed), int(per_seed["checkpoints"].min()), int(per_seed["checkpoints"].max())
        seeds = "fewer seeds than the paper's 5" if n_seeds < 5 else f"{n_seeds} seeds (the paper: 5)"
        text += (f" This is {seeds} and far less training; a Pearson r over {lo if lo == hi else f'{lo}–{hi}'} "
                 "checkpoints is a noisy number.")
    if curves is not None and "source" in curves:
        from_store = curves["source"] == "stored statistics"
        stored = sorted(int(k) for k in curves.loc[from_store, "seed"].unique())
        if stored:
            initial = "are read from them too" if from_store[curves["epoch"] == 0].all() else "are computed here"
            text += (f" The trained checkpoints of seed{'s' if len(stored) > 1 else ''} "
                     f"{', '.join(map(str, stored))} are read from the wavelength statistics stored with "
                     f"{'their runs' if len(stored) > 1 else 'its run'} (`{STATS_FILE}`, computed from the epoch "
                     "checkpoints by this code; the store keeps seed 0's checkpoints, and a test recomputes its "
                     f"statistics from them); the initialisations (epoch 0, with their validation loss) {initial}.")
    return text


# ----------------------------------------------------------------------------------------------------------------------
# 3. Travelling or standing: space-time separability
# ----------------------------------------------------------------------------------------------------------------------

def separability_models(s: presets.Settings, *, store=None, progress: bool = True) -> dict[str, dict[str, Any]]:
    """The models compared: ``{label: {"model", "dataset", "trained"}}``.

    Trained NWM on Polygons (chapter 2's run) and its initialisation; trained NWM-linear and Conv-LSTM-linear on
    Tetrominoes (chapter 3's runs, through its own configurations and the run store) and the NWM's initialisation.
    """
    from twi_core import runs
    from twi_core.chapters import ch3_table1 as ch3

    poly = figure10_runs(settings(s.preset, extra_seeds=[]), store=store, progress=progress)[0]
    out = {"NWM, Polygons (trained)": {"model": poly.model(), "dataset": poly.config.dataset, "trained": True},
           "NWM, Polygons (untrained)": {"model": initial_model(poly.config), "dataset": poly.config.dataset,
                                         "trained": False}}
    points = {(p["dataset"], p["family"], p["variant"], p["seed"]): p["config"]
              for p in ch3.live_points(ch3.settings(s.preset))}
    for family, title in (("nwm", "NWM-linear"), ("lstm", "Conv-LSTM-linear")):
        key = ("tetrominoes", family, "linear", 0)
        if key not in points:
            continue
        run = runs.obtain(points[key], store=store, progress=progress,
                          labels={"grid": "chapter3", "dataset": "tetrominoes", "family": family, "variant": "linear",
                                  "seed": 0, "preset": s.preset})
        if run.status != runs.COMPLETE:
            continue
        out[f"{title}, Tetrominoes (trained)"] = {"model": run.model(), "dataset": "tetrominoes", "trained": True}
        if family == "nwm":
            out["NWM-linear, Tetrominoes (untrained)"] = {"model": initial_model(run.config), "dataset": "tetrominoes",
                                                          "trained": False}
    return out


def separability_table(s: presets.Settings, models: dict[str, dict[str, Any]]
                       ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Separability, effective rank and travelling index of every (image, channel) sequence of every model.

    Each model runs on the first ``n_sep`` validation images of its dataset; every channel of every image is one
    time × space sequence (:mod:`twi_core.analysis.separability`), after dropping the first and last ``trim`` of the
    steps like the wavelength analysis.

    Returns
    -------
    table : pandas.DataFrame
        ``model, dataset, trained, steps, image, channel, moving, separability, effective_rank, travelling_index``
        (``nan`` for channels that do not move in time, ``moving`` False).
    spectra : dict
        ``{model: mean normalised singular-value spectrum}`` (each sequence's :math:`s_k^2` divided by its sum).
    """
    from twi_core import data

    rows, spectra = [], {}
    for label, entry in models.items():
        images = data.load(entry["dataset"], "val", n=s.n_sep).images
        _, states = _states(entry["model"], images)                      # (B, T, C, H, W)
        steps = states.shape[1]
        cut = int(round(s.trim * steps))
        states = states[:, cut:steps - cut].double().numpy()
        # a channel that never moves (a dead oscillator) has no separability: leave it out, and say how many
        moving = states.std(axis=1).max(axis=(-2, -1)) > 1e-8            # (B, C)
        sv = sep.singular_spectrum(states, time_axis=1)                  # (B, C, K)
        s2 = sv ** 2
        total = s2.sum(-1)
        sepa = np.where(moving, s2[..., 0] / np.where(total > 0, total, 1.0), np.nan)
        rank = np.where(moving, total ** 2 / np.where(total > 0, (s2 ** 2).sum(-1), 1.0), np.nan)
        trav = np.full(moving.shape, np.nan)
        if moving.any():
            b_idx, c_idx = np.nonzero(moving)
            trav[b_idx, c_idx] = sep.travelling_index(states[b_idx, :, c_idx], time_axis=1)
        for b in range(states.shape[0]):
            for c in range(states.shape[2]):
                rows.append({"model": label, "dataset": entry["dataset"], "trained": entry["trained"], "steps": steps,
                             "image": b, "channel": c, "moving": bool(moving[b, c]), "separability": sepa[b, c],
                             "effective_rank": rank[b, c], "travelling_index": trav[b, c]})
        norm = s2[moving] / total[moving][:, None]
        spectra[label] = norm.mean(0) if len(norm) else np.full(s2.shape[-1], np.nan)
    return pd.DataFrame(rows), spectra


# ----------------------------------------------------------------------------------------------------------------------
# The shipped store: statistics instead of epoch checkpoints
# ----------------------------------------------------------------------------------------------------------------------

def summarise_shipped(preset: str = "book", *, keep_epochs: tuple[int, ...] = (0,), drop: bool = False,
                      root: str | Path | None = None) -> list[Path]:
    """Write :data:`STATS_FILE` into every shipped run of :func:`figure10_configs` at ``preset`` (or add epoch 0 to a
    format-1 file, which lacks it), and with ``drop`` remove the epoch checkpoints of the seeds not in ``keep_epochs``
    (seed 0 keeps them by default, so a test can recompute its statistics from them), then rewrite the store's
    manifest. Returns the statistics files written.

    Raises
    ------
    LookupError
        A run of the figure is not in the shipped store.
    """
    import shutil

    from twi_core import store
    from twi_core._io import atomic_write_json
    from twi_core.train import EPOCH_DIR

    s = settings(preset)
    root = Path(root) if root is not None else store.shipped_dir()
    written = []
    for seed, config in figure10_configs(s):
        run = store.find(config, root=root)
        if run is None:
            raise LookupError(f"seed {seed} of Figure 10 at preset {preset!r} (key {config.key()}) is not in {root}")
        stored, path = stored_statistics(run, s), None
        if stored is None:
            path = write_epoch_statistics(run, s)
        elif "0" not in stored["epochs"]:  # format 1: add the initialisation, which needs no epoch checkpoint
            epochs = {"0": _entry(*initial_statistics(run.config, s)), **stored["epochs"]}
            path = atomic_write_json(run.path / STATS_FILE, {**stored, "format": 2, "epochs": epochs})
        if path is not None:
            written.append(path)
            store.write_manifest(root)  # the next find() checks this run's folder against the manifest
        if drop and seed not in keep_epochs and (run.path / EPOCH_DIR).exists():
            shutil.rmtree(run.path / EPOCH_DIR)
    store.write_manifest(root)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m twi_core.chapters.ch5_wavelengths summarise [--drop-epochs]``: :func:`summarise_shipped`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m twi_core.chapters.ch5_wavelengths",
                                     description="Figure 10's wavelength statistics in the shipped run store")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summarise", help=f"write {STATS_FILE} into the shipped Figure 10 runs")
    p.add_argument("--preset", default="book")
    p.add_argument("--drop-epochs", action="store_true",
                   help="then remove the epoch checkpoints of every seed but those of --keep-epochs")
    p.add_argument("--keep-epochs", type=int, nargs="*", default=[0], help="seeds that keep them (default 0)")
    args = parser.parse_args(argv)
    for path in summarise_shipped(args.preset, keep_epochs=tuple(args.keep_epochs), drop=args.drop_epochs):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
