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
131,072 × 256 fp32 matrix, 134 MB. glibc serves blocks that large with a fresh ``mmap`` (its reuse threshold stops at
32 MiB), so every step page-faults and the kernel zeroes that memory again: on the development VM a fresh 134 MB buffer
costs 55-100 ms to fill against 6-8 ms for a reused one, ~10× a 256-wide GEMM's memory pass. On CPU the head therefore
draws its large buffers from a small pool (:class:`Workspace`) and reuses a buffer only when nothing else refers to its
memory any more (autograd's saved tensors, a caller's output): reuse is decided by the storage's reference count, so a
graph that is never backwarded, ``retain_graph=True`` or a kept output can never see its data overwritten. CUDA has a
caching allocator already; there the head allocates normally and never synchronises with the host. When
:func:`twi_core._memory.reuse_freed_memory` is in effect, glibc reuses freed memory for the whole model and the pool
steps aside (it would only add its size to the peak). The pool holds the head's activations and its two backward
buffers (at B = 32: 5 × 134 MB) between steps, and the NWM engine draws its rollout buffers from it too (states,
velocities, couplings and the projected gradient: 4 × 105 MB at B = 32, T = 100; see
:func:`twi_core.models.engine._empty`); :func:`clear_workspace` releases them all.
"""

from __future__ import annotations

import threading
from typing import Sequence

import torch
from torch.autograd.function import once_differentiable

from twi_core._memory import freed_memory_reused

__all__ = ["WORKSPACE", "Workspace", "clear_workspace", "pixel_mlp"]

#: Buffers smaller than this are left to the ordinary allocator: glibc's heap already reuses them (below its 32 MiB
#: dynamic mmap threshold) and pooling them would only pin memory.
WORKSPACE_MIN_BYTES = 4 * 2**20


def _use_count_fn():
    """``torch._C._storage_Use_Count`` (a private but long-standing API); None disables pooling if it disappears."""
    fn = getattr(torch._C, "_storage_Use_Count", None)
    return fn if callable(fn) else None


class Workspace:
    """A pool of reusable CPU buffers for the head's large activations and gradients.

    A buffer is handed out only as a view of its storage and is free again once the pool's own references are the only
    ones left to that storage, i.e. every view handed out (and every tensor autograd saved from it) is gone.
    """

    def __init__(self) -> None:
        self._buffers: list[tuple[torch.Tensor, torch.UntypedStorage, int]] = []  # (flat buffer, storage, idle count)
        self._lock = threading.Lock()
        self._use_count = _use_count_fn()
        self.enabled = self._use_count is not None

    def _is_free(self, storage: torch.UntypedStorage, idle: int) -> bool:
        return self._use_count(storage._cdata) == idle

    def empty(self, rows: int, cols: int, *, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised ``(rows, cols)`` tensor of ``like``'s dtype and device, reused from the pool where possible."""
        nbytes = rows * cols * like.element_size()
        if (not self.enabled or like.device.type != "cpu" or nbytes < WORKSPACE_MIN_BYTES
                or freed_memory_reused()):  # glibc then reuses freed blocks itself, and shares them with the model
            return torch.empty(rows, cols, dtype=like.dtype, device=like.device)
        numel = rows * cols
        with self._lock:  # the view below takes the buffer before another thread can see it free
            best = None
            for i, (buf, storage, idle) in enumerate(self._buffers):
                if buf.dtype == like.dtype and buf.numel() >= numel and self._is_free(storage, idle):
                    if best is None or buf.numel() < self._buffers[best][0].numel():
                        best = i
            if best is None:
                # Free buffers too small for this request are dropped: the batch (or dtype) changed and they would
                # only pin memory.
                self._buffers = [(b, s, c) for b, s, c in self._buffers
                                 if not (self._is_free(s, c) and (b.dtype != like.dtype or b.numel() < numel))]
                buf = torch.empty(numel, dtype=like.dtype)
                storage = buf.untyped_storage()  # kept: the storage's reference count then has a fixed idle value
                self._buffers.append((buf, storage, self._use_count(storage._cdata)))
                best = len(self._buffers) - 1
            return self._buffers[best][0][:numel].view(rows, cols)

    def clear(self) -> None:
        """Forget every buffer (memory still in use elsewhere is freed when its last user lets go)."""
        with self._lock:
            self._buffers = []

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool."""
        return sum(buf.numel() * buf.element_size() for buf, _, _ in self._buffers)


#: The process-wide workspace of the fused head.
WORKSPACE = Workspace()


def clear_workspace() -> None:
    """Release the head's pooled buffers (e.g. after training, before a memory-hungry evaluation)."""
    WORKSPACE.clear()


def _forward(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], *,
             keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``(N, n)`` of ``x`` ``(N, F)``, and the post-ReLU activations :math:`h_1..h_L` if ``keep``."""
    h, acts = x, []
    for w, b in zip(weights[:-1], biases[:-1]):
        z = WORKSPACE.empty(h.shape[0], w.shape[0], like=h)
        torch.addmm(b, h, w.t(), out=z).relu_()  # in place: z_l is not needed once h_l exists
        h = z
        if keep:
            acts.append(h)
    return torch.addmm(biases[-1], h, weights[-1].t()), acts


class _PixelMLPFunction(torch.autograd.Function):
    """The fused head: ``apply(x, W_1, b_1, ..., W_{L+1}, b_{L+1})`` with ``x`` of shape ``(N, F)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        weights, biases = params[0::2], params[1::2]
        logits, acts = _forward(x, weights, biases, keep=True)
        ctx.save_for_backward(x, *weights, *acts)
        ctx.layers = len(weights)
        return logits

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logits: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        n_layers = ctx.layers
        x, weights, acts = saved[0], saved[1:1 + n_layers], saved[1 + n_layers:]
        inputs = (x, *acts)  # h_0 .. h_L: the input of layer l is inputs[l - 1]
        needs = ctx.needs_input_grad
        grads: list[torch.Tensor | None] = [None] * (1 + 2 * n_layers)
        delta = grad_logits
        for layer in range(n_layers - 1, -1, -1):  # 0-based: layer l maps inputs[l] -> inputs[l + 1]
            h_in = inputs[layer]
            if needs[1 + 2 * layer]:
                grads[1 + 2 * layer] = delta.t().mm(h_in)  # ∂W = δᵀ h_in: one GEMM, no transposed copies
            if needs[2 + 2 * layer]:
                grads[2 + 2 * layer] = delta.sum(0)  # ∂b = 1ᵀ δ
            if layer == 0 and not needs[0]:
                break
            if layer > 0:
                below = WORKSPACE.empty(delta.shape[0], weights[layer].shape[1], like=delta)
            else:  # ∂x leaves the head: allocated normally, so the pool never pins the readout's gradient
                below = torch.empty(delta.shape[0], weights[0].shape[1], dtype=delta.dtype, device=delta.device)
            torch.mm(delta, weights[layer], out=below)  # δ W
            if layer > 0:  # the ReLU below: δ ⊙ [h > 0], in place (threshold_backward is ReLU's own backward)
                torch.ops.aten.threshold_backward.grad_input(below, h_in, 0, grad_input=below)
            delta = below
        if needs[0]:
            grads[0] = delta
        return tuple(grads)


def pixel_mlp(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> torch.Tensor:
    """The head on a ``(..., F)`` tensor: logits ``(..., n)``, equal to ``Linear, ReLU, ..., Linear``.

    Runs through the fused autograd function when a gradient is needed, and without saving anything otherwise.
    """
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    if flat.stride(-1) != 1:  # a GEMM needs unit stride along one dimension; reshape keeps odd strides of views
        flat = flat.contiguous()
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in (*weights, *biases))):
        params = [t for pair in zip(weights, biases) for t in pair]
        logits = _PixelMLPFunction.apply(flat, *params)
    else:
        logits = _forward(flat, weights, biases, keep=False)[0]
    return logits.view(*lead, logits.shape[-1])
