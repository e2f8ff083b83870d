"""The Performance appendix's "Time to accuracy" section: learning curves of the two recipes, and the time to a target.

The curves come from ``benchmarks/time_to_accuracy.py`` (stored in ``book/_data/time_to_accuracy*.json``, one file per
machine): validation FG-IoU after every epoch against images seen and against wall time, for the authors' protocol
(``recipe="paper"``, constant Adam 1e-3) and the fast recipe (:mod:`twi_core.recipes`), each file on one machine
(stated in it). Machines differ in speed, not in what a run learns from the same images, so :func:`machines_table` sets
one model's settings side by side across the machines.

Examples
--------
>>> curve = {"history": [{"images_seen": 2000, "elapsed_s": 120.0, "val_fg_iou": 0.3},
...                      {"images_seen": 4000, "elapsed_s": 240.0, "val_fg_iou": 0.85}]}
>>> first_reaching(curve, 0.8)
{'images_seen': 4000, 'minutes': 4.0, 'val_fg_iou': 0.85}
>>> first_reaching(curve, 0.9) is None
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["load", "load_all", "first_reaching", "setting", "summary_table", "summary_text", "machines_table",
           "stored_reaching", "figure"]


def load(path: str | Path) -> dict[str, Any] | None:
    """A stored measurement (JSON), or None when the file does not exist; a corrupt file is a ``ValueError`` naming
    it (:func:`twi_core._io.read_json`)."""
    from twi_core._io import read_json

    return read_json(path) if Path(path).exists() else None


def load_all(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Every stored measurement ``time_to_accuracy*.json`` in ``directory``, keyed by file name without ``.json``
    (one file per machine), in name order; empty when there is none."""
    return {path.stem: load(path) for path in sorted(Path(directory).glob("time_to_accuracy*.json"))}


def first_reaching(curve: dict[str, Any], threshold: float) -> dict[str, Any] | None:
    """The first validation point of ``curve`` at or above ``threshold`` (images seen, minutes), or None."""
    for row in curve["history"]:
        value = row.get("val_fg_iou")
        if value is not None and value >= threshold:
            return {"images_seen": row["images_seen"], "minutes": round(row["elapsed_s"] / 60.0, 2),
                    "val_fg_iou": value}
    return None


def _label(curve: dict[str, Any]) -> str:
    names = {"nwm": "NWM", "lstm": "Conv-LSTM", "cnn": "CNN"}
    family = names.get(curve["family"], curve["family"])
    variant = f"L = {curve['variant']}" if curve["family"] == "cnn" else curve["variant"]
    return f"{family}-{variant}" if curve["family"] != "cnn" else f"{family} {variant}"


def setting(curve: dict[str, Any]) -> str:
    """How a curve was trained, in words: the authors' protocol, the constant rate at another batch, or the fast recipe.

    >>> setting({"recipe": "paper", "lr": 1e-3, "batch_size": 16}), setting({"recipe": "paper", "lr": 1e-3, "batch_size": 4})
    ("authors' protocol (B 16)", 'constant lr 0.001, B 4')
    >>> setting({"recipe": "fast", "lr": 1e-3, "batch_size": 4})
    'fast recipe (lr 0.001, B 4)'
    """
    batch = curve.get("batch_size", 16)
    if curve["recipe"] == "paper":
        return f"authors' protocol (B {batch})" if batch == 16 and curve["lr"] == 1e-3 else \
            f"constant lr {curve['lr']:g}, B {batch}"
    return f"{curve['recipe']} recipe (lr {curve['lr']:g}, B {batch})"


def _is_authors(curve: dict[str, Any]) -> bool:
    return curve["recipe"] == "paper" and curve.get("batch_size", 16) == 16 and curve["lr"] == 1e-3


def summary_table(data: dict[str, Any], *, threshold: float = 0.8) -> pd.DataFrame:
    """One row per curve: model, recipe, peak rate, final validation FG-IoU, images and minutes to ``threshold``."""
    rows = []
    for curve in data["curves"]:
        hist = curve["history"]
        reach = first_reaching(curve, threshold)
        rows.append({"model": _label(curve), "setting": setting(curve), "recipe": curve["recipe"], "peak lr": curve["lr"],
                     "batch": curve["batch_size"], "train images": curve["n_train"],
                     "images seen": hist[-1]["images_seen"] if hist else 0,
                     "minutes": round(hist[-1]["elapsed_s"] / 60.0, 1) if hist else None,
                     "final val FG-IoU": round(hist[-1]["val_fg_iou"], 3) if hist else None,
                     "best val FG-IoU": round(max(r["val_fg_iou"] for r in hist), 3) if hist else None,
                     f"minutes to {threshold}": reach["minutes"] if reach else "not reached",
                     f"images to {threshold}": reach["images_seen"] if reach else "not reached",
                     "head": curve.get("head_dtype")})
    if not rows:
        return pd.DataFrame(columns=["model", "recipe", "peak lr"])
    return pd.DataFrame(rows).sort_values(["model", "recipe", "peak lr", "batch"]).reset_index(drop=True)


def summary_text(data: dict[str, Any], *, threshold: float = 0.8) -> str:
    """What the curves show, per model, in words: each recipe's final validation FG-IoU, which recipe ended higher,
    and when the target was first reached.

    Examples
    --------
    >>> data = {"curves": [
    ...     {"family": "cnn", "variant": 4, "recipe": "paper", "lr": 1e-3,
    ...      "history": [{"images_seen": 6000, "elapsed_s": 60.0, "val_fg_iou": 0.2}]},
    ...     {"family": "cnn", "variant": 4, "recipe": "fast", "lr": 1e-3, "batch_size": 4,
    ...      "history": [{"images_seen": 6000, "elapsed_s": 60.0, "val_fg_iou": 0.85}]}]}
    >>> print(summary_text(data))  # doctest: +NORMALIZE_WHITESPACE
    CNN L = 4: the authors' protocol ends at 0.20, the fast recipe at 0.85 (lr 0.001, B 4), after 6,000 images;
    the fast recipe ends higher; 0.8 first reached by fast recipe (lr 0.001, B 4) after 6,000 images (1.0 min).
    """
    lines = []
    for model in sorted({_label(c) for c in data["curves"]}):
        curves = [c for c in data["curves"] if _label(c) == model and c["history"]]
        paper = [c for c in curves if _is_authors(c)]
        fast = [c for c in curves if c["recipe"] == "fast"]
        other = [c for c in curves if c not in paper and c not in fast]
        final = {id(c): c["history"][-1]["val_fg_iou"] for c in curves}
        parts = []
        if paper:
            parts.append("the authors' protocol ends at " + " / ".join(f"{final[id(c)]:.2f}" for c in paper))
        if fast:
            parts.append("the fast recipe at " + " / ".join(f"{final[id(c)]:.2f} ({setting(c).split('(')[1]}"
                                                            for c in fast))
        if other:
            parts.append(", ".join(f"{setting(c)} at {final[id(c)]:.2f}" for c in other))
        seen = max(c["history"][-1]["images_seen"] for c in curves)
        text = f"{model}: " + ", ".join(parts) + f", after {seen:,} images"
        if paper and fast:
            best_paper, best_fast = max(final[id(c)] for c in paper), max(final[id(c)] for c in fast)
            text += "; the fast recipe ends " + ("higher" if best_fast > best_paper else "lower")
        reached = [(first_reaching(c, threshold), c) for c in curves]
        reached = [(r, c) for r, c in reached if r is not None]
        if reached:
            r, c = min(reached, key=lambda rc: rc[0]["images_seen"])
            who = "the authors' protocol" if _is_authors(c) else setting(c)
            text += f"; {threshold} first reached by {who} after {r['images_seen']:,} images ({r['minutes']:.1f} min)."
        else:
            text += f"; no curve reached {threshold}."
        lines.append(text)
    return "\n".join(lines)


def machines_table(measurements: dict[str, dict[str, Any]], *, model: str = "NWM-linear",
                   threshold: float = 0.8) -> pd.DataFrame:
    """One model's settings (rows) across machines (column groups): the final validation FG-IoU, and the minutes and
    images to ``threshold``, from each machine's :func:`summary_table`.

    Parameters
    ----------
    measurements
        ``{name: measurement}`` as :func:`load_all` returns; a machine's columns are labelled with its CPU and the
        name, since two files may come from CPUs of one model name.
    model, threshold
        The model label (:func:`summary_table`'s ``model`` column) and the validation FG-IoU to reach.

    Examples
    --------
    >>> def run(recipe, batch, ious, minutes):
    ...     return {"family": "nwm", "variant": "linear", "recipe": recipe, "lr": 1e-3, "batch_size": batch,
    ...             "n_train": 2000, "history": [{"images_seen": 2000 * (i + 1), "elapsed_s": 60.0 * m, "val_fg_iou": v}
    ...                                          for i, (v, m) in enumerate(zip(ious, minutes))]}
    >>> a = {"machine": {"cpu": "A"},
    ...      "curves": [run("paper", 16, [0.5, 0.7], [2, 4]), run("fast", 4, [0.6, 0.9], [3, 6])]}
    >>> b = {"machine": {"cpu": "B"}, "curves": [run("fast", 4, [0.6, 0.85], [1, 2])]}
    >>> table = machines_table({"time_to_accuracy": a, "time_to_accuracy_b": b})
    >>> table[("B (time_to_accuracy_b)", "minutes to 0.8")].tolist()
    ['not run', 2.0]
    >>> table[("A (time_to_accuracy)", "minutes to 0.8")].tolist()
    ['not reached', 6.0]
    """
    columns: dict[tuple[str, str], dict[str, Any]] = {}
    keep = ("final val FG-IoU", f"minutes to {threshold}", f"images to {threshold}")
    for name, data in measurements.items():
        table = summary_table(data, threshold=threshold)
        if "setting" not in table:
            continue
        rows = table[table["model"] == model].set_index("setting")
        label = f"{data.get('machine', {}).get('cpu', '?')} ({name})"
        for column in keep:
            columns[(label, column)] = rows[column].to_dict()
    frame = pd.DataFrame(columns)
    if frame.empty:
        return frame
    # the authors' protocol first, then the fast recipe, then the constant rate at other batches
    order = sorted(frame.index, key=lambda s: (not s.startswith("authors"), not s.startswith("fast"), s))
    frame = frame.loc[order]
    frame.index.name = f"{model}: setting"
    return frame.astype(object).where(frame.notna(), "not run")


def stored_reaching(*, threshold: float = 0.8, dataset: str = "tetrominoes", family: str = "nwm",
                    variant: Any = "linear", seeds: tuple[int, ...] = (0, 1, 2)) -> pd.DataFrame:
    """When the shipped store's runs of one model (the authors' protocol on the full training split,
    :func:`twi_core.store.store_config`) first reached ``threshold`` on validation FG-IoU: one row per stored seed
    (images seen and minutes, or "not reached"), with the CPU it trained on. This reaches beyond the 12,000 images of
    the curves above, where the authors' protocol has not got there yet."""
    from twi_core import store

    rows = []
    for seed in seeds:
        run = store.find(store.store_config(dataset, family, variant, seed=seed))
        if run is None:
            continue
        curve = {"history": run.result["history"]}
        reach = first_reaching(curve, threshold)
        last = run.result["history"][-1]
        rows.append({"seed": seed, "device": run.result.get("device_name"), "batch": run.config.batch_size,
                     f"images to {threshold}": reach["images_seen"] if reach else "not reached",
                     f"minutes to {threshold}": reach["minutes"] if reach else "not reached",
                     "images seen": last["images_seen"], "final val FG-IoU": round(last["val_fg_iou"], 3)})
    return pd.DataFrame(rows)


def figure(data: dict[str, Any], *, threshold: float = 0.8):
    """Validation FG-IoU against images seen (left) and wall-clock minutes (right): one row per model, one line per
    setting (the authors' protocol dashed, the fast recipe solid, the constant rate at other batch sizes dotted), so each
    model's settings compare directly."""
    import matplotlib.pyplot as plt

    models = sorted({_label(c) for c in data["curves"]})
    fig, axes = plt.subplots(max(len(models), 1), 2, figsize=(10, 2.9 * max(len(models), 1)), sharey=True,
                             squeeze=False)
    # one colour per recipe setting across all rows (the authors' protocol first)
    settings = sorted({(not _is_authors(c), c["recipe"] != "paper", c["lr"], -c.get("batch_size", 16))
                       for c in data["curves"]})
    def order(curve):
        return (not _is_authors(curve), curve["recipe"] != "paper", curve["lr"], -curve.get("batch_size", 16))

    for curve in sorted(data["curves"], key=order):  # legends in one order: the authors' protocol first
        row = axes[models.index(_label(curve))]
        hist = curve["history"]
        key = (not _is_authors(curve), curve["recipe"] != "paper", curve["lr"], -curve.get("batch_size", 16))
        style = dict(ls="-" if curve["recipe"] == "fast" else "--" if _is_authors(curve) else ":", marker="o", ms=3,
                     label=setting(curve), color=f"C{settings.index(key)}")
        iou = [r["val_fg_iou"] for r in hist]
        row[0].plot([r["images_seen"] for r in hist], iou, **style)
        row[1].plot([r["elapsed_s"] / 60.0 for r in hist], iou, **style)
    for model, row in zip(models, axes):
        for ax, xlabel in zip(row, ("training images seen", "wall-clock minutes (one process, one thread)")):
            ax.axhline(threshold, color="0.6", lw=0.8, ls=":")
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        row[0].set_ylabel(f"{model}\nvalidation FG-IoU")
        row[0].set_ylim(0, 1)
        row[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
