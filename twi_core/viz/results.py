"""Figures of results: bars of our runs beside the paper's numbers, and learning curves (chapters 2 and 3).

Everything here draws; nothing trains or evaluates. Functions return a :class:`matplotlib.figure.Figure` made with
``pyplot`` (so notebooks show it inline); close it with ``plt.close(fig)`` when drawing many.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["learning_curves", "readout_bars"]


def readout_bars(ours: pd.DataFrame, *, x: str, hue: str, metrics: Sequence[str],
                 paper: pd.DataFrame | None = None, baselines: Mapping[str, float] | None = None,
                 order: Sequence | None = None, hue_order: Sequence | None = None,
                 metric_labels: Mapping[str, str] | None = None, title: str | None = None, ncols: int = 2,
                 xlabel: str | None = None) -> Figure:
    """Bars of our runs per ``x`` (readout or CNN depth) and ``hue`` (model), beside the paper's numbers.

    The paper's Figures 11 and 12 in one form: one subplot per metric; bars are our mean over runs with every run as a
    dot; the paper's mean ± std as a black diamond with error bars; the "all background" predictor as a dashed red
    line where ``baselines`` gives it (for FG-Acc and FG-IoU it is 0, for pixel accuracy the background fraction).

    Parameters
    ----------
    ours : one row per run, columns ``x``, ``hue`` and each metric.
    paper : optional, columns ``x``, ``hue``, ``{metric}_mean`` and ``{metric}_std``.
    baselines : ``{metric: value of the all-background predictor}``.
    ncols : subplots per row.
    xlabel : label of the x axes (default: the ``x`` column's name).
    """
    for col in (x, hue, *metrics):
        if col not in ours.columns:
            raise ValueError(f"ours lacks column {col!r}; it has {list(ours.columns)}")
    if not metrics:
        raise ValueError("metrics must name at least one column")
    baselines = dict(baselines or {})
    labels = dict(metric_labels or {})
    order = list(order) if order is not None else list(dict.fromkeys(ours[x]))
    hue_order = list(hue_order) if hue_order is not None else list(dict.fromkeys(ours[hue]))
    palette = plt.get_cmap("tab10").colors
    width = 0.8 / max(1, len(hue_order))
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int; got {ncols!r}")
    ncols = min(ncols, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.2, 0.8 * len(order) + 1.2) * ncols, 2.9 * nrows + 0.4),
                             squeeze=False, constrained_layout=True)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for m_i, metric in enumerate(metrics):
        ax = axes.flat[m_i]
        labelled: set = set()
        for h_i, h in enumerate(hue_order):
            offset = (h_i - (len(hue_order) - 1) / 2) * width
            for x_i, xv in enumerate(order):
                sel = ours[(ours[x] == xv) & (ours[hue] == h)][metric].astype(float)
                pos = x_i + offset
                if len(sel):
                    ax.bar(pos, sel.mean(), width=width * 0.9, color=palette[h_i % 10], alpha=0.8,
                           label=None if h in labelled else str(h))
                    labelled.add(h)
                    ax.scatter(np.full(len(sel), pos), sel, s=10, color="k", zorder=3)
                if paper is not None and {f"{metric}_mean", x, hue} <= set(paper.columns):
                    ref = paper[(paper[x] == xv) & (paper[hue] == h)]
                    if len(ref):
                        std = ref[f"{metric}_std"].iloc[0] if f"{metric}_std" in ref else 0.0
                        ax.errorbar(pos, ref[f"{metric}_mean"].iloc[0], yerr=std, fmt="D", color="k", mfc="white",
                                    ms=5, capsize=3, zorder=4)
        if metric in baselines:
            ax.axhline(baselines[metric], color="red", ls="--", lw=1.2, zorder=5)
        ax.set_xticks(range(len(order)), [str(o) for o in order], fontsize=8)
        ax.set_xlabel(x if xlabel is None else xlabel)
        if "loss" not in metric:
            ax.set_ylim(0, 1.05)
        ax.set_title(labels.get(metric, metric), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0, 0].get_legend_handles_labels()
    uniq = dict(zip(names, handles))
    if paper is not None:
        uniq["paper (mean ± std)"] = Line2D([], [], marker="D", color="k", mfc="white", ls="none")
    if baselines:
        uniq["all background"] = Line2D([], [], color="red", ls="--")
    uniq["one run"] = Line2D([], [], marker="o", color="k", ls="none", ms=3)
    fig.legend(list(uniq.values()), list(uniq.keys()), loc="outside lower center", ncol=min(6, len(uniq)),
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def learning_curves(histories: Mapping[str, pd.DataFrame], *, metrics: Sequence[str] = ("train_loss", "val_loss",
                    "val_fg_iou"), x: str = "epoch", log_loss: bool = True, title: str | None = None,
                    metric_labels: Mapping[str, str] | None = None) -> Figure:
    """Learning curves of several runs, one subplot per metric, one line per run.

    Parameters
    ----------
    histories : ``{run label: DataFrame with column x and the metrics}`` (e.g. ``Run.history``). Missing metrics are
        skipped for that run.
    log_loss : log-scale the y axis of metrics whose name contains ``loss`` (when their values span over a decade).
    """
    if not histories:
        raise ValueError("histories is empty; expected {label: DataFrame}")
    labels = dict(metric_labels or {})
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0), squeeze=False,
                             constrained_layout=True)
    for i, metric in enumerate(metrics):
        ax = axes[0, i]
        for j, (name, df) in enumerate(histories.items()):
            if x not in df.columns:
                raise ValueError(f"history {name!r} lacks the x column {x!r}; it has {list(df.columns)}")
            if metric in df.columns:
                d = df[[x, metric]].dropna()
                ax.plot(d[x], d[metric], marker="o", ms=3, label=name, color=plt.get_cmap("tab10").colors[j % 10])
        values = np.concatenate([pd.to_numeric(df[metric], errors="coerce").dropna().to_numpy(float)
                                 for df in histories.values() if metric in df.columns] or [np.zeros(0)])
        values = values[values > 0]
        # a log axis only where the losses span more than a decade (else its tick labels are unreadable)
        if "loss" in metric and log_loss and values.size and values.max() / values.min() > 10:
            ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_title(labels.get(metric, metric), fontsize=10)
        ax.grid(alpha=0.3)
    handles, names = [], []
    for ax in axes[0]:
        for hnd, nm in zip(*ax.get_legend_handles_labels()):
            if nm not in names:
                handles.append(hnd)
                names.append(nm)
    fig.legend(handles, names, loc="outside lower center", ncol=min(5, max(1, len(names))), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
