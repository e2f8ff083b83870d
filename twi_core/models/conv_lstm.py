r"""The Conv-LSTM baseline: an autonomous convolutional LSTM whose recorded states are read out like the NWM's.

.. math::

    \tilde y_0 = f_y(x),\quad h_0 = f_h(x),\quad c_0 = f_c(x) \\
    [i, f, g, o] = W \circledast_{\mathrm{circ}} [\tilde y_t; h_t] + b,\qquad
    c_{t+1} = \sigma(f)\odot c_t + \sigma(i)\odot\tanh(g),\qquad h_{t+1} = \sigma(o)\odot\tanh(c_{t+1}),\qquad
    \tilde y_{t+1} = \mathrm{MLP}(h_{t+1})

(the step lives in :func:`twi_core.models.dynamics.conv_lstm_step`). The recorded sequence is
:math:`\tilde y_1..\tilde y_T` (the per-pixel MLP transform of h, unbounded), as in the authors' code; the loop has no
external input per step and no Δt. T = 20 in every experiment of the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from twi_core.models._common import check_input, check_positive_int, config_dict, conv_stack, weight_dtype
from twi_core.models.dynamics import conv_lstm_rollout
from twi_core.models.readouts import PixelMLP, check_head, check_readout, num_frequency_bins

__all__ = ["ConvLSTM", "ConvLSTMConfig"]


@dataclass(frozen=True)
class ConvLSTMConfig:
    """Configuration of a :class:`ConvLSTM` (the keyword arguments of ``build('lstm', ...)``)."""

    in_channels: int  # C_in
    num_classes: int  # n, background included
    image_size: int  # H = W of the inputs this model accepts
    hidden_channels: int = 2  # C, LSTM channels
    mid_channels: int = 16  # C_m, width of the encoders
    steps: int = 20  # T
    readout: str = "linear"  # temporal readout, a key of READOUTS
    head: str = "default"  # per-pixel MLP, a key of HEADS

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "image_size", "hidden_channels", "mid_channels", "steps"):
            check_positive_int(name, getattr(self, name))
        check_readout(self.readout)
        check_head(self.head)


class ConvLSTM(nn.Module):
    """The Conv-LSTM baseline (the authors' ``conv_recurrent2`` with ``cell_type='lstm'``).

    Attributes
    ----------
    y0_encoder : nn.Sequential
        4-layer ReLU CNN with final tanh: the first input :math:`\\tilde y_0`.
    h0_encoder, c0_encoder : nn.Sequential
        3-layer ReLU CNNs, linear output: :math:`h_0`, :math:`c_0`.
    cell : nn.Conv2d
        2C → 4C, 3×3, circular padding, with bias; gates in the order i, f, g, o.
    transform : nn.Sequential
        Per-pixel MLP C → 2C → C (ReLU between), applied to h.
    time_projection : nn.Linear
        T → T//2 + 1, no bias; used only by the ``linear`` readout (present always, as in the authors' code).
    head : PixelMLP

    Examples
    --------
    >>> model = ConvLSTM(in_channels=3, num_classes=6, image_size=8, steps=4)
    >>> logits, states = model(torch.rand(2, 3, 8, 8), return_states=True)
    >>> tuple(logits.shape), tuple(states.shape)
    ((2, 6, 8, 8), (2, 4, 2, 8, 8))
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = ConvLSTMConfig(**config)
        self.settings = cfg
        self.config = config_dict("lstm", cfg)
        c_in, c_m, c = cfg.in_channels, cfg.mid_channels, cfg.hidden_channels
        readout = check_readout(cfg.readout)
        # The authors' construction order: head, ỹ₀, h₀, c₀, LSTM conv, transform, time projection.
        self.head = PixelMLP(readout.num_features(channels=c, steps=cfg.steps), check_head(cfg.head), cfg.num_classes)
        self.y0_encoder = conv_stack(c_in, c_m, c, layers=4, activation=nn.Tanh())
        self.h0_encoder = conv_stack(c_in, c_m, c, layers=3, activation=None)
        self.c0_encoder = conv_stack(c_in, c_m, c, layers=3, activation=None)
        self.cell = nn.Conv2d(2 * c, 4 * c, 3, padding=1, padding_mode="circular")
        self.transform = nn.Sequential(nn.Linear(c, 2 * c), nn.ReLU(), nn.Linear(2 * c, c))
        self.time_projection = nn.Linear(cfg.steps, num_frequency_bins(cfg.steps), bias=False)
        self._readout = readout

    def _transform(self, h: torch.Tensor) -> torch.Tensor:
        return self.transform(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, C, H, W) -> (B, H, W, C) -> back

    def forward(self, x: torch.Tensor, *, return_states: bool = False):
        """Logits ``(B, n, H, W)``; with ``return_states`` also the recorded states ``(B, T, C, H, W)``."""
        cfg = self.settings
        check_input(x, in_channels=cfg.in_channels, image_size=cfg.image_size, dtype=weight_dtype(self))
        y0, h0, c0 = self.y0_encoder(x), self.h0_encoder(x), self.c0_encoder(x)  # each (B, C, H, W)
        states = conv_lstm_rollout(
            y0, h0, c0, conv_weight=self.cell.weight, conv_bias=self.cell.bias, transform=self._transform, steps=cfg.steps
        )  # (B, T, C, H, W)
        logits = self.head(self._readout(states, self.time_projection.weight))  # (B, n, H, W)
        return (logits, states) if return_states else logits
