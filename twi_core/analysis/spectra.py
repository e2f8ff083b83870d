"""Fourier spectra of hidden-state sequences: per neuron, and averaged per class over the pixels of that class.

The paper's Figure 4 reads the NWM's hidden states through the magnitudes of their temporal Fourier transform: on the
left a few frequency bins shown as images (every pixel and channel is one "neuron"), on the right the mean spectrum of
each object class, averaged over all validation pixels labelled as that class. Distinct curves mean the classes are
separable from the temporal dynamics alone, which is what the per-pixel readout exploits.

All functions take hidden sequences in the package layout ``(B, T, C, H, W)`` (see :mod:`twi_core.models`) and accept
torch tensors or numpy arrays; they return numpy arrays.

Examples
--------
A pure cosine at bin 3 puts all of its energy there:

>>> import numpy as np
>>> t = np.arange(16)
>>> y = np.cos(2 * np.pi * 3 * t / 16)[None, :, None, None, None]     # (B=1, T=16, C=1, H=1, W=1)
>>> mag = fourier_magnitudes(y)
>>> mag.shape, int(mag[0, :, 0, 0, 0].argmax())
((1, 9, 1, 1, 1), 3)
"""

from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple

import numpy as np
import torch

from twi_core._arrays import as_numpy

__all__ = ["ClassSpectra", "bin_frequencies", "class_spectra", "fourier_magnitudes", "model_class_spectra",
           "model_nearest_mean_accuracy", "nearest_mean_accuracy", "num_bins"]




def num_bins(steps: int) -> int:
    """Number of one-sided Fourier bins of a real sequence of ``steps`` samples: ``steps // 2 + 1``.

    DC and (for even ``steps``) Nyquist included, exactly as ``rfft`` and the authors' FFT readout produce. Delegates to
    :func:`twi_core.models.readouts.num_frequency_bins`, the one place this size is derived.

    >>> num_bins(100), num_bins(20), num_bins(7)
    (51, 11, 4)
    """
    from twi_core.models.readouts import num_frequency_bins

    if isinstance(steps, np.integer):
        steps = int(steps)
    return num_frequency_bins(steps)


def bin_frequencies(steps: int, *, dt: float = 1.0) -> np.ndarray:
    """Frequency of each bin, in cycles per unit of simulated time: ``k / (steps * dt)``.

    For the NWM (``dt = 0.1``, T = 100) bin k is k/10 cycles per time unit, Nyquist 5; for the Conv-LSTM (no physical
    time, ``dt = 1``) it is k/20 cycles per step.

    >>> bin_frequencies(100, dt=0.1)[[0, 1, 50]]
    array([0. , 0.1, 5. ])
    """
    if not dt > 0:
        raise ValueError(f"dt must be positive; got {dt!r}")
    return np.arange(num_bins(steps)) / (steps * dt)


def fourier_magnitudes(states, *, time_axis: int = 1) -> np.ndarray:
    r"""Magnitude of the one-sided discrete Fourier transform of every neuron's time course.

    .. math::

        F_{k}(c, i, j) = \Big|\sum_{t=0}^{T-1} y_{t}(c, i, j)\, e^{-2\pi i k t / T}\Big|,\qquad k = 0, \dots, \lfloor T/2
        \rfloor

    unnormalised, as the authors' FFT readout, and computed the same way: ``torch.fft.rfft`` in the states' float32
    (a float64 numpy transform of 64 Polygons images at T = 500 moved 2 GB through memory and took 8x longer).

    Parameters
    ----------
    states : tensor or ndarray, float, shape ``(B, T, C, H, W)``
        Hidden sequences ``y_1..y_T``; any layout works if ``time_axis`` names the time axis.
    time_axis : int
        Axis holding time.

    Returns
    -------
    ndarray, float32, the input shape with ``T`` replaced by ``T // 2 + 1`` bins.
    """
    x = as_numpy(states, name="states")
    if x.ndim == 0:
        raise ValueError("states must have a time axis; got a scalar")
    if not -x.ndim <= time_axis < x.ndim:
        raise ValueError(f"time_axis {time_axis} is out of range for states of shape {tuple(x.shape)}")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return torch.fft.rfft(t, dim=time_axis).abs().numpy()


class ClassSpectra(NamedTuple):
    """Per-class sums of spectra over pixels, and the pixel counts; add two with :meth:`merge`.

    ``sums`` has shape ``(num_classes, K, C)`` (float64), ``counts`` shape ``(num_classes,)`` (int64).
    """

    sums: np.ndarray    # (n_classes, K, C) sum over pixels of that class of the magnitude spectrum of each channel
    counts: np.ndarray  # (n_classes,) number of pixels of that class

    @property
    def mean(self) -> np.ndarray:
        """Mean spectrum per class, ``(num_classes, K, C)``; NaN for a class with no pixels."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts[:, None, None]

    def merge(self, other: "ClassSpectra") -> "ClassSpectra":
        """Accumulate another batch's sums and counts."""
        if self.sums.shape != other.sums.shape:
            raise ValueError(f"cannot merge spectra of shapes {self.sums.shape} and {other.sums.shape}")
        return ClassSpectra(self.sums + other.sums, self.counts + other.counts)


def class_spectra(magnitudes, masks, *, num_classes: int) -> ClassSpectra:
    r"""Sum the spectra of all pixels of each class (the mean is :attr:`ClassSpectra.mean`).

    .. math::

        \bar F_k^{(m)}(c) = \frac{1}{|P_m|} \sum_{(b, i, j) \in P_m} F_k(b, c, i, j),\qquad
        P_m = \{(b, i, j) : \text{mask}_b(i, j) = m\}

    Parameters
    ----------
    magnitudes : tensor or ndarray, shape ``(B, K, C, H, W)``
        Spectra from :func:`fourier_magnitudes` (or any per-pixel feature with a bin axis).
    masks : tensor or ndarray, int, shape ``(B, H, W)``
        Class label per pixel, in ``[0, num_classes)``.
    num_classes : int
        Number of classes, background included.

    Returns
    -------
    ClassSpectra
    """
    mag = as_numpy(magnitudes, name="magnitudes", ndim=5)
    lab = as_numpy(masks, name="masks", ndim=3)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
    b, k, c, h, w = mag.shape
    if lab.shape != (b, h, w):
        raise ValueError(f"masks must have shape (B, H, W) = {(b, h, w)} to match magnitudes {mag.shape}; "
                         f"got {tuple(lab.shape)}")
    lab = lab.astype(np.int64, copy=False)
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"masks hold labels in [{lab.min()}, {lab.max()}]; expected [0, {num_classes})")
    flat = mag.transpose(0, 3, 4, 1, 2).reshape(b * h * w, k * c)  # (B*H*W, K*C): one row per pixel
    onehot = np.zeros((b * h * w, num_classes), dtype=np.float64)
    onehot[np.arange(b * h * w), lab.reshape(-1)] = 1.0
    sums = (onehot.T @ flat.astype(np.float64)).reshape(num_classes, k, c)
    counts = np.bincount(lab.reshape(-1), minlength=num_classes).astype(np.int64)
    return ClassSpectra(sums, counts)


def nearest_mean_accuracy(magnitudes, masks, means, *, foreground_only: bool = True) -> float:
    """Fraction of pixels whose spectrum is closest (Euclidean, all bins and channels) to their own class's mean.

    A number for "the classes separate in frequency": a nearest-class-mean classifier that sees only a pixel's
    spectrum, with no learned readout. With ``foreground_only`` only labelled (non-zero) pixels are scored and the
    background mean is excluded from the candidates.

    Parameters
    ----------
    magnitudes : shape ``(B, K, C, H, W)``
    masks : int, shape ``(B, H, W)``
    means : ndarray ``(num_classes, K, C)``, e.g. :attr:`ClassSpectra.mean` from *other* images (validation set).

    Returns
    -------
    float in [0, 1]; NaN if no pixel is scored.
    """
    hits, scored = _nearest_mean_hits(magnitudes, masks, means, foreground_only=foreground_only)
    return hits / scored if scored else float("nan")


def _nearest_mean_hits(magnitudes, masks, means, *, foreground_only: bool = True) -> tuple[int, int]:
    """``(pixels classified right, pixels scored)`` of :func:`nearest_mean_accuracy`."""
    mag = as_numpy(magnitudes, name="magnitudes", ndim=5)
    lab = as_numpy(masks, name="masks", ndim=3).astype(np.int64)
    means = np.asarray(means, dtype=np.float64)
    b, k, c, h, w = mag.shape
    if means.ndim != 3 or means.shape[1:] != (k, c):
        raise ValueError(f"means must have shape (num_classes, {k}, {c}); got {means.shape}")
    flat = mag.transpose(0, 3, 4, 1, 2).reshape(-1, k * c).astype(np.float64)  # (pixels, K*C)
    labels = lab.reshape(-1)
    centres = means.reshape(means.shape[0], k * c)
    candidates = np.arange(means.shape[0])
    if foreground_only:
        keep = labels > 0
        flat, labels, candidates = flat[keep], labels[keep], candidates[1:]
    valid = ~np.isnan(centres[candidates]).any(axis=1)
    candidates = candidates[valid]
    if labels.size == 0 or candidates.size == 0:
        return 0, 0
    cand = centres[candidates]                                                   # (classes, K*C)
    # squared distances without a (pixels, classes, K*C) temporary: |x|^2 - 2 x.m + |m|^2
    d2 = (flat ** 2).sum(1, keepdims=True) - 2.0 * flat @ cand.T + (cand ** 2).sum(1)[None, :]  # (pixels, classes)
    return int((candidates[d2.argmin(1)] == labels).sum()), int(labels.size)


@torch.no_grad()
def _model_magnitudes(model: torch.nn.Module, batches: Iterable) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(fourier_magnitudes of the hidden states, masks)`` of each ``(images, masks)`` batch, one at a time."""
    model.eval()
    device = next(model.parameters()).device
    for images, masks in batches:
        _, states = model(images.to(device), return_states=True)  # states (B, T, C, H, W)
        yield fourier_magnitudes(states), masks


@torch.no_grad()
def model_nearest_mean_accuracy(model: torch.nn.Module, batches: Iterable, means, *,
                                foreground_only: bool = True) -> float:
    """:func:`nearest_mean_accuracy` of a recurrent model's hidden-state spectra over ``(images, masks)`` batches,
    one batch in memory at a time (64 Polygons images at T = 500 hold 1 GB of states).

    Examples
    --------
    >>> from twi_core.models import build
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = build("nwm", in_channels=1, num_classes=3, image_size=8, steps=6, readout="fft")
    >>> x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 3, (4, 8, 8))
    >>> means = model_class_spectra(model, [(x, y)], num_classes=3).mean
    >>> whole = nearest_mean_accuracy(fourier_magnitudes(model(x, return_states=True)[1]), y, means)
    >>> bool(np.isclose(model_nearest_mean_accuracy(model, [(x[:3], y[:3]), (x[3:], y[3:])], means), whole))
    True
    """
    hits = scored = 0
    for magnitudes, masks in _model_magnitudes(model, batches):
        h, n = _nearest_mean_hits(magnitudes, masks, means, foreground_only=foreground_only)
        hits, scored = hits + h, scored + n
    return hits / scored if scored else float("nan")


@torch.no_grad()
def model_class_spectra(model: torch.nn.Module, batches: Iterable, *, num_classes: int) -> ClassSpectra:
    """Run a recurrent model over ``(images, masks)`` batches and accumulate the class spectra of its hidden states.

    Memory stays at one batch: the spectra are summed per class as the batches pass.

    Parameters
    ----------
    model : a recurrent model of :mod:`twi_core.models` (``model(x, return_states=True) -> (logits, states)``).
    batches : iterable of ``(images (B, C_in, H, W), masks (B, H, W))``, e.g. a ``DataLoader``.
    num_classes : int
    """
    total: ClassSpectra | None = None
    for magnitudes, masks in _model_magnitudes(model, batches):
        part = class_spectra(magnitudes, masks, num_classes=num_classes)
        total = part if total is None else total.merge(part)
    if total is None:
        raise ValueError("batches is empty; expected at least one (images, masks) batch")
    return total
