"""Figures of hidden states: frames for GIFs and scrubbers, state and projection panels, masks, predictions, spectra.

Everything here draws; nothing trains or evaluates. Inputs follow the package layouts: hidden sequences
``(B, T, C, H, W)``, per-bin features (Fourier magnitudes or learned linear projections) ``(B, K, C, H, W)``, images
``(B, C_in, H, W)`` in [0, 1], masks ``(B, H, W)`` of integer labels. Torch tensors or numpy arrays are accepted.

Conventions, after the authors' figures: hidden states in the diverging ``'bwr'`` colour map on one scale shared by all
frames of a sequence, from its minimum to its maximum (or symmetric around zero on request); Fourier magnitudes and projections in ``'gray'`` (each panel scaled to
itself); class masks in the book's palette (:mod:`twi_core.viz.palette`), black background. Functions return a :class:`matplotlib.figure.Figure`
made with ``pyplot`` (so notebooks show it inline); close it with ``plt.close(fig)`` when drawing many.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from twi_core._arrays import as_numpy
from twi_core.viz.palette import class_palette, colorize

__all__ = ["channel_panel", "class_colors", "class_spectrum_plot", "colorize_mask", "comparison_panel", "data_limits",
           "image_grid", "bins_panel", "prediction_panel", "samples_panel", "state_frames", "symmetric_limits",
           "to_rgb_image",
           "coupling_kernels"]



def _check_index(value: int, size: int, *, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < size:
        raise ValueError(f"{name} must be an int in [0, {size}); got {value!r}")
    return int(value)


def _indices(chosen: Sequence[int] | None, n: int, size: int, *, name: str) -> list[int]:
    """``chosen`` checked against ``size``, or ``n`` evenly spaced indices of ``range(size)`` (ends included)."""
    out = list(np.linspace(0, size - 1, min(n, size)).round().astype(int)) if chosen is None else list(chosen)
    for q in out:
        _check_index(q, size, name=f"{name}[i]")
    return out


def _set_row_limits(fig: Figure, limits: Sequence[tuple[float, float]], n_cols: int) -> None:
    """Give row ``i`` of an :func:`image_grid` figure the colour limits ``limits[i]`` (e.g. of its whole sequence)."""
    for i, (lo, hi) in enumerate(limits):
        for ax in fig.axes[i * n_cols:(i + 1) * n_cols]:
            for im in ax.get_images():
                im.set_clim(lo, hi)


def _crop(a: np.ndarray, crop) -> np.ndarray:
    """Crop the last two axes to ``(row_start, row_stop, col_start, col_stop)``; ``None`` keeps everything."""
    if crop is None:
        return a
    if len(crop) != 4:
        raise ValueError(f"crop must be (row_start, row_stop, col_start, col_stop); got {crop!r}")
    r0, r1, c0, c1 = crop
    out = a[..., r0:r1, c0:c1]
    if out.shape[-1] == 0 or out.shape[-2] == 0:
        raise ValueError(f"crop {crop!r} leaves nothing of an image of size {a.shape[-2:]}")
    return out


def state_frames(states, *, sample: int = 0, channel: int = 0, stride: int = 1, crop=None) -> np.ndarray:
    """One neuron channel of one sample over time, ready for a GIF or a scrubber.

    Parameters
    ----------
    states : shape ``(B, T, C, H, W)``
    sample, channel : which sample of the batch and which hidden channel.
    stride : keep every ``stride``-th step (first step always kept).
    crop : optional ``(row_start, row_stop, col_start, col_stop)``.

    Returns
    -------
    ndarray float32 ``(ceil(T / stride), H', W')``.
    """
    s = as_numpy(states, name="states", ndim=5)
    b, t, c, h, w = s.shape
    sample = _check_index(sample, b, name="sample")
    channel = _check_index(channel, c, name="channel")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive int; got {stride!r}")
    frames = s[sample, ::stride, channel]  # (T', H, W)
    return np.ascontiguousarray(_crop(frames, crop), dtype=np.float32)


def symmetric_limits(values) -> tuple[float, float]:
    """``(-m, m)`` with ``m`` the largest absolute value (``m = 1`` for an all-zero input): a diverging scale centred
    on zero, as for the ``'bwr'`` state plots.

    >>> symmetric_limits(np.array([-0.5, 2.0]))
    (-2.0, 2.0)
    """
    m = float(np.nanmax(np.abs(as_numpy(values, name="values")))) if np.size(values) else 0.0
    m = m if m > 0 and np.isfinite(m) else 1.0
    return -m, m


def data_limits(values) -> tuple[float, float]:
    """``(min, max)`` over finite values (``(0, 1)`` when there are none, ``max = min + 1`` for a constant input): the
    authors' colour scale for hidden-state videos and Figure 5, one scale per sequence.

    >>> data_limits(np.array([0.2, 0.5, np.nan]))
    (0.2, 0.5)
    """
    v = as_numpy(values, name="values")
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def class_colors(num_classes: int) -> np.ndarray:
    """RGB colours ``(num_classes, 3)`` in [0, 1] of the book's class palette (:mod:`twi_core.viz.palette`; black
    background, the same colour for a label on every page)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
    return class_palette(int(num_classes)).astype(np.float64) / 255.0


def colorize_mask(mask, *, num_classes: int) -> np.ndarray:
    """A label mask ``(H, W)`` (or ``(B, H, W)``) as uint8 RGB ``(..., H, W, 3)``: :func:`twi_core.viz.palette.colorize`
    with the palette size required (so that a label keeps its colour whatever labels one mask happens to hold)."""
    m = as_numpy(mask, name="mask").astype(np.int64)
    if m.size and (m.min() < 0 or m.max() >= num_classes):
        raise ValueError(f"mask holds labels in [{m.min()}, {m.max()}]; expected [0, {num_classes})")
    return colorize(m, num_classes)


def to_rgb_image(image) -> np.ndarray:
    """An input image ``(C_in, H, W)`` in [0, 1] (C_in = 1 or 3) as float ``(H, W, 3)`` for ``imshow``."""
    x = as_numpy(image, name="image", ndim=3)
    if x.shape[0] == 1:
        x = np.repeat(x, 3, axis=0)
    elif x.shape[0] != 3:
        raise ValueError(f"image must have 1 or 3 channels first; got shape {x.shape}")
    return np.clip(x.transpose(1, 2, 0), 0.0, 1.0)  # (H, W, 3)


def image_grid(rows: Sequence[np.ndarray], *, row_labels: Sequence[str] | None = None,
               col_titles: Sequence[Sequence[str]] | Sequence[str] | None = None, cmaps: Sequence[str] | str = "bwr",
               symmetric: Sequence[bool] | bool = True, shared_scale: Sequence[bool] | bool = True,
               panel_size: float = 1.4, colorbar: bool = True, title: str | None = None) -> Figure:
    """A grid of image rows; each row is an array ``(n, H, W)`` of panels drawn with its own colour map and scale.

    Parameters
    ----------
    rows : list of arrays ``(n_i, H, W)``; rows may have different lengths and sizes.
    row_labels : one label per row (drawn as the y label of the row's first panel).
    col_titles : titles per panel: one list for all rows, or one list per row.
    cmaps, symmetric, shared_scale : per row (or one value for all): the colour map, whether the scale is symmetric
        around zero, and whether all panels of the row share one scale (else each panel is scaled to itself).
    panel_size : inches per panel.
    colorbar : draw one colour bar per row when the row shares a scale.
    """
    rows = [as_numpy(r, name="rows[i]", ndim=3) for r in rows]
    if not rows:
        raise ValueError("rows must hold at least one (n, H, W) array")
    n_rows, n_cols = len(rows), max(r.shape[0] for r in rows)

    def per_row(value, name):
        if isinstance(value, (str, bool)):
            return [value] * n_rows
        value = list(value)
        if len(value) != n_rows:
            raise ValueError(f"{name} must have one entry per row ({n_rows}); got {len(value)}")
        return value

    cmaps, symmetric, shared_scale = (per_row(cmaps, "cmaps"), per_row(symmetric, "symmetric"),
                                      per_row(shared_scale, "shared_scale"))
    if col_titles is not None and len(col_titles) and isinstance(col_titles[0], str):
        col_titles = [list(col_titles)] * n_rows
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel_size * n_cols + (0.6 if colorbar else 0),
                                                     panel_size * n_rows + (0.5 if title else 0.1)),
                             squeeze=False, constrained_layout=True)
    for i, row in enumerate(rows):
        if shared_scale[i]:
            vmin, vmax = symmetric_limits(row) if symmetric[i] else data_limits(row)
        im = None
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= row.shape[0]:
                ax.axis("off")
                continue
            if not shared_scale[i]:
                vmin, vmax = symmetric_limits(row[j]) if symmetric[i] else (None, None)
            im = ax.imshow(row[j], cmap=cmaps[i], vmin=vmin, vmax=vmax, interpolation="nearest")
            if col_titles is not None and j < len(col_titles[i]):
                ax.set_title(col_titles[i][j], fontsize=8)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], fontsize=9)
        if colorbar and shared_scale[i] and im is not None:
            fig.colorbar(im, ax=list(axes[i, :]), shrink=0.8, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def channel_panel(states, *, sample: int = 0, times: Sequence[int] | None = None, channels: Sequence[int] | None = None,
                  crop=None, n_times: int = 8, title: str | None = None, panel_size: float = 1.4,
                  scale: str = "minmax") -> Figure:
    """Hidden states of one sample at a few time steps, one row per channel (the paper's Figure 3 / 5 state rows).

    Each channel has one colour scale for its whole sequence (also the steps not shown): ``scale="minmax"`` spans its
    minimum to maximum, as the authors' videos; ``"symmetric"`` is centred on zero.

    Parameters
    ----------
    states : shape ``(B, T, C, H, W)``, the sequence ``y_1..y_T``.
    times : 0-based indices into the sequence (default: ``n_times`` evenly spaced); titled ``t = index + 1``.
    channels : hidden channels to show (default all).
    crop : optional ``(row_start, row_stop, col_start, col_stop)``.
    """
    s = as_numpy(states, name="states", ndim=5)
    b, t, c, h, w = s.shape
    sample = _check_index(sample, b, name="sample")
    times = _indices(times, n_times, t, name="times")
    channels = _indices(channels, c, c, name="channels")
    seq = s[sample]  # (T, C, H, W)
    rows = [_crop(seq[times, ch], crop) for ch in channels]
    scales = {"minmax": data_limits, "symmetric": symmetric_limits}
    if scale not in scales:
        raise ValueError(f"unknown scale {scale!r}; expected one of {sorted(scales)}")
    # one colour scale per channel over the whole sequence, as in the authors' videos
    full = [scales[scale](seq[:, ch]) for ch in channels]
    fig = image_grid(rows, row_labels=[f"channel {ch}" for ch in channels],
                     col_titles=[f"t = {k + 1}" for k in times], cmaps="bwr", symmetric=scale == "symmetric",
                     shared_scale=True, title=title, panel_size=panel_size)
    _set_row_limits(fig, full, len(times))
    return fig


def bins_panel(features, *, sample: int = 0, bins: Sequence[int] | None = None, channels: Sequence[int] | None = None,
               frequencies: Sequence[float] | None = None, crop=None, n_bins: int = 8, cmap: str = "gray",
               label: str = "bin", title: str | None = None, panel_size: float = 1.4) -> Figure:
    """Per-bin feature maps of one sample (Fourier magnitudes or learned linear projections), one row per channel.

    Each panel is scaled to itself (as in the paper's Figures 4 and 5), so the title carries the information.

    Parameters
    ----------
    features : shape ``(B, K, C, H, W)``.
    bins : bin indices to show (default: ``n_bins`` evenly spaced, DC included).
    frequencies : optional frequency per bin (e.g. :func:`twi_core.analysis.spectra.bin_frequencies`) for titles.
    label : word used in the titles ("bin", "projection", ...).
    """
    f = as_numpy(features, name="features", ndim=5)
    b, k, c, h, w = f.shape
    sample = _check_index(sample, b, name="sample")
    bins = _indices(bins, n_bins, k, name="bins")
    channels = _indices(channels, c, c, name="channels")
    if frequencies is not None and len(frequencies) != k:
        raise ValueError(f"frequencies must have one value per bin ({k}); got {len(frequencies)}")
    titles = [f"{label} {q}" + (f"\nf = {frequencies[q]:.2g}" if frequencies is not None else "") for q in bins]
    rows = [_crop(f[sample, bins, ch], crop) for ch in channels]
    return image_grid(rows, row_labels=[f"channel {ch}" for ch in channels], col_titles=titles, cmaps=cmap,
                      symmetric=False, shared_scale=False, colorbar=False, title=title, panel_size=panel_size)


def samples_panel(values, *, channel: int = 0, columns: Sequence[int] | None = None, n_columns: int = 8,
                  row_labels: Sequence[str] | None = None, label: str = "t", frequencies: Sequence[float] | None = None,
                  cmap: str = "bwr", scale: str = "minmax", crop=None, title: str | None = None,
                  panel_size: float = 1.4) -> Figure:
    """One channel of several samples, one row per sample: a hidden sequence over time or feature maps over bins.

    The layout of the rows of the paper's Figures 3 and 4 (left), stacked for several images (one per class, say), so
    that the rows compare.

    Parameters
    ----------
    values : shape ``(B, K, C, H, W)``: states ``(B, T, C, H, W)`` or Fourier magnitudes ``(B, K, C, H, W)``.
    channel : the hidden channel shown.
    columns : indices along ``K`` (default ``n_columns`` evenly spaced, the first and last included).
    label : the column title: ``"t"`` titles ``t = index + 1`` (time steps count from 1); anything else titles
        ``label index`` (e.g. ``"bin"``), with ``f = frequencies[index]`` under it when given.
    scale : ``"minmax"`` (one scale per row over its whole sequence, also the columns not shown, as
        :func:`channel_panel`), ``"symmetric"`` (the same, centred on zero) or ``"each"`` (every panel to itself, as
        :func:`bins_panel`).

    Examples
    --------
    >>> import numpy as np
    >>> fig = samples_panel(np.random.default_rng(0).normal(size=(3, 10, 2, 8, 8)), n_columns=4,
    ...                     row_labels=["a", "b", "c"])
    >>> len(fig.axes) >= 12, fig.axes[1].get_title()
    (True, 't = 4')
    """
    v = as_numpy(values, name="values", ndim=5)
    b, k, c, h, w = v.shape
    channel = _check_index(channel, c, name="channel")
    columns = _indices(columns, n_columns, k, name="columns")
    if row_labels is not None and len(row_labels) != b:
        raise ValueError(f"row_labels must have one label per sample ({b}); got {len(row_labels)}")
    if frequencies is not None and len(frequencies) != k:
        raise ValueError(f"frequencies must have one value per column index ({k}); got {len(frequencies)}")
    limits = {"minmax": data_limits, "symmetric": symmetric_limits, "each": None}
    if scale not in limits:
        raise ValueError(f"unknown scale {scale!r}; expected one of {sorted(limits)}")
    if label == "t":
        titles = [f"t = {q + 1}" for q in columns]
    else:
        titles = [f"{label} {q}" + (f"\nf = {frequencies[q]:.2g}" if frequencies is not None else "") for q in columns]
    rows = [_crop(v[i, columns, channel], crop) for i in range(b)]
    fig = image_grid(rows, row_labels=row_labels, col_titles=titles, cmaps=cmap, symmetric=scale == "symmetric",
                     shared_scale=scale != "each", colorbar=scale != "each", title=title, panel_size=panel_size)
    if limits[scale] is not None:   # the row's scale spans its whole sequence, not only the columns shown
        _set_row_limits(fig, [limits[scale](v[i, :, channel]) for i in range(b)], len(columns))
    return fig


def comparison_panel(panels: Mapping[str, tuple[np.ndarray, Sequence[str], str]], *, title: str | None = None,
                     panel_size: float = 1.3) -> Figure:
    """Rows of labelled panels, e.g. the paper's Figure 5: NWM states, NWM projections, LSTM states, LSTM projections.

    Parameters
    ----------
    panels : ``{row label: (images (n, H, W), titles, kind)}`` with ``kind`` ``"state"`` (``'bwr'``, one min-to-max
        scale for the row, as the authors' Figure 5) or ``"feature"`` (``'gray'``, each panel scaled to itself).
    """
    kinds = {"state": ("bwr", False, True), "feature": ("gray", False, False)}
    rows, labels, titles, cmaps, sym, shared = [], [], [], [], [], []
    for name, (images, row_titles, kind) in panels.items():
        if kind not in kinds:
            raise ValueError(f"unknown panel kind {kind!r} for row {name!r}; expected one of {sorted(kinds)}")
        cm, sy, sh = kinds[kind]
        rows.append(as_numpy(images, name=f"panels[{name!r}]", ndim=3))
        labels.append(name)
        titles.append(list(row_titles))
        cmaps.append(cm)
        sym.append(sy)
        shared.append(sh)
    return image_grid(rows, row_labels=labels, col_titles=titles, cmaps=cmaps, symmetric=sym, shared_scale=shared,
                      colorbar=False, title=title, panel_size=panel_size)


def prediction_panel(images, truth, prediction, *, num_classes: int, class_names: Sequence[str] | None = None,
                     max_samples: int = 4, title: str | None = None, panel_size: float = 1.8) -> Figure:
    """Input, ground truth and per-pixel prediction(s) side by side, one row per sample, with a class legend.

    Parameters
    ----------
    images : ``(B, C_in, H, W)`` in [0, 1]; truth : int ``(B, H, W)``.
    prediction : int ``(B, H, W)``, or ``{column title: (B, H, W)}`` to put several models side by side.
    num_classes : colours come from :func:`class_colors`.
    class_names : legend labels (default ``class 0..n-1``).
    """
    x = as_numpy(images, name="images", ndim=4)
    gt = as_numpy(truth, name="truth", ndim=3)
    preds = dict(prediction) if isinstance(prediction, Mapping) else {"prediction": prediction}
    if not preds:
        raise ValueError("prediction is an empty mapping; expected at least one (B, H, W) array")
    preds = {name: as_numpy(p, name=f"prediction[{name!r}]", ndim=3) for name, p in preds.items()}
    for name, pr in preds.items():
        if gt.shape != pr.shape or gt.shape[0] != x.shape[0] or gt.shape[1:] != x.shape[2:]:
            raise ValueError(f"images {x.shape}, truth {gt.shape} and prediction {name!r} {pr.shape} must agree on "
                             "(B, H, W)")
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names must have num_classes = {num_classes} entries; got {len(names)}")
    n = min(max_samples, x.shape[0])
    if n < 1:
        raise ValueError("images holds no sample")
    cols = ["input", "truth", *preds]
    fig, axes = plt.subplots(n, len(cols), figsize=(len(cols) * panel_size + 1.6, n * panel_size + 0.3),
                             squeeze=False, constrained_layout=True)
    for i in range(n):
        views = [to_rgb_image(x[i]), colorize_mask(gt[i], num_classes=num_classes),
                 *[colorize_mask(pr[i], num_classes=num_classes) for pr in preds.values()]]
        for j, view in enumerate(views):
            ax = axes[i, j]
            ax.imshow(view, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
    colors = class_colors(num_classes)
    present = set(np.unique(gt[:n]))
    for pr in preds.values():
        present |= set(np.unique(pr[:n]))
    handles = [Patch(facecolor=colors[c], edgecolor="0.5", label=names[c]) for c in sorted(present)]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def class_spectrum_plot(means, *, frequencies: Sequence[float] | None = None,
                        class_names: Sequence[str] | None = None, skip_background: bool = True,
                        normalize: bool = True, skip_dc: bool = True, log: bool = False,
                        title: str | None = None) -> Figure:
    """Mean spectrum of each class (the paper's Figure 4, right): one curve per class, one subplot per channel.

    Parameters
    ----------
    means : ``(num_classes, K, C)``, e.g. :attr:`twi_core.analysis.spectra.ClassSpectra.mean`.
    frequencies : x values per bin (default: bin index).
    normalize : divide each curve by its sum over the shown bins, so curves compare in shape rather than amplitude.
    skip_dc : leave out bin 0 (the mean of the time course, usually much larger than the rest).
    """
    mu = as_numpy(np.asarray(means), name="means", ndim=3).astype(np.float64)
    n, k, c = mu.shape
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"class_names must have {n} entries; got {len(names)}")
    xs = np.arange(k) if frequencies is None else np.asarray(frequencies, dtype=float)
    if xs.shape != (k,):
        raise ValueError(f"frequencies must have one value per bin ({k}); got shape {xs.shape}")
    start = 1 if skip_dc and k > 1 else 0
    colors = class_colors(max(n, 2))
    fig, axes = plt.subplots(1, c, figsize=(4.2 * c, 3.0), squeeze=False, constrained_layout=True)
    for ch in range(c):
        ax = axes[0, ch]
        for cls in range(1 if skip_background else 0, n):
            curve = mu[cls, start:, ch]
            if np.isnan(curve).all():
                continue
            if normalize:
                total = np.nansum(curve)
                curve = curve / total if total > 0 else curve
            color = colors[cls] if cls > 0 else (0.4, 0.4, 0.4)
            ax.plot(xs[start:], curve, label=names[cls], color=color, lw=1.5)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("frequency" if frequencies is not None else "bin")
        ax.set_ylabel("normalised magnitude" if normalize else "magnitude")
        ax.set_title(f"channel {ch}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def coupling_kernels(kernels: Mapping[str, np.ndarray], *, title: str | None = None):
    """The NWM's recurrent coupling kernels :math:`W_y` (the paper's Figure 8): one row per model (e.g. initial and
    trained), one 3×3 panel per (output, input) channel pair, 'bwr' on one symmetric scale per row, values printed.

    Parameters
    ----------
    kernels
        ``{row label: array (C_out, C_in, k, k)}`` (``model.coupling.weight``).
    """
    import matplotlib.pyplot as plt

    rows = {label: np.asarray(k, dtype=np.float64) for label, k in kernels.items()}
    if not rows or any(k.ndim != 4 for k in rows.values()):
        raise ValueError("kernels must map labels to (C_out, C_in, k, k) arrays")
    c_out, c_in = next(iter(rows.values())).shape[:2]
    fig, axes = plt.subplots(len(rows), c_out * c_in, figsize=(2.1 * c_out * c_in, 2.3 * len(rows)), squeeze=False)
    for r, (label, k) in enumerate(rows.items()):
        lim = float(np.abs(k).max()) or 1.0
        for i in range(c_out):
            for j in range(c_in):
                ax = axes[r, i * c_in + j]
                ax.imshow(k[i, j], cmap="bwr", vmin=-lim, vmax=lim)
                for (y, x), v in np.ndenumerate(k[i, j]):
                    ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=7)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"channel {j} → {i}", fontsize=8)
                if i == 0 and j == 0:
                    ax.set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
