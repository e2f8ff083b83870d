r"""The recurrences of the paper's models: one pure function per update (the specification).

Everything else (the modules in :mod:`twi_core.models.nwm` and :mod:`twi_core.models.conv_lstm`, the fast engine in
:mod:`twi_core.models.engine`) calls these functions or is tested against them.

Neural Wave Machine (NWM)
-------------------------
A field of damped coupled oscillators on the pixel grid, :math:`y, z \in \mathbb R^{C\times H\times W}`:

.. math::

    \ddot y = \tanh(W_y \circledast y) - \omega(x)\odot y - \alpha(x)\odot \dot y ,

discretised with symplectic (semi-implicit) Euler, explicit in the damping (as in coRNN and the authors' code):

.. math::

    z_{t+1} &= z_t + \Delta t\,\big(\tanh(W_y \circledast_{\mathrm{circ}} y_t) - \omega\odot y_t - \alpha\odot z_t\big) \\
    y_{t+1} &= y_t + \Delta t\, z_{t+1}

Conv-LSTM
---------
.. math::

    [i, f, g, o] &= \mathrm{Conv}_{\mathrm{circ}}([\tilde y_t; h_t]),\quad i,f,o \leftarrow \sigma(\cdot),\ g \leftarrow \tanh(g) \\
    c_{t+1} &= f\odot c_t + i\odot g,\qquad h_{t+1} = o\odot\tanh(c_{t+1}),\qquad \tilde y_{t+1} = \mathrm{MLP}(h_{t+1})
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "LSTMState",
    "NWMState",
    "circular_conv2d",
    "conv_lstm_rollout",
    "conv_lstm_step",
    "laplacian_kernel",
    "nwm_rollout_plain",
    "nwm_step",
]


class NWMState(NamedTuple):
    """State of the NWM oscillator field."""

    y: torch.Tensor  # (B, C, H, W) position (the hidden state the readouts see)
    z: torch.Tensor  # (B, C, H, W) velocity dy/dt


class LSTMState(NamedTuple):
    """State of the autonomous Conv-LSTM loop."""

    y: torch.Tensor  # (B, C, H, W) MLP transform of the previous hidden state: the next step's input (recorded)
    h: torch.Tensor  # (B, C, H, W) LSTM hidden state
    c: torch.Tensor  # (B, C, H, W) LSTM cell state


def laplacian_kernel(channels: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 5-point discrete Laplacian on the channel diagonal of a ``(C, C, 3, 3)`` kernel, zeros elsewhere.

    This is the NWM's coupling initialisation: at init each channel is an independent discrete wave equation.

    Examples
    --------
    >>> laplacian_kernel(2)[0, 0]
    tensor([[ 0.,  1.,  0.],
            [ 1., -4.,  1.],
            [ 0.,  1.,  0.]])
    >>> float(laplacian_kernel(2)[0, 1].abs().sum())
    0.0
    """
    stencil = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=dtype)
    weight = torch.zeros(channels, channels, 3, 3, dtype=dtype)
    for i in range(channels):
        weight[i, i] = stencil
    return weight


def circular_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A 'same' convolution on the torus (periodic boundary), as ``Conv2d(padding_mode='circular')``.

    Parameters
    ----------
    x : Tensor, shape (B, C_in, H, W)
    weight : Tensor, shape (C_out, C_in, k, k), k odd
    bias : Tensor, shape (C_out,), optional
    """
    p = weight.shape[-1] // 2
    return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), weight, bias)  # (B, C_out, H, W)


def nwm_step(
    state: NWMState,
    *,
    omega: torch.Tensor,
    alpha: torch.Tensor,
    coupling_weight: torch.Tensor,
    dt: float,
) -> NWMState:
    r"""One symplectic-Euler step of the Neural Wave Machine.

    .. math::

        z_{t+1} &= z_t + \Delta t\,\big(\tanh(W_y \circledast_{\mathrm{circ}} y_t) - \omega\odot y_t - \alpha\odot z_t\big) \\
        y_{t+1} &= y_t + \Delta t\, z_{t+1}

    The tanh wraps only the coupling; restoring force and damping are linear. The coupling is a 3×3 convolution with
    circular padding (the grid is a torus), so information moves at most one pixel per step.

    Parameters
    ----------
    state : NWMState
        ``y`` and ``z``, each of shape (B, C, H, W).
    omega, alpha : Tensor, shape (B, C, H, W)
        Natural frequency (stiffness) and damping, input-dependent, non-negative in the model.
    coupling_weight : Tensor, shape (C, C, 3, 3)
        :math:`W_y` (no bias).
    dt : float
        The time step :math:`\Delta t`.

    Returns
    -------
    NWMState
        The state after one step.

    References
    ----------
    Jacobs et al. (2025), the NWM update; Rusch & Mishra (2021), coRNN; Keller & Welling (2023), Neural Wave Machines.

    Examples
    --------
    >>> one = torch.ones(1, 1, 4, 4)
    >>> s = nwm_step(NWMState(one, 0 * one), omega=one, alpha=0 * one, coupling_weight=laplacian_kernel(1), dt=0.1)
    >>> round(float(s.y[0, 0, 0, 0]), 6), round(float(s.z[0, 0, 0, 0]), 6)
    (0.99, -0.1)
    """
    y, z = state
    coupling = torch.tanh(circular_conv2d(y, coupling_weight))  # (B, C, H, W)
    z = z + dt * (coupling - omega * y - alpha * z)
    y = y + dt * z
    return NWMState(y, z)


def nwm_rollout_plain(
    y0: torch.Tensor,
    omega: torch.Tensor,
    alpha: torch.Tensor,
    coupling_weight: torch.Tensor,
    *,
    dt: float,
    steps: int,
) -> torch.Tensor:
    """Run :func:`nwm_step` ``steps`` times from ``(y0, z0 = 0)`` and stack the positions.

    Parameters
    ----------
    y0, omega, alpha : Tensor, shape (B, C, H, W)
    coupling_weight : Tensor, shape (C, C, 3, 3)
    dt : float
    steps : int
        T, the number of steps.

    Returns
    -------
    Tensor, shape (B, T, C, H, W)
        :math:`[y_1, \\dots, y_T]` (the initial state is not included, as in the authors' code).
    """
    state = NWMState(y0, torch.zeros_like(y0))
    ys = []
    for _ in range(steps):
        state = nwm_step(state, omega=omega, alpha=alpha, coupling_weight=coupling_weight, dt=dt)
        ys.append(state.y)
    return torch.stack(ys, dim=1)  # (B, T, C, H, W)


def conv_lstm_step(
    state: LSTMState,
    *,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
) -> LSTMState:
    r"""One step of the autonomous Conv-LSTM baseline.

    .. math::

        [i, f, g, o] &= W \circledast_{\mathrm{circ}} [\tilde y_t; h_t] + b,\quad i,f,o \leftarrow \sigma(\cdot),\
        g \leftarrow \tanh(g) \\
        c_{t+1} &= f\odot c_t + i\odot g,\qquad h_{t+1} = o\odot\tanh(c_{t+1}),\qquad
        \tilde y_{t+1} = \mathrm{MLP}(h_{t+1})

    The input to the cell is the previous MLP output (there is no external input per step); the gates come in the
    order input, forget, candidate, output, each a block of C consecutive channels.

    Parameters
    ----------
    state : LSTMState
        ``y``, ``h``, ``c``, each (B, C, H, W).
    conv_weight : Tensor, shape (4C, 2C, 3, 3)
    conv_bias : Tensor, shape (4C,)
    transform : callable
        The per-pixel MLP, (B, C, H, W) -> (B, C, H, W).
    """
    y, h, c = state
    gates = circular_conv2d(torch.cat([y, h], dim=1), conv_weight, conv_bias)  # (B, 4C, H, W)
    i, f, g, o = torch.chunk(gates, 4, dim=1)  # each (B, C, H, W)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return LSTMState(transform(h), h, c)


def conv_lstm_rollout(
    y0: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    *,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
) -> torch.Tensor:
    """Run :func:`conv_lstm_step` ``steps`` times and stack the recorded states ``[ỹ_1, ..., ỹ_T]`` as (B, T, C, H, W)."""
    state = LSTMState(y0, h0, c0)
    ys = []
    for _ in range(steps):
        state = conv_lstm_step(state, conv_weight=conv_weight, conv_bias=conv_bias, transform=transform)
        ys.append(state.y)
    return torch.stack(ys, dim=1)  # (B, T, C, H, W)
