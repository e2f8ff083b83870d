r"""The gradient of the NWM's coupling kernel, shared by the engine (GEMM form) and the Triton reduction.

For the circular 3×3 coupling :math:`W` of the oscillator update, the adjoint of the rollout needs, summed over every
step and image of a segment, :math:`\bar W[o, i, a, b] = \sum u[o]\, y[i]` shifted by the tap :math:`(a, b)`. Both
forms read the same flat, halo-padded operands (:func:`halo_operands`): :func:`weight_grad` as nine GEMMs (the CPU
and many-channel form, used by :mod:`twi_core.models.engine`), :mod:`twi_core.models._triton_wgrad` as one reduction on
CUDA. Keeping the operands here lets both import them without importing each other.
"""

from __future__ import annotations

import torch

__all__ = ["halo_operands", "weight_grad"]


def weight_grad(u: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar W[o, i, a, b] = \sum_{n, h, w} u[n, o, h, w]\, y[n, i, h + a - 1, w + b - 1]` (circular), for a stack.

    u, y : (N, C, H, W) -> (C, C, 3, 3). Nine GEMMs over one flat buffer instead of mkldnn's weight gradient (which
    is slow for 2 channels): both operands are laid out channel-first as (C, N, H+2, W+2) flattened, y with its
    periodic halo and u zero outside its H×W corner, so that the shift by (a, b) is a plain offset of
    ``a * (W + 2) + b`` along the flat axis and each tap is ``U @ Y[:, off:off + L].T`` with no copy. The zeros of U
    mask every position where the offset would run into the next image.
    """
    ubig, ybig, length = halo_operands(u, y)
    w = y.shape[3]
    grad = weight.new_empty(weight.shape)
    for a in range(3):
        for b in range(3):
            off = a * (w + 2) + b
            grad[:, :, a, b] = ubig @ ybig[:, off:off + length].t()  # (C_out, C_in)
    return grad


def halo_operands(u: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The flat operands of the weight gradient (GEMM form here, Triton form in :mod:`twi_core.models._triton_wgrad`).

    u, y : (N, C, H, W) -> ``(ubig, ybig, L)`` with L = N·(H+2)·(W+2): ``ybig`` (C, L + tail) holds each y with its
    periodic halo, ``ubig`` (C, L) each u at the top-left H×W corner of its (H+2)×(W+2) tile and zero elsewhere, so
    that tap (a, b) pairs ``ubig[:, l]`` with ``ybig[:, l + a*(W+2) + b]``.
    """
    n, c, h, w = y.shape
    length = n * (h + 2) * (w + 2)
    ybig = y.new_empty((c, length + 2 * (w + 2) + 2))
    ybig[:, length:].zero_()
    yv = ybig[:, :length].view(c, n, h + 2, w + 2)
    yv[:, :, 1:-1, 1:-1].copy_(y.transpose(0, 1))  # (C, N, H, W) interior
    yv[:, :, 0, 1:-1].copy_(yv[:, :, h, 1:-1])  # periodic halo: rows, then columns (corners included)
    yv[:, :, h + 1, 1:-1].copy_(yv[:, :, 1, 1:-1])
    yv[:, :, :, 0].copy_(yv[:, :, :, w])
    yv[:, :, :, w + 1].copy_(yv[:, :, :, 1])
    ubig = u.new_zeros((c, length))
    ubig.view(c, n, h + 2, w + 2)[:, :, :h, :w].copy_(u.transpose(0, 1))
    return ubig, ybig, length
