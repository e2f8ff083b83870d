r"""A process-wide pool of reusable CPU buffers, for the fused head and the NWM rollout.

Why a pool. At the Tetrominoes scale (B = 32, 64×64, width 256) each activation :math:`h_l` or gradient
:math:`\delta_l` of the per-pixel head (:mod:`twi_core.models.head`) is a 131,072 × 256 fp32 matrix, 134 MB. glibc serves blocks that large with a fresh ``mmap`` (its reuse threshold stops at
32 MiB), so every step page-faults and the kernel zeroes that memory again: on the development VM a fresh 134 MB buffer
costs 55-100 ms to fill against 6-8 ms for a reused one, ~10× a 256-wide GEMM's memory pass. On CPU the head and the NWM rollout
therefore draw their large buffers from a small pool (:class:`Workspace`) and reuses a buffer only when nothing else refers to its
memory any more (autograd's saved tensors, a caller's output): reuse is decided by the storage's reference count, so a
graph that is never backwarded, ``retain_graph=True`` or a kept output can never see its data overwritten. CUDA has a
caching allocator already; there they allocate normally and never synchronises with the host. When
:func:`twi_core._memory.reuse_freed_memory` is in effect, glibc reuses freed memory for the whole model and the pool
steps aside (it would only add its size to the peak). The pool holds the head's activations and its two backward
buffers (at B = 32: 5 × 134 MB) between steps, and the NWM engine draws its rollout buffers from it too (states,
velocities, couplings and the projected gradient: 4 × 105 MB at B = 32, T = 100; see
:func:`twi_core.models.engine._empty`); :func:`clear_workspace` releases them all.
"""

from __future__ import annotations

import threading

import torch

from twi_core._memory import freed_memory_reused

__all__ = ["WORKSPACE", "WORKSPACE_MIN_BYTES", "Workspace", "clear_workspace"]

#: Buffers smaller than this are left to the ordinary allocator: glibc's heap already reuses them (below its 32 MiB
#: dynamic mmap threshold) and pooling them would only pin memory.
WORKSPACE_MIN_BYTES = 4 * 2**20


def _use_count_fn():
    """``torch._C._storage_Use_Count`` (a private but long-standing API); None disables pooling if it disappears."""
    fn = getattr(torch._C, "_storage_Use_Count", None)
    return fn if callable(fn) else None


class Workspace:
    """A pool of reusable CPU buffers for large activations and gradients.

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


#: The process-wide workspace of the fused head and the NWM rollout.
WORKSPACE = Workspace()


def clear_workspace() -> None:
    """Release the pooled buffers (e.g. after training, before a memory-hungry evaluation)."""
    WORKSPACE.clear()
