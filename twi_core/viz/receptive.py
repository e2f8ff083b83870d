"""Figures of effective receptive fields (chapter 4) and wavelength/separability summaries (chapter 5)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["receptive_field_boxes", "receptive_field_figure", "radius_plot", "separability_plot", "threshold_vs_loss", "wavelength_distributions"]


def _show(ax, grad: np.ndarray, pixel, title: str, image: np.ndarray | None, window: int | None = None) -> None:
    g = np.asarray(grad, dtype=np.float64)
    peak = g.max()
    if window is not None:                                                 # a view of +-window px around the pixel
        r0, c0 = max(0, pixel[0] - window), max(0, pixel[1] - window)
        g = g[r0:pixel[0] + window + 1, c0:pixel[1] + window + 1]
        image = None if image is None else image[r0:pixel[0] + window + 1, c0:pixel[1] + window + 1]
        pixel = (pixel[0] - r0, pixel[1] - c0)
    if image is not None:
        ax.imshow(image, cmap="gray", alpha=0.35, interpolation="nearest")
    if peak > 0:
        view = np.log10(g / peak + 1e-4)                                   # 4 decades of influence
        ax.imshow(view, cmap="magma", vmin=-4, vmax=0, alpha=0.85 if image is not None else 1.0,
                  interpolation="nearest")
    else:
        ax.text(0.5, 0.5, "zero gradient", transform=ax.transAxes, ha="center", va="center", fontsize=8)
    ax.plot([pixel[1]], [pixel[0]], marker="+", color="cyan", markersize=9, mew=1.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def receptive_field_figure(result: Mapping[str, Any], image, *, dt: float | None = None, title: str | None = None,
                           window: int | None = None) -> Figure:
    """Two rows: the NWM's hidden-state receptive field at several steps, and every model's output receptive field.

    Parameters
    ----------
    result : the dict of :func:`twi_core.chapters.ch4_multi_mnist.receptive_fields`.
    image : ``(1, H, W)`` or ``(H, W)``, drawn faintly underneath.
    dt : the NWM's step, to label steps with time as well.
    window : show only ±``window`` pixels around the output pixel (None: the whole image).

    Colour: :math:`\\log_{10}` of the gradient magnitude relative to its maximum, over 4 decades.
    """
    img = np.asarray(image, dtype=np.float64).reshape(np.shape(image)[-2:])
    maps, times = result["state_maps"], result["times"]
    outputs = result["outputs"]
    cols = max(len(times), len(outputs))
    fig, axes = plt.subplots(2, cols, figsize=(2.1 * cols, 4.6), squeeze=False, constrained_layout=True)
    for k, (t, m) in enumerate(zip(times, maps)):
        label = f"state, step {t + 1}" + (f"\n(t = {(t + 1) * dt:.1f})" if dt else "")
        _show(axes[0, k], m, result["pixel"], f"{label}\nr90 = {result['state_radius'][k]:.0f} px", img, window)
    for k, (name, g) in enumerate(outputs.items()):
        _show(axes[1, k], g, result["pixel"], f"{name} output\nr90 = {result['output_radius'][name]:.0f} px", img,
              window)
    for row, used in ((0, len(times)), (1, len(outputs))):
        for k in range(used, cols):
            axes[row, k].axis("off")
    sm = plt.cm.ScalarMappable(cmap="magma", norm=plt.Normalize(-4, 0))
    fig.colorbar(sm, ax=axes, shrink=0.6, label="log10 |gradient| / max")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def radius_plot(times: Sequence[int], radii: Sequence[float], *, outputs: Mapping[str, float] | None = None,
                dt: float | None = None, ax=None, label: str = "r90"):
    """The NWM state's mass radius against the step, with the other models' output radii as horizontal lines."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.2), constrained_layout=True)
    steps = np.asarray(times) + 1
    ax.plot(steps, radii, marker="o", color="C0", label="NWM hidden state")
    for k, (name, r) in enumerate((outputs or {}).items()):
        ax.axhline(r, color=f"C{k + 1}", ls="--", lw=1, label=f"{name} output")
    ax.set_xlabel("step of the recurrence" + (f" (dt = {dt})" if dt else ""))
    ax.set_ylabel(f"receptive-field radius {label} (px)")
    ax.legend(fontsize=8, frameon=False)
    return ax


def wavelength_distributions(hists: Mapping[tuple[int, int], np.ndarray], bins: np.ndarray, *, seed: int = 0,
                             threshold: float | None = None, ax=None):
    """Wavelength densities of one seed's checkpoints, one curve per epoch, darker as training goes (Figure 10, left)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.4), constrained_layout=True)
    epochs = sorted(e for s, e in hists if s == seed)
    centres = np.sqrt(bins[1:] * bins[:-1])
    cmap = plt.get_cmap("viridis")
    for k, e in enumerate(epochs):
        ax.plot(centres, hists[(seed, e)], color=cmap(k / max(1, len(epochs) - 1)),
                label="init" if e == 0 else f"epoch {e}")
    if threshold:
        ax.axvline(threshold, color="0.3", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wavelength (px)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return ax


def threshold_vs_loss(curves, *, ax=None):
    """Share of locations above threshold (left axis) and negative validation loss (right axis) against the epoch, one
    line per seed (Figure 10, right)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.4), constrained_layout=True)
    right = ax.twinx()
    for k, (seed, g) in enumerate(curves.groupby("seed")):
        ax.plot(g["epoch"], 100 * g["frac_above"], marker="o", color=f"C{k}", label=f"seed {seed}: % above")
        right.plot(g["epoch"], -g["val_loss"], marker="s", ls="--", color=f"C{k}", alpha=0.6,
                   label=f"seed {seed}: −loss")
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.set_ylabel("% of locations above threshold")
    right.set_ylabel("− validation loss (dashed)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return ax, right


def separability_plot(table, spectra: Mapping[str, np.ndarray], *, k_max: int = 10):
    """Left: the distribution of separability (s1² share) per model; right: the mean normalised singular-value
    spectra."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True,
                               gridspec_kw={"width_ratios": [1.3, 1]})
    labels = list(spectra)
    data = [table.loc[(table["model"] == m) & table["moving"], "separability"].dropna().to_numpy() for m in labels]
    keep = [k for k, d in enumerate(data) if len(d)]
    a.boxplot([data[k] for k in keep], vert=False, tick_labels=[labels[k] for k in keep])
    a.axvline(1.0, color="0.4", ls=":", lw=1)
    a.axvline(0.5, color="0.4", ls=":", lw=1)
    a.set_xlabel("separability s₁² / Σ s²  (1 standing, ½ travelling plane wave)")
    a.tick_params(axis="y", labelsize=8)
    for k, m in enumerate(labels):
        sp = np.asarray(spectra[m])[:k_max]
        if np.isfinite(sp).any():
            b.plot(np.arange(1, len(sp) + 1), sp, marker="o", ms=3, label=m, color=f"C{k}")
    b.set_yscale("log")
    b.set_xlabel("singular value index k")
    b.set_ylabel("share of variance s_k² / Σ s²")
    b.legend(fontsize=7, frameon=False)
    return fig


def receptive_field_boxes(examples: Mapping[str, tuple[np.ndarray, np.ndarray]], sizes: Mapping[str, int], *,
                          title: str | None = None) -> Figure:
    """The paper's Figure 7: one image per dataset with square receptive fields drawn around an object pixel.

    Parameters
    ----------
    examples
        ``{dataset label: (image (C, H, W) or (H, W), mask (H, W))}``; the boxes are centred on the foreground pixel
        nearest the centroid of the first object class present.
    sizes
        ``{model label: side in px}`` (:func:`twi_core.analysis.receptive_field.feedforward_size`).
    """
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, len(examples), figsize=(3.4 * len(examples), 3.6), constrained_layout=True,
                             squeeze=False)
    colours = plt.cm.tab10(np.arange(len(sizes)))
    for ax, (label, (image, mask)) in zip(axes[0], examples.items()):
        image, mask = np.asarray(image), np.asarray(mask)
        shown = image.transpose(1, 2, 0) if image.ndim == 3 and image.shape[0] == 3 else image.reshape(mask.shape)
        ax.imshow(shown, cmap=None if shown.ndim == 3 else "gray", interpolation="nearest")
        ys, xs = np.nonzero(mask == np.unique(mask[mask > 0])[0])
        k = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
        cy, cx = ys[k], xs[k]
        for colour, (name, side) in zip(colours, sizes.items()):
            ax.add_patch(Rectangle((cx - side / 2, cy - side / 2), side, side, fill=False, lw=1.6, ec=colour,
                                   label=f"{name}: {side}×{side} px"))
        ax.plot(cx, cy, "+", color="w", ms=8)
        ax.set_title(f"{label} ({mask.shape[0]}×{mask.shape[1]} px)", fontsize=9)
        ax.set_xticks([]); ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
