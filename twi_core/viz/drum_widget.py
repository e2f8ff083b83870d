r"""A drum you can draw: a kernel-free page widget that simulates, plots and plays any shape the reader paints.

The reader paints free neurons on an ``n x n`` grid (or picks a square, a disk or one of the Gordon-Webb-Wolpert pair);
the browser then runs the wave-equation RNN of :mod:`twi_core.drum` on that mask, takes the spectrum of the struck
neuron's trace, prints the fundamental and plays a tone made from the spectral peaks. All of it runs in the page's own
JavaScript (the package asset ``twi_core/resources/drawable_drum.js``, embedded inline so a static, offline page works):
no kernel, no CDN.

The JavaScript transcribes the package operation for operation, so the page and Python agree to rounding
(``tests/test_browser.py`` checks it):

* :func:`twi_core.drum.simulate` (stencil path): leapfrog with the 5-point Laplacian, Dirichlet clamping inside the
  mask and outside the canvas, no damping, a unit impulse at :func:`twi_core.drum.drum_centre`, which is also the probe;
* :func:`twi_core.drum.spectrum`, :func:`twi_core.drum.spectral_peaks` and :func:`twi_core.drum.fundamental_frequency`
  (Hann window, 4x zero padding, log-parabolic peak interpolation);
* :func:`twi_core.sound.tone` on the eigenvalues the peaks imply, :func:`twi_core.drum.eigenvalue_from_frequency`,
  pitched so that the square of side ``reference_side`` sounds at ``base_hz`` (a larger drawing sounds lower).

The preset shapes come from :func:`twi_core.drum.square_mask`, :func:`~twi_core.drum.disk_mask` and
:func:`~twi_core.drum.polygon_mask`, centred on the grid. In the page, ``window.twiDrum`` is the latest drum mounted
(``window.twiDrums`` all of them), with ``setMask(rows)``, ``getMask()``, ``preset(name)``, ``clear()``, ``run()``,
``fundamental()``, ``peaks()``, ``trace()``, ``eigenvalues()``, ``toneSamples()`` and ``play()``; its root element
carries the class :data:`DRUM_CLASS` and ``data-grid``, ``data-steps``, ``data-dt``, ``data-c``, ``data-state``
(``done``/``empty``), ``data-fundamental``, ``data-free-cells`` and ``data-probe``.

Examples
--------
>>> html = drawable_drum_html(grid=32, steps=2048)
>>> DRUM_CLASS in html and "window.twiDrumLib" in html
True
"""

from __future__ import annotations

import html as html_lib
import itertools
import json
from importlib import resources
from typing import Any

import numpy as np

from twi_core import drum

__all__ = ["DRUM_CLASS", "ASSET", "asset_source", "preset_masks", "drum_config", "drawable_drum_html",
           "drawable_drum_page", "drawable_drum"]

#: CSS class of the widget's root element (tests and styles find it by this).
DRUM_CLASS = "twi-drum"

#: File name of the JavaScript asset inside ``twi_core/resources``.
ASSET = "drawable_drum.js"

# each embed needs its own element id; a counter keeps ids distinct within one kernel (and deterministic, so a rebuilt
# page does not change for nothing)
_ids = itertools.count(1)


def _int_at_least(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def asset_source() -> str:
    """The JavaScript of the widget, read from the installed package data."""
    return resources.files("twi_core").joinpath("resources", ASSET).read_text(encoding="utf-8")


def _centred(mask: np.ndarray, grid: int, name: str) -> np.ndarray:
    h, w = mask.shape
    if h > grid or w > grid:
        raise ValueError(f"the {name} preset ({h}x{w}) does not fit a {grid}x{grid} grid; use a larger grid")
    out = np.zeros((grid, grid), dtype=bool)
    top, left = (grid - h) // 2, (grid - w) // 2
    out[top:top + h, left:left + w] = mask
    return out


def preset_masks(grid: int) -> dict[str, np.ndarray]:
    """The widget's preset shapes on a ``grid x grid`` canvas, built by :mod:`twi_core.drum` and centred.

    Returns
    -------
    dict
        ``{"square", "disk", "gww1", "gww2"}`` to bool ``(grid, grid)`` masks: a square of side ``round(0.7 grid)``, a
        disk of radius ``0.42 grid``, and the two Gordon-Webb-Wolpert drums at the largest resolution that fits (rows
        flipped so that, as in the chapter's figures, y points up).
    """
    grid = _int_at_least("grid", grid, 12)
    resolution = (grid - 3) // 3                                # GWW bounding box: 3 x 3 legs, plus one clamped ring
    shapes = {
        "square": drum.square_mask(int(round(0.7 * grid))),
        "disk": drum.disk_mask(0.42 * grid, pad=0),
        "gww1": drum.polygon_mask(drum.GWW_DRUMS["gww1"], resolution=resolution)[::-1],
        "gww2": drum.polygon_mask(drum.GWW_DRUMS["gww2"], resolution=resolution)[::-1],
    }
    return {name: _centred(mask, grid, name) for name, mask in shapes.items()}


# button label and tooltip of each preset
_LABELS = {"square": ("square", "a square drum"), "disk": ("disk", "a round drum"),
           "gww1": ("GWW 1", "Gordon-Webb-Wolpert drum 1 (isospectral to drum 2)"),
           "gww2": ("GWW 2", "Gordon-Webb-Wolpert drum 2 (isospectral to drum 1)")}


def drum_config(*, grid: int = 48, steps: int = 8192, dt: float = 0.5, c: float = 1.0, base_hz: float = 220.0,
                reference_side: int = 24, n_modes: int = 10, initial: str = "square", cell_px: int | None = None,
                seconds: float = 2.5, sample_rate: int = 22050, decay_s: float = 0.9, volume: float = 0.5
                ) -> dict[str, Any]:
    """The settings the JavaScript runs with, as a JSON-ready dict (validated here, where errors can say how to fix).

    Parameters
    ----------
    grid
        Cells per side of the drawing board (>= 12).
    steps
        Time steps per strike; a power of two (>= 64), because the page's FFT of the 4x zero-padded trace is radix-2.
    dt, c
        Time step and wave speed, ``c * dt <= 1/sqrt(2)`` (:data:`twi_core.drum.STABILITY_BOUND`).
    base_hz, reference_side
        The tone's pitch: the square of side ``reference_side`` sounds at ``base_hz``.
    n_modes
        How many spectral peaks make the tone (and are marked on the plot).
    initial
        The preset drawn when the page opens: a key of :func:`preset_masks`.
    cell_px
        Size of one cell on screen (default: about 340 px for the whole board).
    seconds, sample_rate, decay_s
        As in :func:`twi_core.sound.tone`.
    volume
        Playback gain (0..1) of the 0.9-peak samples.

    Raises
    ------
    ValueError
        An unstable ``c * dt``, ``steps`` not a power of two, an unknown ``initial``, a value out of range.
    """
    grid = _int_at_least("grid", grid, 12)
    steps = _int_at_least("steps", steps, 64)
    if steps & (steps - 1):
        raise ValueError(f"steps must be a power of two (the page's FFT is radix-2); got {steps}, try "
                         f"{1 << (steps - 1).bit_length()}")
    for name, value in (("dt", dt), ("c", c)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value!r}")
    if c * dt > drum.STABILITY_BOUND * (1 + 1e-12):
        raise ValueError(f"unstable: c*dt = {c * dt:.6g} exceeds the stability bound 1/sqrt(2) of leapfrog with the "
                         f"5-point Laplacian; lower dt or c")
    reference_side = _int_at_least("reference_side", reference_side, 2)
    n_modes = _int_at_least("n_modes", n_modes, 1)
    masks = preset_masks(grid)
    if initial not in masks:
        raise ValueError(f"unknown initial shape {initial!r}; expected one of {sorted(masks)}")
    for name, value in (("base_hz", base_hz), ("seconds", seconds), ("sample_rate", sample_rate),
                        ("decay_s", decay_s)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value!r}")
    if seconds <= 0.3:
        raise ValueError(f"seconds must exceed the 0.3 s fade-out; got {seconds!r}")
    if not (isinstance(volume, (int, float)) and 0 <= volume <= 1):
        raise ValueError(f"volume must be a number in [0, 1]; got {volume!r}")
    # about 340 px for the board by default: beside the controls it then fits the book's text column (about 690 px)
    cell_px = max(4, 340 // grid) if cell_px is None else _int_at_least("cell_px", cell_px, 1)
    return {
        "grid": grid, "steps": steps, "dt": float(dt), "c": float(c), "n_modes": n_modes, "initial": initial,
        "base_hz": float(base_hz), "reference_side": reference_side,
        # the discrete square's lowest eigenvalue, from the package rather than re-derived in JavaScript
        "reference_eigenvalue": float(drum.discrete_square_eigenvalues(reference_side, 1)[0]),
        "seconds": float(seconds), "sample_rate": int(sample_rate), "decay_s": float(decay_s), "volume": float(volume),
        "cell_px": cell_px, "spectrum_px": [400, 180],
        "brush": 1,                                             # brush radius in cells: 3 x 3 dabs to start with
        # the membrane animation while the tone plays: every 4th step (2 time units at dt = 0.5) for about 3 s
        "frame_every": 4, "n_frames": 90, "anim_fps": 30,
        # each preset as one string of n*n "0"/"1" in row-major order: compact, and no JSON nesting to unpack
        "presets": {name: {"label": _LABELS[name][0], "title": _LABELS[name][1],
                           "cells": "".join("1" if v else "0" for v in mask.ravel())} for name, mask in masks.items()},
    }


def _script_json(obj) -> str:
    # "</" would end the <script> element early; "<\/" is the same string to JavaScript
    return json.dumps(obj, separators=(",", ":")).replace("</", "<\\/")


def drawable_drum_html(*, element_id: str | None = None, **config: Any) -> str:
    """The widget as an HTML fragment: its root ``div``, the inline asset and the call that mounts it.

    ``config`` goes to :func:`drum_config`. Without JavaScript the ``div`` says what is missing.
    """
    cfg = drum_config(**config)
    element_id = element_id or f"twi-drum-{next(_ids)}"
    source = asset_source()
    if "</script" in source.lower():
        raise ValueError(f"{ASSET} contains '</script', which would end the inline script early")
    safe_id = html_lib.escape(element_id, quote=True)
    return (f'<div class="{DRUM_CLASS}" id="{safe_id}">'
            "<p><em>This drum needs JavaScript: the simulation runs in your browser.</em></p></div>\n"
            f"<script>\n{source}\n</script>\n"
            f"<script>window.twiDrumLib.mount(document.getElementById({_script_json(element_id)}), "
            f"{_script_json(cfg)});</script>\n")


def drawable_drum_page(*, title: str = "A drum you can draw", **config: Any) -> str:
    """A standalone HTML document holding only the widget (for tests and screenshots: no book build needed)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html_lib.escape(title)}</title></head>\n<body>\n{drawable_drum_html(**config)}</body></html>\n")


def drawable_drum(**config: Any):
    """The widget for a notebook cell: an ``IPython.display.HTML`` that works in the static book without a kernel.

    ``config`` goes to :func:`drum_config` (``element_id`` too, as in :func:`drawable_drum_html`).
    """
    from IPython.display import HTML

    return HTML(drawable_drum_html(**config))
