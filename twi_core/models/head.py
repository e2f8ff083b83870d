r"""The per-pixel MLP head as one fused autograd function (the fast form of :class:`~twi_core.models.readouts.PixelMLP`).

The head maps every pixel's features :math:`h_0 = x \in \mathbb R^{F}` to class logits through :math:`L` hidden layers,

.. math::

    z_l = h_{l-1} W_l^\top + b_l,\qquad h_l = \max(z_l, 0)\quad (l = 1..L),\qquad
    \mathrm{logits} = h_L W_{L+1}^\top + b_{L+1},

applied as one GEMM per layer to the ``(N, F)`` matrix of all N = B·H·W pixels. Its backward, with
:math:`\delta_{L+1} = \partial\ell/\partial\,\mathrm{logits}`, is

.. math::

    \partial W_l = \delta_l^\top h_{l-1},\qquad \partial b_l = \mathbf 1^\top \delta_l,\qquad
    \delta_{l-1} = (\delta_l W_l) \odot [h_{l-1} > 0]\quad(\text{no mask for } l - 1 = 0).

Since :math:`[z_l > 0] = [h_l > 0]`, the post-ReLU activations :math:`h_l` are the only things saved: they are both
the ReLU masks and the next layers' GEMM inputs (``nn.Sequential`` also saves them, but allocates every :math:`z_l`
and every intermediate gradient anew and makes one more pass over memory per ReLU and per mask).

Why a workspace. At the Tetrominoes scale (B = 32, 64×64, width 256) each :math:`h_l` or :math:`\delta_l` is a
131,072 × 256 fp32 matrix, 134 MB, too large for glibc to reuse; on CPU the head draws its large buffers from the
process-wide pool of :mod:`twi_core.models.workspace` (which the NWM rollout shares), and
:func:`clear_workspace` releases them.

bf16 training where the CPU has it. The head is about 86 % of a Tetrominoes training step's FLOPs, and on CPUs with
AMX (``amx_bf16``) a bf16 GEMM runs about 2.8× faster than fp32 (380 against 137 GFLOP/s at the head's shapes on the
2-core development VM); on an AMD EPYC with ``avx512_bf16`` about 6× (:func:`cpu_has_bf16` measures it there). With
:func:`training_dtype` ``bfloat16`` the fused head computes its GEMMs, its saved activations and its backward in bf16
while the weights (the optimiser's master copy), their gradients, the bias gradients (summed in fp32), the logits and
the gradient handed back to the readout stay fp32. Only the training forward and backward change: evaluation (no
gradient) always runs in fp32, so reported metrics are fp32 metrics. The choice is ``$TWI_HEAD_BF16``: ``auto``
(default: on where :func:`cpu_has_bf16`, for heads at least :data:`MIN_BF16_WIDTH` wide; off on CUDA and elsewhere),
``1`` or ``0``; :func:`twi_core.train.fit` records it in ``result.json`` (``head_dtype``).
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import torch
from torch.autograd.function import once_differentiable

from twi_core import _cpu
from twi_core.models import workspace as _workspace  # its WORKSPACE, looked up at call time (tests swap it)
from twi_core.models.workspace import Workspace, clear_workspace  # noqa: F401  (their old home; documented there)

__all__ = ["MIN_BF16_SPEEDUP", "MIN_BF16_WIDTH", "bf16_gemm_speedup", "cpu_has_bf16", "head_width", "pixel_mlp",
           "training_dtype"]



#: Without AMX, bf16 trains the head only where a bf16 GEMM measures at least this many times faster than fp32.
MIN_BF16_SPEEDUP = 1.5


@functools.lru_cache(maxsize=1)
def bf16_gemm_speedup(rows: int = 8192, width: int = 256, repeats: int = 3) -> float:
    """How many times faster a head-shaped GEMM, ``(rows, width) @ (width, width)``, runs in bf16 than in fp32 on this
    CPU at the current thread count: the best of ``repeats`` calls each, interleaved (about 30 ms, once per process).

    >>> bf16_gemm_speedup(rows=256, width=32, repeats=1) > 0
    True
    """
    import time

    gen = torch.Generator().manual_seed(0)
    a, w = torch.randn(rows, width, generator=gen), torch.randn(width, width, generator=gen)
    pairs = {torch.float32: (a, w), torch.bfloat16: (a.bfloat16(), w.bfloat16())}
    best = {dtype: float("inf") for dtype in pairs}
    for _ in range(repeats + 1):  # the first round warms both up
        for dtype, (x, y) in pairs.items():
            start = time.perf_counter()
            x @ y
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.float32] / max(best[torch.bfloat16], 1e-9)


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether bf16 GEMMs beat fp32 ones on this CPU, so that the head trains in bf16 by default: AMX bf16 tiles
    (``amx_bf16``), or ``avx512_bf16`` with a measured speed-up of at least :data:`MIN_BF16_SPEEDUP`
    (:func:`bf16_gemm_speedup`).

    The flag alone does not decide: on an Intel CPU without AMX, oneDNN's bf16 GEMM measured no faster than fp32, while
    on a 2-core AMD EPYC with ``avx512_bf16`` it ran 5.8-7.7x faster at the head's shapes, idle, one thread (374-432
    against 52-69 GFLOP/s; torch's fp32 GEMM there is slow). Without ``avx512_bf16`` (AVX2-only CPUs, where torch's
    bf16 matmul ran at 0.3 GFLOP/s) nothing is measured and the answer is False, as it is off Linux.
    """
    flags = _cpu.flags()
    if "amx_bf16" in flags:
        return True
    return "avx512_bf16" in flags and bf16_gemm_speedup() >= MIN_BF16_SPEEDUP


#: Accepted values of ``$TWI_HEAD_BF16``.
HEAD_BF16_CHOICES = ("auto", "0", "1")


#: ``auto`` trains a head in bf16 only if its widest hidden layer has at least this many units: bf16 GEMMs pay for the
#: 256-wide heads of Tetrominoes, MNIST and Polygons, but the Multi-MNIST NWM's 32-wide head trained slower in bf16
#: (0.99 against 0.79 s a step, batch 4, idle 2-core AMD EPYC): its GEMMs are too small to repay the conversions.
MIN_BF16_WIDTH = 128


def head_width(weights: Sequence[torch.Tensor]) -> int:
    """The widest hidden layer of a head given by its weights (its input width if it has no hidden layer)."""
    return max(w.shape[0] for w in weights[:-1]) if len(weights) > 1 else int(weights[0].shape[1])


def training_dtype(device: torch.device | str = "cpu", width: int | None = None) -> torch.dtype:
    """The dtype of the fused head's training GEMMs on ``device``: ``torch.bfloat16`` or ``torch.float32``.

    ``$TWI_HEAD_BF16`` = ``auto`` (default; bf16 where :func:`cpu_has_bf16`, for heads whose ``width``, see
    :func:`head_width`, is at least :data:`MIN_BF16_WIDTH` or not given), ``1`` (bf16 on any CPU, any width) or ``0``
    (fp32). CUDA devices always train the head in fp32 here (their speed-up is TF32, a separate option).

    Raises
    ------
    ValueError
        ``$TWI_HEAD_BF16`` is not one of :data:`HEAD_BF16_CHOICES`.

    Examples
    --------
    >>> training_dtype("cuda")
    torch.float32
    """
    choice = os.environ.get("TWI_HEAD_BF16", "auto").strip() or "auto"
    if choice not in HEAD_BF16_CHOICES:
        raise ValueError(f"TWI_HEAD_BF16={choice!r}; expected one of {list(HEAD_BF16_CHOICES)}")
    if torch.device(device).type != "cpu" or choice == "0":
        return torch.float32
    if choice == "1":
        return torch.bfloat16
    wide = width is None or width >= MIN_BF16_WIDTH
    return torch.bfloat16 if wide and cpu_has_bf16() else torch.float32


def _forward(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], *,
             keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``(N, n)`` of ``x`` ``(N, F)``, and the post-ReLU activations :math:`h_1..h_L` if ``keep``."""
    h, acts = x, []
    for w, b in zip(weights[:-1], biases[:-1]):
        z = _workspace.WORKSPACE.empty(h.shape[0], w.shape[0], like=h)
        torch.addmm(b, h, w.t(), out=z).relu_()  # in place: z_l is not needed once h_l exists
        h = z
        if keep:
            acts.append(h)
    return torch.addmm(biases[-1], h, weights[-1].t()), acts


def _column_sums(delta: torch.Tensor) -> torch.Tensor:
    """``1ᵀ δ`` of an ``(N, C)`` matrix. In bf16 as a GEMM with a ones row (fp32 accumulation inside the GEMM): a
    ``sum(dtype=float32)`` would first convert the whole matrix, which cost more than the layer's GEMMs together."""
    if delta.dtype != torch.bfloat16:
        return delta.sum(0)
    return torch.ones(1, delta.shape[0], dtype=delta.dtype, device=delta.device).mm(delta)[0]


class _PixelMLPFunction(torch.autograd.Function):
    """The fused head: ``apply(x, dtype, W_1, b_1, ..., W_{L+1}, b_{L+1})`` with ``x`` of shape ``(N, F)``.

    ``dtype`` is the compute dtype (``None``: the inputs' own). In bf16 the GEMM operands and the saved activations are
    bf16 copies; the logits, every gradient returned and the bias sums are in the inputs' dtypes.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, dtype: torch.dtype | None, *params: torch.Tensor) -> torch.Tensor:
        out_dtype = x.dtype
        if dtype is not None and dtype != x.dtype:
            x, params = x.to(dtype), tuple(p.to(dtype) for p in params)
        weights, biases = params[0::2], params[1::2]
        logits, acts = _forward(x, weights, biases, keep=True)
        ctx.save_for_backward(x, *weights, *acts)
        ctx.layers, ctx.out_dtype = len(weights), out_dtype
        return logits.to(out_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logits: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        n_layers, out_dtype = ctx.layers, ctx.out_dtype
        x, weights, acts = saved[0], saved[1:1 + n_layers], saved[1 + n_layers:]
        inputs = (x, *acts)  # h_0 .. h_L: the input of layer l is inputs[l - 1]
        needs = (ctx.needs_input_grad[0], *ctx.needs_input_grad[2:])  # x, then W_1, b_1, ... (the dtype slot dropped)
        grads: list[torch.Tensor | None] = [None] * (1 + 2 * n_layers)
        delta = grad_logits.to(x.dtype)
        for layer in range(n_layers - 1, -1, -1):  # 0-based: layer l maps inputs[l] -> inputs[l + 1]
            h_in = inputs[layer]
            if needs[1 + 2 * layer]:
                grads[1 + 2 * layer] = delta.t().mm(h_in).to(out_dtype)  # ∂W = δᵀ h_in: one GEMM, no copies
            if needs[2 + 2 * layer]:
                grads[2 + 2 * layer] = _column_sums(delta).to(out_dtype)  # ∂b = 1ᵀ δ
            if layer == 0 and not needs[0]:
                break
            if layer > 0:
                below = _workspace.WORKSPACE.empty(delta.shape[0], weights[layer].shape[1], like=delta)
            else:  # ∂x leaves the head: allocated normally, so the pool never pins the readout's gradient
                below = torch.empty(delta.shape[0], weights[0].shape[1], dtype=delta.dtype, device=delta.device)
            torch.mm(delta, weights[layer], out=below)  # δ W
            if layer > 0:  # the ReLU below: δ ⊙ [h > 0], in place (threshold_backward is ReLU's own backward)
                torch.ops.aten.threshold_backward.grad_input(below, h_in, 0, grad_input=below)
            delta = below
        if needs[0]:
            grads[0] = delta.to(out_dtype)
        return (grads[0], None, *grads[1:])


def pixel_mlp(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], *,
              dtype: torch.dtype | None = None) -> torch.Tensor:
    """The head on a ``(..., F)`` tensor: logits ``(..., n)``, equal to ``Linear, ReLU, ..., Linear``.

    Runs through the fused autograd function when a gradient is needed, and without saving anything otherwise.
    ``dtype`` is the compute dtype of the training path (default :func:`training_dtype` of ``x``'s device); the
    no-gradient path always computes in ``x``'s dtype.
    """
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    if flat.stride(-1) != 1:  # a GEMM needs unit stride along one dimension; reshape keeps odd strides of views
        flat = flat.contiguous()
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in (*weights, *biases))):
        params = [t for pair in zip(weights, biases) for t in pair]
        if dtype is None:
            dtype = (training_dtype(flat.device, head_width(weights)) if flat.dtype == torch.float32
                     else flat.dtype)
        logits = _PixelMLPFunction.apply(flat, dtype, *params)
    else:
        logits = _forward(flat, weights, biases, keep=False)[0]
    return logits.view(*lead, logits.shape[-1])
