"""Chapter 2, Polygons: the NWM with the FFT readout, its hidden waves, its spectra, and its segmentations.

The paper's proof of concept (its Figures 3 and 4): an NWM with the FFT readout segments white polygons (3 to 6 sides)
on black by the number of sides. This module holds the chapter's scale table and the few calls its notebook makes; the
training goes through :func:`twi_core.runs.obtain`, so the run is cached by configuration and chapter 5 reuses it
(:func:`polygon_config` is the one definition both chapters ask for).

Configuration at the ``book`` preset, and why (the page states it too): the paper runs the polygon NWM for T = 500
steps and reads 250 Fourier bins; it does not print the step size, and Δt = 0.1 is its value on every other dataset and
:func:`twi_core.models.paper_config`'s. The book keeps that horizon, T = 500 steps of Δt = 0.1 (50 time units, with
K = T // 2 + 1 = 251 bins), and cuts the images instead: 5 epochs of 1,200 training images, far from the paper's
300 epochs of 10,000, and the page says so. Chapter 2's horizon sweep (``benchmarks/polygon_horizons.py``) shows how
much T·Δt matters at a small scale; the ``paper`` preset is the paper's protocol.

Cost (measured on the 2-core AVX-512 development machine, one torch thread, batch 16): a training step at T = 500 takes
4.1 s alone and about 5.3 s with a second run on the other core, so one stored run is about 35 minutes; the build loads
the five stored seeds and trains nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from twi_core import presets
from twi_core.analysis import spectra
from twi_core.train import TrainConfig

__all__ = ["TABLE", "DATASET", "SPECTRA_DATASET", "settings", "polygon_config", "run_config", "still_improving", "history_with_images",
           "train", "hidden_states",
           "example", "class_examples", "validation_spectra", "load_horizons", "horizon_table", "horizon_figure",
           "seed_spread", "horizon_summary", "segment", "describe"]

#: Dataset the model is trained on (1–2 polygons per image) and the one-polygon set used for the wave figures.
DATASET = "polygons"
SPECTRA_DATASET = "polygons_single"

#: The chapter's scales. ``steps``/``dt``: the NWM's time steps and step size; ``n_*``: images per split; ``epochs``,
#: ``batch_size``: training; ``n_spectra``: validation images averaged for the class spectra; ``gif_stride``: keep every
#: n-th step in the animations.
TABLE: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 12, "dt": 0.2, "epochs": 1, "batch_size": 16, "n_train": 32, "n_val": 16, "n_test": 16,
              "seed": 0, "n_spectra": 16, "gif_stride": 1, "n_segment": 3},
    "book": {"steps": 500, "dt": 0.1, "epochs": 5, "batch_size": 16, "n_train": 1200, "n_val": 100, "n_test": 100,
             "seed": 0, "n_spectra": 64, "gif_stride": 10, "n_segment": 4},
    "paper": {"steps": 500, "dt": 0.1, "epochs": 300, "batch_size": 64, "n_train": None, "n_val": None,
              "n_test": None, "seed": 0, "n_spectra": 1000, "gif_stride": 5, "n_segment": 4},
}


def settings(preset: str | None = "book", **overrides: Any) -> presets.Settings:
    """The chapter's settings at ``preset`` (``$TWI_PRESET`` replaces it), with ``None``-valued overrides ignored."""
    return presets.resolve(TABLE, preset, **overrides)


def polygon_config(preset: str | None = "book", *, save_epoch_checkpoints: bool = True, seed: int | None = None,
                   **overrides: Any) -> TrainConfig:
    """The training configuration of the chapter's NWM-FFT on Polygons at ``preset``.

    Chapters 2 and 5 both call this (chapter 5 needs the per-epoch checkpoints, hence the default
    ``save_epoch_checkpoints=True``), so they share one run in the store.

    Parameters
    ----------
    preset : {"smoke", "book", "paper"}
        Scale; ``$TWI_PRESET`` replaces it when set.
    save_epoch_checkpoints : bool
        Keep a checkpoint after every epoch (part of the run's key).
    seed : int, optional
        Defaults to the preset's seed.
    **overrides
        Keys of :data:`TABLE` (``None`` keeps the preset's value).

    Examples
    --------
    >>> cfg = polygon_config("smoke")
    >>> cfg.dataset, cfg.model["readout"], cfg.model["steps"], cfg.save_epoch_checkpoints
    ('polygons', 'fft', 12, True)
    """
    from twi_core.models import paper_config

    s = settings(preset, **overrides)
    if not isinstance(save_epoch_checkpoints, bool):
        raise TypeError(f"save_epoch_checkpoints must be a bool; got {save_epoch_checkpoints!r}")
    model = dict(paper_config(DATASET, "nwm", "fft"))
    model.update(steps=s.steps, dt=s.dt)
    return TrainConfig(dataset=DATASET, model=model, seed=s.seed if seed is None else seed, epochs=s.epochs,
                       batch_size=s.batch_size, n_train=s.n_train, n_val=s.n_val, n_test=s.n_test,
                       save_epoch_checkpoints=save_epoch_checkpoints)


def run_config(s: presets.Settings, *, save_epoch_checkpoints: bool = True) -> TrainConfig:
    """:func:`polygon_config` at the preset of settings ``s``, with the overrides ``s`` carries."""
    changed = {k: s[k] for k in TABLE[s.preset] if s[k] != TABLE[s.preset][k]}
    return polygon_config(s.preset, save_epoch_checkpoints=save_epoch_checkpoints, **changed)


def history_with_images(run):
    """The run's learning curves (:attr:`twi_core.runs.Run.history`) with a column ``images``: training images seen at
    the end of each epoch (full batches only, as the training loop drops the last partial batch)."""
    history = run.history.copy()
    n_train = run.record.n_images.get("train")
    if n_train and "epoch" in history:
        per_epoch = (n_train // run.config.batch_size) * run.config.batch_size
        history["images"] = history["epoch"] * per_epoch
    return history


def still_improving(run, *, window: int = 2) -> bool | None:
    """Whether the validation loss of the last epoch is the lowest of the last ``window + 1`` epochs (so more training
    would likely still help); None when the run has fewer than two epochs of history (too short to tell)."""
    history = run.history
    if len(history) < 2 or "val_loss" not in history:
        return None
    tail = history["val_loss"].iloc[-(window + 1):]
    return bool(tail.iloc[-1] <= tail.min())


def train(s: presets.Settings, *, store=None, progress: bool = True):
    """The chapter's run (from the store when it exists, else trained and stored): a :class:`twi_core.runs.Run`.

    Raises
    ------
    RuntimeError
        If the run ended in an error (the message holds the recorded traceback's last line).
    """
    from twi_core import runs

    config = run_config(s)
    run = runs.obtain(config, store=store, progress=progress,
                      labels={"grid": "chapter2", "dataset": DATASET, "family": "nwm", "variant": "fft",
                              "seed": config.seed, "preset": s.preset})
    return run.raise_for_error()


@torch.no_grad()
def hidden_states(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 16):
    """Predictions ``(B, H, W)`` and hidden sequences ``(B, T, C, H, W)`` of a recurrent model, in batches
    (:func:`twi_core.models.logits_and_states`)."""
    from twi_core.models import logits_and_states

    logits, states = logits_and_states(model, images, batch_size=batch_size, states=True)
    return logits.argmax(1), states


def _through(model: torch.nn.Module, ds, indices: list[int]) -> dict[str, Any]:
    """Images ``indices`` of a loaded split through the model: image, mask, prediction, states, Fourier magnitudes."""
    image, mask = ds.images[indices], ds.masks[indices]
    prediction, states = hidden_states(model, image)
    cfg = model.config
    return {"image": image, "mask": mask, "prediction": prediction, "states": states,
            "magnitudes": spectra.fourier_magnitudes(states),
            "frequencies": spectra.bin_frequencies(cfg["steps"], dt=cfg["dt"]),
            "class_names": list(ds.info.class_names), "indices": list(indices)}


def example(model: torch.nn.Module, s: presets.Settings, *, index: int = 0, split: str = "test") -> dict[str, Any]:
    """One polygon image through the model: image, mask, prediction, states and their Fourier magnitudes.

    Returns
    -------
    dict with ``image (1, C_in, H, W)``, ``mask (1, H, W)``, ``prediction (1, H, W)``, ``states (1, T, C, H, W)``,
    ``magnitudes (1, K, C, H, W)`` (numpy), ``frequencies (K,)`` (cycles per time unit), ``class_names``.
    """
    from twi_core import data

    return _through(model, data.load(SPECTRA_DATASET, split, n=max(index + 1, 1)), [index])


def class_examples(model: torch.nn.Module, s: presets.Settings, *, split: str = "test", search: int = 200
                   ) -> dict[str, Any]:
    """The first one-polygon image of each polygon type in a split, through the model (the rows of Figures 13–14).

    Returns the dict of :func:`example` with one sample per type (``B = 4``, triangle to hexagon), plus ``indices``
    (their positions in the split) and ``row_labels`` ("triangle\\n(test image 3)", ...).

    Raises
    ------
    ValueError
        If a type has no image among the first ``search`` of the split.
    """
    from twi_core import data

    ds = data.load(SPECTRA_DATASET, split, n=min(search, data.split_sizes(SPECTRA_DATASET)[split]))
    labels = ds.masks.flatten(1).max(1).values.tolist()        # one polygon per image: its class is the mask's max
    names = list(ds.info.class_names)
    missing = [names[c] for c in range(1, len(names)) if c not in labels]
    if missing:
        raise ValueError(f"no {', '.join(missing)} among the first {len(labels)} {split} images of {SPECTRA_DATASET!r};"
                         f" raise search (now {search})")
    indices = [labels.index(c) for c in range(1, len(names))]
    out = _through(model, ds, indices)
    out["row_labels"] = [f"{names[c]}\n({split} image {i})" for c, i in zip(range(1, len(names)), indices)]
    return out


def validation_spectra(model: torch.nn.Module, s: presets.Settings, *, batch_size: int = 16):
    """Mean Fourier spectrum of each class over all validation pixels of that class (the paper's Figure 4, right).

    Returns
    -------
    (ClassSpectra, frequencies, class_names, separability): ``separability`` is the accuracy of a nearest-class-mean
    classifier on the spectra of the foreground pixels of the test images (class means from validation), i.e. how well
    the spectra alone tell the polygon types apart, without the learned head.
    """
    from twi_core import data

    def batches(ds):
        return [(ds.images[i:i + batch_size], ds.masks[i:i + batch_size]) for i in range(0, len(ds.images), batch_size)]

    val = data.load(DATASET, "val", n=s.n_spectra)
    cls = spectra.model_class_spectra(model, batches(val), num_classes=val.info.num_classes)
    test = data.load(DATASET, "test", n=min(s.n_spectra, 64))
    separability = spectra.model_nearest_mean_accuracy(model, batches(test), cls.mean)
    cfg = model.config
    return cls, spectra.bin_frequencies(cfg["steps"], dt=cfg["dt"]), list(val.info.class_names), separability


def segment(model: torch.nn.Module, s: presets.Settings, *, seed: int = 1):
    """A few multi-polygon test images (1–2 polygons) with the model's per-pixel prediction.

    Returns ``(images, masks, predictions, class_names)``.
    """
    from twi_core import data

    test = data.load(DATASET, "test", n=s.n_test)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(test.images), generator=gen)[:s.n_segment]
    images, masks = test.images[pick], test.masks[pick]
    model.eval()
    with torch.no_grad():
        predictions = model(images).argmax(1)
    return images, masks, predictions, list(test.info.class_names)


def describe(run) -> dict[str, Any]:
    """The numbers the page prints about a run: test and validation metrics, epochs, images seen, wall time, device."""
    rec, cfg = run.record, run.config
    n_train = rec.n_images.get("train")
    return {"test_fg_accuracy": run.metrics.get("test", {}).get("fg_accuracy", float("nan")),
            "test_fg_iou": run.metrics.get("test", {}).get("fg_iou", float("nan")),
            "test_pixel_accuracy": run.metrics.get("test", {}).get("pixel_accuracy", float("nan")),
            "epochs": cfg.epochs, "best_epoch": rec.best_epoch, "n_train": n_train,
            "images_seen": (n_train // cfg.batch_size) * cfg.batch_size * cfg.epochs if n_train else None,
            "steps": cfg.model.get("steps"), "dt": cfg.model.get("dt"),
            "bins": spectra.num_bins(int(cfg.model.get("steps"))),
            "wall_time_min": (rec.wall_time_s if rec.wall_time_s is not None else float("nan")) / 60,
            "device": rec.device_name, "status": run.status, "data_source": rec.data_source}



def load_horizons(path) -> dict[str, Any] | None:
    """The stored horizon sweep (``book/_data/polygon_horizons.json``), or None when the file does not exist."""
    from twi_core.chapters.time_to_accuracy import load

    return load(path)


def seed_spread(s: presets.Settings, *, seeds: tuple[int, ...] = (0, 1, 2, 3, 4)) -> dict[int, float]:
    """Test FG-IoU of the shipped runs of this page's configuration for ``seeds`` (those the store holds)."""
    from twi_core import store

    out = {}
    for seed in seeds:
        run = store.find(polygon_config(s.preset, seed=seed, **{k: s[k] for k in TABLE[s.preset]
                                                                if s[k] != TABLE[s.preset][k] and k != "seed"}))
        if run is not None:
            out[seed] = float(run.metrics["test"]["fg_iou"])
    return out


def horizon_summary(table: pd.DataFrame, spread: dict[int, float]) -> str:
    """The sweep's result in words, computed from :func:`horizon_table` and the seed spread of :func:`seed_spread`.

    Examples
    --------
    >>> t = pd.DataFrame({"T": [100, 500], "Δt": [0.2, 0.1], "T·Δt": [20.0, 50.0], "test FG-IoU": [0.40, 0.55]})
    >>> print(horizon_summary(t, {0: 0.45, 1: 0.2, 2: 0.3}))  # doctest: +NORMALIZE_WHITESPACE
    *Horizon sweep (one seed per horizon).* The best test FG-IoU, 0.55, came at T = 500, Δt = 0.1 (50 time units);
    the lowest, 0.40, at T = 100, Δt = 0.2 (20 time units): a range of 0.15. The stored runs at this page's
    configuration span 0.20 to 0.45 over 3 seeds (a range of 0.25), so the sweep does not separate the horizons.
    """
    scored = table.dropna(subset=["test FG-IoU"])
    if scored.empty:
        return "*Horizon sweep:* no finished run."
    best, worst = scored.loc[scored["test FG-IoU"].idxmax()], scored.loc[scored["test FG-IoU"].idxmin()]

    def where(row) -> str:
        return f"T = {int(row['T'])}, Δt = {row['Δt']:g} ({row['T·Δt']:g} time units)"

    gap = float(best["test FG-IoU"] - worst["test FG-IoU"])
    text = (f"*Horizon sweep (one seed per horizon).* The best test FG-IoU, {best['test FG-IoU']:.2f}, came at "
            f"{where(best)}; the lowest, {worst['test FG-IoU']:.2f}, at {where(worst)}: a range of {gap:.2f}.")
    if "best val FG-IoU" in scored and scored["best val FG-IoU"].notna().any():
        text += (f" The best validation FG-IoU of any horizon is {scored['best val FG-IoU'].max():.2f}, "
                 "which says how far these short runs got.")
    if len(spread) >= 2:
        lo, hi = min(spread.values()), max(spread.values())
        text += (f" The stored runs at this page's configuration span {lo:.2f} to {hi:.2f} over {len(spread)} seeds "
                 f"(a range of {hi - lo:.2f}), so the sweep "
                 + ("does not separate the horizons." if gap <= hi - lo else
                    "separates the horizons by more than seeds alone move a run, though with one seed each."))
    else:
        text += " Fewer than two stored seeds of this page's configuration: the seed spread is not known here."
    return text


def _is(point: dict[str, Any], steps: int, dt: float) -> bool:
    return point["steps"] == steps and abs(point["dt"] - dt) < 1e-9


def horizon_table(data: dict[str, Any]) -> pd.DataFrame:
    """One row per horizon of ``benchmarks/polygon_horizons.py``'s measurement (``book/_data/polygon_horizons.json``).

    Columns: T, Δt, the horizon T·Δt in time units, which configuration it is (the paper's step count at Δt = 0.1,
    the book's stored runs), training images and epochs, the best validation and the test FG-IoU, and minutes.

    Examples
    --------
    >>> data = {"points": [{"steps": 500, "dt": 0.1, "n_train": 400, "epochs": 3, "seed": 0, "wall_time_s": 480.0,
    ...                     "test_fg_iou": 0.4, "history": [{"val_fg_iou": 0.3}, {"val_fg_iou": 0.45}]}]}
    >>> horizon_table(data)[["T", "T·Δt", "is", "best val FG-IoU", "test FG-IoU"]].to_dict("records")
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'T': 500, 'T·Δt': 50.0, 'is': "the paper's steps, at Δt = 0.1; T and Δt of the stored runs",
      'best val FG-IoU': 0.45, 'test FG-IoU': 0.4}]
    """
    rows = []
    for p in data["points"]:
        names = [name for name, (steps, dt) in (("the paper's steps, at Δt = 0.1", (500, 0.1)),
                                                ("T and Δt of the stored runs", (TABLE["book"]["steps"],
                                                                            TABLE["book"]["dt"]))) if _is(p, steps, dt)]
        vals = [r["val_fg_iou"] for r in p["history"] if r.get("val_fg_iou") is not None]
        rows.append({"T": p["steps"], "Δt": p["dt"], "T·Δt": round(p["steps"] * p["dt"], 3),
                     "is": "; ".join(names), "train images": p["n_train"], "epochs": p["epochs"],
                     "best val FG-IoU": round(max(vals), 3) if vals else None,
                     "test FG-IoU": None if p["test_fg_iou"] is None else round(p["test_fg_iou"], 3),
                     "minutes": None if p["wall_time_s"] is None else round(p["wall_time_s"] / 60, 1)})
    return pd.DataFrame(rows)


def horizon_figure(data: dict[str, Any]):
    """Test FG-IoU against the horizon T·Δt (left; one point per run, labelled with T and Δt) and the validation
    FG-IoU curves against images seen (right)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for p in data["points"]:
        label = f"T = {p['steps']}, Δt = {p['dt']:g}"
        horizon = p["steps"] * p["dt"]
        left.plot([horizon], [p["test_fg_iou"]], "o", ms=6, label=label)
        right.plot([r["images_seen"] for r in p["history"]], [r["val_fg_iou"] for r in p["history"]], "-o", ms=3,
                   label=label)
    left.set_xscale("log")
    horizons = sorted({p["steps"] * p["dt"] for p in data["points"]})
    left.set_xticks(horizons, [f"{h:g}" for h in horizons])
    left.minorticks_off()
    left.set_xlabel("horizon T·Δt (time units, log scale)")
    left.set_ylabel("test FG-IoU")
    right.set_xlabel("training images seen")
    right.set_ylabel("validation FG-IoU")
    for ax in (left, right):
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
