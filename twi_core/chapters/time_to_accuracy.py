"""The Performance appendix's "Time to accuracy" section: learning curves of the two recipes, and the time to a target.

The curves come from ``benchmarks/time_to_accuracy.py`` (stored in ``book/_data/time_to_accuracy.json``): validation
FG-IoU after every epoch against images seen and against wall time, for the authors' protocol (``recipe="paper"``,
constant Adam 1e-3) and the fast recipe (:mod:`twi_core.recipes`), on one machine (stated in the file).

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

__all__ = ["load", "first_reaching", "setting", "summary_table", "summary_text", "figure"]


def load(path: str | Path) -> dict[str, Any] | None:
    """A stored measurement (JSON), or None when the file does not exist; a corrupt file is a ``ValueError`` naming
    it (:func:`twi_core._io.read_json`)."""
    from twi_core._io import read_json

    return read_json(path) if Path(path).exists() else None


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
