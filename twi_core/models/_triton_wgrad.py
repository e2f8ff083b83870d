r"""The coupling's weight gradient on CUDA as one Triton reduction (few channels only).

.. math::

    \bar W[o, i, a, b] = \sum_{n, h, w} u[n, o, h, w]\; y[n, i, h + a - 1, w + b - 1] \quad\text{(periodic)}

for a stack of N states (N = segment length × batch). cuBLAS runs the GEMM form
(:func:`twi_core.models._coupling_grad.weight_grad`: (C × N·H·W) @ (N·H·W × C), nine times) with one 32×32 tile for the 2×2 result and no split over the long axis: on an
H100 the nine products took 16 of the 32 ms of a Tetrominoes training step at batch 64. Here every program reads one
block of the GEMM form's flat, halo-padded operands (:func:`twi_core.models._coupling_grad.halo_operands`; u is
zero outside the image, so wrapped positions add nothing) and writes its 9·C² partial sums; one ``sum`` over programs finishes. The work is one
pass over u and y (memory-bound), spread over thousands of programs. Not run on a GPU since this refactor of the
operands (the GEMM form that shares them is tested on every CI run).

Imported only on CUDA machines with Triton (``engine`` falls back to the GEMM form elsewhere).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from twi_core.models._coupling_grad import halo_operands

__all__ = ["weight_grad"]

#: Elements of the flat axis per program.
BLOCK = 2048


@triton.jit
def _partials(u_ptr, y_ptr, out_ptr, length, u_row, y_row, pitch_w, C: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < length
    for o in tl.static_range(C):
        u = tl.load(u_ptr + o * u_row + offs, mask=mask, other=0.0)
        for i in tl.static_range(C):
            for a in tl.static_range(3):
                for b in tl.static_range(3):
                    y = tl.load(y_ptr + i * y_row + a * pitch_w + b + offs, mask=mask, other=0.0)
                    tl.store(out_ptr + pid * (C * C * 9) + (o * C + i) * 9 + a * 3 + b, tl.sum(u * y, axis=0))


def weight_grad(u: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``(C, C, 3, 3)`` weight gradient of the circular 3×3 coupling for stacks ``u, y`` of shape (N, C, H, W)."""
    c, w = y.shape[1], y.shape[3]
    ubig, ybig, length = halo_operands(u, y)
    programs = triton.cdiv(length, BLOCK)
    partial = torch.empty((programs, c * c * 9), device=u.device, dtype=u.dtype)
    _partials[(programs,)](ubig, ybig, partial, length, ubig.stride(0), ybig.stride(0), w + 2, C=c, BLOCK=BLOCK)
    return partial.sum(0).reshape(c, c, 3, 3).to(weight.dtype)
