r"""Instantaneous wavelengths of hidden-state waves, from the phase of the analytic signal (paper, Appendix, Figure 10).

The paper measures how wave-like the hidden states are with a method from the neuroscience of cortical waves
{Davis et al. 2020, 2021}: turn each neuron's real time course into its analytic signal with the Hilbert transform, take
its instantaneous phase, and read a wavelength off the spatial gradient of that phase at every location and time.

Method (what :func:`wavelength_field` computes)
------------------------------------------------
1. **Remove the temporal mean** of every neuron's trace. A constant offset shifts the analytic signal off the origin
   of the complex plane and bends its angle; removing it is the minimum the generalized-phase literature asks for.
   (Scaling a trace by a positive constant does not change its phase, so z-scoring over time would give the same
   result.)
2. **Analytic signal** along time, :math:`z = x + i\,\mathcal{H}[x]`, the one-sided-spectrum construction of
   :func:`scipy.signal.hilbert` (Marple 1999). Its real part is the trace itself, so only :math:`\mathcal{H}[x]` is
   computed, by two real FFTs: multiply the spectrum by :math:`-i\,\mathrm{sign}(k)` with the DC and Nyquist bins
   zeroed (equal to ``scipy.signal.hilbert`` to rounding; tested). The phase is :math:`\varphi = \arg z`.
3. **Spatial phase gradient** by complex multiplication, which never needs phase unwrapping:

   - ``"forward"`` (default): :math:`\partial_x \varphi(i) \approx \arg\big(z_{i+1}\,\bar z_{i}\big)`, one pixel apart.
   - ``"centred"``: :math:`\partial_x \varphi(i) \approx \arg\big(z_{i+1}\,\bar z_{i-1}\big)/2`, the scheme of the
     Muller-lab wave toolbox and of Keller's ``phase.py``.

   Each difference is wrapped into :math:`(-\pi, \pi]`. With ``periodic=True`` (the NWM's circular padding makes the
   hidden sheet a torus) neighbours wrap around; otherwise the edges fall back to one-sided differences.
4. **Wavelength** :math:`\lambda = 2\pi / |\nabla\varphi|` in pixels, at every location and time. Where the phase is
   spatially uniform (:math:`|\nabla\varphi| = 0`, e.g. a standing wave away from its nodal lines) the wavelength is
   ``inf``; where the analytic signal has (numerically) no amplitude the phase is undefined and the result is ``nan``.

Resolution floor, and why the scheme matters
--------------------------------------------
A wrapped difference is at most :math:`\pi` (forward) or :math:`\pi/2` (centred, because of the division by 2) per
axis, so the smallest wavelength each scheme can report is

=========  ====================================  =============================================
scheme     smallest reported wavelength          exact for plane waves with (per axis)
=========  ====================================  =============================================
forward    :math:`\sqrt{2} \approx 1.414` px     :math:`\lambda > 2` px
centred    :math:`2\sqrt{2} \approx 2.83` px     :math:`\lambda > 4` px; shorter ones alias
=========  ====================================  =============================================

(:func:`resolution_floor`). Under centred differences a plane wave of 3 px reads 6 px and one of 2.5 px reads 10 px.
The paper's summary statistic, the percentage of locations whose wavelength exceeds **1.5 px**, is therefore only
meaningful with forward differences: under centred differences every value is at least 2.83 px and the percentage is
100 % by construction. This module defaults to forward differences for that reason.

The paper's estimator
---------------------
The paper writes the wavelength as "the spatial gradient of this phase" and picks the 1.5 threshold as "large enough
to ignore the peak at 1 due to discretization". Neither complex-multiplication scheme has a peak at 1: their
smallest values are 1.41 and 2.83 px. A peak at 1 px is what forward differences of the **wrapped** phase give, without
re-wrapping the difference: where the phase wraps from :math:`\pi` to :math:`-\pi` between two neighbours the
difference is close to :math:`2\pi` and :math:`\lambda = 2\pi/|\nabla\varphi| \approx 1` px (0.71 px where the
wrap line crosses both axes). Everywhere else that scheme agrees with ``"forward"``. We therefore take
:math:`\lambda = 2\pi/|\nabla\varphi|` in pixels with :math:`\nabla\varphi` the forward difference of
:math:`\arg z` as the paper's estimator (``scheme="wrapped"``, :data:`PAPER_SCHEME`). This is a reconstruction from
the text, not the authors' code, which is not public. On a plane wave of wavelength :math:`\lambda` a share of about
:math:`1/\lambda` of the locations sits on a wrap line, and the 1.5 px threshold removes exactly those.

What is *not* done: no band-pass filter (the NWM's traces are short, 100 samples, and carry no slow drift besides the
mean), and no "generalized phase" repair of negative-frequency epochs. Edge effects of the Hilbert transform on a
short trace are real; ``trim`` drops a fraction of the steps at both ends after the transform.

References
----------
Jacobs, Budzinski, Muller, Ba & Keller (2025), *Traveling waves integrate spatial information through time*, Appendix
"Extended quantitative analysis of wave dynamics" and Figure 10. Davis et al. (2020), Nature 587:432–436. Davis et al.
(2021), Nat. Commun. 12:6057.

Examples
--------
A plane wave of wavelength 8 px travelling along x is read back exactly:

>>> x = plane_wave(size=(32, 32), steps=40, wavelength=8.0, period=10.0)        # (T, H, W)
>>> lam = wavelength_field(x, time_axis=0, periodic=False)
>>> round(float(np.median(lam)), 6)
8.0
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from twi_core._arrays import as_numpy
from scipy import fft as sp_fft

__all__ = ["SCHEMES", "EXACT_SCHEMES", "PAPER_SCHEME", "analytic_signal", "fraction_above", "instantaneous_phase", "phase_gradient", "plane_wave",
           "resolution_floor", "standing_wave", "wavelength_field", "wavelength_fields", "wavelength_histogram"]


# ----------------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------------

def _as_array(x, *, name: str, min_ndim: int) -> np.ndarray:
    """A numpy view of ``x`` (torch or numpy), with at least ``min_ndim`` dimensions."""
    return as_numpy(x, name=name, min_ndim=min_ndim)


def _time_axis(time_axis: int, ndim: int) -> int:
    """Normalise ``time_axis`` and check that it is not one of the two spatial (last) axes."""
    if not isinstance(time_axis, (int, np.integer)) or isinstance(time_axis, bool):
        raise TypeError(f"time_axis must be an int; got {time_axis!r}")
    axis = int(time_axis) % ndim if -ndim <= time_axis < ndim else None
    if axis is None or axis >= ndim - 2:
        raise ValueError(f"time_axis must name an axis before the two spatial (last) axes of an array with {ndim} "
                         f"dimensions, i.e. in [{-ndim}, {ndim - 3}]; got {time_axis!r}")
    return axis


# ----------------------------------------------------------------------------------------------------------------------
# Analytic signal and phase
# ----------------------------------------------------------------------------------------------------------------------

def analytic_signal(x, *, time_axis: int = 1) -> np.ndarray:
    r"""Analytic signal of every trace along ``time_axis``, after removing each trace's temporal mean.

    .. math::

        z(t) = \tilde x(t) + i\,\mathcal{H}[\tilde x](t), \qquad \tilde x(t) = x(t) - \frac{1}{T}\sum_{s} x(s)

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, real, shape ``(..., T, ..., H, W)``
        Traces; the package's hidden-state layout ``(B, T, C, H, W)`` has ``time_axis=1``.
    time_axis : int
        The time axis (not one of the last two, which are space).

    Returns
    -------
    numpy.ndarray, complex128, the shape of ``x``

    Raises
    ------
    TypeError, ValueError
        Not an array; fewer than 3 dimensions; ``time_axis`` pointing at a spatial axis.
    """
    centred, quadrature, _ = _analytic_parts(x, time_axis)
    return centred + 1j * quadrature


def _analytic_parts(x, time_axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(x - mean, H[x - mean], axis)`` in float64: the real and imaginary parts of :func:`analytic_signal`, apart so
    that a caller keeping a few time steps builds the complex array for those only."""
    x = _as_array(x, name="x", min_ndim=3)
    axis = _time_axis(time_axis, x.ndim)
    if np.iscomplexobj(x):
        raise TypeError("x must be real; the analytic signal of a complex array is not defined here")
    centred = x.astype(np.float64) - x.mean(axis=axis, keepdims=True, dtype=np.float64)
    n = centred.shape[axis]
    spectrum = sp_fft.rfft(centred, axis=axis)
    spectrum *= -1j                                     # -i sign(k) on the positive frequencies ...
    edges = [0] + ([n // 2] if n % 2 == 0 else [])      # ... and 0 at DC and Nyquist, as scipy.signal.hilbert
    index = [slice(None)] * spectrum.ndim
    index[axis] = edges
    spectrum[tuple(index)] = 0
    return centred, sp_fft.irfft(spectrum, n=n, axis=axis), axis


def instantaneous_phase(x, *, time_axis: int = 1) -> np.ndarray:
    r"""Instantaneous phase :math:`\varphi = \arg z \in (-\pi, \pi]` of the mean-removed analytic signal.

    Same parameters as :func:`analytic_signal`; returns float64 of the shape of ``x``.

    >>> t = np.arange(64)
    >>> x = np.cos(2 * np.pi * t / 16)[:, None, None] * np.ones((1, 2, 2))       # (T, H, W)
    >>> phi = instantaneous_phase(x, time_axis=0)
    >>> bool(np.allclose(phi[:, 0, 0], np.angle(np.exp(2j * np.pi * t / 16))))
    True
    """
    return np.angle(analytic_signal(x, time_axis=time_axis))


# ----------------------------------------------------------------------------------------------------------------------
# Spatial phase gradient: difference schemes (a registry; errors list its keys)
# ----------------------------------------------------------------------------------------------------------------------

# Every scheme works on the phase φ = arg z, computed once: the wrapped difference wrap(φ[i+1] - φ[i]) equals
# arg(z[i+1] conj z[i]) (to rounding) at one arctangent per location instead of one per location and axis.

def _wrap(d: np.ndarray) -> np.ndarray:
    """``d`` wrapped into [-π, π] (for ``d`` a difference of two phases in [-π, π])."""
    return d - (2 * np.pi) * np.round(d / (2 * np.pi))


def _forward_difference(phase: np.ndarray, axis: int, periodic: bool, rewrap: bool) -> np.ndarray:
    if periodic:
        d = np.roll(phase, -1, axis=axis) - phase
        return _wrap(d) if rewrap else d
    d = np.diff(phase, axis=axis)                                                         # (..., n-1, ...)
    d = _wrap(d) if rewrap else d
    return np.concatenate([d, np.take(d, [-1], axis=axis)], axis=axis)                    # (..., n, ...)


def _forward(phase: np.ndarray, axis: int, periodic: bool) -> np.ndarray:
    """``arg(z[i+1] conj z[i])``; without periodicity the last row/column repeats its backward difference."""
    return _forward_difference(phase, axis, periodic, rewrap=True)


def _centred(phase: np.ndarray, axis: int, periodic: bool) -> np.ndarray:
    """``arg(z[i+1] conj z[i-1]) / 2``; without periodicity the edges use forward/backward differences."""
    if periodic:
        return _wrap(np.roll(phase, -1, axis=axis) - np.roll(phase, 1, axis=axis)) / 2
    n = phase.shape[axis]
    inner = _wrap(np.take(phase, np.arange(2, n), axis=axis) - np.take(phase, np.arange(0, n - 2), axis=axis)) / 2
    first = _wrap(np.take(phase, [1], axis=axis) - np.take(phase, [0], axis=axis))
    last = _wrap(np.take(phase, [n - 1], axis=axis) - np.take(phase, [n - 2], axis=axis))
    return np.concatenate([first, inner, last], axis=axis)                                # (..., n, ...)


def _wrapped(phase: np.ndarray, axis: int, periodic: bool) -> np.ndarray:
    """``arg z[i+1] - arg z[i]``: forward differences of the *wrapped* phase, not re-wrapped (the paper's, as we read
    it). Across a line where the phase wraps from π to -π the difference is close to ±2π, a spurious wavelength of
    about 1 px."""
    return _forward_difference(phase, axis, periodic, rewrap=False)


#: Difference schemes for the spatial phase gradient, by name, each a function of the phase: ``forward`` and
#: ``centred`` re-wrap their differences (exact for resolved plane waves), ``wrapped`` is the paper's estimator as
#: reconstructed in the module notes.
SCHEMES: dict[str, Callable[[np.ndarray, int, bool], np.ndarray]] = {"forward": _forward, "centred": _centred,
                                                                      "wrapped": _wrapped}
#: The schemes that recover every location of a resolved plane wave exactly (no phase-wrap artefacts).
EXACT_SCHEMES = ("centred", "forward")
#: The paper's estimator, as reconstructed from its text (module notes, "The paper's estimator").
PAPER_SCHEME = "wrapped"

_FLOORS = {"forward": np.sqrt(2.0), "centred": 2.0 * np.sqrt(2.0), "wrapped": 1.0 / np.sqrt(2.0)}


def _check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {sorted(SCHEMES)}")
    return scheme


def resolution_floor(scheme: str = "forward") -> float:
    r"""Smallest wavelength (px) a scheme can report: :math:`2\pi / (\sqrt{2}\,\Delta_{\max})`.

    :math:`\Delta_{\max}` is the largest wrapped per-axis phase difference: :math:`\pi` for forward differences,
    :math:`\pi/2` for centred ones.

    >>> round(resolution_floor("forward"), 4), round(resolution_floor("centred"), 4)
    (1.4142, 2.8284)
    """
    return float(_FLOORS[_check_scheme(scheme)])


def phase_gradient(z, *, scheme: str = "forward", periodic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    r"""Spatial gradient of the phase of a complex field, by complex multiplication (no unwrapping).

    Parameters
    ----------
    z : numpy.ndarray, complex, shape ``(..., H, W)``
        Analytic signal (any leading axes).
    scheme : {"forward", "centred", "wrapped"}
        Difference scheme, see :data:`SCHEMES` and the module notes on the resolution floor.
    periodic : bool
        Wrap neighbours around the edges (a torus, as the NWM's circular padding); otherwise one-sided at the edges.

    Returns
    -------
    (d_row, d_col) : two float64 arrays of shape ``(..., H, W)``
        :math:`\partial\varphi/\partial i` (down the rows) and :math:`\partial\varphi/\partial j` (along the columns), in
        radians per pixel, each in :math:`(-\pi, \pi]` (forward) or :math:`(-\pi/2, \pi/2]` (centred).
    """
    scheme = _check_scheme(scheme)
    if not isinstance(z, np.ndarray) or not np.iscomplexobj(z):
        raise TypeError(f"z must be a complex numpy.ndarray (an analytic signal); got {type(z).__name__}"
                        + (f" of dtype {z.dtype}" if isinstance(z, np.ndarray) else ""))
    if z.ndim < 2 or min(z.shape[-2:]) < 3:
        raise ValueError(f"z must end in two spatial axes of at least 3 pixels; got shape {z.shape}")
    return _gradient(np.angle(z), scheme, periodic)


def _gradient(phase: np.ndarray, scheme: str, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    step = SCHEMES[scheme]
    return step(phase, phase.ndim - 2, bool(periodic)), step(phase, phase.ndim - 1, bool(periodic))


# ----------------------------------------------------------------------------------------------------------------------
# Wavelength field and summaries
# ----------------------------------------------------------------------------------------------------------------------

def wavelength_fields(x, *, schemes: Sequence[str], time_axis: int = 1, periodic: bool = True, trim: float = 0.0,
                      time_stride: int = 1, min_amplitude: float = 1e-6) -> dict[str, np.ndarray]:
    r"""Instantaneous wavelength :math:`\lambda = 2\pi/|\nabla\varphi|` (pixels) by several difference schemes at once.

    The analytic signal (the costly part on long rollouts) is computed once and shared by the schemes.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, real, shape ``(..., T, ..., H, W)``
        Traces; the package's hidden-state layout ``(B, T, C, H, W)`` has ``time_axis=1``.
    schemes : sequence of {"forward", "centred", "wrapped"}
        Difference schemes of the phase gradient (module notes: the 1.5 px threshold needs ``"forward"``).
    time_axis : int
        The time axis.
    periodic : bool
        Treat the two spatial axes as periodic (True for NWM states, whose convolutions pad circularly).
    trim : float in [0, 0.5)
        Fraction of the steps dropped at *each* end of the time axis after the Hilbert transform (edge effects).
    time_stride : int >= 1
        Keep every ``time_stride``-th of the remaining steps. The Hilbert transform still sees the whole trace, so
        each kept step's phase is exactly the one without a stride; only fewer steps are summarised (a uniform
        subsample in time, which long rollouts such as the Polygons NWM's 500 steps can afford).
    min_amplitude : float
        Locations whose analytic-signal amplitude, or that of a neighbour used in a difference, is at most
        ``min_amplitude`` times the largest amplitude in the same spatial snapshot (same time, image and channel)
        get ``nan``: their phase is undefined.

    Returns
    -------
    dict
        ``{scheme: float64 array}``, each the shape of ``x`` with the time axis shortened by ``trim`` and
        ``time_stride``; ``inf`` where the phase gradient vanishes, ``nan`` where the amplitude does.

    Raises
    ------
    TypeError, ValueError
        Bad array, axis, scheme, stride, or a ``trim`` outside [0, 0.5) that would leave no step.

    Examples
    --------
    >>> x = plane_wave(size=(16, 16), steps=60, wavelength=8.0, period=12.0)          # (T, H, W)
    >>> lam = wavelength_fields(x, schemes=("forward", "wrapped"), time_axis=0, trim=0.1, time_stride=4)
    >>> sorted(lam), lam["forward"].shape
    (['forward', 'wrapped'], (12, 16, 16))
    >>> bool(np.allclose(lam["forward"], wavelength_field(x, time_axis=0, trim=0.1)[::4]))
    True
    """
    if isinstance(schemes, str) or not len(schemes):
        raise ValueError(f"schemes must be a non-empty sequence of scheme names, e.g. ('forward',); got {schemes!r}")
    schemes = [_check_scheme(k) for k in schemes]
    if not isinstance(trim, (int, float)) or isinstance(trim, bool) or not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be a fraction in [0, 0.5); got {trim!r}")
    if not isinstance(time_stride, (int, np.integer)) or isinstance(time_stride, bool) or time_stride < 1:
        raise ValueError(f"time_stride must be an int >= 1; got {time_stride!r}")
    if not isinstance(min_amplitude, (int, float)) or isinstance(min_amplitude, bool) or min_amplitude < 0:
        raise ValueError(f"min_amplitude must be a non-negative number; got {min_amplitude!r}")
    x = _as_array(x, name="x", min_ndim=3)
    if _time_axis(time_axis, x.ndim) > 0 and x.shape[0] > 1:
        # one leading entry (e.g. an image) at a time: the float64 analytic signal of eight 500-step Polygons
        # rollouts is about 1 GB and ran 3.7x slower at once; every statistic here is per snapshot, so nothing changes
        parts = [wavelength_fields(x[i:i + 1], schemes=schemes, time_axis=time_axis, periodic=periodic, trim=trim,
                                   time_stride=time_stride, min_amplitude=min_amplitude) for i in range(x.shape[0])]
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    centred, quadrature, axis = _analytic_parts(x, time_axis)
    steps = centred.shape[axis]
    cut = int(round(trim * steps))
    if steps - 2 * cut < 1:
        raise ValueError(f"trim={trim} leaves no step of {steps}")
    kept = np.arange(cut, steps - cut, int(time_stride))
    re, im = np.take(centred, kept, axis=axis), np.take(quadrature, kept, axis=axis)
    phase = np.arctan2(im, re)
    if min_amplitude > 0:
        # an undefined phase makes every difference that uses it undefined: nan propagates through the scheme
        amp = np.hypot(re, im)
        peak = amp.max(axis=(-2, -1), keepdims=True)
        phase[amp <= min_amplitude * np.where(peak > 0, peak, 1.0)] = np.nan
    out = {}
    for scheme in dict.fromkeys(schemes):
        d_row, d_col = _gradient(phase, scheme, periodic)
        with np.errstate(divide="ignore"):
            out[scheme] = 2.0 * np.pi / np.hypot(d_row, d_col)            # inf where |∇φ| = 0, nan stays nan
    return out


def wavelength_field(x, *, time_axis: int = 1, scheme: str = "forward", periodic: bool = True, trim: float = 0.0,
                     time_stride: int = 1, min_amplitude: float = 1e-6) -> np.ndarray:
    r"""Instantaneous wavelength :math:`\lambda = 2\pi/|\nabla\varphi|` (pixels) at every location and time.

    One scheme of :func:`wavelength_fields` (same parameters, ``scheme`` one of its ``schemes``).

    Returns
    -------
    numpy.ndarray, float64, the shape of ``x`` with the time axis shortened by ``trim`` (and ``time_stride``)
        ``inf`` where the phase gradient vanishes, ``nan`` where the amplitude does.
    """
    return wavelength_fields(x, schemes=(scheme,), time_axis=time_axis, periodic=periodic, trim=trim,
                             time_stride=time_stride, min_amplitude=min_amplitude)[_check_scheme(scheme)]


def fraction_above(wavelengths, threshold: float = 1.5, *, axis=None) -> np.ndarray | float:
    """Fraction of the defined (non-``nan``) locations whose wavelength exceeds ``threshold`` (``inf`` counts as above).

    The paper's summary statistic uses ``threshold = 1.5`` px (with forward differences; see the module notes).

    >>> float(fraction_above(np.array([1.0, 2.0, np.inf, np.nan]), 1.5))
    0.6666666666666666
    """
    lam = _as_array(wavelengths, name="wavelengths", min_ndim=0)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not threshold > 0:
        raise ValueError(f"threshold must be a positive number of pixels; got {threshold!r}")
    defined = ~np.isnan(lam)
    above = np.where(defined, lam > threshold, False)
    count = defined.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = above.sum(axis=axis) / count
    return float(frac) if np.ndim(frac) == 0 else frac


def wavelength_histogram(wavelengths, *, bins) -> np.ndarray:
    """Probability density of the finite, defined wavelengths over ``bins`` (edges in pixels).

    ``inf`` values (uniform phase) and ``nan`` (no amplitude) are left out; use :func:`fraction_above` for their share.
    Returns a float64 array of ``len(bins) - 1`` densities (they integrate to the fraction of finite values that fall
    inside the bins).
    """
    lam = _as_array(wavelengths, name="wavelengths", min_ndim=0).ravel()
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bins must be increasing bin edges (at least 2); got {bins!r}")
    finite = lam[np.isfinite(lam)]
    if finite.size == 0:
        return np.zeros(edges.size - 1)
    counts, _ = np.histogram(finite, bins=edges)
    return counts / (finite.size * np.diff(edges))


# ----------------------------------------------------------------------------------------------------------------------
# Synthetic waves of known wavelength (tests and the chapter's validation figure)
# ----------------------------------------------------------------------------------------------------------------------

def _grid(size, steps, wavelength, direction, period):
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(n, (int, np.integer)) and n >= 3 for n in size)):
        raise ValueError(f"size must be (H, W) with at least 3 pixels each; got {size!r}")
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an int >= 2; got {steps!r}")
    for name, value in (("wavelength", wavelength), ("period", period)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"{name} must be a positive number; got {value!r}")
    rows, cols = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")       # (H, W) each
    along = cols * np.cos(direction) + rows * np.sin(direction)                           # distance along k, (H, W)
    k = 2.0 * np.pi / wavelength
    omega_t = 2.0 * np.pi * np.arange(steps) / period                                     # (T,)
    return k * along, omega_t


def plane_wave(*, size=(64, 64), steps: int = 100, wavelength: float, direction: float = 0.0, period: float = 20.0
               ) -> np.ndarray:
    r"""A travelling plane wave :math:`\cos(\omega t - \mathbf{k}\cdot\mathbf{r})`, shape ``(T, H, W)``.

    Parameters
    ----------
    size : (H, W)
    steps : int
        Number of time steps T.
    wavelength : float
        :math:`2\pi/|\mathbf{k}|` in pixels.
    direction : float
        Angle of :math:`\mathbf{k}` in radians, measured from the column axis (x) towards the row axis (y).
    period : float
        Temporal period in steps.
    """
    phase, omega_t = _grid(size, steps, wavelength, direction, period)
    return np.cos(omega_t[:, None, None] - phase[None])


def standing_wave(*, size=(64, 64), steps: int = 100, wavelength: float, direction: float = 0.0, period: float = 20.0
                  ) -> np.ndarray:
    r"""A standing wave :math:`\cos(\mathbf{k}\cdot\mathbf{r})\cos(\omega t)`, shape ``(T, H, W)``.

    Its temporal phase is uniform in space except for jumps of :math:`\pi` across nodal lines, so its wavelength is
    ``inf`` almost everywhere: a standing wave counts as "long wavelength" under the paper's statistic.
    """
    phase, omega_t = _grid(size, steps, wavelength, direction, period)
    return np.cos(omega_t)[:, None, None] * np.cos(phase)[None]
