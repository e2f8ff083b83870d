r"""Hearing a drum: a tone synthesised from a spectrum, so that the page can play what a drum's eigenvalues sound like.

A clamped membrane struck once rings as a sum of its normal modes. Mode :math:`k` with Dirichlet eigenvalue
:math:`\lambda_k` vibrates at :math:`f_k = c\sqrt{\lambda_k}/2\pi`; only the ratios matter to the ear, so the tone maps a
reference eigenvalue :math:`\lambda_\mathrm{ref}` to ``base_hz`` and every mode to

.. math::

    f_k = f_\mathrm{base}\sqrt{\lambda_k/\lambda_\mathrm{ref}},\qquad
    s(t) = \sum_k \frac{1}{k}\, e^{-t\,\sqrt{\lambda_k/\lambda_\mathrm{ref}}\,/\,\tau}\,\sin(2\pi f_k t),

with amplitudes :math:`1/k` and a decay that is faster for higher modes (as on a real drum, whose damping grows with
frequency); the result is scaled to a peak of 0.9. Everything about the sound comes from the eigenvalues: two drums with
the same spectrum give the same samples, bit for bit, whatever their shapes, which is exactly Gordon, Webb and
Wolpert's point. A larger drum has smaller eigenvalues and sounds lower.

Examples
--------
>>> import numpy as np
>>> wave = tone([1.0], reference=1.0, base_hz=200.0, seconds=1.0, sample_rate=8000)
>>> wave.shape, round(float(np.abs(wave).max()), 6)
((8000,), 0.9)
>>> peak_hz = np.fft.rfftfreq(8000, 1 / 8000)[np.abs(np.fft.rfft(wave)).argmax()]
>>> float(peak_hz)
200.0
>>> bool(np.array_equal(tone([2.0, 5.0, 5.0], reference=2.0), tone([2.0, 5.0, 5.0], reference=2.0)))
True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["tone", "audio"]


def tone(eigenvalues: Sequence[float], *, reference: float, base_hz: float = 220.0, seconds: float = 2.5,
         sample_rate: int = 22050, decay_s: float = 0.9) -> np.ndarray:
    """The struck drum's tone: float32 samples in [-0.9, 0.9] (see the module docstring for the formula).

    Parameters
    ----------
    eigenvalues
        Dirichlet eigenvalues :math:`\\lambda_k > 0` of the drum, lowest first (any scale, the same as ``reference``).
    reference
        The eigenvalue heard at ``base_hz`` (pass one drum's fundamental to compare several drums on one scale).
    base_hz, seconds, sample_rate, decay_s
        Pitch of the reference, length, sampling rate, and the decay time :math:`\\tau` of the reference mode.

    Raises
    ------
    ValueError
        No eigenvalues, a non-positive or non-finite eigenvalue or reference, or a mode above the Nyquist frequency.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"eigenvalues must be positive and finite (at least one); got {lam.tolist()}")
    if not (np.isfinite(reference) and reference > 0):
        raise ValueError(f"reference must be a positive eigenvalue; got {reference!r}")
    for name, value in (("base_hz", base_hz), ("seconds", seconds), ("sample_rate", sample_rate),
                        ("decay_s", decay_s)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive; got {value!r}")
    ratio = np.sqrt(lam / reference)                          # f_k / f_base
    freqs = base_hz * ratio
    if freqs.max() >= sample_rate / 2:
        raise ValueError(f"the highest mode ({freqs.max():.0f} Hz) is above the Nyquist frequency "
                         f"({sample_rate / 2:.0f} Hz); pass fewer modes or a lower base_hz")
    t = np.arange(int(round(seconds * sample_rate)), dtype=np.float64) / sample_rate
    k = np.arange(1, lam.size + 1, dtype=np.float64)
    modes = (1.0 / k)[:, None] * np.exp(-t[None, :] * ratio[:, None] / decay_s) * np.sin(
        2 * np.pi * freqs[:, None] * t[None, :])             # (K, samples)
    wave = modes.sum(axis=0)
    return (0.9 * wave / np.abs(wave).max()).astype(np.float32)


def audio(wave: np.ndarray, *, sample_rate: int = 22050):
    """An ``IPython.display.Audio`` player for ``wave``: a WAV embedded in the page, so it plays without a kernel."""
    from IPython.display import Audio

    return Audio(np.asarray(wave, dtype=np.float64), rate=sample_rate, normalize=False)
