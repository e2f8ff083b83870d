"""The U-Net baseline of width m (the Multi-MNIST comparison of Table 2).

Four 2× down-sampling stages and four transposed-convolution up-sampling stages with skip connections; each stage is a
"double conv" (Conv3×3 without bias, BatchNorm, ReLU, twice). Channels m, 2m, 4m, 8m, 16m; the paper's "Arch" column is
m ∈ {2, 3, 4, 5}. The input side must be divisible by 16 (four poolings).

=======  =========================================================  ============  ===========
stage    operation                                                  channels      size
=======  =========================================================  ============  ===========
inc      double conv                                                C_in → m      N
down k   max-pool 2, double conv                                    → 2^k m       N / 2^k
up k     transposed conv 2×2 stride 2, concat [skip; up], dbl conv  → 2^(4−k) m   N / 2^(4−k)
outc     1×1 conv                                                   m → n         N
=======  =========================================================  ============  ===========
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from twi_core.models._common import check_input, check_positive_int, config_dict, weight_dtype

__all__ = ["UNet", "UNetConfig"]

#: The input side must be a multiple of this (four 2× poolings).
SIZE_MULTIPLE = 16


def _double_conv(a: int, b: int) -> nn.Sequential:
    """Conv3×3(a→b, no bias), BN, ReLU, Conv3×3(b→b, no bias), BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(a, b, 3, padding=1, bias=False),
        nn.BatchNorm2d(b),
        nn.ReLU(),
        nn.Conv2d(b, b, 3, padding=1, bias=False),
        nn.BatchNorm2d(b),
        nn.ReLU(),
    )


class _Up(nn.Module):
    """Up-sample ``x`` 2× with a transposed conv (2c → c), concatenate the skip first, double conv (2c → c)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(2 * channels, channels, 2, stride=2)
        self.conv = _double_conv(2 * channels, channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))  # (B, 2c, H, W) -> (B, c, H, W)


@dataclass(frozen=True)
class UNetConfig:
    """Configuration of a :class:`UNet` (the keyword arguments of ``build('unet', ...)``)."""

    in_channels: int  # C_in
    num_classes: int  # n, background included
    image_size: int  # H = W, a multiple of 16
    width: int = 4  # m, channels of the first stage (2, 3, 4, 5 in the paper)

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "image_size", "width"):
            check_positive_int(name, getattr(self, name))
        if self.image_size % SIZE_MULTIPLE:
            raise ValueError(
                f"image_size must be a multiple of {SIZE_MULTIPLE} for the U-Net (four 2x poolings), "
                f"got {self.image_size}"
            )


class UNet(nn.Module):
    """The U-Net (milesial design, transposed-convolution up-sampling), as the authors' ``unet2``.

    Examples
    --------
    >>> model = UNet(in_channels=1, num_classes=11, image_size=16, width=2)
    >>> tuple(model(torch.rand(2, 1, 16, 16)).shape)
    (2, 11, 16, 16)
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = UNetConfig(**config)
        self.settings = cfg
        self.config = config_dict("unet", cfg)
        m = cfg.width
        self.inc = _double_conv(cfg.in_channels, m)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), _double_conv(m, 2 * m))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), _double_conv(2 * m, 4 * m))
        self.down3 = nn.Sequential(nn.MaxPool2d(2), _double_conv(4 * m, 8 * m))
        self.down4 = nn.Sequential(nn.MaxPool2d(2), _double_conv(8 * m, 16 * m))
        self.up1 = _Up(8 * m)
        self.up2 = _Up(4 * m)
        self.up3 = _Up(2 * m)
        self.up4 = _Up(m)
        self.outc = nn.Conv2d(m, cfg.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n, H, W)`` for ``x`` ``(B, C_in, H, W)``."""
        cfg = self.settings
        check_input(x, in_channels=cfg.in_channels, image_size=cfg.image_size, dtype=weight_dtype(self))
        x1 = self.inc(x)  # (B, m, N, N)
        x2 = self.down1(x1)  # (B, 2m, N/2, N/2)
        x3 = self.down2(x2)  # (B, 4m, N/4, N/4)
        x4 = self.down3(x3)  # (B, 8m, N/8, N/8)
        x5 = self.down4(x4)  # (B, 16m, N/16, N/16)
        x = self.up1(x5, x4)  # (B, 8m, N/8, N/8)
        x = self.up2(x, x3)  # (B, 4m, N/4, N/4)
        x = self.up3(x, x2)  # (B, 2m, N/2, N/2)
        x = self.up4(x, x1)  # (B, m, N, N)
        return self.outc(x)  # (B, n, N, N)
