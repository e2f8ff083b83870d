"""Tests of twi_core.analysis.spectra against closed forms (DFT of pure sinusoids) and brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twi_core.analysis import spectra as sp


def _sinusoid_states(bins_per_class: dict[int, int], masks: np.ndarray, *, steps: int, channels: int = 2,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """(B, T, C, H, W): each pixel oscillates at the bin of its class (cosine, unit amplitude, random phase)."""
    b, h, w = masks.shape
    t = np.arange(steps)[:, None, None, None]
    out = np.zeros((b, steps, channels, h, w))
    for n in range(b):
        for cls, k in bins_per_class.items():
            sel = masks[n] == cls
            phase = 0.0 if rng is None else rng.uniform(0, 2 * np.pi)
            wave = np.cos(2 * np.pi * k * t / steps + phase)  # (T, 1, 1, 1)
            out[n] += np.where(sel[None, None], wave, 0.0)
    return out


def test_pure_cosine_magnitude_is_half_the_length_in_its_bin():
    steps = 40
    t = np.arange(steps)
    for k in (1, 3, 7, 19):
        y = np.cos(2 * np.pi * k * t / steps + 0.3)[None, :, None, None, None]
        mag = sp.fourier_magnitudes(y)[0, :, 0, 0, 0]
        assert mag.shape == (steps // 2 + 1,)
        assert mag.argmax() == k
        # unnormalised DFT: |sum_t cos(2 pi k t / T + phi) e^{-2 pi i k t / T}| = T / 2 for 0 < k < T / 2
        np.testing.assert_allclose(mag[k], steps / 2, rtol=1e-5)
        np.testing.assert_allclose(np.delete(mag, k), 0.0, atol=1e-4)


def test_constant_goes_to_dc_with_magnitude_value_times_length():
    y = np.full((1, 10, 1, 2, 2), 0.5)
    mag = sp.fourier_magnitudes(y)
    np.testing.assert_allclose(mag[0, 0], 5.0, rtol=1e-6)
    np.testing.assert_allclose(mag[0, 1:], 0.0, atol=1e-6)


def test_matches_torch_rfft_on_random_states_and_accepts_tensors():
    x = torch.randn(2, 12, 3, 4, 5)
    ours = sp.fourier_magnitudes(x)
    ref = torch.fft.rfft(x, dim=1).abs().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    # another layout through time_axis
    np.testing.assert_allclose(sp.fourier_magnitudes(x.transpose(1, 2), time_axis=2), ref.transpose(0, 2, 1, 3, 4),
                               rtol=1e-4, atol=1e-5)


def test_num_bins_agrees_with_the_models_helper():
    readouts = pytest.importorskip("twi_core.models.readouts")
    for steps in (1, 2, 7, 20, 100, 500):
        assert sp.num_bins(steps) == readouts.num_frequency_bins(steps)


def test_bin_frequencies_recover_a_sinusoid_in_physical_units():
    steps, dt, f = 100, 0.1, 0.7  # 0.7 cycles per time unit -> bin f * T * dt = 7
    t = np.arange(steps) * dt
    y = np.sin(2 * np.pi * f * t)[None, :, None, None, None]
    freqs = sp.bin_frequencies(steps, dt=dt)
    assert len(freqs) == sp.num_bins(steps)
    assert freqs[sp.fourier_magnitudes(y)[0, :, 0, 0, 0].argmax()] == pytest.approx(f)
    assert freqs[-1] == pytest.approx(1 / (2 * dt))  # Nyquist


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_num_bins_rejects_bad_steps(bad):
    with pytest.raises(ValueError, match="steps"):
        sp.num_bins(bad)


def test_class_means_peak_at_each_class_frequency_and_match_a_loop():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, size=(3, 6, 7))
    steps = 32
    states = _sinusoid_states({1: 2, 2: 5}, masks, steps=steps, rng=rng)
    mag = sp.fourier_magnitudes(states)
    cs = sp.class_spectra(mag, masks, num_classes=3)
    assert cs.sums.shape == (3, steps // 2 + 1, 2) and cs.counts.tolist() == np.bincount(masks.ravel()).tolist()
    mean = cs.mean
    assert mean[1, :, 0].argmax() == 2 and mean[2, :, 1].argmax() == 5
    np.testing.assert_allclose(mean[1, 2], steps / 2, rtol=1e-4)
    np.testing.assert_allclose(mean[0], 0.0, atol=1e-4)  # background is silent
    # brute force: average of the spectra of every pixel of the class
    for cls in range(3):
        pix = [mag[b, :, :, i, j] for b in range(3) for i in range(6) for j in range(7) if masks[b, i, j] == cls]
        np.testing.assert_allclose(mean[cls], np.mean(pix, axis=0), rtol=1e-5, atol=1e-6)


def test_merge_equals_one_call_on_all_batches_and_empty_class_is_nan():
    rng = np.random.default_rng(1)
    mag = rng.random((4, 5, 2, 3, 3))
    masks = rng.integers(0, 2, size=(4, 3, 3))  # class 2 never occurs
    whole = sp.class_spectra(mag, masks, num_classes=3)
    parts = sp.class_spectra(mag[:1], masks[:1], num_classes=3).merge(sp.class_spectra(mag[1:], masks[1:],
                                                                                       num_classes=3))
    np.testing.assert_allclose(parts.sums, whole.sums)
    assert parts.counts.tolist() == whole.counts.tolist()
    assert whole.counts[2] == 0 and np.isnan(whole.mean[2]).all()
    with pytest.raises(ValueError, match="merge"):
        whole.merge(sp.class_spectra(mag, masks, num_classes=4))


def test_class_spectra_validates_its_inputs():
    mag = np.zeros((2, 3, 1, 4, 4))
    with pytest.raises(ValueError, match="masks must have shape"):
        sp.class_spectra(mag, np.zeros((2, 4, 5), dtype=int), num_classes=2)
    with pytest.raises(ValueError, match=r"labels in \[5, 5\]; expected \[0, 3\)"):
        sp.class_spectra(mag, np.full((2, 4, 4), 5), num_classes=3)
    with pytest.raises(ValueError, match="5 dimensions"):
        sp.class_spectra(mag[0], np.zeros((2, 4, 4), dtype=int), num_classes=2)
    with pytest.raises(TypeError, match="magnitudes must be"):
        sp.class_spectra(mag.tolist(), np.zeros((2, 4, 4), dtype=int), num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        sp.class_spectra(mag, np.zeros((2, 4, 4), dtype=int), num_classes=0)


def test_nearest_mean_accuracy_separates_distinct_frequencies_and_not_identical_ones():
    rng = np.random.default_rng(2)
    masks = rng.integers(0, 4, size=(4, 8, 8))
    steps = 24
    distinct = sp.fourier_magnitudes(_sinusoid_states({1: 2, 2: 4, 3: 7}, masks, steps=steps, rng=rng))
    means = sp.class_spectra(distinct, masks, num_classes=4).mean
    assert sp.nearest_mean_accuracy(distinct, masks, means) == pytest.approx(1.0)
    # all classes oscillate at the same bin: the spectra carry no class information -> ties go to one class
    same = sp.fourier_magnitudes(_sinusoid_states({1: 3, 2: 3, 3: 3}, masks, steps=steps, rng=rng))
    means_same = sp.class_spectra(same, masks, num_classes=4).mean
    acc = sp.nearest_mean_accuracy(same, masks, means_same)
    fg = masks[masks > 0]
    assert acc == pytest.approx(max(np.bincount(fg)[1:]) / fg.size, abs=0.35)
    assert acc < 0.6
    with pytest.raises(ValueError, match="means must have shape"):
        sp.nearest_mean_accuracy(distinct, masks, means[:, :3])


def test_model_class_spectra_streams_batches_like_one_call():
    class Fake(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, return_states=False):
            t = torch.arange(9, dtype=torch.float32)[None, :, None, None, None]
            states = torch.cos(t * x[:, None, :1] * self.w)  # (B, T, 1, H, W): frequency set by the pixel value
            return torch.zeros(x.shape[0], 2, *x.shape[-2:]), states

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(5, 1, 3, 4, generator=gen)
    masks = (images[:, 0] > 0.5).long()
    batches = [(images[:2], masks[:2]), (images[2:], masks[2:])]
    got = sp.model_class_spectra(Fake(), batches, num_classes=2)
    _, states = Fake()(images, return_states=True)
    want = sp.class_spectra(sp.fourier_magnitudes(states), masks, num_classes=2)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        sp.model_class_spectra(Fake(), [], num_classes=2)
