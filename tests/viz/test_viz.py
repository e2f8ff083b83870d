"""Tests of twi_core.viz.animation: colour mapping, GIFs, the kernel-free scrubber's widget wiring."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from twi_core import viz


def _frames(T=5, H=6, W=8):
    t = np.arange(T)[:, None, None]
    x = np.arange(W)[None, None, :]
    return np.sin(0.7 * x - 0.9 * t) * np.ones((T, H, W))  # (T, H, W) signed


def test_frames_to_rgb_symmetric_scale_and_passthrough():
    frames = _frames()
    rgb = viz.frames_to_rgb(frames, "bwr")
    assert rgb.shape == (*frames.shape, 3) and rgb.dtype == np.uint8
    zero = viz.frames_to_rgb(np.array([[[-2.0, 0.0, 2.0]]]), "bwr")[0, 0, 1]
    assert zero.min() > 250  # zero sits at the centre of 'bwr' (white) under the symmetric default
    assert viz.frames_to_rgb(rgb) is rgb
    clipped = viz.frames_to_rgb(np.array([[[5.0, -5.0]]]), "gray", vmin=0, vmax=1)
    assert clipped[0, 0, 0].tolist() == [255, 255, 255] and clipped[0, 0, 1].tolist() == [0, 0, 0]


def test_frames_to_rgb_errors():
    with pytest.raises(ValueError, match="unknown cmap 'nope'"):
        viz.frames_to_rgb(_frames(), "nope")
    with pytest.raises(ValueError, match=r"frames must be \(T, H, W\)"):
        viz.frames_to_rgb(np.zeros((4, 4)))


def test_save_gif_roundtrip(tmp_path):
    frames = _frames(T=7)
    path = viz.save_gif(frames, tmp_path / "sub" / "wave.gif", fps=5, cmap="bwr", vmin=None, vmax=None, scale=3)
    back = iio.imread(path, index=None)
    assert back.shape[:3] == (7, 18, 24)
    assert not np.array_equal(back[0], back[1])  # frames differ: it animates


def test_show_gif_embeds_base64(tmp_path, monkeypatch):
    shown = []
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    viz.show_gif(_frames(), fps=4, width=200)
    html = shown[0].data
    assert html.startswith('<img class="twi-gif"') and "data:image/gif;base64,R0lGOD" in html and 'width="200"' in html


def test_scrubber_wiring():
    import ipywidgets as widgets
    frames = _frames(T=4)
    box = viz.scrubber(frames, fps=8, width=160, titles=[f"t={k}" for k in range(4)])
    assert viz.SCRUBBER_CLASS in box._dom_classes
    controls, stack = box.children
    play, slider = controls.children
    assert isinstance(play, widgets.Play) and isinstance(slider, widgets.IntSlider)
    assert isinstance(stack, widgets.Stack) and len(stack.children) == 4
    assert (play.max, slider.max, play.interval) == (3, 3, 125)
    pngs = [page.children[1].value for page in stack.children]
    assert all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs) and len(set(pngs)) == 4
    decoded = iio.imread(pngs[2])
    assert decoded.shape == (6 * 16, 8 * 16, 3)  # upscaled 16x (160 px / 8 columns = 20, capped at 16), RGB
    np.testing.assert_array_equal(decoded[::16, ::16], viz.frames_to_rgb(frames)[2])
    # the links are browser-side (jslink), so they survive in a page without a kernel
    pairs = {(lk.source[0].model_id, lk.source[1], lk.target[0].model_id, lk.target[1]) for lk in box.links}
    assert all(lk._model_name == "LinkModel" for lk in box.links)  # jslink, not a kernel-side link
    assert (play.model_id, "value", slider.model_id, "value") in pairs
    assert (slider.model_id, "value", stack.model_id, "selected_index") in pairs


def test_scrubber_rejects_bad_titles():
    with pytest.raises(ValueError, match="titles must have one entry per frame"):
        viz.scrubber(_frames(T=3), titles=["a"])


def test_coupling_kernel_figure_has_a_panel_per_channel_pair_and_row():
    import numpy as np

    from twi_core.viz import states as vs

    lap = np.zeros((2, 2, 3, 3))
    lap[0, 0] = lap[1, 1] = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    fig = vs.coupling_kernels({"initial": lap, "trained": lap * 0.5})
    assert len(fig.axes) == 2 * 4
    assert fig.axes[0].images[0].get_clim() == (-4.0, 4.0)                    # one symmetric scale per row
    with pytest.raises(ValueError, match="C_out, C_in, k, k"):
        vs.coupling_kernels({"bad": np.zeros((3, 3))})
