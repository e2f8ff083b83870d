"""Hilbert-transform wavelength estimator against synthetic waves of known wavelength (closed forms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twi_core.analysis import wavelength as wl

SIZE = (80, 80)          # divisible by 5, 8 and 16: plane waves along the axes are periodic on this grid


@pytest.mark.parametrize("scheme", wl.EXACT_SCHEMES)
@pytest.mark.parametrize("wavelength", [5.0, 8.0, 16.0])
@pytest.mark.parametrize("direction", [0.0, np.pi / 2, np.pi / 4, 2.0, -0.6])
def test_plane_wave_recovered_within_2_percent(scheme, wavelength, direction):
    x = wl.plane_wave(size=SIZE, steps=100, wavelength=wavelength, direction=direction, period=20.0)
    lam = wl.wavelength_field(x, time_axis=0, scheme=scheme, periodic=False)
    assert lam.shape == x.shape
    assert np.isfinite(lam).all()
    # whole periods in time -> the analytic signal is exact and so is every location's wavelength
    assert np.max(np.abs(lam / wavelength - 1)) < 0.02


@pytest.mark.parametrize("wavelength", [5.0, 8.0, 16.0])
def test_plane_wave_whole_field_exact_on_torus(wavelength):
    x = wl.plane_wave(size=SIZE, steps=60, wavelength=wavelength, direction=np.pi, period=12.0)
    for scheme in wl.EXACT_SCHEMES:
        lam = wl.wavelength_field(x, time_axis=0, scheme=scheme, periodic=True)
        np.testing.assert_allclose(lam, wavelength, rtol=1e-9)


def test_non_integer_period_needs_trim():
    x = wl.plane_wave(size=SIZE, steps=100, wavelength=8.0, direction=0.7, period=23.0)
    raw = wl.wavelength_field(x, time_axis=0, periodic=False)
    trimmed = wl.wavelength_field(x, time_axis=0, periodic=False, trim=0.1)
    assert trimmed.shape[0] == 80
    assert abs(np.median(trimmed) / 8.0 - 1) < 0.02
    # trimming removes the Hilbert edge effects that dominate the tails
    assert np.max(np.abs(trimmed / 8 - 1)) < np.max(np.abs(raw / 8 - 1))


@pytest.mark.parametrize("wavelength, centred_reads", [(3.0, 6.0), (2.5, 10.0)])
def test_centred_differences_alias_short_waves_forward_do_not(wavelength, centred_reads):
    x = wl.plane_wave(size=(60, 60), steps=40, wavelength=wavelength, period=10.0)
    fwd = wl.wavelength_field(x, time_axis=0, scheme="forward", periodic=False)
    cen = wl.wavelength_field(x, time_axis=0, scheme="centred", periodic=False)
    np.testing.assert_allclose(np.median(fwd), wavelength, rtol=1e-9)
    np.testing.assert_allclose(np.median(cen[:, :, 1:-1]), centred_reads, rtol=1e-9)


def test_resolution_floors():
    assert wl.resolution_floor("forward") == pytest.approx(np.sqrt(2))
    assert wl.resolution_floor("centred") == pytest.approx(2 * np.sqrt(2))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((100, 24, 24))
    for scheme in wl.SCHEMES:
        lam = wl.wavelength_field(noise, time_axis=0, scheme=scheme)
        assert np.nanmin(lam) >= wl.resolution_floor(scheme) - 1e-9
    lam_c = wl.wavelength_field(noise, time_axis=0, scheme="centred")
    # under centred differences the paper's 1.5 px threshold is vacuous: every location is above it
    assert wl.fraction_above(lam_c, 1.5) == 1.0
    lam_f = wl.wavelength_field(noise, time_axis=0, scheme="forward")
    assert wl.fraction_above(lam_f, 1.5) < 1.0


def test_standing_wave_has_uniform_phase_and_long_wavelengths():
    x = wl.standing_wave(size=(64, 64), steps=100, wavelength=16.0, direction=0.3, period=20.0)
    lam = wl.wavelength_field(x, time_axis=0, periodic=False)
    defined = lam[~np.isnan(lam)]
    # away from the nodal lines (phase jumps of pi) the phase gradient vanishes: wavelengths far beyond any image
    assert np.mean(defined > 1000) > 0.8
    # only the nodal lines, where the phase jumps by pi across both axes, read as short (down to sqrt 2 px)
    assert wl.fraction_above(lam, 1.5) > 0.9
    travelling = wl.wavelength_field(wl.plane_wave(size=(64, 64), steps=100, wavelength=16.0, direction=0.3,
                                                   period=20.0), time_axis=0, periodic=False)
    assert np.nanmedian(travelling) == pytest.approx(16.0, rel=1e-6)


def test_package_layout_and_torch_input():
    rng = np.random.default_rng(1)
    a = wl.plane_wave(size=(20, 20), steps=40, wavelength=5.0, period=10.0)
    b = wl.plane_wave(size=(20, 20), steps=40, wavelength=10.0, direction=np.pi / 2, period=8.0)
    states = np.stack([np.stack([a, b], axis=1), np.stack([b, a], axis=1)])          # (B=2, T=40, C=2, H, W)
    states = states + 1e-9 * rng.standard_normal(states.shape)
    lam = wl.wavelength_field(torch.from_numpy(states).float(), time_axis=1, trim=0.1)
    assert lam.shape == (2, 32, 2, 20, 20)
    np.testing.assert_allclose(np.median(lam[0, :, 0]), 5.0, rtol=1e-3)
    np.testing.assert_allclose(np.median(lam[0, :, 1]), 10.0, rtol=1e-3)
    np.testing.assert_allclose(np.median(lam[1, :, 0]), 10.0, rtol=1e-3)


def test_mean_is_removed_before_the_hilbert_transform():
    x = wl.plane_wave(size=(32, 32), steps=40, wavelength=8.0, period=10.0)
    shifted = x + 5.0 + np.linspace(0, 3, 32)[None, None, :]           # per-pixel static offsets
    a, b = wl.instantaneous_phase(shifted, time_axis=0), wl.instantaneous_phase(x, time_axis=0)
    np.testing.assert_allclose(np.exp(1j * a), np.exp(1j * b), atol=1e-9)     # compare on the circle (pi == -pi)


def test_constant_traces_are_undefined_not_long():
    x = wl.plane_wave(size=(16, 16), steps=40, wavelength=8.0, period=10.0)
    x[:, :, :4] = 2.0                                                  # dead columns: no temporal variation
    lam = wl.wavelength_field(x, time_axis=0, periodic=False)
    assert np.isnan(lam[:, :, :3]).all()
    assert np.isfinite(lam[:, :, 6:]).all()


def test_fraction_above_and_histogram():
    lam = np.array([1.0, 1.6, 3.0, np.inf, np.nan])
    assert wl.fraction_above(lam, 1.5) == pytest.approx(3 / 4)
    assert wl.fraction_above(lam, 2.0) == pytest.approx(2 / 4)
    np.testing.assert_allclose(wl.fraction_above(np.array([[1.0, 2.0], [2.0, 2.0]]), 1.5, axis=1), [0.5, 1.0])
    dens = wl.wavelength_histogram(lam, bins=[0.0, 2.0, 4.0])
    np.testing.assert_allclose(dens, [2 / 3 / 2, 1 / 3 / 2])


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(scheme="central"), ValueError, "forward"),
    (dict(time_axis=-1), ValueError, "time_axis"),
    (dict(trim=0.5), ValueError, "trim"),
    (dict(min_amplitude=-1.0), ValueError, "min_amplitude"),
])
def test_bad_arguments_name_what_is_accepted(kwargs, exc, word):
    x = np.zeros((10, 8, 8)) + np.arange(10)[:, None, None]
    kwargs = {"time_axis": 0, **kwargs}
    with pytest.raises(exc, match=word):
        wl.wavelength_field(x, **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="x must be"):
        wl.analytic_signal([[1.0]], time_axis=0)
    with pytest.raises(ValueError, match="at least 3"):
        wl.analytic_signal(np.zeros((4, 4)), time_axis=0)
    with pytest.raises(TypeError, match="complex"):
        wl.phase_gradient(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="wavelength"):
        wl.plane_wave(wavelength=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        wl.fraction_above(np.ones(3), 0)


@pytest.mark.parametrize("wavelength", [5.0, 8.0, 16.0])
def test_the_papers_estimator_has_its_peak_at_1_px_on_wrap_lines_only(wavelength):
    """The paper's reconstructed estimator: the forward scheme's value away from phase-wrap lines, about 1 px on them
    (the "peak at 1 due to discretization" its 1.5 threshold ignores), on about 1/λ of the locations."""
    x = wl.plane_wave(size=SIZE, steps=60, wavelength=wavelength, direction=0.0, period=12.0)
    paper = wl.wavelength_field(x, time_axis=0, scheme=wl.PAPER_SCHEME, periodic=True)
    exact = wl.wavelength_field(x, time_axis=0, scheme="forward", periodic=True)
    on_wrap = paper < 1.5
    assert np.mean(on_wrap) == pytest.approx(1 / wavelength, abs=0.02)
    np.testing.assert_allclose(paper[on_wrap], 2 * np.pi / (2 * np.pi - 2 * np.pi / wavelength), rtol=1e-9)
    np.testing.assert_allclose(paper[~on_wrap], exact[~on_wrap], rtol=1e-9)
    assert wl.fraction_above(paper, 1.5) == pytest.approx(1 - 1 / wavelength, abs=0.02)


@pytest.mark.parametrize("steps", [64, 65])
def test_analytic_signal_equals_scipy_hilbert(steps):
    """The two-real-FFT analytic signal is scipy.signal.hilbert's (even and odd lengths: the Nyquist bin)."""
    from scipy.signal import hilbert

    x = np.random.default_rng(steps).standard_normal((3, steps, 2, 5, 6))
    ours = wl.analytic_signal(x, time_axis=1)
    theirs = hilbert(x - x.mean(axis=1, keepdims=True), axis=1)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_time_stride_keeps_the_phases_of_the_full_trace():
    x = wl.plane_wave(size=(16, 16), steps=50, wavelength=6.0, period=10.0)
    full = wl.wavelength_field(x, time_axis=0, trim=0.1)
    np.testing.assert_array_equal(wl.wavelength_field(x, time_axis=0, trim=0.1, time_stride=3), full[::3])
    both = wl.wavelength_fields(x, schemes=("forward", "wrapped", "forward"), time_axis=0, trim=0.1)
    assert list(both) == ["forward", "wrapped"]
    np.testing.assert_array_equal(both["forward"], full)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="time_stride"):
            wl.wavelength_field(x, time_axis=0, time_stride=bad)
    with pytest.raises(ValueError, match="schemes"):
        wl.wavelength_fields(x, schemes="forward", time_axis=0)
