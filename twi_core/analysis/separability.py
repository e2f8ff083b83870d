r"""Travelling or standing? Space–time separability of hidden-state sequences.

A drum that rings in one of its modes makes a **standing wave**: one spatial pattern whose amplitude goes up and down,
:math:`y(t, \mathbf r) = a(\mathbf r)\,b(t)`. Written as a matrix :math:`Y \in \mathbb R^{T \times N}` (time × space, N
neurons) it has rank one: it is *space–time separable*. A **travelling wave** is not:
:math:`\cos(\omega t - \mathbf k\cdot\mathbf r) = \cos\omega t\,\cos\mathbf k\cdot\mathbf r + \sin\omega t\,\sin\mathbf
k\cdot\mathbf r` needs two separable terms in quadrature, and a packet of waves of different speeds needs more. The
"spacetime perspective" of Keller, Muller, Sejnowski & Welling (2024) makes exactly this distinction: travelling waves
are the dynamics that are *not* space–time separable.

Measures (all after removing each neuron's temporal mean, which is itself a separable, static term):

- :func:`singular_spectrum`: the singular values :math:`s_1 \ge s_2 \ge \dots` of :math:`Y`.
- :func:`separability`: :math:`s_1^2 / \sum_k s_k^2`, the share of the variance in the best rank-one (separable)
  approximation. 1 for a standing wave, 1/2 for a travelling plane wave over whole periods, lower for richer dynamics.
- :func:`effective_rank`: the participation ratio :math:`(\sum s_k^2)^2 / \sum s_k^4`; 1 standing, 2 travelling plane
  wave.
- :func:`travelling_index`: separability cannot tell a travelling wave from two standing modes in quadrature at
  different frequencies (both rank 2). The complex decomposition can: take the analytic signal :math:`Z` of each trace
  (Hilbert transform over time), its dominant complex spatial mode :math:`u(\mathbf r)` (first right singular vector),
  and

  .. math::

      \tau = 1 - \frac{\big|\sum_{\mathbf r} u(\mathbf r)^2\big|}{\sum_{\mathbf r} |u(\mathbf r)|^2} \in [0, 1].

  A standing wave has a real mode up to one global phase (:math:`\tau = 0`); a travelling plane wave has
  :math:`u \propto e^{-i\mathbf k\cdot\mathbf r}` whose squares cancel over whole wavelengths (:math:`\tau = 1`); two
  counter-propagating waves of amplitudes :math:`a, b` give :math:`\tau = (a - b)^2 / (a^2 + b^2)`.

Inputs are torch tensors or numpy arrays with a time axis and two spatial (last) axes; every other axis (batch,
channel) indexes separate sequences. The package's hidden-state layout ``(B, T, C, H, W)`` has ``time_axis=1`` and
gives one value per (image, channel).

Examples
--------
>>> from twi_core.analysis.wavelength import plane_wave, standing_wave
>>> standing = standing_wave(size=(32, 32), steps=80, wavelength=8.0, period=20.0)     # (T, H, W)
>>> travelling = plane_wave(size=(32, 32), steps=80, wavelength=8.0, period=20.0)
>>> round(float(separability(standing, time_axis=0)), 3), round(float(separability(travelling, time_axis=0)), 3)
(1.0, 0.5)
>>> round(float(travelling_index(standing, time_axis=0)), 3), round(float(travelling_index(travelling, time_axis=0)), 3)
(0.0, 1.0)
"""

from __future__ import annotations

import numpy as np

from twi_core.analysis.wavelength import _as_array, _time_axis, analytic_signal

__all__ = ["effective_rank", "separability", "singular_spectrum", "travelling_index"]


def _matrices(x, time_axis: int, *, centre: bool = True) -> np.ndarray:
    """Rearrange to a stack of time × space matrices ``(..., T, H*W)`` (float64, temporal mean removed)."""
    x = _as_array(x, name="x", min_ndim=3)
    axis = _time_axis(time_axis, x.ndim)
    x = np.moveaxis(x, axis, -3)                                          # (..., T, H, W)
    m = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])               # (..., T, N)
    if centre:
        m = m - m.mean(axis=-2, keepdims=True, dtype=np.float64)
    return m


def singular_spectrum(x, *, time_axis: int = 1) -> np.ndarray:
    r"""Singular values of each mean-removed time × space matrix, largest first.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, real, shape ``(..., T, ..., H, W)``
    time_axis : int
        The time axis; the other non-spatial axes index separate sequences.

    Returns
    -------
    numpy.ndarray, float64, shape ``(*others, min(T, H*W))``
        ``others`` are the non-time, non-spatial axes of ``x`` in their order.
    """
    m = _matrices(x, time_axis)
    # the T x T Gram matrix is far smaller than the T x N data when N = H*W >> T; its eigenvalues are s^2
    if m.shape[-2] <= m.shape[-1]:
        gram = m @ np.swapaxes(m, -1, -2)                                 # (..., T, T)
    else:
        gram = np.swapaxes(m, -1, -2) @ m                                 # (..., N, N)
    ev = np.linalg.eigvalsh(gram)[..., ::-1]                              # descending
    return np.sqrt(np.clip(ev, 0.0, None))


def _check_nonzero(power: np.ndarray) -> None:
    if np.any(power <= 0):
        raise ValueError("a sequence is constant in time (no variance after removing its mean); its separability is "
                         "undefined")


def separability(x, *, time_axis: int = 1) -> np.ndarray:
    r"""Share of the variance in the best separable (rank-one) term: :math:`s_1^2 / \sum_k s_k^2`.

    1 for a standing wave, 1/2 for a travelling plane wave over whole periods. Same parameters as
    :func:`singular_spectrum`; returns float64 of shape ``others``.

    Raises
    ------
    ValueError
        A sequence without temporal variance.
    """
    s2 = singular_spectrum(x, time_axis=time_axis) ** 2
    total = s2.sum(axis=-1)
    _check_nonzero(total)
    return s2[..., 0] / total


def effective_rank(x, *, time_axis: int = 1) -> np.ndarray:
    r"""Participation ratio of the singular-value spectrum, :math:`(\sum s_k^2)^2 / \sum s_k^4`.

    1 for a standing wave, 2 for a travelling plane wave over whole periods. Same parameters and shape as
    :func:`separability`.
    """
    s2 = singular_spectrum(x, time_axis=time_axis) ** 2
    total = s2.sum(axis=-1)
    _check_nonzero(total)
    return total ** 2 / (s2 ** 2).sum(axis=-1)


def travelling_index(x, *, time_axis: int = 1) -> np.ndarray:
    r"""Travelling index :math:`\tau \in [0, 1]` of the dominant complex mode (0 standing, 1 travelling).

    The analytic signal of every (mean-removed) trace forms a complex time × space matrix :math:`Z`; its dominant right
    singular vector :math:`u` is found from the :math:`T \times T` Hermitian matrix :math:`Z Z^H`, and
    :math:`\tau = 1 - |\sum u^2| / \sum |u|^2`. Same parameters and shape as :func:`separability`.
    """
    x = _as_array(x, name="x", min_ndim=3)
    axis = _time_axis(time_axis, x.ndim)
    zc = np.moveaxis(analytic_signal(x, time_axis=axis), axis, -3)       # (..., T, H, W) complex
    zc = zc.reshape(*zc.shape[:-2], zc.shape[-2] * zc.shape[-1])          # (..., T, N)
    gram = zc @ np.conj(np.swapaxes(zc, -1, -2))                          # (..., T, T) Hermitian
    ev, vec = np.linalg.eigh(gram)
    _check_nonzero(ev[..., -1])
    v = vec[..., :, -1]                                                   # (..., T) top eigenvector in time
    u = np.einsum("...t,...tn->...n", np.conj(v), zc)                     # (..., N): v^H Z, the spatial mode
    return 1.0 - np.abs((u ** 2).sum(axis=-1)) / (np.abs(u) ** 2).sum(axis=-1)
