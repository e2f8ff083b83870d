r"""Effective receptive fields: which input pixels an output pixel depends on, measured by gradients.

The paper's claim in chapter 4: a locally connected recurrent network whose hidden state carries waves integrates
information from far away, because every step of the recurrence widens the region of the image that can influence a
neuron. With a 3×3 recurrent kernel the *theoretical* receptive field grows by one pixel in every direction per step;
the *effective* receptive field {Luo et al. 2016} is where the influence actually lands:

.. math::

    R_t(\mathbf q) = \sum_{c_{\rm in}} \left| \frac{\partial\, \textstyle\sum_c y_t(c, \mathbf p)}
    {\partial x(c_{\rm in}, \mathbf q)} \right| \qquad\text{(hidden state at step } t\text{, output pixel } \mathbf p)

and for the final output, the logit of one class at :math:`\mathbf p`,
:math:`R(\mathbf q) = \sum_{c_{\rm in}} |\partial\, \ell_k(\mathbf p) / \partial x(c_{\rm in}, \mathbf q)|`.
Feed-forward models (CNN, U-Net) have only the latter; recurrent models (NWM, Conv-LSTM) have one map per step.

:func:`mass_radius` summarises a map by the radius of the disc around :math:`\mathbf p` that holds a given share of the
gradient mass (on a torus when the model pads circularly, as the NWM does).

Models follow the package contract (:mod:`twi_core.models`): ``model(x)`` returns logits ``(B, n, H, W)``; recurrent ones
``model(x, return_states=True)`` returns ``(logits, states)`` with states ``(B, T, C, H, W)``. Put models in eval mode
first (batch-norm statistics).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["distance_map", "feedforward_size", "input_gradient", "mass_radius", "state_gradients"]


def _image(image) -> torch.Tensor:
    """One image as a float32 ``(1, C, H, W)`` leaf tensor that requires grad."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor or numpy.ndarray; got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None]                                               # (C, H, W) -> (1, C, H, W)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be one image, shape (C, H, W) or (1, C, H, W); got {tuple(image.shape)}")
    return image.detach().to(torch.float32).clone().requires_grad_(True)


def _pixel(pixel, shape) -> tuple[int, int]:
    if (not isinstance(pixel, (tuple, list)) or len(pixel) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pixel)):
        raise TypeError(f"pixel must be a (row, column) pair of ints; got {pixel!r}")
    i, j = int(pixel[0]), int(pixel[1])
    if not (0 <= i < shape[0] and 0 <= j < shape[1]):
        raise ValueError(f"pixel {pixel!r} lies outside the image of size {tuple(shape)}")
    return i, j


def _device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def input_gradient(model: torch.nn.Module, image, *, pixel, target: int | None = None) -> np.ndarray:
    r"""Effective receptive field of one output logit: :math:`\sum_{c_{in}}|\partial \ell_k(\mathbf p)/\partial x|`.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(B, n, H, W)`` from ``model(x)``.
    image : torch.Tensor or numpy.ndarray, shape ``(C, H, W)`` or ``(1, C, H, W)``
    pixel : (int, int)
        Output pixel :math:`\mathbf p` (row, column).
    target : int or None
        Class k of the logit; ``None`` takes the class the model predicts at ``pixel``.

    Returns
    -------
    numpy.ndarray, float64, shape ``(H, W)``
    """
    x = _image(image).to(_device(model))
    i, j = _pixel(pixel, x.shape[-2:])
    with torch.enable_grad():
        logits = model(x)                                                 # (1, n, H, W)
        if isinstance(logits, tuple):
            logits = logits[0]
        n = logits.shape[1]
        if target is None:
            k = int(logits[0, :, i, j].argmax())
        elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            k = int(target)
        else:
            k = -1
        if not 0 <= k < n:
            raise ValueError(f"target must be a class index in [0, {n}) or None; got {target!r}")
        (grad,) = torch.autograd.grad(logits[0, k, i, j], x)              # (1, C, H, W)
    return grad[0].abs().sum(0).detach().cpu().double().numpy()


def state_gradients(model: torch.nn.Module, image, *, pixel, times: Sequence[int] | None = None) -> np.ndarray:
    r"""Effective receptive field of a recurrent model's hidden state at one pixel, step by step.

    For each step t in ``times``: :math:`\sum_{c_{in}}|\partial(\sum_c y_t(c, \mathbf p))/\partial x|`. One forward pass,
    one backward pass per step.

    Parameters
    ----------
    model : torch.nn.Module
        Recurrent: ``model(x, return_states=True)`` returns ``(logits, states (B, T, C, H, W))``.
    image, pixel
        As in :func:`input_gradient`.
    times : sequence of int, optional
        Steps (indices into the state sequence); default all.

    Returns
    -------
    numpy.ndarray, float64, shape ``(len(times), H, W)``
    """
    x = _image(image).to(_device(model))
    i, j = _pixel(pixel, x.shape[-2:])
    with torch.enable_grad():
        out = model(x, return_states=True)
        if not isinstance(out, tuple) or len(out) != 2 or not isinstance(out[1], torch.Tensor) or out[1].ndim != 5:
            raise TypeError("model(x, return_states=True) must return (logits, states) with states (B, T, C, H, W); "
                            f"{type(model).__name__} does not")
        states = out[1]                                                   # (1, T, C, H, W)
        steps = states.shape[1]
        idx = list(range(steps)) if times is None else [int(t) for t in times]
        bad = [t for t in idx if not -steps <= t < steps]
        if bad:
            raise ValueError(f"times {bad} are outside the {steps} steps of the state sequence")
        maps = []
        for n, t in enumerate(idx):
            (grad,) = torch.autograd.grad(states[0, t, :, i, j].sum(), x, retain_graph=n < len(idx) - 1,
                                          allow_unused=True)
            maps.append(torch.zeros_like(x[0, 0]) if grad is None else grad[0].abs().sum(0))
    return torch.stack(maps).detach().cpu().double().numpy()


def distance_map(shape, *, center, periodic: bool = False) -> np.ndarray:
    """Euclidean distance (px) of every pixel of a ``shape = (H, W)`` grid from ``center``; on a torus if ``periodic``.

    >>> float(distance_map((5, 5), center=(0, 0), periodic=True)[0, 4])
    1.0
    """
    h, w = int(shape[0]), int(shape[1])
    ci, cj = _pixel(center, (h, w))
    di = np.abs(np.arange(h) - ci)[:, None].astype(np.float64)            # (H, 1)
    dj = np.abs(np.arange(w) - cj)[None, :].astype(np.float64)            # (1, W)
    if periodic:
        di, dj = np.minimum(di, h - di), np.minimum(dj, w - dj)
    return np.hypot(di, dj)


def mass_radius(grad_map, *, center, mass: float = 0.9, periodic: bool = False) -> float:
    """Smallest radius (px) around ``center`` whose disc holds at least ``mass`` of the map's total.

    Parameters
    ----------
    grad_map : numpy.ndarray, shape ``(H, W)``, non-negative
    center : (int, int)
    mass : float in (0, 1]
    periodic : bool
        Measure distance on a torus (models with circular padding).

    Returns
    -------
    float
        ``nan`` for an all-zero map.

    >>> g = np.zeros((9, 9)); g[4, 4] = 1.0; g[4, 7] = 1.0
    >>> mass_radius(g, center=(4, 4), mass=0.5), mass_radius(g, center=(4, 4), mass=1.0)
    (0.0, 3.0)
    """
    g = np.asarray(grad_map, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"grad_map must be a 2-D (H, W) map; got shape {g.shape}")
    if np.any(g < 0):
        raise ValueError("grad_map must be non-negative (take absolute gradients)")
    if not isinstance(mass, (int, float)) or isinstance(mass, bool) or not 0 < mass <= 1:
        raise ValueError(f"mass must be a fraction in (0, 1]; got {mass!r}")
    total = g.sum()
    if total == 0:
        return float("nan")
    d = distance_map(g.shape, center=center, periodic=periodic).ravel()
    order = np.argsort(d, kind="stable")
    cum = np.cumsum(g.ravel()[order])
    k = int(np.searchsorted(cum, mass * total * (1 - 1e-12)))
    return float(d[order][min(k, d.size - 1)])


def feedforward_size(module: torch.nn.Module) -> int:
    r"""Side (px) of the theoretical receptive field of a chain of stride-1 convolutions (the paper's Figure 7).

    Each :math:`k\times k` convolution with dilation :math:`d` widens it by :math:`(k-1)d`:
    :math:`s = 1 + \sum_\ell (k_\ell - 1) d_\ell`. Every ``Conv2d`` inside ``module`` is taken to lie on one path,
    so pass one encoder (``nwm.y0_encoder``), not a model whose encoders run in parallel.

    Raises
    ------
    ValueError
        A convolution with a stride other than 1 (the formula would not hold), or no convolution at all.

    Examples
    --------
    >>> from twi_core.models import build, paper_config
    >>> nwm = build(**paper_config("tetrominoes", "nwm", "linear"))
    >>> feedforward_size(nwm.y0_encoder), feedforward_size(nwm.omega_encoder)
    (9, 7)
    >>> feedforward_size(build(**paper_config("tetrominoes", "cnn", 8)).encoder)
    17
    """
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(module).__name__} holds no Conv2d; pass an encoder")
    size = 1
    for conv in convs:
        if tuple(conv.stride) != (1, 1):
            raise ValueError(f"{conv} has stride {conv.stride}; feedforward_size needs stride-1 convolutions")
        size += max((k - 1) * d for k, d in zip(conv.kernel_size, conv.dilation))
    return size
