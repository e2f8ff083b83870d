"""Figures of receptive fields: the effective receptive fields of chapter 4 and the receptive-field boxes of chapter 3
(Figure 7)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["receptive_field_boxes", "receptive_field_figure", "radius_plot"]


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
