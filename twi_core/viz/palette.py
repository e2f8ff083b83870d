"""One fixed class palette for every chapter: label ``k`` has the same colour on every page; background is black.

The first eleven colours are chosen for contrast on black and cover every dataset of the book (at most 11 classes:
MNIST and Multi-MNIST); more labels get further colours from a golden-ratio walk around the hue circle.

Examples
--------
>>> class_palette(3).tolist()
[[0, 0, 0], [230, 25, 75], [60, 180, 75]]
>>> colorize(np.array([[0, 1], [2, 0]])).shape
(2, 2, 3)
"""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["class_palette", "colorize"]

# label 0 (background) is black; then well-separated bright colours (red, green, yellow, blue, orange, purple, cyan,
# magenta, lime, pink) so that neighbouring labels never look alike on a black background.
_BASE = np.array([
    [0, 0, 0],
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
], dtype=np.uint8)


def class_palette(num_classes: int) -> np.ndarray:
    """The first ``num_classes`` colours of the book's palette.

    Parameters
    ----------
    num_classes : int
        Number of labels including background (label 0), at least 1.

    Returns
    -------
    np.ndarray
        uint8 ``(num_classes, 3)``; row ``k`` is the RGB colour of label ``k``, row 0 is black.

    Raises
    ------
    TypeError, ValueError
        If ``num_classes`` is not a positive int.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int >= 1; got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    if num_classes <= len(_BASE):
        return _BASE[:num_classes].copy()
    extra = []
    for k in range(num_classes - len(_BASE)):
        hue = (0.13 + 0.618033988749895 * k) % 1.0
        extra.append([round(255 * v) for v in colorsys.hsv_to_rgb(hue, 0.75, 0.95)])
    return np.concatenate([_BASE, np.array(extra, dtype=np.uint8)])


def colorize(mask, num_classes: int | None = None) -> np.ndarray:
    """Colour a label mask with :func:`class_palette`.

    Parameters
    ----------
    mask : array-like of int, shape ``(..., H, W)``
        Labels >= 0 (NumPy array or torch tensor).
    num_classes : int, optional
        Palette size; defaults to ``mask.max() + 1``. Labels must be below it.

    Returns
    -------
    np.ndarray
        uint8 ``(..., H, W, 3)``.
    """
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(f"mask must hold integer labels; got dtype {mask.dtype}")
    if mask.size and mask.min() < 0:
        raise ValueError(f"mask labels must be >= 0; got minimum {mask.min()}")
    top = int(mask.max()) + 1 if mask.size else 1
    if num_classes is None:
        num_classes = top
    elif top > num_classes:
        raise ValueError(f"mask holds label {top - 1} but num_classes is {num_classes}")
    return class_palette(num_classes)[mask]
