r"""The feed-forward CNN baseline of depth L: a receptive field of (2L + 1)² pixels, then the same per-pixel head.

Conv3×3(C_in→C_m), ReLU, [Conv3×3(C_m→C_m), ReLU] × (L − 2), Conv3×3(C_m→C), ReLU, Conv1×1(C → 98) (no activation),
then the per-pixel MLP 98 → 256 → 256 → 256 → n. The 1×1 expansion to 98 = 49·C channels matches the size of the
recurrent models' temporal features (the authors compute it as ``int((T − min_iters)/2) − 1 = 49`` bins per channel).

The ReLU after the squeeze to C = 2 channels is the authors' design; it can die (all-zero features, an all-background
prediction), which is the likely cause of the large seed-to-seed variance of the deep CNNs in Table 1. The option
``squeeze_activation='none'`` builds a repaired variant without that ReLU (an extra, not the paper's baseline; same
parameter count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from twi_core.models._common import check_choice, check_input, check_positive_int, config_dict, conv_stack, weight_dtype
from twi_core.models.readouts import PixelMLP, check_head

__all__ = ["CNN", "CNNConfig", "SQUEEZE_ACTIVATIONS", "receptive_field"]

#: Activation after the squeeze to C channels: the authors' ReLU, or none (the repaired extra).
SQUEEZE_ACTIVATIONS = ("none", "relu")


def receptive_field(depth: int) -> int:
    """Side of the receptive field of ``depth`` stacked 3×3 convolutions, ``2 L + 1``.

    >>> [receptive_field(L) for L in (2, 4, 8, 16, 32)]
    [5, 9, 17, 33, 65]
    """
    return 2 * depth + 1


@dataclass(frozen=True)
class CNNConfig:
    """Configuration of a :class:`CNN` (the keyword arguments of ``build('cnn', ...)``)."""

    in_channels: int  # C_in
    num_classes: int  # n, background included
    image_size: int  # H = W of the inputs this model accepts
    depth: int = 8  # L, the number of 3×3 convolutions (2, 4, 8, 16, 32 in the paper)
    mid_channels: int = 16  # C_m
    hidden_channels: int = 2  # C, the squeeze before the 1×1 expansion
    expanded_channels: int = 98  # channels after the 1×1 expansion (the head's input)
    head: str = "default"  # per-pixel MLP, a key of HEADS
    squeeze_activation: str = "relu"  # after the squeeze to C channels: 'relu' (the authors') or 'none' (repaired)

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "image_size", "mid_channels", "hidden_channels", "expanded_channels"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("depth", self.depth, minimum=2)
        check_head(self.head)
        check_choice("squeeze_activation", self.squeeze_activation, SQUEEZE_ACTIVATIONS)


class CNN(nn.Module):
    """The CNN baseline (the authors' ``baseline1_flexible``).

    Examples
    --------
    >>> model = CNN(in_channels=3, num_classes=6, image_size=8, depth=2)
    >>> tuple(model(torch.rand(2, 3, 8, 8)).shape)
    (2, 6, 8, 8)
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = CNNConfig(**config)
        self.settings = cfg
        self.config = config_dict("cnn", cfg)
        squeeze = nn.ReLU() if cfg.squeeze_activation == "relu" else nn.Identity()  # same indices, same state-dict keys
        stack = conv_stack(cfg.in_channels, cfg.mid_channels, cfg.hidden_channels, layers=cfg.depth, activation=squeeze)
        self.encoder = nn.Sequential(*stack, nn.Conv2d(cfg.hidden_channels, cfg.expanded_channels, 1))
        self.head = PixelMLP(cfg.expanded_channels, check_head(cfg.head), cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n, H, W)`` for ``x`` ``(B, C_in, H, W)``."""
        cfg = self.settings
        check_input(x, in_channels=cfg.in_channels, image_size=cfg.image_size, dtype=weight_dtype(self))
        features = self.encoder(x).permute(0, 2, 3, 1)  # (B, 98, H, W) -> (B, H, W, 98)
        return self.head(features)  # (B, n, H, W)
