r"""Temporal readouts over a hidden-state sequence, and the per-pixel MLP heads.

A readout reduces the recurrent hidden states :math:`Y \in \mathbb R^{B\times T\times C\times H\times W}` to per-pixel
features (returned channels-last, ``(B, H, W, F)``); a head, shared by every pixel, maps those features to class logits.
Every pixel sees only its own time series, so all spatial integration has to happen in the recurrence.

==========  ====================================================================  =================
readout     features per pixel and channel                                        F
==========  ====================================================================  =================
``last``    :math:`y_T`                                                           C
``mean``    :math:`\frac1T\sum_t y_t`                                             C
``max``     :math:`\max_t y_t`                                                    C
``fft``     :math:`|\sum_{t} y_t e^{-2\pi i k t/T}|,\ k = 0..T/2` (unnormalised)   K·C
``linear``  :math:`\sum_t W^{\mathrm{time}}_{k t}\, y_t` with a learned                K·C
            :math:`W^{\mathrm{time}} \in \mathbb R^{K\times T}`
==========  ====================================================================  =================

with :math:`K` = :func:`num_frequency_bins` ``(T) = T // 2 + 1`` (DC and Nyquist included, as in the authors' code; the
paper's text says T/2). Features are ordered frequency-major, index ``k * C + c``, as the authors' checkpoints expect.
The ``fft`` features are the magnitudes of the real FFT (``torch.fft.rfft``, no normalisation), as in the authors' code;
the paper's appendix speaks of "the real component of the discrete Fourier transform", which we read as the real FFT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from twi_core.models.head import pixel_mlp

__all__ = ["HEADS", "READOUTS", "PixelMLP", "Readout", "check_readout", "check_head", "num_frequency_bins"]


def num_frequency_bins(steps: int) -> int:
    """The number of temporal features per channel of the ``fft`` and ``linear`` readouts: ``T // 2 + 1``.

    The one place this size is derived (the authors compute it three ways, in ``readouts.py``, ``cornn_model2.py`` and
    ``conv_recurrent2.py`` of their repository, KempnerInstitute/traveling-waves-integrate).

    Examples
    --------
    >>> num_frequency_bins(100), num_frequency_bins(20), num_frequency_bins(500)
    (51, 11, 251)
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return steps // 2 + 1


def _last(states: torch.Tensor, time_weight: torch.Tensor | None) -> torch.Tensor:
    return states[:, -1].permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)


def _mean(states: torch.Tensor, time_weight: torch.Tensor | None) -> torch.Tensor:
    return states.mean(dim=1).permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)


def _max(states: torch.Tensor, time_weight: torch.Tensor | None) -> torch.Tensor:
    return states.max(dim=1).values.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)


def _fft(states: torch.Tensor, time_weight: torch.Tensor | None) -> torch.Tensor:
    b, _, c, h, w = states.shape
    spectrum = torch.fft.rfft(states, dim=1).abs()  # (B, K, C, H, W), unnormalised magnitude
    return spectrum.permute(0, 3, 4, 1, 2).reshape(b, h, w, -1)  # (B, H, W, K, C) -> (B, H, W, K*C)


def _linear(states: torch.Tensor, time_weight: torch.Tensor | None) -> torch.Tensor:
    if time_weight is None:
        raise ValueError("the 'linear' readout needs time_weight of shape (K, T); got None")
    b, _, c, h, w = states.shape
    projected = torch.einsum("kt,btchw->bhwkc", time_weight, states)  # (B, H, W, K, C)
    return projected.reshape(b, h, w, -1)  # (B, H, W, K*C)


@dataclass(frozen=True)
class Readout:
    """A temporal reduction ``(B, T, C, H, W) -> (B, H, W, F)`` and its feature count."""

    reduce: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]  # (states, time_weight) -> features
    spectral: bool  # True: F = num_frequency_bins(T) * C; False: F = C
    uses_time_weight: bool  # True only for 'linear': the learned time projection gets gradients

    def num_features(self, *, channels: int, steps: int) -> int:
        """F, the head's input size, for ``channels`` hidden channels and ``steps`` time steps."""
        return num_frequency_bins(steps) * channels if self.spectral else channels

    def __call__(self, states: torch.Tensor, time_weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.reduce(states, time_weight)


#: The temporal readouts by name (the authors' ``mean_time``/``max_time`` are ``mean``/``max`` here).
READOUTS: dict[str, Readout] = {
    "last": Readout(_last, spectral=False, uses_time_weight=False),
    "mean": Readout(_mean, spectral=False, uses_time_weight=False),
    "max": Readout(_max, spectral=False, uses_time_weight=False),
    "fft": Readout(_fft, spectral=True, uses_time_weight=False),
    "linear": Readout(_linear, spectral=True, uses_time_weight=True),
}

#: Hidden widths of the per-pixel MLP heads: ``default`` is the 4-layer head of Polygons, Tetrominoes and MNIST,
#: ``small`` the 6-layer head of Multi-MNIST (the authors' ``linear_smaller4``).
HEADS: dict[str, tuple[int, ...]] = {
    "default": (256, 256, 256),
    "small": (32, 32, 32, 32, 32),
}


def check_readout(readout: str) -> Readout:
    """The :class:`Readout` named ``readout``; a ValueError listing the valid names otherwise."""
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; expected one of {sorted(READOUTS)}")
    return READOUTS[readout]


def check_head(head: str) -> tuple[int, ...]:
    """The hidden widths of the head named ``head``; a ValueError listing the valid names otherwise."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {sorted(HEADS)}")
    return HEADS[head]


class PixelMLP(nn.Module):
    r"""The same MLP at every pixel: ``Linear, ReLU, ..., Linear`` on channels-last features.

    Applied as one GEMM per layer over all B·H·W pixels of a ``(B, H, W, F)`` input:
    :math:`h_l = \max(h_{l-1} W_l^\top + b_l, 0)`, logits :math:`= h_L W_{L+1}^\top + b_{L+1}`. It equals the 1×1
    convolution form exactly (tested) and is faster on CPU: for the Tetrominoes head (102 → 256 → 256 → 256 → 6, batch
    16, 64×64) forward + backward took 1.6× longer as 1×1 convolutions (median of 7, 2-core CPU, torch 2.13).

    By default (``fused=True``) the forward runs the fused head of :mod:`twi_core.models.head`: one autograd function
    with in-place ReLUs and masks and reused CPU buffers, equal to the ``nn.Sequential`` form to float rounding
    (tested) and 1.5× faster for forward + backward at the Tetrominoes scale (B = 32: 1.3 s against 2.0 s, 2-core
    CPU; ``benchmarks/bench_head.py``), mostly by not page-faulting fresh 134 MB buffers every step.
    :meth:`forward_plain` is that ``nn.Sequential`` form, the specification; ``fused=False`` makes it the forward.
    Parameters, their order and the state-dict keys (``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ...)
    are those of ``self.layers`` in both cases, so the authors' checkpoints load unchanged.

    Parameters
    ----------
    in_features : int
        F.
    hidden : tuple of int
        Hidden widths, e.g. ``(256, 256, 256)``.
    out_features : int
        Number of classes n.
    fused : bool
        Use the fused head in :meth:`forward` (default) or the ``nn.Sequential`` form.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int, *, fused: bool = True) -> None:
        super().__init__()
        widths = (in_features, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], out_features))
        self.layers = nn.Sequential(*layers)
        self.fused = fused

    def forward(self, features: torch.Tensor, *, first_weight: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, H, W, F) -> (B, n, H, W)`` logits.

        ``first_weight`` (h_1, F), if given, replaces the first layer's weight: the NWM passes that weight with its
        columns reordered to the order in which its fast engine lays out the features (same function, and the
        gradient reaches ``layers.0.weight`` through the reordering).
        """
        linears = [m for m in self.layers if isinstance(m, nn.Linear)]
        weights = [m.weight for m in linears]
        if first_weight is not None:
            if tuple(first_weight.shape) != tuple(weights[0].shape):
                raise ValueError(f"first_weight must have shape {tuple(weights[0].shape)}, got "
                                 f"{tuple(first_weight.shape)}")
            weights[0] = first_weight
        if not self.fused:
            if first_weight is None:
                return self.forward_plain(features)
            return self.forward_after_first(F.linear(features, first_weight, linears[0].bias))
        logits = pixel_mlp(features, weights, [m.bias for m in linears])
        return logits.permute(0, 3, 1, 2)  # (B, H, W, n) -> (B, n, H, W)

    def forward_after_first(self, pre: torch.Tensor) -> torch.Tensor:
        r"""The head from its first pre-activation on: :math:`z_1` ``(B, H, W, h_1)`` (bias included) -> ``(B, n, H, W)``.

        ``forward(x)`` equals ``forward_after_first(x @ W_1.T + b_1)``; the NWM uses it when it computes
        :math:`z_1` straight from the states (:func:`twi_core.models.engine.nwm_mixed`).
        """
        if not self.fused:
            return self.layers[1:](pre).permute(0, 3, 1, 2)  # ReLU, Linear, ..., Linear
        linears = [m for m in self.layers if isinstance(m, nn.Linear)][1:]
        logits = pixel_mlp(torch.relu(pre), [m.weight for m in linears], [m.bias for m in linears])
        return logits.permute(0, 3, 1, 2)  # (B, H, W, n) -> (B, n, H, W)

    def forward_plain(self, features: torch.Tensor) -> torch.Tensor:
        """The ``nn.Sequential`` form of :meth:`forward`, ``(B, H, W, F) -> (B, n, H, W)``: the specification."""
        return self.layers(features).permute(0, 3, 1, 2)  # (B, H, W, n) -> (B, n, H, W)
