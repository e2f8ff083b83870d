"""Visualisation: GIFs, kernel-free scrubber widgets and plots.

- :mod:`twi_core.viz.animation`: :func:`frames_to_rgb`, :func:`save_gif`, :func:`show_gif`, :func:`scrubber` (Play +
  slider that plays in the static book without a kernel).
- :mod:`twi_core.viz.states`: figures of hidden states (imported on demand: ``from twi_core.viz import states``).
- :mod:`twi_core.viz.results`: bars of our runs beside the paper's numbers, and learning curves.
- :mod:`twi_core.viz.palette`: the fixed class palette every page uses (:func:`class_palette`, :func:`colorize`).
- :mod:`twi_core.viz.receptive`: receptive-field figures of chapters 3 and 4.
- :mod:`twi_core.viz.wavelengths`: chapter 5's wavelength, threshold and separability figures.
- :mod:`twi_core.viz.explorer`: the wave explorer, kernel-free (:func:`static_explorer`) or live (:func:`explore`).
- :mod:`twi_core.viz.drum_widget`: a drum the reader draws, simulated, plotted and played in the page's own JavaScript
  (:func:`drawable_drum`; no kernel).
"""

from __future__ import annotations

from twi_core.viz.animation import SCRUBBER_CLASS, frames_to_rgb, gif_bytes, save_gif, scrubber, show_gif, stride_phrase
from twi_core.viz.drum_widget import DRUM_CLASS, drawable_drum
from twi_core.viz.explorer import EXPLORER_CLASS, explore, static_explorer

__all__ = ["SCRUBBER_CLASS", "EXPLORER_CLASS", "DRUM_CLASS", "drawable_drum", "frames_to_rgb", "gif_bytes", "save_gif", "scrubber", "show_gif",
           "stride_phrase", "explore", "static_explorer"]
