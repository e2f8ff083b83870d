r"""The Neural Wave Machine (NWM): a field of input-conditioned damped oscillators, read out over time.

.. math::

    \omega = f_\omega(x),\quad \alpha = f_\alpha(x),\quad y_0 = f_y(x),\quad z_0 = 0 \\
    z_{t+1} = z_t + \Delta t\,\big(\tanh(W_y \circledast_{\mathrm{circ}} y_t) - \omega\odot y_t - \alpha\odot z_t\big),
    \qquad y_{t+1} = y_t + \Delta t\, z_{t+1}

(the step itself lives in :func:`twi_core.models.dynamics.nwm_step`), then logits = MLP(readout(:math:`y_1..y_T`)) at
every pixel. The image enters only through :math:`\omega \ge 0` (natural frequency), :math:`\alpha \ge 0` (damping) and
:math:`y_0 \in (-1, 1)`; waves carry information between pixels at most one pixel per step.
"""

from __future__ import annotations

import importlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from twi_core.models._common import check_choice, check_input, check_positive_int, config_dict, conv_stack, weight_dtype
from twi_core.models.dynamics import laplacian_kernel, nwm_rollout_plain
from twi_core.models.readouts import PixelMLP, check_head, check_readout, num_frequency_bins

__all__ = ["ENGINES", "NWM", "NWMConfig", "fuse_linear_head", "max_stable_dt"]

#: The rollout implementations: ``plain`` is the specification (:func:`~twi_core.models.dynamics.nwm_rollout_plain`),
#: ``fast`` is :func:`twi_core.models.engine.nwm_rollout` (proven equal to it by tests), or ``plain`` until that exists.
ENGINES = ("fast", "plain")


def max_stable_dt(*, omega_max: float = 0.0) -> float:
    r"""The largest Δt for which the linearised, undamped NWM step is stable at initialisation.

    Linearising :math:`\tanh(u) \approx u` with the Laplacian coupling, each spatial mode has stiffness
    :math:`\kappa = \mu + \omega` with :math:`\mu \le 8` on the periodic grid (the checkerboard mode). Symplectic Euler
    rotates such a mode by :math:`\theta = 2\arcsin(\Delta t\sqrt\kappa/2)` per step and is stable iff
    :math:`\Delta t^2\kappa \le 4`, so :math:`\Delta t \le 2/\sqrt{8 + \omega_{\max}}`.

    Examples
    --------
    >>> round(max_stable_dt(), 4)
    0.7071
    """
    return 2.0 / math.sqrt(8.0 + omega_max)


@dataclass(frozen=True)
class NWMConfig:
    """Configuration of an :class:`NWM` (the keyword arguments of ``build('nwm', ...)``)."""

    in_channels: int  # C_in: 3 Tetrominoes, 1 MNIST / Multi-MNIST / Polygons
    num_classes: int  # n, background included
    image_size: int  # H = W of the inputs this model accepts
    hidden_channels: int = 2  # C, oscillator channels (16 on Multi-MNIST)
    mid_channels: int = 16  # C_m, width of the encoders
    steps: int = 100  # T, time steps of the rollout (500 for Polygons)
    dt: float = 0.1  # Δt of the symplectic-Euler step
    readout: str = "linear"  # temporal readout, a key of READOUTS
    head: str = "default"  # per-pixel MLP, a key of HEADS
    engine: str = "fast"  # rollout implementation, one of ENGINES

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "image_size", "hidden_channels", "mid_channels", "steps"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not (0 < self.dt < math.inf):
            raise ValueError(f"dt must be a positive finite float, got {self.dt!r}")
        check_readout(self.readout)
        check_head(self.head)
        check_choice("engine", self.engine, ENGINES)
        if self.dt > max_stable_dt():
            warnings.warn(
                f"dt={self.dt} makes the linearised NWM unstable at initialisation: symplectic Euler needs "
                f"dt**2 * (8 + omega) <= 4, i.e. dt <= {max_stable_dt():.4f} even for omega = 0 "
                "(the checkerboard mode of the Laplacian coupling has eigenvalue 8); expect the states to blow up",
                RuntimeWarning,
                stacklevel=4,
            )


def fuse_linear_head(cfg: NWMConfig) -> bool:
    r"""Whether the fast path folds the ``linear`` readout into the head's first layer (same function, reassociated).

    The readout gives K·C features per pixel (K = T//2 + 1) and the first layer maps them to :math:`h_1`:
    K·C·T + K·C·:math:`h_1` multiply-adds per pixel, and K·C numbers held per pixel for the backward pass. Folded,
    :math:`M = W_1 W^{time}` maps the T·C states straight to :math:`h_1`: T·C·:math:`h_1` multiply-adds and
    :math:`h_1` numbers. Folding wins when :math:`T h_1 < K (T + h_1)`, i.e. for a narrow head: the Multi-MNIST NWM
    (C = 16, :math:`h_1` = 32; 816 features per pixel, 3.4 GB at batch 64) but not the 256-wide heads.

    Examples
    --------
    >>> fuse_linear_head(NWMConfig(in_channels=1, num_classes=11, image_size=128, hidden_channels=16, head="small"))
    True
    >>> fuse_linear_head(NWMConfig(in_channels=3, num_classes=6, image_size=64))
    False
    """
    if cfg.readout != "linear" or cfg.engine != "fast":
        return False
    from twi_core.models.readouts import HEADS

    h1, bins = HEADS[cfg.head][0], num_frequency_bins(cfg.steps)
    return cfg.steps * h1 < bins * (cfg.steps + h1)


def _fast_engine():
    """The fast engine module, or None while it does not exist yet."""
    try:
        return importlib.import_module("twi_core.models.engine")
    except ModuleNotFoundError as error:
        if error.name != "twi_core.models.engine":
            raise
        return None


class NWM(nn.Module):
    """The Neural Wave Machine of the paper (the authors' ``cornn_model2``).

    Parameters
    ----------
    **config
        The fields of :class:`NWMConfig`.

    Attributes
    ----------
    omega_encoder, alpha_encoder : nn.Sequential
        3-layer ReLU CNNs C_in → C_m → C_m → C, with a final ReLU (ω, α ≥ 0).
    y0_encoder : nn.Sequential
        4-layer ReLU CNN C_in → C_m → C_m → C_m → C, with a final tanh.
    coupling : nn.Conv2d
        :math:`W_y`: C → C, 3×3, circular padding, no bias, initialised to the 5-point Laplacian on the channel diagonal
        (each channel starts as an independent discrete wave equation); trained without constraint.
    time_projection : nn.Linear
        :math:`W^{time}`: T → K = T//2 + 1, no bias. Present in every NWM (as in the authors' code); only the ``linear``
        readout uses it, so for the other readouts it is an untrained parameter that still counts.
    head : PixelMLP
        The per-pixel MLP.

    Examples
    --------
    >>> model = NWM(in_channels=1, num_classes=3, image_size=8, steps=6)
    >>> logits, states = model(torch.rand(2, 1, 8, 8), return_states=True)
    >>> tuple(logits.shape), tuple(states.shape)
    ((2, 3, 8, 8), (2, 6, 2, 8, 8))
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = NWMConfig(**config)
        self.settings = cfg
        self.config = config_dict("nwm", cfg)
        c_in, c_m, c = cfg.in_channels, cfg.mid_channels, cfg.hidden_channels
        readout = check_readout(cfg.readout)
        # Built in the authors' order (head, ω, α, y₀, W_y, time projection) so that one seed gives the same weights.
        self.head = PixelMLP(readout.num_features(channels=c, steps=cfg.steps), check_head(cfg.head), cfg.num_classes)
        self.omega_encoder = conv_stack(c_in, c_m, c, layers=3, activation=nn.ReLU())
        self.alpha_encoder = conv_stack(c_in, c_m, c, layers=3, activation=nn.ReLU())
        self.y0_encoder = conv_stack(c_in, c_m, c, layers=4, activation=nn.Tanh())
        self.coupling = nn.Conv2d(c, c, 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.coupling.weight.copy_(laplacian_kernel(c))
        self.time_projection = nn.Linear(cfg.steps, num_frequency_bins(cfg.steps), bias=False)
        self._readout = readout

    def rollout(self, y0: torch.Tensor, omega: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The oscillator states ``(B, T, C, H, W)`` through the configured engine (the one seam to the fast path)."""
        cfg = self.settings
        if cfg.engine == "fast":
            engine = _fast_engine()
            if engine is not None:
                return engine.nwm_rollout(
                    y0, omega, alpha, self.coupling.weight, dt=cfg.dt, steps=cfg.steps, readout=None
                )
        return nwm_rollout_plain(y0, omega, alpha, self.coupling.weight, dt=cfg.dt, steps=cfg.steps)

    def forward(self, x: torch.Tensor, *, return_states: bool = False):
        """Logits ``(B, n, H, W)`` for images ``x`` ``(B, C_in, H, W)``; with ``return_states`` also ``(B, T, C, H, W)``.

        Raises
        ------
        ValueError
            Wrong channel count or size, NaN or infinite input.
        """
        cfg = self.settings
        check_input(x, in_channels=cfg.in_channels, image_size=cfg.image_size, dtype=weight_dtype(self))
        omega, alpha, y0 = self.omega_encoder(x), self.alpha_encoder(x), self.y0_encoder(x)  # each (B, C, H, W)
        engine = _fast_engine() if cfg.engine == "fast" and not return_states else None
        if engine is not None and fuse_linear_head(cfg):
            # z_1 = W_1 readout(y) + b_1 = sum_t,c M[:, t, c] y_t[c] + b_1 with M = W_1 (as h1 x K x C) . W_time:
            # the K*C readout features per pixel are never formed (see fuse_linear_head).
            first = self.head.layers[0]
            bins = num_frequency_bins(cfg.steps)
            mix = torch.einsum("pkc,kt->ptc", first.weight.view(-1, bins, cfg.hidden_channels),
                               self.time_projection.weight)  # (h1, T, C)
            pre = engine.nwm_mixed(y0, omega, alpha, self.coupling.weight, mix, dt=cfg.dt, steps=cfg.steps)
            return self.head.forward_after_first(pre + first.bias)  # (B, n, H, W)
        if hasattr(engine, "nwm_features"):  # the fast engine reduces over time online: no (B, T, C, H, W) states
            spectral = cfg.readout in ("fft", "linear")  # K*C features per pixel, computed channel-major
            features = engine.nwm_features(
                y0, omega, alpha, self.coupling.weight, dt=cfg.dt, steps=cfg.steps, readout=cfg.readout,
                time_weight=self.time_projection.weight, channel_major=spectral,
            )  # (B, H, W, F)
            if not spectral:
                return self.head(features)  # (B, n, H, W)
            # The same head on features ordered c*K + k: its first layer's columns reordered from k*C + c to match
            # (a 256 x 102 copy instead of a transposing copy of the B*H*W x 102 features and of their gradient).
            first = self.head.layers[0].weight
            bins = num_frequency_bins(cfg.steps)
            reordered = first.view(-1, bins, cfg.hidden_channels).transpose(1, 2).reshape(first.shape[0], -1)
            return self.head(features, first_weight=reordered)  # (B, n, H, W)
        states = self.rollout(y0, omega, alpha)  # (B, T, C, H, W)
        logits = self.head(self._readout(states, self.time_projection.weight))  # (B, n, H, W)
        return (logits, states) if return_states else logits
