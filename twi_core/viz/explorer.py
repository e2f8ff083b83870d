"""The wave explorer: hidden states of any sample and channel, played and scrubbed, in a static page or a live kernel.

Two entry points share one layout (a view chooser, a Play button and a time slider above the frames):

- :func:`static_explorer` takes precomputed frame stacks, one per view (e.g. "sample 2, channel 1"), and ties the
  widgets together with ``jslink`` only, so the published page switches views and plays them without a kernel. Every
  frame is embedded, so keep the number of views and frames modest.
- :func:`explore` takes a model and images, runs the model, and offers in a live kernel what the static page cannot:
  any sample, channel, time range and colour scale, recomputed on request (Python callbacks).

Examples
--------
>>> import numpy as np
>>> box = static_explorer({"a": np.zeros((3, 4, 4)), "b": np.ones((3, 4, 4))}, width=64)
>>> [type(w).__name__ for w in box.children[0].children]
['Dropdown', 'Play', 'IntSlider']
>>> len(box.children[1].children), box.children[1].selected_index
(2, 0)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from twi_core.viz.animation import SCRUBBER_CLASS, scrubber

__all__ = ["EXPLORER_CLASS", "static_explorer", "views", "model_states", "explore"]

#: CSS class of the explorer's outer box (the browser tests find it by this), and of each of its views.
EXPLORER_CLASS = "twi-explorer"
VIEW_CLASS = "twi-explorer-view"


def static_explorer(views: Mapping[str, np.ndarray], *, fps: float = 10, width: int = 256, cmap: str = "bwr",
                    symmetric: bool = True, titles: Sequence[str] | None = None):
    """A kernel-free explorer over ``views`` (``{label: frames (T, H, W)}``, the same ``T`` for every view).

    ``Dropdown.index -> Stack.selected_index`` picks the view and ``Play -> IntSlider -> each view's frame stack``
    moves time, all through ``jslink``. Each view gets its own colour scale (symmetric about 0 by default, as 'bwr'
    wants), so a quiet channel is not drawn flat.

    Raises
    ------
    ValueError
        No views, or views with different numbers of frames.
    """
    import ipywidgets as widgets

    if not views:
        raise ValueError("views must hold at least one {label: frames} entry")
    lengths = {label: np.asarray(f).shape[0] for label, f in views.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"every view needs the same number of frames; got {lengths}")
    T = next(iter(lengths.values()))
    pages = []
    for frames in views.values():
        frames = np.asarray(frames, dtype=np.float32)
        finite = frames[np.isfinite(frames)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if symmetric:
            lim = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -lim, lim
        pages.append(scrubber(frames, fps=fps, width=width, cmap=cmap, vmin=lo, vmax=hi, titles=titles))
    choose = widgets.Dropdown(options=list(views), index=0, description="view")
    play = widgets.Play(value=0, min=0, max=T - 1, step=1, interval=max(1, int(round(1000 / fps))), tooltip="Play")
    slider = widgets.IntSlider(value=0, min=0, max=T - 1, step=1, continuous_update=True, tooltip="frame")
    for page in pages:  # the explorer's own controls drive every view; the views' controls are hidden
        page.children[0].layout.display = "none"
        page.remove_class(SCRUBBER_CLASS)  # a view, not a scrubber of its own (the browser tests tell them apart)
        page.add_class(VIEW_CLASS)
    stack = widgets.Stack(pages, selected_index=0)
    links = [widgets.jslink((choose, "index"), (stack, "selected_index")),
             widgets.jslink((play, "value"), (slider, "value"))]
    links += [widgets.jslink((slider, "value"), (page.children[1], "selected_index")) for page in pages]
    box = widgets.VBox([widgets.HBox([choose, play, slider]), stack])
    box.add_class(EXPLORER_CLASS)
    box.links = links
    return box


def views(states, *, samples: Sequence[int], channels: Sequence[int], stride: int = 1,
          label: str = "") -> dict[str, np.ndarray]:
    """``{"<label>sample s, channel c": frames (T', H, W)}`` from states ``(B, T, C, H, W)``, for
    :func:`static_explorer`."""
    from twi_core.viz.states import state_frames

    prefix = f"{label}, " if label else ""
    return {f"{prefix}sample {s}, channel {c}": state_frames(states, sample=s, channel=c, stride=stride)
            for s in samples for c in channels}


@torch.no_grad()
def model_states(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 8) -> torch.Tensor:
    """The hidden states ``(B, T, C, H, W)`` of a recurrent model (NWM or Conv-LSTM) on ``images`` ``(B, C_in, H, W)``.

    Raises
    ------
    TypeError
        The model does not return states (``forward(x, return_states=True)``).
    """
    from twi_core.models import logits_and_states

    try:
        return logits_and_states(model, images, batch_size=batch_size, states=True)[1]
    except TypeError as err:
        raise TypeError(f"{type(model).__name__} does not return hidden states; the explorer needs a recurrent "
                        "model (NWM or Conv-LSTM)") from err


def explore(model: torch.nn.Module, images: torch.Tensor, *, sample: int = 0, channel: int = 0,
            steps: tuple[int, int] | None = None, stride: int = 1, scale: str = "symmetric", width: int = 256,
            fps: float = 10):
    """A live explorer: pick any sample, channel, time range and colour scale; the frames are recomputed on request.

    Parameters
    ----------
    model
        A recurrent ``twi_core`` model (NWM or Conv-LSTM).
    images
        ``(B, C_in, H, W)`` inputs; the states of all of them are computed once.
    sample, channel, steps, stride, scale
        The initial view: which image and hidden channel, the time range ``(first, last)`` (1-based, inclusive; all
        steps by default), every ``stride``-th step, and ``"symmetric"`` (about 0) or ``"minmax"`` colour limits.

    Returns
    -------
    ipywidgets.VBox
        Controls (sample, channel, first and last step, scale) above a :func:`~twi_core.viz.animation.scrubber`; in a
        static page it shows the initial view only (use :func:`static_explorer` there).
    """
    import ipywidgets as widgets

    states = model_states(model, images).numpy()  # (B, T, C, H, W)
    B, T, C = states.shape[:3]
    if scale not in ("symmetric", "minmax"):
        raise ValueError(f"scale must be 'symmetric' or 'minmax'; got {scale!r}")
    first, last = steps if steps is not None else (1, T)
    controls = {
        "sample": widgets.BoundedIntText(value=sample, min=0, max=B - 1, description="sample"),
        "channel": widgets.BoundedIntText(value=channel, min=0, max=C - 1, description="channel"),
        "first": widgets.BoundedIntText(value=first, min=1, max=T, description="first step"),
        "last": widgets.BoundedIntText(value=last, min=1, max=T, description="last step"),
        "scale": widgets.Dropdown(options=["symmetric", "minmax"], value=scale, description="colours"),
    }
    holder = widgets.VBox([])

    def render(*_):
        s, c = controls["sample"].value, controls["channel"].value
        a, b = sorted((controls["first"].value, controls["last"].value))
        frames = states[s, a - 1:b:stride, c]
        lo, hi = float(frames.min()), float(frames.max())
        if controls["scale"].value == "symmetric":
            lim = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -lim, lim
        times = range(a, b + 1, stride)
        holder.children = [scrubber(frames, fps=fps, width=width, vmin=lo, vmax=hi,
                                    titles=[f"sample {s}, channel {c}, t = {t}" for t in times])]

    for control in controls.values():
        control.observe(render, names="value")
    render()
    box = widgets.VBox([widgets.HBox(list(controls.values())[:2]), widgets.HBox(list(controls.values())[2:]), holder])
    box.add_class(EXPLORER_CLASS)
    return box
