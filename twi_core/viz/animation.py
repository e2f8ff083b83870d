"""Animations of frame sequences: GIFs and a kernel-free scrubber for the static book.

Frames are numpy ``(T, H, W)`` floats (mapped through a colour map) or ``(T, H, W, 3)`` uint8 RGB (used as they are);
torch tensors are accepted too.

The scrubber is ``ipywidgets``: a ``Play`` and an ``IntSlider`` driving a ``Stack`` of ``Image`` widgets, tied together
with ``jslink`` so that the links live in the browser. When the book is built, the widget state (every frame as PNG) is
embedded in the page, so it plays and scrubs without a kernel. Two traps of the static page are handled by the book's
configuration (``_config.yml``, ``book/_widgets``, ``book/_static/fontawesome-config.js``): the widget manager is shipped
with the book instead of loaded from a CDN, and FontAwesome is told not to replace the Play button's icon element.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import matplotlib
import numpy as np

__all__ = ["frames_to_rgb", "save_gif", "gif_bytes", "show_gif", "scrubber", "stride_phrase", "SCRUBBER_CLASS"]

#: CSS class on the scrubber's outer box (tests and page scripts find scrubbers by it).
SCRUBBER_CLASS = "twi-scrubber"


def _as_array(frames) -> np.ndarray:
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    arr = np.asarray(frames)
    if arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3 and arr.dtype == np.uint8):
        if arr.shape[0] == 0:
            raise ValueError("frames is empty (T = 0)")
        return arr
    raise ValueError(f"frames must be (T, H, W) numbers or (T, H, W, 3) uint8; got shape {arr.shape}, dtype {arr.dtype}")


def _limits(arr: np.ndarray, vmin, vmax) -> tuple[float, float]:
    finite = arr[np.isfinite(arr)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if vmin is None and vmax is None and lo < 0 < hi:
        m = max(-lo, hi)  # a signed quantity (a wave): symmetric around zero, so zero is the colour map's centre
        return -m, m
    vmin = lo if vmin is None else float(vmin)
    vmax = hi if vmax is None else float(vmax)
    if vmax <= vmin:
        vmax = vmin + 1.0
    return vmin, vmax


def frames_to_rgb(frames, cmap: str = "bwr", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map frames to uint8 RGB through a matplotlib colour map, on one scale shared by all frames.

    Parameters
    ----------
    frames
        ``(T, H, W)`` numbers, or ``(T, H, W, 3)`` uint8 (returned unchanged).
    cmap
        A matplotlib colour-map name.
    vmin, vmax
        Colour limits. Both ``None``: symmetric ``[-m, m]`` (``m = max |x|``) when the frames take both signs, else
        their min and max. NaN is drawn light grey.

    Returns
    -------
    numpy.ndarray
        uint8 ``(T, H, W, 3)``.

    Examples
    --------
    >>> rgb = frames_to_rgb(np.array([[[-1.0, 0.0, 1.0]]]), cmap="bwr")
    >>> rgb.shape, rgb[0, 0, 0].tolist(), rgb[0, 0, 2].tolist()
    ((1, 1, 3, 3), [0, 0, 255], [255, 0, 0])
    """
    arr = _as_array(frames)
    if arr.ndim == 4:
        return arr
    try:
        colour_map = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown cmap {cmap!r}; expected a matplotlib colour-map name such as 'bwr' or 'viridis'") \
            from None
    arr = arr.astype(np.float64)
    lo, hi = _limits(arr, vmin, vmax)
    norm = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    rgb = colour_map(np.nan_to_num(norm, nan=0.5))[..., :3]
    rgb[np.isnan(arr)] = 0.85
    return np.round(rgb * 255).astype(np.uint8)


def _upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of ``(T, H, W, 3)`` frames to ``(T, scale H, scale W, 3)``."""
    return rgb if scale == 1 else np.repeat(np.repeat(rgb, scale, axis=1), scale, axis=2)


def _auto_scale(width: int, frame_width: int) -> int:
    """Integer nearest-neighbour upscaling so small grids stay crisp at the displayed width (at most 16x)."""
    return int(min(16, max(1, math.ceil(width / max(frame_width, 1)))))


def gif_bytes(frames, *, fps: float = 10, cmap: str = "bwr", vmin: float | None = None, vmax: float | None = None,
              scale: int | None = None) -> bytes:
    """Encode frames as an animated, looping GIF in memory (see :func:`save_gif`)."""
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be a positive number; got {fps!r}")
    rgb = frames_to_rgb(frames, cmap, vmin, vmax)
    scale = _auto_scale(320, rgb.shape[2]) if scale is None else int(scale)
    if scale < 1:
        raise ValueError(f"scale must be an integer >= 1; got {scale!r}")
    buf = io.BytesIO()
    iio.imwrite(buf, _upscale(rgb, scale), extension=".gif", duration=1000.0 / fps, loop=0)
    return buf.getvalue()


def save_gif(frames, path: str | os.PathLike, *, fps: float = 10, cmap: str = "bwr", vmin: float | None = None,
             vmax: float | None = None, scale: int | None = None) -> Path:
    """Write frames as an animated, looping GIF with ``imageio``.

    Parameters
    ----------
    frames
        ``(T, H, W)`` numbers or ``(T, H, W, 3)`` uint8.
    path
        Where to write (parent folders are created).
    fps
        Frames per second.
    cmap, vmin, vmax
        Colour mapping, as in :func:`frames_to_rgb`.
    scale
        Integer nearest-neighbour upscaling; ``None`` picks one that makes the GIF about 320 px wide.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    data = gif_bytes(frames, fps=fps, cmap=cmap, vmin=vmin, vmax=vmax, scale=scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def show_gif(path_or_frames, *, width: int | None = None, **gif_kwargs) -> None:
    """Display a GIF inline in a notebook, embedded as base64 so it also works in the static page.

    Parameters
    ----------
    path_or_frames
        A path to a GIF file, or frames (then encoded with :func:`gif_bytes` and ``gif_kwargs``).
    width
        Displayed width in pixels (``None``: natural size).
    """
    from IPython.display import HTML, display

    if isinstance(path_or_frames, (str, os.PathLike)):
        data = Path(path_or_frames).read_bytes()
    else:
        data = gif_bytes(path_or_frames, **gif_kwargs)
    size = f' width="{int(width)}"' if width else ""
    src = base64.b64encode(data).decode("ascii")
    display(HTML(f'<img class="twi-gif" alt="animation" style="image-rendering: pixelated"{size} '
                 f'src="data:image/gif;base64,{src}"/>'))


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    iio.imwrite(buf, rgb, extension=".png")
    return buf.getvalue()


def scrubber(frames, *, fps: float = 10, width: int = 320, cmap: str = "bwr", vmin: float | None = None,
             vmax: float | None = None, titles: Sequence[str] | None = None):
    """A Play button and a slider over frames that works without a kernel (in the published book).

    ``Play.value -> IntSlider.value -> Stack.selected_index`` are tied with ``jslink``; each frame is a PNG ``Image``
    (one per frame, so keep ``T`` modest: every frame is embedded in the page). The outer box carries the CSS class
    :data:`SCRUBBER_CLASS`.

    Parameters
    ----------
    frames
        ``(T, H, W)`` numbers or ``(T, H, W, 3)`` uint8.
    fps
        Playback speed in frames per second.
    width
        Displayed width of the frames in pixels (small grids are upscaled without smoothing).
    cmap, vmin, vmax
        Colour mapping, as in :func:`frames_to_rgb` (one scale for all frames).
    titles
        Optional caption per frame (shown above it), e.g. ``"t = 12.5"``.

    Returns
    -------
    ipywidgets.VBox
        ``children = [HBox([Play, IntSlider]), Stack]``; ``.links`` holds the two ``jslink`` links.
    """
    import ipywidgets as widgets

    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be a positive number; got {fps!r}")
    if not (isinstance(width, int) and width > 0):
        raise ValueError(f"width must be a positive integer (pixels); got {width!r}")
    rgb = frames_to_rgb(frames, cmap, vmin, vmax)
    T, H, W = rgb.shape[:3]
    if titles is not None and len(titles) != T:
        raise ValueError(f"titles must have one entry per frame ({T}); got {len(titles)}")
    scale = _auto_scale(width, W)
    height = int(round(width * H / W))
    big = _upscale(rgb, scale)  # (T, scale H, scale W, 3)
    pages = []
    for k in range(T):
        img = widgets.Image(value=_png(big[k]), format="png", width=width, height=height)
        img.add_class("twi-scrubber-frame")
        # HTML, not Label: Label and control descriptions call MathJax 2's typesetter, which throws under MathJax 3
        caption = widgets.HTML(f'<span class="twi-scrubber-title">{html.escape(str(titles[k]))}</span>') \
            if titles is not None else None
        pages.append(widgets.VBox([caption, img]) if caption is not None else img)
    stack = widgets.Stack(pages, selected_index=0)
    play = widgets.Play(value=0, min=0, max=T - 1, step=1, interval=max(1, int(round(1000 / fps))), tooltip="Play")
    slider = widgets.IntSlider(value=0, min=0, max=T - 1, step=1, continuous_update=True, tooltip="frame")
    links = (widgets.jslink((play, "value"), (slider, "value")),
             widgets.jslink((slider, "value"), (stack, "selected_index")))
    box = widgets.VBox([widgets.HBox([play, slider]), stack])
    box.add_class(SCRUBBER_CLASS)
    box.links = links  # the two browser-side links (kept for inspection; the widget registry keeps them alive)
    return box


def stride_phrase(stride: int) -> str:
    """How a caption says which steps an animation keeps: ``"every step"``, ``"every 2nd step"``, ``"every 5th step"``.

    Examples
    --------
    >>> [stride_phrase(k) for k in (1, 2, 3, 4, 11, 12, 21, 22)]  # doctest: +NORMALIZE_WHITESPACE
    ['every step', 'every 2nd step', 'every 3rd step', 'every 4th step', 'every 11th step', 'every 12th step',
     'every 21st step', 'every 22nd step']
    """
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    if stride == 1:
        return "every step"
    suffix = "th" if 10 <= stride % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    return f"every {stride}{suffix} step"
