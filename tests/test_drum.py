"""Tests of twi_core.drum: the time stepper against closed forms, spectra, geometry, and error cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twi_core import drum


# --- closed forms against a full eigendecomposition -------------------------------------------------------------------

@pytest.mark.parametrize("side", [2, 3, 5, 9, 17])
def test_discrete_square_closed_form_matches_eigvalsh(side):
    mask = drum.square_mask(side, pad=2)
    dense = drum._laplacian_matrix(mask).toarray()
    exact = np.linalg.eigvalsh(dense)
    np.testing.assert_allclose(drum.discrete_square_eigenvalues(side), exact, atol=1e-10)
    k = min(6, exact.size)
    np.testing.assert_allclose(drum.discrete_dirichlet_eigenvalues(mask, k), exact[:k], atol=1e-10)


def test_sparse_eigensolver_matches_closed_form_on_a_large_square():
    side = 40  # 1521 free nodes: the sparse shift-invert path
    np.testing.assert_allclose(drum.discrete_dirichlet_eigenvalues(drum.square_mask(side), 8),
                               drum.discrete_square_eigenvalues(side, 8), rtol=1e-9)


def test_continuum_square_values_from_science_facts():
    # reference/science_facts.md section 3: unit square, first values; f1 * s = 0.70711
    np.testing.assert_allclose(drum.continuum_square_eigenvalues(1.0, 4), [19.739209, 49.348022, 49.348022, 78.956835],
                               rtol=1e-7)
    assert drum.continuum_square_fundamental(17.0) * 17 == pytest.approx(0.70711, abs=1e-5)
    # f1 (L + 1) for L = 16 interior nodes, i.e. side 17: 0.70610 (semi-discrete)
    assert drum.discrete_square_fundamental(17) * 17 == pytest.approx(0.70610, abs=1e-5)


def test_disk_eigenvalues_are_squared_bessel_zeros_with_multiplicity():
    vals = drum.disk_eigenvalues(1.0, 6)
    np.testing.assert_allclose(vals, [5.7831859629, 14.6819706421, 14.6819706421, 26.3746164272, 26.3746164272,
                                      30.4712623437], rtol=1e-9)


def test_leapfrog_dispersion_roundtrip():
    mu = np.array([0.01, 0.5, 3.0, 7.9])
    f = drum.leapfrog_frequency(mu, 0.3)
    np.testing.assert_allclose(drum.eigenvalue_from_frequency(f, 0.3), mu, rtol=1e-12)
    assert np.all(f > drum.leapfrog_frequency(mu))  # leapfrog runs fast


# --- the time stepper ---------------------------------------------------------------------------------------------------

def test_fast_stencil_equals_the_conv2d_step():
    masks = [drum.square_mask(7), drum.disk_mask(4.5), drum.polygon_mask(drum.GWW_DRUMS["gww1"], resolution=3)]
    ref = drum.simulate(masks, 200, 0.4, method="conv", frame_every=37)
    fast = drum.simulate(masks, 200, 0.4, frame_every=37)
    np.testing.assert_allclose(fast.traces, ref.traces, atol=1e-12)
    np.testing.assert_allclose(fast.frames, ref.frames, atol=1e-6)
    assert fast.frames.shape == (3, 6, *fast.masks.shape[1:])


def test_wave_step_clamps_and_conserves_discrete_energy():
    mask = torch.as_tensor(drum.square_mask(9, pad=1))[None]
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(mask.shape, generator=gen, dtype=torch.float64) * mask
    state = drum.WaveState(u, torch.zeros_like(u))
    dt = 0.3
    lap = lambda x: torch.nn.functional.conv2d(x[:, None], drum.laplacian_kernel(), padding=1)[:, 0]  # noqa: E731

    def energy(prev, cur):  # the leapfrog-conserved energy with staggered velocities
        vel = (cur - prev) / dt
        return float((vel ** 2).sum() - (cur * lap(prev)).sum())

    energies = []
    for _ in range(300):
        new = drum.wave_step(state, mask, dt=dt)
        energies.append(energy(state.u, new.u))
        state = new
    assert float((state.u * (~mask)).abs().max()) == 0.0
    assert np.ptp(energies) < 1e-9 * abs(np.mean(energies))


@pytest.mark.parametrize("dt", [0.1])
def test_measured_fundamentals_match_the_discrete_prediction(dt):
    sides = np.arange(13, 22)
    run = drum.simulate([drum.square_mask(int(s)) for s in sides], 40000, dt)
    measured = drum.fundamental_frequency(run.trace, dt)
    exact = drum.discrete_square_fundamental(sides, dt)
    np.testing.assert_allclose(measured, exact, rtol=1e-4)  # the brief asks for 0.1 %; we get ~1e-6
    gap = drum.continuum_square_fundamental(sides) / exact - 1
    assert np.all(gap > 3e-4) and np.all(np.diff(gap) < 0)  # continuum is higher, gap shrinks like 1/s^2
    area = drum.side_from_fundamental(measured, dt) ** 2
    np.testing.assert_allclose(area, sides ** 2, rtol=1e-3)
    np.testing.assert_allclose(drum.area_from_fundamental(measured), sides ** 2, rtol=1e-2)


def test_batched_drums_do_not_interact():
    a = drum.simulate([drum.square_mask(9)], 500, 0.5).trace[0]
    b = drum.simulate([drum.square_mask(5), drum.square_mask(9), drum.disk_mask(6)], 500, 0.5).trace[1]
    np.testing.assert_allclose(a, b, atol=1e-13)


def test_centre_and_probes():
    assert drum.drum_centre(drum.square_mask(14, pad=2)) == (9, 9)
    run = drum.simulate(drum.square_mask(10), 50, 0.5, probes=[[5, 5], [2, 3]])
    assert run.traces.shape == (1, 2, 50)
    assert run.trace[0, 0] == 1.0 and run.traces[0, 1, 0] == 0.0


# --- spectra --------------------------------------------------------------------------------------------------------------

def test_subbin_peak_accuracy_on_pure_sinusoids():
    dt, T = 0.1, 4000
    rng = np.random.default_rng(0)
    t = np.arange(T) * dt
    bin_width = 1 / (T * dt)
    for f in rng.uniform(0.2, 3.0, size=10):
        est = drum.fundamental_frequency(np.cos(2 * np.pi * f * t + rng.uniform(0, 6)), dt)
        assert abs(est - f) < 1e-3 * bin_width


def test_spectral_peaks_finds_two_tones_lowest_first():
    dt = 0.5
    t = np.arange(20000) * dt
    x = np.sin(2 * np.pi * 0.07 * t) + 0.3 * np.sin(2 * np.pi * 0.011 * t)
    np.testing.assert_allclose(drum.spectral_peaks(x, dt, rel_height=0.05), [0.011, 0.07], rtol=1e-4)


# --- geometry ---------------------------------------------------------------------------------------------------------------

def test_gww_drums_are_discretely_isospectral_and_near_driscoll():
    # science_facts.md section 3: h = 1/4 gives 39 unknowns per drum and lambda_1 = 10.02738
    masks = [drum.polygon_mask(drum.GWW_DRUMS[k], resolution=4) for k in ("gww1", "gww2")]
    assert [int(m.sum()) for m in masks] == [39, 39]
    ev = [drum.discrete_dirichlet_eigenvalues(m, 10, h=0.25) for m in masks]
    np.testing.assert_allclose(ev[0], ev[1], rtol=1e-10)
    assert ev[0][0] == pytest.approx(10.02738, abs=1e-5)
    fine = drum.discrete_dirichlet_eigenvalues(drum.polygon_mask(drum.GWW_DRUMS["gww2"], resolution=32), 10, h=1 / 32)
    np.testing.assert_allclose(fine, drum.driscoll_eigenvalues(10), rtol=1e-2)
    assert drum.polygon_area(drum.GWW_DRUMS["gww1"]) == 3.5
    assert drum.polygon_perimeter(drum.GWW_DRUMS["gww2"]) == pytest.approx(6 + 3 * np.sqrt(2))


def test_heat_trace_recovers_area_and_perimeter_of_squares():
    for side in (13, 21):
        fit = drum.fit_heat_trace(drum.discrete_square_eigenvalues(side))
        assert fit.area == pytest.approx(side ** 2, rel=1e-2)
        assert fit.perimeter == pytest.approx(4 * side, rel=2e-2)
        assert fit.constant == pytest.approx(0.25, abs=0.02)  # 4 right-angle corners, 1/16 each


def test_disk_mask_eigenvalues_near_bessel():
    vals = drum.discrete_dirichlet_eigenvalues(drum.disk_mask(20.0), 3)
    np.testing.assert_allclose(vals, drum.disk_eigenvalues(20.0, 3), rtol=4e-2)


# --- errors ---------------------------------------------------------------------------------------------------------------

def test_unstable_time_step_names_the_bound():
    with pytest.raises(ValueError, match=r"1/sqrt\(2\)"):
        drum.simulate(drum.square_mask(9), 10, 0.75)
    with pytest.raises(ValueError, match="stability bound"):
        drum.simulate(drum.square_mask(9), 10, 0.5, c=1.5)
    drum.simulate(drum.square_mask(9), 10, drum.STABILITY_BOUND)  # the bound itself is allowed


def test_mask_without_interior_raises():
    with pytest.raises(ValueError, match="no interior"):
        drum.simulate(np.zeros((8, 8), dtype=bool), 10, 0.5)
    with pytest.raises(ValueError, match="no interior"):
        drum.discrete_dirichlet_eigenvalues(np.zeros((4, 4), dtype=bool))


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "fft"}, r"unknown method 'fft'; expected one of \['conv', 'stencil'\]"),
    ({"steps": 0}, "steps must be an integer"),
    ({"dt": -0.1}, "dt must be a positive number"),
    ({"probes": [[99, 0]]}, "probes must lie on"),
    ({"init": np.ones((3, 3))}, "init must have shape"),
])
def test_bad_arguments(kwargs, match):
    args = {"mask": drum.square_mask(6), "steps": 10, "dt": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        drum.simulate(**args)


def test_square_mask_rejects_bad_side():
    with pytest.raises(ValueError, match="side must be an integer >= 2; got 1"):
        drum.square_mask(1)


# --- chapter 1 orchestration ------------------------------------------------------------------------------------------------

def test_chapter_presets_resolve_and_book_runs_the_paper_steps():
    from twi_core.chapters import ch1_drum
    book = ch1_drum.settings("book", env=False)
    smoke = ch1_drum.settings("smoke", env=False)
    assert book.steps == 40000 and list(book.sides) == list(range(13, 22))
    assert smoke.steps < book.steps
    with pytest.raises(ValueError, match="unknown setting"):
        ch1_drum.settings("smoke", stepz=3)


def test_chapter_animation_frames_mark_outside_as_nan():
    from twi_core.chapters import ch1_drum
    frames, titles = ch1_drum.animation_frames(ch1_drum.settings("smoke", env=False), shape="square")
    assert frames.ndim == 3 and len(titles) == frames.shape[0]
    assert np.isnan(frames[0, 0, 0]) and np.isfinite(frames[0, frames.shape[1] // 2, frames.shape[2] // 2])
    with pytest.raises(ValueError, match=r"unknown shape 'hexagon'; expected one of \['gww', 'square'\]"):
        ch1_drum.animation_frames(ch1_drum.settings("smoke", env=False), shape="hexagon")


# ---------------------------------------------------------------- hearing the drums

def test_tones_come_from_the_spectrum_alone():
    import numpy as np

    from twi_core import sound

    sr = 16000
    one = sound.tone([1.0], reference=1.0, base_hz=250.0, seconds=2.0, sample_rate=sr)
    freqs = np.fft.rfftfreq(len(one), 1 / sr)
    assert freqs[np.abs(np.fft.rfft(one)).argmax()] == pytest.approx(250.0, abs=0.5)
    lower = sound.tone([0.25], reference=1.0, base_hz=250.0, seconds=2.0, sample_rate=sr)   # lambda/4: an octave down
    assert freqs[np.abs(np.fft.rfft(lower)).argmax()] == pytest.approx(125.0, abs=0.5)
    assert np.array_equal(sound.tone([1.0, 2.5], reference=1.0), sound.tone([1.0, 2.5], reference=1.0))
    with pytest.raises(ValueError, match="eigenvalues must be positive"):
        sound.tone([1.0, -2.0], reference=1.0)
    with pytest.raises(ValueError, match="above the Nyquist frequency"):
        sound.tone([1.0, 1e4], reference=1.0, sample_rate=8000)


def test_chapter_one_sounds_pair_identical_and_bigger_drums_lower():
    from twi_core.chapters import ch1_drum

    cfg = ch1_drum.settings("smoke", env=False)
    tones, waves = ch1_drum.drum_sounds(cfg, ch1_drum.disk_experiment(cfg), ch1_drum.isospectral_experiment(cfg))
    hz = dict(zip(tones["drum"], tones["fundamental_hz"]))
    assert hz["square, side 13"] == pytest.approx(220.0) and hz["square, side 21"] < hz["square, side 13"]
    assert abs(waves["GWW drum 1"] - waves["GWW drum 2"]).max() < 1e-6        # the isospectral pair sounds the same
    assert abs(waves["square, side 13"] - waves["square, side 21"]).max() > 0.1
