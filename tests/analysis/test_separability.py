"""Space-time separability and the travelling index against closed forms on synthetic waves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twi_core.analysis import separability as sep
from twi_core.analysis.wavelength import plane_wave, standing_wave

KW = dict(size=(32, 32), steps=80, period=20.0)


@pytest.mark.parametrize("wavelength, direction", [(8.0, 0.0), (16.0, np.pi / 2), (8.0, np.pi)])
def test_standing_is_rank_one_travelling_rank_two(wavelength, direction):
    st = standing_wave(wavelength=wavelength, direction=direction, **KW)
    tr = plane_wave(wavelength=wavelength, direction=direction, **KW)
    assert sep.separability(st, time_axis=0) == pytest.approx(1.0, abs=1e-9)
    assert sep.effective_rank(st, time_axis=0) == pytest.approx(1.0, abs=1e-9)
    assert sep.separability(tr, time_axis=0) == pytest.approx(0.5, abs=1e-9)
    assert sep.effective_rank(tr, time_axis=0) == pytest.approx(2.0, abs=1e-9)
    s = sep.singular_spectrum(tr, time_axis=0)
    assert s.shape == (80,)
    assert s[0] == pytest.approx(s[1], rel=1e-9) and s[2] < 1e-6 * s[0]


def test_travelling_index_closed_form_for_counter_propagating_waves():
    for a, b in [(1.0, 0.0), (1.0, 1.0), (1.0, 0.4), (0.3, 1.0)]:
        x = a * plane_wave(wavelength=8.0, **KW) + b * plane_wave(wavelength=8.0, direction=np.pi, **KW)
        assert sep.travelling_index(x, time_axis=0) == pytest.approx((a - b) ** 2 / (a * a + b * b), abs=1e-6)


def test_travelling_index_tells_travelling_from_two_standing_modes():
    # two standing modes at different frequencies are rank 2 like a travelling wave, but each mode is real
    t = np.arange(80)
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    m1 = np.cos(2 * np.pi * cols / 8)
    m2 = np.cos(2 * np.pi * rows / 16)
    x = np.cos(2 * np.pi * t / 20)[:, None, None] * m1 + 0.5 * np.cos(2 * np.pi * t / 8)[:, None, None] * m2
    assert sep.separability(x, time_axis=0) < 0.9
    assert sep.travelling_index(x, time_axis=0) < 1e-6
    assert sep.travelling_index(plane_wave(wavelength=8.0, **KW), time_axis=0) > 1 - 1e-6


def test_static_offsets_do_not_count():
    st = standing_wave(wavelength=8.0, **KW) + 3.0 + np.linspace(0, 1, 32)[None, None, :]
    assert sep.separability(st, time_axis=0) == pytest.approx(1.0, abs=1e-9)


def test_package_layout_batches_and_torch():
    st = standing_wave(wavelength=8.0, **KW)
    tr = plane_wave(wavelength=8.0, **KW)
    states = np.stack([np.stack([st, tr], axis=1), np.stack([tr, tr], axis=1)])     # (B=2, T, C=2, H, W)
    out = sep.separability(torch.from_numpy(states), time_axis=1)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, [[1.0, 0.5], [0.5, 0.5]], atol=1e-6)
    ti = sep.travelling_index(states, time_axis=1)
    np.testing.assert_allclose(ti, [[0.0, 1.0], [1.0, 1.0]], atol=1e-6)
    assert sep.singular_spectrum(states, time_axis=1).shape == (2, 2, 80)


def test_random_noise_is_far_from_separable():
    x = np.random.default_rng(0).standard_normal((50, 16, 16))
    assert sep.separability(x, time_axis=0) < 0.1
    assert sep.effective_rank(x, time_axis=0) > 20


def test_gram_shortcut_matches_full_svd():
    x = np.random.default_rng(1).standard_normal((3, 40, 5, 6))        # (B, T, H, W): N = 30 < T = 40
    s = sep.singular_spectrum(x, time_axis=1)
    m = x.reshape(3, 40, 30) - x.reshape(3, 40, 30).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(s, np.linalg.svd(m, compute_uv=False), rtol=1e-8, atol=1e-8)


def test_errors():
    with pytest.raises(ValueError, match="constant in time"):
        sep.separability(np.ones((10, 4, 4)), time_axis=0)
    with pytest.raises(ValueError, match="time_axis"):
        sep.separability(np.ones((10, 4, 4)), time_axis=2)
    with pytest.raises(TypeError, match="x must be"):
        sep.effective_rank("waves")
