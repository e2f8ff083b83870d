"""Shared building blocks and boundary checks of the models (private)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import nn

__all__ = ["check_choice", "check_input", "check_positive_int", "conv_stack", "weight_dtype"]


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


def weight_dtype(module: nn.Module) -> torch.dtype | None:
    """The dtype of ``module``'s first floating-point parameter (what its inputs must match), or None if it has none."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def check_input(x: Any, *, in_channels: int, image_size: int, multiple_of: int = 1,
                dtype: torch.dtype | None = None) -> None:
    """Check a model input: a finite float tensor of shape ``(B, in_channels, image_size, image_size)``, ``B >= 1``.

    Parameters
    ----------
    x : Any
        The input to check.
    in_channels, image_size : int
        What the model was built for.
    multiple_of : int
        Unused here; kept for callers that pass it.
    dtype : torch.dtype, optional
        The model's weight dtype (:func:`weight_dtype`): ``x`` must have it. A float64 image into a float32 model would
        otherwise fail deep inside the first convolution ("Input type (double) and bias type (float) should be the
        same"), and casting it silently would hide that the caller's precision is not the one computed in.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point tensor, or its dtype is not the model's (the message names both and the fix).
    ValueError
        Wrong number of dimensions, an empty batch, wrong channel count, wrong or non-square size, NaN or infinite
        values.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = f"tensor of dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating-point tensor (B, C, H, W), got a {kind}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"x has dtype {x.dtype}, but this model's weights are {dtype}; pass x.to({dtype}) "
                        f"(or convert the model with model.to({x.dtype}))")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, {in_channels}, {image_size}, {image_size}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        # The recurrent engines reshape over the batch and fail on zero elements; a model never has work for no images.
        raise ValueError(f"x is an empty batch {tuple(x.shape)}; expected at least one image (B >= 1)")
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
