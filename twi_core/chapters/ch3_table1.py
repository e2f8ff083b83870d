"""Chapter 3, Tetrominoes & MNIST: the paper's Table 1 at the chapter's scale, its figures, and the CNN caveat.

The notebook asks for a handful of configurations of Table 1 (:data:`TABLE` ``rows``), each through
:func:`twi_core.runs.obtain`, so a rebuild loads them from the run store and a stored run of the same configuration
(e.g. trained on a GPU) is used as is. The configurations come from :func:`twi_core.grids.train_config`, the same
function the batch runner uses: at the ``paper`` preset they are exactly the runs of ``twi reproduce table1``.

The CNN baseline squeezes to 2 channels before a ReLU (the authors' design); that ReLU can die, leaving an
"all background" network. :func:`cnn_bottleneck` measures it per run, so the page can state the dead-seed fraction.

The ``book`` preset shows the shipped run store (:mod:`twi_core.store`, ``stored``): the paper's model configurations
on the full splits, trained once in the background on the 2-core CPU (authors' protocol at batch 16, 3 epochs, 30,000
images per run) and loaded by the build, which trains nothing (``TWI_TRAIN=never`` makes a missing run an error; CI
runs the chapter that way). Its rows are what the store holds; the page computes every number from those runs. The
earlier live ``book`` runs (450 training images) sat at chance, which is why the store exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from twi_core import presets
from twi_core.analysis import spectra
from twi_core.analysis.claims import seeds_text

__all__ = ["TABLE", "FAMILY_TITLES", "LiveRuns", "settings", "live_points", "train_all", "comparison_table",
           "training_budgets",
           "claims", "claims_by_dataset", "mnist_source", "chance_levels", "figure7", "paper_robustness", "robustness_table",
           "linear_models", "best_within", "gif_row", "provenance_table", "cnn_bottleneck", "cnn_dead_seeds", "background_baseline", "figure5_panels", "state_gallery", "stored_full_scale",
           "linear_projections", "predictions", "spectra_of", "READOUT_ORDER", "readout_bars_data",
           "depth_bars_data"]

FAMILY_TITLES = {"nwm": "NWM", "lstm": "Conv-LSTM", "cnn": "CNN", "unet": "U-Net"}

_TABLE1_ROWS = [[d, f, v] for d in ("tetrominoes", "mnist") for f, vs in
                (("cnn", [2, 4, 8, 16, 32]), ("lstm", ["last", "mean", "max", "fft", "linear"]),
                 ("nwm", ["last", "mean", "max", "fft", "linear"])) for v in vs]

#: The chapter's scales. ``rows``: ``[dataset, family, variant]`` trained live, optionally with a fourth element
#: ``{setting: value}`` that replaces run settings (or ``seeds``) for that row only (e.g. a smaller MNIST budget);
#: ``seeds``: seeds per recurrent row;
#: ``cnn_seeds``: seeds per CNN row (several, to measure how often the 2-channel ReLU dies); the rest are the run settings
#: of :data:`twi_core.grids.RUN_PRESETS` (``steps`` caps T; ``None`` keeps the paper's); ``n_gallery``: samples
#: animated; ``gif_stride``: keep every n-th step in the NWM animations; ``stored``: take the configurations of the
#: shipped run store (:func:`twi_core.store.store_config`) instead of the run settings, so the page loads trained runs.
TABLE: dict[str, dict[str, Any]] = {
    "smoke": {"rows": [["tetrominoes", "nwm", "linear"], ["tetrominoes", "nwm", "last"],
                       ["tetrominoes", "lstm", "linear"], ["tetrominoes", "cnn", 2], ["tetrominoes", "cnn", 4],
                       ["mnist", "nwm", "linear"]],
              "seeds": 1, "cnn_seeds": 2, "epochs": 1, "batch_size": 8, "lr": 1e-3, "n_train": 16, "n_val": 8,
              "n_test": 8, "steps": 8, "n_gallery": 2, "gif_stride": 1, "stored": False},
    # The book shows the shipped run store (twi_core.store: the paper's models on the full splits, trained once);
    # rows are what the store holds. The run settings below are not used while "stored" is True.
    "book": {"rows": [["tetrominoes", "nwm", "linear"], ["tetrominoes", "nwm", "last"],
                      ["tetrominoes", "lstm", "linear"],
                      ["tetrominoes", "cnn", 4], ["tetrominoes", "cnn", 2],
                      ["tetrominoes", "cnn", 8], ["tetrominoes", "nwm", "fft"],
                      ["tetrominoes", "lstm", "last", {"seeds": 1}], ["tetrominoes", "cnn", 16],
                      ["tetrominoes", "nwm", "mean", {"seeds": 1}], ["tetrominoes", "nwm", "max", {"seeds": 1}],
                      ["tetrominoes", "lstm", "fft", {"seeds": 1}], ["tetrominoes", "lstm", "mean", {"seeds": 1}],
                      ["mnist", "nwm", "linear"], ["mnist", "lstm", "linear"],
                      ["mnist", "cnn", 4], ["mnist", "cnn", 16]],
             "seeds": 3, "cnn_seeds": 3, "epochs": 2, "batch_size": 16, "lr": 1e-3, "n_train": 450, "n_val": 64,
             "n_test": 100, "steps": None, "n_gallery": 4, "gif_stride": 2, "stored": True},
    "paper": {"rows": _TABLE1_ROWS, "seeds": 10, "cnn_seeds": 10, "epochs": 300, "batch_size": 64, "lr": 1e-3,
              "n_train": None, "n_val": None, "n_test": None, "steps": None, "n_gallery": 9, "gif_stride": 1,
              "stored": False},
}

_RUN_KEYS = ("epochs", "batch_size", "lr", "n_train", "n_val", "n_test", "steps")


def settings(preset: str | None = "book", **overrides: Any) -> presets.Settings:
    """The chapter's settings at ``preset`` (``$TWI_PRESET`` replaces it), with ``None``-valued overrides ignored."""
    return presets.resolve(TABLE, preset, **overrides)


def _run_overrides(s: presets.Settings) -> dict[str, Any]:
    """The chapter's run settings that differ from the batch runner's preset (:data:`twi_core.grids.RUN_PRESETS`)."""
    from twi_core.reproduce import RUN_PRESETS

    base = RUN_PRESETS[s.preset]
    out = {}
    for key in _RUN_KEYS:
        if s[key] == base[key]:
            continue
        if s[key] is None:  # train_config reads None as "keep the runner's value", which would not be what we ask
            raise ValueError(f"setting {key}=None (the paper's value) cannot override the batch runner's "
                             f"{key}={base[key]!r} at preset {s.preset!r}; give a number")
        out[key] = s[key]
    return out


def live_points(s: presets.Settings) -> list[dict[str, Any]]:
    """Every run of the chapter at settings ``s``: dicts with ``dataset, family, variant, seed, config``.

    The configurations are :func:`twi_core.grids.train_config`'s with the chapter's differences from the runner's
    preset as overrides, so at the ``paper`` preset they are exactly those of ``twi reproduce table1``.
    """
    from twi_core.reproduce import train_config

    overrides = {} if s.stored else _run_overrides(s)
    points = []
    for row in s.rows:
        if len(row) not in (3, 4) or (len(row) == 4 and not isinstance(row[3], Mapping)):
            raise ValueError(f"rows entries must be [dataset, family, variant] or [dataset, family, variant, "
                             f"{{setting: value}}]; got {row!r}")
        dataset, family, variant = row[:3]
        extra = dict(row[3]) if len(row) == 4 else {}
        unknown = sorted(set(extra) - set(_RUN_KEYS) - {"seeds"})
        if unknown:
            raise ValueError(f"unknown per-row setting(s) {unknown} in {row!r}; expected some of "
                             f"{[*_RUN_KEYS, 'seeds']}")
        n_seeds = extra.pop("seeds", s.cnn_seeds if family == "cnn" else s.seeds)
        for seed in range(n_seeds):
            if s.stored:  # the shipped store's configuration (paper models, full splits): loaded, not trained
                from twi_core.store import store_config

                config = store_config(dataset, family, variant, seed=seed)
            else:
                config = train_config(dataset, family, variant, seed=seed, preset=s.preset, **{**overrides, **extra})
            points.append({"dataset": dataset, "family": family, "variant": str(variant), "seed": seed,
                           "config": config})
    return points


@dataclass
class LiveRuns:
    """The chapter's runs: ``runs`` maps ``(dataset, family, variant, seed)`` to a :class:`twi_core.runs.Run`;
    ``table`` has one row per run (labels, status, test metrics, parameters, wall time, data source)."""

    runs: dict[tuple[str, str, str, int], Any]
    table: pd.DataFrame

    def run(self, dataset: str, family: str, variant: Any, seed: int = 0):
        """One run by its labels; a KeyError lists the runs there are."""
        key = (dataset, family, str(variant), seed)
        if key not in self.runs:
            raise KeyError(f"no live run {key}; there are {sorted(self.runs)}")
        return self.runs[key]

    def histories(self, dataset: str | None = None, *, seed: int = 0) -> dict[str, pd.DataFrame]:
        """Learning curves ``{label: history}`` of the seed-``seed`` runs (of ``dataset`` if given)."""
        out = {}
        for (d, f, v, sd), run in self.runs.items():
            if sd == seed and (dataset is None or d == dataset):
                out[f"{d} {FAMILY_TITLES[f]} {v}"] = run.history
        return out


def train_all(s: presets.Settings, *, store=None, progress: bool = True) -> LiveRuns:
    """Obtain every run of :func:`live_points` (from the store, or trained and stored) and tabulate them
    (:func:`twi_core.runs.obtain_table`; a run that ended in an error raises)."""
    from twi_core.runs import obtain_table

    runs, table = obtain_table(live_points(s), grid="chapter3", preset=s.preset, store=store, progress=progress)
    return LiveRuns(runs, table)


def linear_models(live: "LiveRuns", dataset: str = "tetrominoes", *, seed: int = 0,
                  control: bool = True) -> dict[str, torch.nn.Module]:
    """``{label: model}`` of the recurrent linear-readout runs there are (``"NWM-linear"`` first, then
    ``"Conv-LSTM-linear"``), and, with ``control``, the NWM at its initialisation as ``"NWM-linear (untrained)"``
    (:func:`twi_core.train.initial_model`)."""
    from twi_core.train import initial_model

    models = {}
    for family, label in (("nwm", "NWM-linear"), ("lstm", "Conv-LSTM-linear")):
        run = live.runs.get((dataset, family, "linear", seed))
        if run is not None and run.status == "complete":
            models[label] = run.model()
            if control and family == "nwm":
                models["NWM-linear (untrained)"] = initial_model(run.config)
    return models


def gif_row(frames: list[np.ndarray], samples, label: str, *, fps: float = 10, width: int = 150) -> str:
    """HTML: one inline animated GIF per sample (each scaled from its own minimum to maximum), with captions."""
    import base64

    from twi_core import viz
    from twi_core.viz.states import data_limits

    cells = []
    for i, fr in zip(samples, frames):
        lo, hi = data_limits(fr)
        src = base64.b64encode(viz.gif_bytes(fr, fps=fps, cmap="bwr", vmin=lo, vmax=hi, scale=2)).decode("ascii")
        cells.append(f'<figure style="display:inline-block;margin:4px"><img class="twi-gif" width="{width}" '
                     f'style="image-rendering:pixelated" src="data:image/gif;base64,{src}"/>'
                     f'<figcaption style="text-align:center;font-size:80%">{label}, sample {i}</figcaption></figure>')
    return "<div>" + "".join(cells) + "</div>"


def figure7(datasets: Sequence[str] = ("tetrominoes", "mnist"), *, cnn_depths: Sequence[int] = (2, 4, 8)):
    """The inputs of the paper's Figure 7 ("Example of Receptive Field"): one validation image per dataset and the
    feed-forward receptive fields of the NWM's encoders and of CNNs of a few depths, from the paper's configurations
    (:func:`twi_core.analysis.receptive_field.feedforward_size`).

    Returns
    -------
    (examples, sizes)
        ``{dataset title: (image, mask)}`` and ``{model: side in px}``, for :func:`twi_core.viz.receptive.receptive_field_boxes`.
    """
    from twi_core import data, models
    from twi_core.analysis.receptive_field import feedforward_size

    nwm = models.build(**models.paper_config(datasets[0], "nwm", "linear"))
    sizes = {"NWM initial-state encoder": feedforward_size(nwm.y0_encoder),
             "NWM ω, α encoders": feedforward_size(nwm.omega_encoder)}
    sizes.update({f"CNN L = {L}": feedforward_size(models.build(**models.paper_config(datasets[0], "cnn", L)).encoder)
                  for L in cnn_depths})
    examples = {}
    for name in datasets:
        split = data.load(name, "val", n=1)
        examples[name.replace("_", "-").title().replace("Mnist", "MNIST")] = (split.images[0].numpy(),
                                                                              split.masks[0].numpy())
    return examples, sizes


def provenance_table(table: pd.DataFrame) -> pd.DataFrame:
    """Where every row of the page comes from: stored (shipped store) or live, device, epochs, images seen, minutes of
    training, recipe, commit."""
    cols = {"source": "source", "device": "device", "epochs": "epochs", "images_seen": "images seen",
            "wall_time_s": "minutes", "recipe": "recipe", "commit": "commit", "finished": "finished"}
    out = table[["dataset", "family", "variant", "seed", *cols]].rename(columns=cols).copy()
    out["minutes"] = (pd.to_numeric(out["minutes"], errors="coerce") / 60).round(1)
    out["family"] = out["family"].map(lambda f: FAMILY_TITLES.get(f, f))
    return out.rename(columns={"family": "model"})


def paper_robustness() -> pd.DataFrame:
    """The paper's Tables 5–6: FG-IoU min / median / max over seeds per ``(dataset, family, variant)`` (two decimals,
    from the authors' ``scores_processed_min_max.csv``; shipped in ``twi_core/resources``)."""
    from importlib import resources

    with resources.files("twi_core").joinpath("resources", "paper_fg_iou_min_median_max.csv").open() as fh:
        return pd.read_csv(fh, dtype={"variant": str})


def robustness_table(table: pd.DataFrame) -> pd.DataFrame:
    """Our FG-IoU min / median / max over seeds beside the paper's (Tables 5–6), one row per configuration run.

    A minimum of 0 is a collapsed seed (background everywhere); the paper's deep CNNs are bimodal (0 or 1).
    """
    ok = table[table["status"] == "complete"]
    paper = paper_robustness().set_index(["dataset", "family", "variant"])
    rows = []
    for (dataset, family, variant), group in ok.groupby(["dataset", "family", "variant"], sort=False):
        v = pd.to_numeric(group["fg_iou"], errors="coerce").dropna()
        key = (dataset, family, str(variant))
        ref = paper.loc[key] if key in paper.index else None
        rows.append({"dataset": dataset, "model": FAMILY_TITLES.get(family, family),
                     "arch.": f"L = {variant}" if family == "cnn" else str(variant), "seeds": len(v),
                     "ours (min / median / max)": " / ".join(f"{x:.2f}" for x in (v.min(), v.median(), v.max()))
                     if len(v) else "–",
                     "paper (min / median / max)": " / ".join(f"{ref[c]:.2f}" for c in
                                                             ("fg_iou_min", "fg_iou_median", "fg_iou_max"))
                     if ref is not None else "–"})
    return pd.DataFrame(rows)


def training_budgets(table: pd.DataFrame) -> str:
    """How long the runs of each dataset trained, as a phrase: one budget, or the range when rows differ.

    Examples
    --------
    >>> t = pd.DataFrame({"dataset": ["tetrominoes"] * 2 + ["mnist"], "epochs": [8, 3, 10],
    ...                   "images_seen": [80_000, 30_000, 36_320]})
    >>> training_budgets(t)
    'tetrominoes: 3 to 8 epochs (30,000 to 80,000 images seen; per run in the table above); mnist: 10 epoch(s), 36,320 images seen'
    """
    parts = []
    for dataset, g in table.groupby("dataset", sort=False):
        epochs, seen = g["epochs"].astype(int), g["images_seen"]
        known = bool(seen.notna().all())
        if epochs.nunique() == 1:
            parts.append(f"{dataset}: {epochs.iloc[0]} epoch(s)" + (f", {int(seen.iloc[0]):,} images seen" if known
                                                                      and seen.nunique() == 1 else ""))
        else:
            parts.append(f"{dataset}: {epochs.min()} to {epochs.max()} epochs"
                         + (f" ({int(seen.min()):,} to {int(seen.max()):,} images seen; per run in the table above)"
                            if known else " (per run in the table above)"))
    return "; ".join(parts)


def comparison_table(table: pd.DataFrame, *, metrics=("fg_accuracy", "fg_iou", "fg_loss"),
                     two_level: bool = False) -> pd.DataFrame:
    """Our runs (mean ± std over seeds) beside the paper's Table 1 row, one row per configuration.

    Parameters
    ----------
    table : :attr:`LiveRuns.table`.
    two_level : index by ``(dataset, model, arch.)`` and give the columns two levels, ``(quantity, "ours"/"paper")``,
        which keeps the displayed table narrow.
    """
    from twi_core.reproduce import paper_table

    paper = paper_table()
    labels = {"fg_accuracy": "FG-Acc", "fg_iou": "FG-IoU", "fg_loss": "FG-Loss", "pixel_accuracy": "Acc",
              "total_iou": "IoU", "pixel_loss": "Loss"}
    out = []
    for (dataset, family, variant), group in table.groupby(["dataset", "family", "variant"], sort=False):
        ok = group[group["status"] == "complete"]
        ref = paper[(paper["dataset"] == dataset) & (paper["family"] == family) & (paper["variant"] == variant)]
        row = {"dataset": dataset, "model": FAMILY_TITLES.get(family, family),
               "arch.": variant if family != "cnn" else f"L = {variant}",
               "params (ours)": f"{int(group['n_params'].iloc[0]):,}" if pd.notna(group["n_params"].iloc[0]) else "–",
               "params (paper)": ref["params_paper"].iloc[0] if len(ref) and "params_paper" in ref else "–",
               "runs": len(ok)}
        for m in metrics:
            row[f"{labels.get(m, m)} (ours)"] = seeds_text(ok[m], 2 if m != "fg_loss" else 2)
            if len(ref):
                mean, std = ref[f"paper_{m}_mean"].iloc[0], ref[f"paper_{m}_std"].iloc[0]
                row[f"{labels.get(m, m)} (paper)"] = f"{mean:.2f} ± {std:.2f}"
            else:
                row[f"{labels.get(m, m)} (paper)"] = "–"
        out.append(row)
    result = pd.DataFrame(out)
    if two_level and not result.empty:
        result = result.set_index(["dataset", "model", "arch."])
        result.columns = pd.MultiIndex.from_tuples(
            [(c[:-len(" (ours)")], "ours") if c.endswith(" (ours)") else
             (c[:-len(" (paper)")], "paper") if c.endswith(" (paper)") else (c, "") for c in result.columns])
    return result


def chance_levels(dataset: str, *, split: str = "test", n: int | None = None, seed: int = 0,
                  source: str | None = None) -> dict[str, float]:
    """Test FG-IoU of two predictors that learned nothing about shape, through the runs' own metric.

    ``all_background``: background everywhere (FG-IoU 0: the "collapse"). ``uniform_class``: the true foreground
    found, with a class drawn uniformly at random per object pixel (the plateau the CPU calibration describes:
    foreground found, shape at chance). ``source``: the MNIST source of the runs (``TrainConfig.data_source``), so
    the levels are those of the images the runs were scored on.
    """
    from twi_core import data, metrics

    loaded = data.load(dataset, split, n=n, source=source)
    masks, k = loaded.masks, data.info(dataset).num_classes
    generator = torch.Generator().manual_seed(seed)
    guess = torch.randint(1, k, masks.shape, generator=generator)
    uniform = torch.where(masks > 0, guess, torch.zeros_like(masks))
    return {"all_background": float(torch.nanmean(metrics.fg_iou(torch.zeros_like(masks), masks).double())),
            "uniform_class": float(torch.nanmean(metrics.fg_iou(uniform, masks).double()))}


def best_within(history: pd.DataFrame | Sequence[Mapping[str, Any]], images: int,
                metric: str = "val_fg_iou") -> float:
    """The best validation ``metric`` of a run over its epochs that ended within ``images`` training images seen.

    This is how the store's runs were selected (best validation epoch), cut at a common budget, so runs trained
    for different numbers of epochs can be compared at equal training. NaN when no epoch ended within the budget.

    Examples
    --------
    >>> h = [{"images_seen": 10_000, "val_fg_iou": 0.5}, {"images_seen": 20_000, "val_fg_iou": 0.7},
    ...      {"images_seen": 30_000, "val_fg_iou": 0.6}]
    >>> best_within(h, 20_000), best_within(h, 80_000), best_within(h, 5_000)
    (0.7, 0.7, nan)
    """
    frame = pd.DataFrame(history)
    if frame.empty or "images_seen" not in frame or metric not in frame:
        return float("nan")
    within = pd.to_numeric(frame.loc[frame["images_seen"] <= images, metric], errors="coerce").dropna()
    return float(within.max()) if len(within) else float("nan")


def claims(table: pd.DataFrame, *, dataset: str = "tetrominoes", chance: Mapping[str, float] | None = None,
           min_seeds: int = 3, runs: Mapping[tuple[str, str, str, int], Any] | None = None) -> pd.DataFrame:
    """The paper's claims, checked on the runs' test FG-IoU over seeds (:mod:`twi_core.analysis.claims`).

    Rows: the NWM-linear lies above the uniform-class chance level; it beats each CNN depth run, its own last-state
    readout and the Conv-LSTM-linear. Each row has both means, the difference with its 95 % Welch interval, the seeds
    and the training images per side, the chance level, and a verdict: ``holds``, ``does not hold`` or ``not
    testable at this scale`` (fewer than ``min_seeds`` seeds on a side, or both sides at chance), with the reason.
    ``holds`` is a bool column kept for older callers (True only for ``holds``).

    The stored runs do not all train for the same number of images (the NWM-linear and CNN L = 4 longest). Where the
    two sides of a comparison saw different numbers, a test-set lead may be the longer training's, so with ``runs``
    (``LiveRuns.runs``: their learning curves) the comparison is repeated **at equal training**: each run's best
    validation FG-IoU over the epochs that ended within the smaller side's images (:func:`best_within`), in a row
    of its own.
    """
    from twi_core.analysis import claims as _claims

    ok = table[(table["status"] == "complete") & (table["dataset"] == dataset)]
    chance = dict(chance) if chance is not None else {"all_background": 0.0, "uniform_class": float("nan")}

    def values(family, variant):
        return _claims.per_seed(_claims.model_rows(ok, family, variant), "fg_iou")

    def images(family, variant):
        return _claims.per_seed(_claims.model_rows(ok, family, variant), "images_seen")

    def within(family, variant, budget):
        keys = [(dataset, family, str(variant), int(seed)) for seed in _claims.model_rows(ok, family, variant)["seed"]]
        return [best_within(runs[key].history, budget) for key in keys if key in runs]

    nwm, nwm_images = values("nwm", "linear"), images("nwm", "linear")
    checks = []
    if chance.get("uniform_class") == chance.get("uniform_class"):  # not NaN
        checks.append(("NWM-linear lies above the uniform-class chance level",
                       {**_claims.above(nwm, chance["uniform_class"], min_seeds=min_seeds),
                        "images": _claims.images_text(nwm_images, [])}))
    others = [("cnn", v, f"CNN L = {v}") for v in sorted({int(v) for v in ok[ok["family"] == "cnn"]["variant"]})]
    others += [("nwm", "last", "NWM-last"), ("lstm", "linear", "Conv-LSTM-linear")]
    for family, variant, name in others:
        other = values(family, variant)
        if not other:
            continue
        other_images = images(family, variant)
        result = {**_claims.compare(nwm, other, chance=chance["all_background"], min_seeds=min_seeds),
                  "images": _claims.images_text(nwm_images, other_images)}
        unequal = bool(nwm_images and other_images) and set(nwm_images) != set(other_images)
        if unequal:
            result["reason"] += "; the sides trained on different numbers of images (next row: at equal training)"
        checks.append((f"NWM-linear beats {name} on FG-IoU", result))
        if unequal and runs is not None:
            budget = int(min(min(nwm_images), min(other_images)))
            fair = _claims.compare(within("nwm", "linear", budget), within(family, variant, budget),
                                   chance=chance["all_background"], min_seeds=min_seeds)
            checks.append((f"… at equal training (best val. FG-IoU, ≤ {budget:,} images)",
                           {**fair, "images": _claims.images_text([budget], [budget])}))
    return _claims.claims_table(checks)


def claims_by_dataset(table: pd.DataFrame, points: Sequence[Mapping[str, Any]], *, min_seeds: int = 3,
                      runs: Mapping[tuple[str, str, str, int], Any] | None = None
                      ) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """:func:`claims` for every dataset of the page's runs (``points``, :func:`live_points`), one table with a
    ``dataset`` column, and each dataset's :func:`chance_levels` on the test images its runs were scored on.
    ``runs`` (``LiveRuns.runs``) adds the equal-training rows (:func:`claims`)."""
    parts, levels = [], {}
    for dataset in dict.fromkeys(p["dataset"] for p in points):
        config = next(p["config"] for p in points if p["dataset"] == dataset)
        levels[dataset] = chance_levels(dataset, n=config.n_test, source=config.data_source)
        part = claims(table, dataset=dataset, chance=levels[dataset], min_seeds=min_seeds, runs=runs)
        part.insert(0, "dataset", dataset)
        parts.append(part)
    return pd.concat(parts, ignore_index=True), levels


def mnist_source(points: Sequence[Mapping[str, Any]]) -> str:
    """The MNIST source of the page's MNIST runs (from their configurations), or ``"not used"`` without any."""
    sources = sorted({p["config"].data_source for p in points if p["dataset"] == "mnist"})
    return ", ".join(sources) if sources else "not used"


@torch.no_grad()
def cnn_bottleneck(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 32) -> float:
    """Fraction of positive activations after the CNN's squeeze-to-2-channels ReLU, over ``images``.

    0 means the ReLU is dead: the features, and hence the logits, are constant over the image and the network predicts
    one class (background) everywhere, with no gradient to recover.
    """
    encoder = getattr(model, "encoder", None)
    if encoder is None or not isinstance(encoder[-2], torch.nn.ReLU):
        raise TypeError(f"model must be a twi_core CNN (encoder ending in ReLU, Conv1x1); got {type(model).__name__}")
    model.eval()
    positive, total = 0, 0
    for start in range(0, len(images), batch_size):
        act = encoder[:-1](images[start:start + batch_size])  # (B, C, H, W) after the last ReLU
        positive += int((act > 0).sum())
        total += act.numel()
    return positive / total if total else float("nan")


def cnn_dead_seeds(live: LiveRuns, *, n_images: int = 32) -> pd.DataFrame:
    """Per CNN run: the bottleneck's alive fraction on validation images, whether it is dead, and its test FG-IoU."""
    from twi_core import data

    rows = []
    cache: dict[str, torch.Tensor] = {}
    for (dataset, family, variant, seed), run in live.runs.items():
        if family != "cnn" or run.status != "complete":
            continue
        if dataset not in cache:
            cache[dataset] = data.load(dataset, "val", n=n_images).images
        alive = cnn_bottleneck(run.model(), cache[dataset])
        rows.append({"dataset": dataset, "depth": int(variant), "seed": seed, "alive_fraction": alive,
                     "dead": alive == 0.0, "test_fg_iou": run.metrics.get("test", {}).get("fg_iou", float("nan"))})
    return pd.DataFrame(rows, columns=["dataset", "depth", "seed", "alive_fraction", "dead", "test_fg_iou"])


def background_baseline(dataset: str, *, split: str = "test", n: int | None = None) -> dict[str, float]:
    """Scores of the "all background" predictor on a split, through the same metric functions as the runs (the red
    dashed line of the paper's Figures 11–12): pixel accuracy is the background fraction, FG metrics are 0."""
    from twi_core import data, metrics

    masks = data.load(dataset, split, n=n).masks
    zeros = torch.zeros_like(masks)
    return {name: float(torch.nanmean(getattr(metrics, name)(zeros, masks).double()))
            for name in ("pixel_accuracy", "total_iou", "fg_accuracy", "fg_iou")}


@torch.no_grad()
def linear_projections(model: torch.nn.Module, states: torch.Tensor) -> torch.Tensor:
    r"""The learned time projection of a recurrent model applied to its states: ``(B, K, C, H, W)``.

    :math:`F_k(c, i, j) = \sum_t W^{time}_{k t}\, y_t(c, i, j)`: what the ``linear`` readout hands to the head (the
    paper's Figure 5 calls these the linear projections; the authors' figure files call them "fft").
    """
    weight = getattr(getattr(model, "time_projection", None), "weight", None)
    if weight is None:
        raise TypeError(f"model has no time_projection; expected an NWM or Conv-LSTM, got {type(model).__name__}")
    return torch.einsum("kt,btchw->bkchw", weight, states)  # (B, K, C, H, W)


@torch.no_grad()
def predictions(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 16):
    """Predicted labels ``(B, H, W)`` and, for recurrent models, the states ``(B, T, C, H, W)`` (else None), through
    :func:`twi_core.models.logits_and_states`."""
    from twi_core.models import logits_and_states

    logits, states = logits_and_states(model, images, batch_size=batch_size)
    return logits.argmax(1), states


def figure5_panels(models: Mapping[str, torch.nn.Module], images: torch.Tensor, *, sample: int = 0,
                   channel: int = 1, n_panels: int = 10, crop=None) -> dict[str, tuple]:
    """The paper's Figure 5 for one sample: per model, its states at ``n_panels`` evenly spaced steps and its linear
    projections at ``n_panels`` evenly spaced bins, of one hidden channel.

    Returns ``{row label: (images (n, H, W), titles, kind)}`` for :func:`twi_core.viz.states.comparison_panel`.
    """
    panels: dict[str, tuple] = {}
    for name, model in models.items():
        _, states = predictions(model, images[sample:sample + 1])
        if states is None:
            raise TypeError(f"model {name!r} is not recurrent; Figure 5 needs states")
        t = states.shape[1]
        channel_i = min(channel, states.shape[2] - 1)
        times = np.unique(np.linspace(0, t - 1, min(n_panels, t)).round().astype(int))
        proj = linear_projections(model, states)
        k = proj.shape[1]
        bins = np.unique(np.linspace(0, k - 1, min(n_panels, k)).round().astype(int))
        st = states[0, times, channel_i].numpy()
        pr = proj[0, bins, channel_i].numpy()
        if crop is not None:
            r0, r1, c0, c1 = crop
            st, pr = st[:, r0:r1, c0:c1], pr[:, r0:r1, c0:c1]
        panels[f"{name}\nstates"] = (st, [f"t = {i + 1}" for i in times], "state")
        panels[f"{name}\nprojections"] = (pr, [f"k = {i}" for i in bins], "feature")
    return panels


def state_gallery(model: torch.nn.Module, images: torch.Tensor, *, samples, channel: int = 1,
                  stride: int = 1) -> list[np.ndarray]:
    """Hidden-state frames ``(T', H, W)`` of one channel for each of several samples (for GIFs and scrubbers)."""
    from twi_core.viz.states import state_frames

    idx = list(samples)
    _, states = predictions(model, images[idx])
    if states is None:
        raise TypeError("state_gallery needs a recurrent model")
    ch = min(channel, states.shape[2] - 1)
    return [state_frames(states, sample=i, channel=ch, stride=stride) for i in range(len(idx))]


#: Readouts in the paper's figure order.
READOUT_ORDER = ["last", "mean", "max", "fft", "linear"]
_BAR_METRICS = ("fg_accuracy", "fg_iou", "pixel_accuracy", "total_iou")


def _paper_bars(dataset: str, rows: list[tuple[str, str]], *, x_of, hue_of) -> pd.DataFrame:
    from twi_core.reproduce import paper_table

    paper = paper_table()
    out = []
    for family, variant in rows:
        ref = paper[(paper["dataset"] == dataset) & (paper["family"] == family) & (paper["variant"] == str(variant))]
        if ref.empty:
            continue
        row = {"x": x_of(family, variant), "hue": hue_of(family, variant)}
        for m in _BAR_METRICS:
            row[f"{m}_mean"] = ref[f"paper_{m}_mean"].iloc[0] if f"paper_{m}_mean" in ref else float("nan")
            row[f"{m}_std"] = ref[f"paper_{m}_std"].iloc[0] if f"paper_{m}_std" in ref else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def readout_bars_data(table: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Data of the paper's Figure 11 for one dataset: ``(ours, paper, order)`` with columns ``x`` (readout) and
    ``hue`` (model), for :func:`twi_core.viz.results.readout_bars`. Ours: the complete recurrent live runs."""
    ok = table[(table["status"] == "complete") & (table["dataset"] == dataset) & table["family"].isin(["nwm", "lstm"])]
    ours = ok.assign(x=ok["variant"], hue=ok["family"].map(FAMILY_TITLES))
    paper = _paper_bars(dataset, [(f, v) for f in ("lstm", "nwm") for v in READOUT_ORDER],
                        x_of=lambda f, v: v, hue_of=lambda f, v: FAMILY_TITLES[f])
    return ours, paper, READOUT_ORDER


def depth_bars_data(table: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Data of the paper's Figure 12 for one dataset: CNN depths beside the recurrent models with the linear readout.

    Returns ``(ours, paper, order)``; ``x`` is ``"CNN\\nL=2"`` ... ``"Conv-LSTM\\nlinear"``, ``"NWM\\nlinear"``
    (two-line tick labels)."""
    def label(family, variant):
        return f"CNN\nL={variant}" if family == "cnn" else f"{FAMILY_TITLES[family]}\n{variant}"

    ok = table[(table["status"] == "complete") & (table["dataset"] == dataset)]
    ok = ok[(ok["family"] == "cnn") | (ok["variant"] == "linear")]
    ours = ok.assign(x=[label(f, v) for f, v in zip(ok["family"], ok["variant"])], hue=dataset)
    rows = [("cnn", d) for d in (2, 4, 8, 16, 32)] + [("lstm", "linear"), ("nwm", "linear")]
    paper = _paper_bars(dataset, rows, x_of=label, hue_of=lambda f, v: dataset)
    return ours, paper, [label(f, v) for f, v in rows]


def stored_full_scale(store=None) -> pd.DataFrame:
    """Aggregated stored runs of Table 1 at the ``paper`` preset (full scale, e.g. from a GPU), with provenance;
    empty when the store has none."""
    from twi_core.reproduce import aggregate

    try:
        table = aggregate(store)
    except FileNotFoundError:  # no run store yet: nothing stored at full scale
        return pd.DataFrame()
    if table.empty or "preset" not in table:
        return table
    return table[(table["preset"] == "paper") & table["dataset"].isin(["tetrominoes", "mnist"])].reset_index(drop=True)


def spectra_of(states: torch.Tensor) -> np.ndarray:
    """Fourier magnitudes ``(B, K, C, H, W)`` of hidden states (see :mod:`twi_core.analysis.spectra`)."""
    return spectra.fourier_magnitudes(states)
