"""Shared building blocks and boundary checks of the models (private)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import nn

__all__ = ["check_choice", "check_input", "check_positive_int", "conv_stack"]


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum``; a TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices) -> Any:
    """``value`` if it is one of ``choices``; a ValueError listing them otherwise."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")
    return value


def check_input(x: Any, *, in_channels: int, image_size: int, multiple_of: int = 1) -> None:
    """Check a model input: a finite float tensor of shape ``(B, in_channels, image_size, image_size)``.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point tensor.
    ValueError
        Wrong number of dimensions, wrong channel count, wrong or non-square size, NaN or infinite values.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = f"tensor of dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating-point tensor (B, C, H, W), got a {kind}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, {in_channels}, {image_size}, {image_size}), got {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"x has {x.shape[1]} channels; this model expects in_channels={in_channels}")
    h, w = x.shape[-2:]
    if (h, w) != (image_size, image_size):
        raise ValueError(
            f"x has size {h}x{w}; this model was built for image_size={image_size} (square {image_size}x{image_size}); "
            "rebuild it with build(**{**model.config, 'image_size': ...}) to run another size"
        )
    if x.is_cuda and torch.cuda.is_current_stream_capturing():
        return  # reading a value back would synchronise, which CUDA-graph capture forbids (checked at warm-up)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values; expected finite inputs")


def conv_stack(
    in_channels: int, mid_channels: int, out_channels: int, *, layers: int, activation: nn.Module | None
) -> nn.Sequential:
    """``layers`` 3×3 'same' convolutions with ReLU between them and ``activation`` after the last.

    Conv(in→mid), ReLU, [Conv(mid→mid), ReLU] × (layers − 2), Conv(mid→out), activation. Zero padding.
    """
    widths = [in_channels] + [mid_channels] * (layers - 1) + [out_channels]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        modules.append(nn.Conv2d(a, b, 3, padding=1))
        if i < layers - 1:
            modules.append(nn.ReLU())
    if activation is not None:
        modules.append(activation)
    return nn.Sequential(*modules)


def config_dict(name: str, config: Any) -> dict[str, Any]:
    """The ``build`` kwargs of a model: ``{'name': name, **fields of its frozen config}``."""
    return {"name": name, **{f.name: getattr(config, f.name) for f in fields(config)}}
