"""Tables of finished runs: the paper's numbers, one row per run, and statistics over seeds per configuration.

:func:`collect` reads every finished run of a store, :func:`aggregate` groups them by configuration (mean ± std and
min / median / max over seeds) beside :func:`paper_table`, and :func:`render_table` formats the result for display
(``twi aggregate DIR``).
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any, Mapping, Sequence

from twi_core import paths

__all__ = ["AGGREGATE_METRICS", "paper_table", "collect", "aggregate", "render_table"]

_FAMILY_TITLES = {"nwm": "NWM", "lstm": "Conv-LSTM", "cnn": "CNN", "unet": "U-Net"}

#: Test metrics aggregated over seeds, in display order.
AGGREGATE_METRICS: tuple[str, ...] = ("fg_accuracy", "fg_iou", "fg_loss", "pixel_accuracy", "total_iou",
                                      "paper_total_iou_bitwise", "macro_iou", "pixel_loss")

# The paper's column names -> ours (Table 3's "IoU" is the corrected total IoU: a/(2-a) of its Acc column).
_PAPER_COLUMNS = {"fg_acc": "fg_accuracy", "fg_iou": "fg_iou", "fg_loss": "fg_loss", "acc": "pixel_accuracy",
                  "iou": "total_iou", "loss": "pixel_loss"}
_PAPER_FAMILIES = {"CNN": "cnn", "LSTM": "lstm", "NWM": "nwm", "U-Net": "unet"}


def _paper_variant(arch: Any) -> str:
    text = str(arch).strip()
    return text[:-1] if text.endswith("c") and text[:-1].isdigit() else text.lower()


def paper_table():
    """The paper's Tables 1–3 as one pandas DataFrame, one row per ``(dataset, family, variant)``.

    Columns: ``dataset``, ``family`` (``nwm``/``lstm``/``cnn``/``unet``), ``variant`` (readout name, CNN depth or U-Net
    width, as a string), ``params_paper``, and ``paper_<metric>_mean`` / ``paper_<metric>_std`` for ``fg_accuracy``,
    ``fg_iou``, ``fg_loss`` (Tables 1–2) and ``pixel_accuracy``, ``total_iou``, ``pixel_loss`` (Table 3). Two decimals,
    as printed in the paper; shipped in ``twi_core/resources``.
    """
    import pandas as pd

    frames = []
    for name in ("paper_table1_table2_foreground.csv", "paper_table3_all_pixels.csv"):
        with resources.files("twi_core").joinpath("resources", name).open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, dtype={"arch": str})
        df["family"] = df["model"].map(_PAPER_FAMILIES)
        df["variant"] = df["arch"].map(_paper_variant)
        rename = {}
        for theirs, ours in _PAPER_COLUMNS.items():
            for stat in ("mean", "std"):
                if f"{theirs}_{stat}" in df:
                    rename[f"{theirs}_{stat}"] = f"paper_{ours}_{stat}"
        df = df.rename(columns=rename)
        keep = ["dataset", "family", "variant", *[c for c in df.columns if c.startswith("paper_")]]
        if "params_paper" in df:
            keep.insert(3, "params_paper")
        frames.append(df[keep])
    return frames[0].merge(frames[1], on=["dataset", "family", "variant"], how="outer")


def _infer_labels(record) -> dict[str, Any]:
    """The grid labels of a run record written without them (by a direct :func:`twi_core.runs.obtain`)."""
    model = record.config.model
    variant = next((model[k] for k in ("readout", "depth", "width") if k in model), None)
    return {"dataset": record.config.dataset, "family": model.get("name"), "variant": variant, "preset": "unknown",
            "grid": None}


def _setting_group(config: Mapping[str, Any]) -> str:
    """A short hash of a run's configuration without its seed: runs that differ only by seed share it."""
    import hashlib
    import json

    blob = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:8]


def collect(root: str | os.PathLike | None = None):
    """One row per finished run under ``root`` (recursively): labels, status, test metrics and provenance.

    A run stored twice (the same key in two folders, e.g. a copied store) is counted once. Records that could not be
    read are listed in the frame's ``attrs["skipped"]`` as ``(folder, reason)``.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    """
    import pandas as pd

    from twi_core import runs

    folder = paths.runs_dir(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"run store {folder} does not exist")
    rows, seen, skipped = [], set(), []
    for run in runs.iter_runs(root, finished_only=True, skipped=skipped):
        rec = run.record
        if rec.key in seen:
            continue
        seen.add(rec.key)
        labels = {**_infer_labels(rec), **rec.labels}
        rows.append({"dataset": labels["dataset"], "family": labels["family"], "variant": str(labels["variant"]),
                     "preset": labels["preset"], "seed": rec.seed, "status": run.status,
                     **{m: rec.test_metric(m) for m in AGGREGATE_METRICS},
                     "epochs": rec.config.epochs, "n_train": rec.n_images.get("train"),
                     "images_seen": rec.images_seen, "recipe": rec.recipe,
                     "setting": _setting_group(rec.config.to_dict()),
                     "device": rec.device_name or rec.device, "git_commit": rec.git_commit,
                     "finished": rec.finished, "wall_time_s": rec.wall_time_s,
                     "data_source": rec.data_source, "run": run.path.name})
    columns = ["dataset", "family", "variant", "preset", "seed", "status", *AGGREGATE_METRICS, "epochs", "n_train",
               "images_seen", "recipe", "setting", "device", "git_commit", "finished", "wall_time_s", "data_source",
               "run"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["skipped"] = [(str(path), reason) for path, reason in skipped]
    return frame


def aggregate(root: str | os.PathLike | None = None, *, with_paper: bool = True):
    """Per configuration: statistics of the test metrics over seeds.

    Runs are grouped by ``(dataset, family, variant, preset)`` *and* their whole configuration apart from the seed
    (``setting``, a hash), so runs with other epochs, images or recipes are never averaged together or counted as more
    seeds: they get rows of their own. Columns: the keys, ``setting``, ``n_seeds`` (complete runs), ``n_failed``
    (NaN-loss runs), then for every metric of :data:`AGGREGATE_METRICS` ``<metric>_mean``, ``_std`` (ddof = 1, as
    pandas and the authors), ``_min``, ``_median``, ``_max``; then provenance (``epochs``, ``n_train``,
    ``images_seen``, ``recipe``, ``devices``, ``commits``, ``finished``: the latest) and, with ``with_paper``, the
    paper's columns of :func:`paper_table`. Runs recorded as errors are left out; unreadable records are listed in
    ``attrs["skipped"]`` and warned about.
    """
    import warnings

    import pandas as pd

    runs_df = collect(root)
    skipped = runs_df.attrs.get("skipped", [])
    for path, reason in skipped:
        warnings.warn(f"skipped unreadable run record in {path}: {reason}", RuntimeWarning, stacklevel=2)
    keys = ["dataset", "family", "variant", "preset", "setting"]
    if runs_df.empty:
        table = pd.DataFrame(columns=[*keys, "n_seeds", "n_failed"])
        table.attrs["skipped"] = skipped
        return table
    complete = runs_df[runs_df["status"] == "complete"]
    out = []
    for key, group in runs_df.groupby(keys, sort=False, dropna=False):
        ok = complete.loc[group.index.intersection(complete.index)]
        row: dict[str, Any] = dict(zip(keys, key))
        row["n_seeds"] = len(ok)
        row["n_failed"] = int((group["status"] == "failed").sum())
        for m in AGGREGATE_METRICS:
            values = pd.to_numeric(ok[m], errors="coerce").dropna()
            row[f"{m}_mean"] = values.mean() if len(values) else float("nan")
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
            row[f"{m}_min"] = values.min() if len(values) else float("nan")
            row[f"{m}_median"] = values.median() if len(values) else float("nan")
            row[f"{m}_max"] = values.max() if len(values) else float("nan")
        row["epochs"] = ", ".join(str(v) for v in sorted(group["epochs"].dropna().unique()))
        row["n_train"] = ", ".join(str(int(v)) for v in sorted(group["n_train"].dropna().unique()))
        row["images_seen"] = ", ".join(str(int(v)) for v in sorted(group["images_seen"].dropna().unique()))
        row["recipe"] = ", ".join(sorted(str(v) for v in group["recipe"].dropna().unique()))
        row["devices"] = ", ".join(sorted(str(v) for v in group["device"].dropna().unique()))
        row["commits"] = ", ".join(sorted(str(v)[:8] for v in group["git_commit"].dropna().unique()))
        row["finished"] = group["finished"].dropna().max() if group["finished"].notna().any() else None
        out.append(row)
    table = pd.DataFrame(out)
    table = table.sort_values(["dataset", "family", "variant", "preset"], key=_sort_key, kind="stable")
    if with_paper:
        table = table.merge(paper_table(), on=["dataset", "family", "variant"], how="left")
    table = table.reset_index(drop=True)
    table.attrs["skipped"] = skipped
    return table


_ORDER = {
    "family": {"cnn": 0, "lstm": 1, "nwm": 2, "unet": 3},                 # the paper's row order
    "variant": {"last": 0, "mean": 1, "max": 2, "fft": 3, "linear": 4},   # readouts, then depths/widths by value
    "preset": {"smoke": 0, "book": 1, "paper": 2},
}


def _sort_key(column):
    order = _ORDER.get(column.name)
    if order is None:
        return column
    if column.name == "variant":
        return column.map(lambda v: order.get(v, 10 + int(v) if str(v).isdigit() else 1000))
    return column.map(lambda v: order.get(v, 99))


def render_table(table, *, metrics: Sequence[str] = ("fg_iou", "fg_accuracy", "total_iou"), digits: int = 2,
                 spread: bool = True):
    """A display table (strings): per configuration ``mean ± std`` over seeds, ``[min / median / max]`` and the paper.

    Parameters
    ----------
    table : DataFrame
        The output of :func:`aggregate` (with the paper's columns).
    metrics : sequence of str
        Names of :data:`AGGREGATE_METRICS` to show.
    digits : int
        Decimals (the paper prints 2).
    spread : bool
        Add the ``[min / median / max]`` column per metric.
    """
    import pandas as pd

    from twi_core.analysis.claims import mean_std_text

    unknown = [m for m in metrics if m not in AGGREGATE_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(AGGREGATE_METRICS)}")
    rows = []
    for _, r in table.iterrows():
        row = {"dataset": r["dataset"], "model": _FAMILY_TITLES.get(r["family"], r["family"]),
               "variant": r["variant"], "preset": r["preset"], "seeds": int(r["n_seeds"])}
        if "epochs" in table.columns:  # settings that tell rows of the same model apart
            row["epochs"], row["images seen"] = r.get("epochs"), r.get("images_seen") or "–"
        if r.get("n_failed", 0):
            row["seeds"] = f"{int(r['n_seeds'])} (+{int(r['n_failed'])} NaN)"
        for m in metrics:
            row[m] = mean_std_text(r.get(f"{m}_mean", float("nan")), r.get(f"{m}_std", float("nan")), digits)
            if spread:
                lo, med, hi = (r.get(f"{m}_{s}", float("nan")) for s in ("min", "median", "max"))
                row[f"{m} min/med/max"] = "–" if lo != lo else f"{lo:.{digits}f} / {med:.{digits}f} / {hi:.{digits}f}"
            paper_mean = r.get(f"paper_{m}_mean", float("nan"))
            if f"paper_{m}_mean" in table.columns:
                row[f"{m} (paper)"] = mean_std_text(paper_mean if paper_mean is not None else float("nan"),
                                                    r.get(f"paper_{m}_std", float("nan")), 2)
        rows.append(row)
    return pd.DataFrame(rows)
