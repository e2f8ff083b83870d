"""Summaries and figures of the datasets for the appendix page "Datasets".

The page's scale comes from :data:`TABLE` (``smoke`` tiny for CI, ``book`` for the published page, ``paper`` = full
splits).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from twi_core.viz.palette import class_palette, colorize

__all__ = ["TABLE", "class_frequencies", "legend_handles", "objects_per_image", "summary_table", "show_samples"]

#: Page settings per preset: images shown per dataset and images used for the statistics (train split).
TABLE = {
    "smoke": {"n_samples": 4, "n_stats": 48},
    "book": {"n_samples": 6, "n_stats": 1000},
    "paper": {"n_samples": 8, "n_stats": 10_000},
}


def class_frequencies(masks: torch.Tensor, num_classes: int) -> np.ndarray:
    """Fraction of pixels per label, ``(num_classes,)`` summing to 1."""
    counts = torch.bincount(masks.reshape(-1), minlength=num_classes).double()
    return (counts / counts.sum()).numpy()


def objects_per_image(data) -> np.ndarray:
    """Objects per image, ``(N,)`` int.

    Multi-MNIST reports the digits its generator placed; MNIST has one digit; otherwise the connected components of
    each class are counted (4-connected; two touching pieces of the same class count once, a rare undercount).
    """
    if "count" in data.extras:
        return np.asarray(data.extras["count"], dtype=int)
    if data.info.name == "mnist":
        return np.ones(data.n, dtype=int)
    masks = data.masks.numpy()
    out = np.zeros(len(masks), dtype=int)
    for i, m in enumerate(masks):
        out[i] = sum(ndimage.label(m == c)[1] for c in np.unique(m) if c)
    return out


def summary_table(datasets: dict) -> pd.DataFrame:
    """One row per dataset: image size, channels, classes, source, images used, mean objects per image."""
    rows = []
    for name, d in datasets.items():
        objs = objects_per_image(d)
        rows.append({"dataset": name, "image": f"{d.info.image_size}x{d.info.image_size}x{d.info.channels}",
                     "classes": d.info.num_classes, "source": d.source, "images used": d.n,
                     "objects/image (mean)": round(float(objs.mean()), 2), "objects/image (range)":
                     f"{objs.min()}-{objs.max()}"})
    return pd.DataFrame(rows).set_index("dataset")


def show_samples(data, *, n: int, ax_row_images, ax_row_masks) -> None:
    """Draw ``n`` images above their colourised masks on two rows of axes."""
    for j in range(n):
        img = data.images[j].permute(1, 2, 0).numpy()                   # (C, H, W) -> (H, W, C)
        ax_row_images[j].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax_row_masks[j].imshow(colorize(data.masks[j], data.info.num_classes))
        for ax in (ax_row_images[j], ax_row_masks[j]):
            ax.set_xticks([])
            ax.set_yticks([])


def legend_handles(info):
    """Matplotlib patches for a legend of class names in the book palette."""
    from matplotlib.patches import Patch
    colours = class_palette(info.num_classes) / 255.0
    return [Patch(facecolor=colours[k], edgecolor="0.5", label=name) for k, name in enumerate(info.class_names)]
