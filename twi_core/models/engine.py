r"""The fast NWM engine: the same rollout as :func:`~twi_core.models.dynamics.nwm_rollout_plain`, faster and leaner.

:func:`nwm_rollout` computes exactly what the specification computes (the states :math:`y_1..y_T` of
:func:`~twi_core.models.dynamics.nwm_step`, or one of the temporal readouts of :mod:`twi_core.models.readouts` applied to
them), and is tested against it for every readout (``tests/models/test_engine.py``). It differs in *how*:

1. **One autograd node for the whole rollout**, with a hand-written adjoint (backward) recurrence. Writing
   :math:`v_t = \Delta t\,(\bar z_{t+1} + \Delta t\,\bar y_{t+1})` for the gradient reaching the bracket of step
   :math:`t` and :math:`s_t = \tanh(W_y \circledast y_t)`,

   .. math::

       \bar y_t &= \bar y_{t+1} - \omega\odot v_t + W_y^{\top} \circledast \big(v_t\odot(1 - s_t^2)\big) + \partial L/\partial y_t,
       \qquad \bar z_t = \bar z_{t+1} + \Delta t\,\bar y_{t+1} - \alpha\odot v_t, \\
       \bar\omega &= -\sum_t v_t\odot y_t, \qquad \bar\alpha = -\sum_t v_t\odot z_t, \qquad
       \bar W_y = \sum_t \mathrm{corr}_{\mathrm{circ}}\big(v_t\odot(1 - s_t^2),\ y_t\big).

   The transposed coupling :math:`W_y^{\top}\circledast` is a forward convolution with the kernel transposed over
   channels and flipped in space (on this CPU, mkldnn's backward of a 2-channel 3×3 convolution costs about 6× its
   forward, measured with the torch profiler), and :math:`\bar W_y` is reduced once per segment instead of once per step.
2. **Readouts accumulated online.** ``last``, ``mean`` and ``max`` keep one running tensor; ``linear`` and ``fft`` are
   linear maps over time (``fft`` is the magnitude of a real DFT, i.e. of two fixed projections with
   :math:`\cos` and :math:`\sin` rows), added up segment by segment with one GEMM per image and channel written
   straight into the per-pixel layout (:func:`_project_pixels`). The (B, T, C, H, W) sequence is
   never held unless asked for (``readout=None``).
3. **Checkpointed segments.** With ``segment=S < T`` only the states at segment boundaries are kept for the backward
   pass, which recomputes one segment at a time: memory falls from about 3·T to 2·T/S + 3·S state tensors, for one extra
   forward recurrence. ``segment=None`` picks :math:`S = T` (nothing recomputed) when the saved states fit in
   :data:`SAVE_BUDGET_BYTES` and :math:`S \approx \sqrt T` otherwise.
4. **Compiled step kernels** (optional, ``compile=True``, and automatic on CUDA): the step and its adjoint are each
   compiled by ``torch.compile`` (per-step regional compilation, not the unrolled loop, which the design notes
   measured as slow to compile and no faster), with the coupling written as shifted adds for C ≤ 4 so inductor fuses
   convolution, tanh and update into one kernel. No CUDA graphs here: on CUDA :func:`twi_core.train.fit` captures the
   whole training step as one graph (:class:`twi_core.train_step.GraphedStep`). On CUDA with C ≤ 4 the coupling's
   weight gradient is one Triton reduction (:mod:`twi_core.models._triton_wgrad`; cuBLAS ran the GEMM form at 18 ms
   against 1.3 ms on an H100). On the 2-core development CPU, compiling took about 70 s and ran no faster than the
   eager kernels (which write into preallocated buffers with ``out=``), so the CPU default is eager;
   ``$TWI_ENGINE_COMPILE=1`` or ``0`` forces the choice. Measured on an H100 (``benchmarks/bench_gpu.py``): a
   Tetrominoes training step at batch 64 in 15.1 ms against 101.7 ms for the plain eager step (6.7×).
5. **On the CPU, segments through a C library** (:mod:`twi_core.models._native`; float32, C <= 4): the recurrence,
   its adjoint and the coupling's weight gradient, one image per thread and one pass per step, compiled on first use
   (the torch kernels above run where it cannot be built). At batch 32 (Tetrominoes) 0.6 ms per forward step and
   1.5 ms per adjoint step, against 2.0 and 6.3 ms for the eager torch kernels.
6. **The linear readout folded into the head** (:func:`nwm_mixed`): for a narrow head (Multi-MNIST) the first layer
   of the head and the time projection are one (P, T, C) map applied to the states online; see
   :func:`twi_core.models.nwm.fuse_linear_head`. On the CPU, with C and P multiples of 16 (the Multi-MNIST NWM's 16
   and 32), that map, the gradient it sends into the states and its own gradient are the C library's blocked kernels
   (:func:`twi_core.models._native.mix_absorb`, :func:`~twi_core.models._native.mix_adjoint`) instead of three small
   GEMMs per step and image.

Contract of :func:`nwm_rollout`: ``readout=None`` returns ``(B, T, C, H, W)``; a readout name returns the per-pixel
features ``(B, H, W, F)`` (channels-last, contiguous, frequency-major ``k * C + c``), exactly what
``twi_core.models.readouts.READOUTS[name](states, time_weight)`` returns.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from twi_core.models import _native
from twi_core.models._coupling_grad import weight_grad as _weight_grad  # the GEMM form (CPU, many channels)
from twi_core.models import workspace as _workspace  # its WORKSPACE, looked up at call time (tests swap it)

__all__ = ["ENGINE_READOUTS", "SAVE_BUDGET_BYTES", "choose_segment", "dft_projection", "nwm_features", "nwm_mixed",
           "nwm_rollout"]

#: The readouts the engine accumulates online (``None``, the full sequence, is accepted too).
ENGINE_READOUTS: tuple[str, ...] = ("fft", "last", "linear", "max", "mean")

#: Above this many bytes of saved per-step states (y, z and tanh(coupling) for every step) the default segment is
#: about sqrt(T) (checkpointing) instead of T (everything kept, nothing recomputed). 2 GiB keeps the Multi-MNIST NWM's
#: states at batch 4 (1.2 GB), which saves the recomputed forward: 4.8 s instead of 6.0 s per step, one thread.
SAVE_BUDGET_BYTES: int = int(os.environ.get("TWI_ENGINE_SAVE_BUDGET", str(2 << 30)))


def _num_bins(steps: int) -> int:
    from twi_core.models.readouts import num_frequency_bins  # the one place K is derived

    return num_frequency_bins(steps)


def dft_projection(steps: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    r"""The real DFT as a ``(2K, T)`` projection: rows :math:`\cos(2\pi k t/T)` then :math:`-\sin(2\pi k t/T)`.

    ``|P[:K] @ y + i P[K:] @ y|`` equals ``torch.fft.rfft(y).abs()`` (unnormalised, K = T // 2 + 1). Built in float64
    and rounded once.

    Examples
    --------
    >>> y = torch.randn(10, dtype=torch.float64)
    >>> p = dft_projection(10, dtype=torch.float64)
    >>> bool(torch.allclose(torch.hypot(p[:6] @ y, p[6:] @ y), torch.fft.rfft(y).abs()))
    True
    """
    k = torch.arange(_num_bins(steps), dtype=torch.float64)[:, None]
    t = torch.arange(steps, dtype=torch.float64)[None, :]
    angle = 2.0 * math.pi * ((k * t) % steps) / steps  # reduce k*t mod T first: exact zeros of sin stay exact
    proj = torch.cat([torch.cos(angle), -torch.sin(angle)], dim=0)  # (2K, T)
    proj[proj.abs() < 1e-12] = 0.0
    return proj.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _cached_projection(steps: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Built once per (T, dtype, device): building it copies from the host, which CUDA-graph capture forbids.
    return dft_projection(steps, dtype=dtype, device=device)


def choose_segment(steps: int, state_bytes: int, *, budget: int | None = None) -> int:
    """The default checkpoint segment: ``steps`` if ``3 * steps * state_bytes`` fits the budget, else ~sqrt(steps).

    Examples
    --------
    >>> choose_segment(100, 1000), choose_segment(100, 10**9)
    (100, 10)
    """
    budget = SAVE_BUDGET_BYTES if budget is None else budget
    if 3 * steps * state_bytes <= budget:
        return steps
    return max(1, int(round(math.sqrt(steps))))


# ---------------------------------------------------------------------------------------------------------------------
# Step kernels. Each kernel set computes one forward step and one adjoint step; "eager" uses mkldnn/cuDNN convolutions,
# "compiled" writes the coupling as shifted adds (for few channels) so torch.compile fuses the whole step.


def _circ(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 1, 1, 1), mode="circular")  # (N, C, H+2, W+2)


def _coupling_conv(y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.conv2d(_circ(y), weight)  # (B, C, H, W)


def _coupling_shift(y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # out[b, o] = sum_{i, a, c} W[o, i, a, c] * y[b, i, h + a - 1, w + c - 1] on the torus.
    c = y.shape[1]
    out = None
    for a in range(3):
        for col in range(3):
            shifted = torch.roll(y, shifts=(1 - a, 1 - col), dims=(2, 3))  # shifted[h, w] = y[h + a - 1, w + col - 1]
            term = (weight[:, :, a, col].reshape(1, c, c, 1, 1) * shifted.unsqueeze(1)).sum(2)  # (B, C, H, W)
            out = term if out is None else out + term
    return out


def _transpose_kernel(weight: torch.Tensor) -> torch.Tensor:
    return weight.transpose(0, 1).flip(2, 3)  # the adjoint of a circular correlation: (C_in, C_out, 3, 3) flipped


def _make_step(coupling: Callable) -> Callable:
    def step(y, z, omega, alpha, weight, dt: float):
        s = torch.tanh(coupling(y, weight))  # (B, C, H, W)
        z_next = z + dt * (s - omega * y - alpha * z)
        y_next = y + dt * z_next
        return y_next, z_next, s

    return step


def _make_adjoint(coupling: Callable) -> Callable:
    def adjoint(gy, gz, y, z, s, omega, alpha, weight_t, g_omega, g_alpha, dt: float):
        v = dt * (gz + dt * gy)  # gradient reaching the bracket of the z update
        u = v * (1.0 - s * s)  # through tanh
        gy_prev = gy - omega * v + coupling(u, weight_t)
        gz_prev = gz + dt * gy - alpha * v
        return gy_prev, gz_prev, u, g_omega - v * y, g_alpha - v * z

    return adjoint


def _into(step: Callable, adjoint: Callable) -> tuple[Callable, Callable]:
    """Wrap functional kernels to write into preallocated slots (compiled kernels fuse the writes)."""

    def step_into(y, z, omega, alpha, weight, dt: float, y_out, z_out, s_out):
        y_next, z_next, s = step(y, z, omega, alpha, weight, dt)
        y_out.copy_(y_next)
        z_out.copy_(z_next)
        s_out.copy_(s)

    def adjoint_into(gy, gz, y, z, s, omega, alpha, weight_t, g_omega, g_alpha, dt: float, u_out):
        gy_prev, gz_prev, u, g_om, g_al = adjoint(gy, gz, y, z, s, omega, alpha, weight_t, g_omega, g_alpha, dt)
        u_out.copy_(u)
        g_omega.copy_(g_om)
        g_alpha.copy_(g_al)
        return gy_prev, gz_prev

    return step_into, adjoint_into


def _eager_step_into(y, z, omega, alpha, weight, dt: float, y_out, z_out, s_out):
    # The step of dynamics.nwm_step, written with out= and in-place ops: no temporaries beyond the convolution's.
    torch.tanh(_coupling_conv(y, weight), out=s_out)
    bracket = torch.addcmul(s_out, omega, y, value=-1.0).addcmul_(alpha, z, value=-1.0)  # s - ω y - α z
    torch.add(z, bracket, alpha=dt, out=z_out)
    torch.add(y, z_out, alpha=dt, out=y_out)


def _eager_adjoint_into(gy, gz, y, z, s, omega, alpha, weight_t, g_omega, g_alpha, dt: float, u_out):
    gz_prev = torch.add(gz, gy, alpha=dt)  # gz + dt*gy: the total gradient reaching z_{t+1}
    v = gz_prev * dt  # reaching the bracket
    torch.mul(s, s, out=u_out).neg_().add_(1.0).mul_(v)  # u = v (1 - s²), through tanh
    gy_prev = _coupling_conv(u_out, weight_t).add_(gy).addcmul_(omega, v, value=-1.0)
    gz_prev.addcmul_(alpha, v, value=-1.0)
    g_omega.addcmul_(v, y, value=-1.0)
    g_alpha.addcmul_(v, z, value=-1.0)
    return gy_prev, gz_prev


@dataclass(frozen=True)
class _Kernels:
    step_into: Callable  # (y, z, omega, alpha, weight, dt, y_out, z_out, s_out) -> None
    adjoint_into: Callable  # (gy, gz, y, z, s, omega, alpha, weight_t, g_omega, g_alpha, dt, u_out) -> (gy, gz)
    name: str
    weight_grad: Callable  # (u, y, weight) -> dL/dW_y (C, C, 3, 3) for a stack of N states (N, C, H, W)
    native: bool = False  # whole segments through the C library (twi_core.models._native) instead of the step kernels
_COMPILED: dict[tuple, _Kernels] = {}


def _shift_kernels() -> _Kernels:
    """The functional kernels with the shifted-add coupling (what the compiled path compiles), not compiled."""
    return _Kernels(*_into(_make_step(_coupling_shift), _make_adjoint(_coupling_shift)), "shift", _weight_grad)


def _compiled_kernels(device: torch.device, channels: int) -> _Kernels:
    coupling = _coupling_shift if channels <= 4 else _coupling_conv
    # No CUDA graphs here (mode=None): on CUDA the whole training step is captured as one graph instead
    # (twi_core.train_step.GraphedStep), which a nested per-kernel graph would break. Shapes may vary between
    # training and evaluation batches: dynamic=None recompiles once with a symbolic batch, then stays.
    key = (device.type, coupling.__name__)
    if key not in _COMPILED:
        step_into, adjoint_into = _into(_make_step(coupling), _make_adjoint(coupling))
        dynamic = None if device.type == "cuda" else False
        _COMPILED[key] = _Kernels(torch.compile(step_into, dynamic=dynamic), torch.compile(adjoint_into, dynamic=dynamic),
                                  f"compiled({coupling.__name__})", _device_weight_grad(device, channels))
    return _COMPILED[key]


def _device_weight_grad(device: torch.device, channels: int) -> Callable:
    """The weight-gradient function for ``device``: a Triton reduction on CUDA for C <= 4, else the GEMM form.

    cuBLAS runs the GEMM form's (C x N*H*W) @ (N*H*W x C) products with one 32x32 tile per 2x2 result and no split
    of the long axis: measured 16 of the 32 ms of an H100 training step (Tetrominoes, B = 64). For many channels, and
    on the CPU, the GEMM form is the fast one.
    """
    if device.type == "cuda" and channels <= 4:
        try:
            from twi_core.models import _triton_wgrad
        except ImportError:  # no Triton: the GEMM form, slower on a GPU but the same numbers
            return _weight_grad
        return _triton_wgrad.weight_grad
    return _weight_grad


def _kernels(compile: bool | None, y0: torch.Tensor) -> _Kernels:
    """The kernels for a rollout from states like ``y0``: compiled (CUDA default, or asked for), the C library
    (CPU float32 with C <= 4, where it builds), or the eager torch kernels."""
    device, channels = y0.device, y0.shape[1]
    if compile is None:  # $TWI_ENGINE_COMPILE=1 or 0 forces it; unset: compile on CUDA only
        choice = os.environ.get("TWI_ENGINE_COMPILE", "")
        compile = choice == "1" if choice in ("0", "1") else device.type == "cuda"
    if compile:
        return _compiled_kernels(device, channels)
    if device.type == "cuda":  # eager step kernels, with the GPU's weight gradient
        key = ("cuda-eager", channels <= 4)
        if key not in _COMPILED:
            _COMPILED[key] = dataclasses.replace(_EAGER, name="eager(cuda)",
                                                 weight_grad=_device_weight_grad(device, channels))
        return _COMPILED[key]
    if _native.supports(y0):
        return _NATIVE
    return _EAGER


_EAGER = _Kernels(_eager_step_into, _eager_adjoint_into, "eager", _weight_grad)
_NATIVE = dataclasses.replace(_EAGER, name="native", native=True)


# ---------------------------------------------------------------------------------------------------------------------
# The rollout as one autograd node.


#: Devices on which the time projection runs as one GEMM per image and channel (see _project_pixels).
_PER_IMAGE_PROJECTION = {"cpu"}


def _project_pixels(acc: torch.Tensor, proj: torch.Tensor, ys: torch.Tensor) -> None:
    r"""``acc[b, p, c, k] += sum_t proj[k, t] ys[t, b, c, p]`` for a segment: acc (B, H*W, C, P), proj (P, n), ys (n, B, C,
    H, W).

    One GEMM per image and channel, :math:`Y_{b,c}^\top P^\top` (H·W × n times n × P), written straight into the
    per-pixel layout the head reads: measured at B = 32 (T = 100, K = 51, 64×64) 73 ms, against 165 ms for one
    (P × n)(n × B·C·H·W) GEMM followed by the transposing copy to pixels-first (2-core CPU).
    """
    n, b, c = ys.shape[:3]
    if acc.device.type not in _PER_IMAGE_PROJECTION:  # on a GPU one GEMM beats B*C small launches; the add is cheap
        acc += (proj @ ys.reshape(n, -1)).view(-1, b, c, acc.shape[1]).permute(1, 3, 2, 0)
        return
    planes = ys.reshape(n, b, c, -1)  # (n, B, C, H*W), a view
    for i in range(b):
        for j in range(c):
            acc[i, :, j, :].addmm_(planes[:, i, j].t(), proj.t())


def _project_pixels_adjoint(inj: torch.Tensor, g_proj: torch.Tensor | None, proj: torch.Tensor, g_pix: torch.Tensor,
                            ys: torch.Tensor) -> None:
    """The adjoint of :func:`_project_pixels`: ``inj`` (n, B, C, H, W) gets the gradient of each state,
    ``g_proj`` (P, n) (if given) that of the projection; ``g_pix`` (B, H*W, C, P) is the gradient of ``acc``."""
    n, b, c = ys.shape[:3]
    if g_pix.device.type not in _PER_IMAGE_PROJECTION:  # as in _project_pixels: one GEMM each on a GPU
        g_flat = g_pix.permute(3, 0, 2, 1).reshape(proj.shape[0], -1)  # (P, B*C*H*W)
        torch.mm(proj.t(), g_flat, out=inj.view(n, -1))
        if g_proj is not None:
            g_proj += g_flat @ ys.reshape(n, -1).t()
        return
    planes, out = ys.reshape(n, b, c, -1), inj.view(n, b, c, -1)
    for i in range(b):
        for j in range(c):
            g = g_pix[i, :, j, :]  # (H*W, P)
            torch.mm(proj.t(), g.t(), out=out[:, i, j])
            if g_proj is not None:
                g_proj.addmm_(g.t(), planes[:, i, j].t())


@dataclass(frozen=True)
class _Spec:
    dt: float
    steps: int
    emission: type["_Emission"]  # what the rollout outputs (see _Emission and _EMISSIONS)
    segment: int
    kernels: _Kernels


def _channels_major(ys: torch.Tensor) -> torch.Tensor:
    """(n, B, C, H, W) states as the (n*C, B*H*W) matrix that a channel-mixing time projection multiplies (a copy)."""
    n, b, c, h, w = ys.shape
    return ys.transpose(1, 2).reshape(n * c, b * h * w)


def _segments(steps: int, segment: int) -> list[tuple[int, int]]:
    return [(a, min(a + segment, steps)) for a in range(0, steps, segment)]


def _empty(slots: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``(slots, *like.shape)`` buffer; on CPU from the process-wide pool, so that the rollout's ~100 MB
    buffers are reused between training steps instead of page-faulted afresh (see :mod:`twi_core.models.workspace`)."""
    return _workspace.WORKSPACE.empty(slots, like.numel(), like=like).view(slots, *like.shape)


def _run(spec: _Spec, ybuf, zbuf, sbuf, omega, alpha, weight, n: int) -> None:
    """n steps from slot 0 of the buffers: ybuf/zbuf (n+1, B, C, H, W) get states 0..n, sbuf (n, ...) the couplings."""
    if spec.kernels.native:
        _native.forward_segment(ybuf, zbuf, sbuf, omega, alpha, weight, spec.dt, n)
        return
    for i in range(n):
        spec.kernels.step_into(ybuf[i], zbuf[i], omega, alpha, weight, spec.dt, ybuf[i + 1], zbuf[i + 1], sbuf[i])


class _Emission:
    """What the rollout makes of the states it computes (forward), and the gradient it sends into them (backward).

    One subclass per output; :class:`_Rollout` calls these methods and never asks which output it computes.

    Forward: :meth:`absorb` once per segment with that segment's states ``ys`` (n, B, C, H, W) = y_{start+1} ..
    y_stop, then :meth:`output` (``last`` is y_T) and :meth:`saved` (tensors the backward needs besides the states).
    Backward, segments last to first: :meth:`start_backward` once, then :meth:`injection` per segment, the gradient
    arriving at each of its states (or None); :attr:`terminal` is a gradient on y_T itself, :attr:`projection_grad` the
    gradient of the projection (for the outputs that take one, :attr:`projected`).
    """

    projected = False  # takes a projection (time or channel mixing) and returns its gradient
    n_saved = 0        # tensors saved by saved()

    def __init__(self, steps: int, shape: tuple[int, ...], projection: torch.Tensor | None) -> None:
        self.steps, self.shape, self.projection = steps, shape, projection
        self.acc: torch.Tensor | None = None
        self.terminal: torch.Tensor | None = None
        self.projection_grad: torch.Tensor | None = None

    def absorb(self, ys: torch.Tensor, start: int, stop: int) -> None:
        """Take in the states of one segment (forward)."""

    def output(self, last: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def saved(self) -> tuple[torch.Tensor, ...]:
        return ()

    def start_backward(self, grad_out: torch.Tensor, saved: Sequence[torch.Tensor], needs_projection_grad: bool) -> None:
        self.grad_out = grad_out
        if self.projected and needs_projection_grad:
            self.projection_grad = torch.zeros_like(self.projection)

    def injection(self, start: int, stop: int, ys: torch.Tensor) -> torch.Tensor | None:
        """The gradient the output sends to y_{start+1} .. y_stop, shape (n, B, C, H, W), or None (backward)."""
        return None


class _Sequence(_Emission):
    """Every state: ``(B, T, C, H, W)``."""

    def absorb(self, ys, start, stop):
        if self.acc is None:
            self.acc = ys.new_empty((self.shape[0], self.steps, *self.shape[1:]))
        self.acc[:, start:stop].copy_(ys.transpose(0, 1))

    def output(self, last):
        return self.acc

    def injection(self, start, stop, ys):
        return self.grad_out[:, start:stop].transpose(0, 1)


class _Last(_Emission):
    """y_T, ``(B, C, H, W)``."""

    def output(self, last):
        return last.clone()

    def start_backward(self, grad_out, saved, needs_projection_grad):
        super().start_backward(grad_out, saved, needs_projection_grad)
        self.terminal = grad_out


class _Mean(_Emission):
    """The mean over time, ``(B, C, H, W)``."""

    def absorb(self, ys, start, stop):
        part = ys.sum(0)
        self.acc = part if self.acc is None else self.acc.add_(part)

    def output(self, last):
        return self.acc / self.steps

    def start_backward(self, grad_out, saved, needs_projection_grad):
        super().start_backward(grad_out, saved, needs_projection_grad)
        self.g_mean = grad_out / self.steps

    def injection(self, start, stop, ys):
        return self.g_mean.expand(stop - start, *self.shape)


class _Max(_Emission):
    """The maximum over time, ``(B, C, H, W)``; the first maximum receives the gradient, as with ``torch.max(dim)``."""

    n_saved = 1

    def absorb(self, ys, start, stop):
        values, index = ys.max(dim=0)  # first maximum within the segment
        if self.acc is None:
            self.acc, self.arg = values, index.add_(start)
        else:
            newer = values > self.acc  # strict: an earlier maximum wins, as torch.max(dim) does
            self.acc = torch.where(newer, values, self.acc)
            self.arg = torch.where(newer, index + start, self.arg)

    def output(self, last):
        return self.acc

    def saved(self):
        return (self.arg,)

    def start_backward(self, grad_out, saved, needs_projection_grad):
        super().start_backward(grad_out, saved, needs_projection_grad)
        (self.arg,) = saved

    def injection(self, start, stop, ys):
        times = torch.arange(start, stop, device=self.arg.device).view(stop - start, 1, 1, 1, 1)
        return self.grad_out * (self.arg == times)


class _Project(_Emission):
    """A time projection per pixel and channel, ``(B, H*W, C, P)``: ``fft`` (cos/sin rows) and ``linear``."""

    projected = True

    def absorb(self, ys, start, stop):
        if self.acc is None:
            b, _, h, w = self.shape
            self.acc = ys.new_zeros((b, h * w, self.shape[1], self.projection.shape[0]))
        _project_pixels(self.acc, self.projection[:, start:stop], ys)

    def output(self, last):
        return self.acc

    def start_backward(self, grad_out, saved, needs_projection_grad):
        super().start_backward(grad_out, saved, needs_projection_grad)
        self.g_pix = grad_out.contiguous()  # (B, H*W, C, P)

    def injection(self, start, stop, ys):
        inj = _empty(stop - start, ys[0])
        g_proj = self.projection_grad[:, start:stop] if self.projection_grad is not None else None
        _project_pixels_adjoint(inj, g_proj, self.projection[:, start:stop], self.g_pix, ys)
        return inj


class _Mix(_Emission):
    """A channel-mixing projection of the whole sequence, ``(P, B, H, W)``: acc += M[:, segment] (P, n*C) @ states
    as (n*C, B*H*W)."""

    projected = True

    def _segment(self, start, stop):
        return self.projection[:, start:stop].reshape(self.projection.shape[0], -1)  # (P, n*C)

    def absorb(self, ys, start, stop):
        if _native.mix_supported(ys, self.projection.shape[0]):
            # The C library's blocked kernels: the torch forms below are small GEMMs and copies per step and image,
            # 2-4x slower at the Multi-MNIST shape (a whole training step 1.17x: fast_torch_mix in
            # benchmarks/bench_multi_mnist.py).
            if self.acc is None:
                self.acc = ys.new_zeros((self.projection.shape[0], ys.shape[1], ys[0, 0].numel() // ys.shape[2]))
            _native.mix_absorb(self.acc, ys, self.projection[:, start:stop])
            return
        if ys.device.type in _PER_IMAGE_PROJECTION:
            # One (P x C)(C x H*W) GEMM per step and image, straight from the state buffer: the one-GEMM form below
            # needs the states channel-major, a transposing copy of the whole segment (Multi-MNIST: 4 MB per step).
            n, b, c = ys.shape[:3]
            if self.acc is None:
                self.acc = ys.new_zeros((self.projection.shape[0], b, ys[0, 0].numel() // c))
            for t in range(n):
                m_t = self.projection[:, start + t]  # (P, C)
                for i in range(b):
                    self.acc[:, i].addmm_(m_t, ys[t, i].view(c, -1))
            return
        part, mix = _channels_major(ys), self._segment(start, stop)
        if self.acc is None:
            self.acc = mix @ part
        else:
            self.acc.addmm_(mix, part)

    def output(self, last):
        return self.acc.reshape(self.projection.shape[0], self.shape[0], *self.shape[2:])

    def start_backward(self, grad_out, saved, needs_projection_grad):
        super().start_backward(grad_out, saved, needs_projection_grad)
        self.g_flat = grad_out.reshape(self.projection.shape[0], -1).contiguous()  # (P, B*H*W), once per backward

    def injection(self, start, stop, ys):
        n, (b, c, h, w) = stop - start, self.shape
        if _native.mix_supported(ys, self.projection.shape[0]):
            inj, g_mix = _native.mix_adjoint(self.g_flat.view(-1, b, h * w), ys,
                                             self.projection[:, start:stop], out=_empty(n, ys[0]),
                                             weight_grad=self.projection_grad is not None)
            if g_mix is not None:
                self.projection_grad[:, start:stop] = g_mix
            return inj
        rows = _empty(n, ys[0]).view(n * c, -1)  # (n*C, B*H*W); per step a (B, C, H, W) view, no copy
        inj = torch.mm(self._segment(start, stop).t(), self.g_flat, out=rows).view(n, c, b, h, w).transpose(1, 2)
        if self.projection_grad is not None:
            if ys.device.type in _PER_IMAGE_PROJECTION:  # per step and image, as in absorb (no transposing copy)
                g = self.g_flat.view(self.g_flat.shape[0], b, -1)  # (P, B, H*W)
                for t in range(n):
                    g_m = self.projection_grad[:, start + t]  # (P, C)
                    for i in range(b):
                        g_m.addmm_(g[:, i], ys[t, i].view(c, -1).t())
            else:
                self.projection_grad[:, start:stop] = (self.g_flat @ _channels_major(ys).t()).view(-1, n, c)
        return inj


#: The rollout's outputs by name (the ``mode`` of :func:`_rollout_node`).
_EMISSIONS: dict[str, type[_Emission]] = {"sequence": _Sequence, "last": _Last, "mean": _Mean, "max": _Max,
                                          "project": _Project, "mix": _Mix}


class _Rollout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y0, omega, alpha, weight, projection, spec: _Spec):
        steps, seg = spec.steps, spec.segment
        whole = seg >= steps
        shape = tuple(y0.shape)
        omega, alpha = omega.contiguous(), alpha.contiguous()
        ybuf = _empty(seg + 1, y0)  # states y_start .. y_stop of the current segment
        zbuf = _empty(seg + 1, y0)
        sbuf = _empty(seg, y0)  # tanh(coupling) before each step (reused by the adjoint)
        bounds = _segments(steps, seg)
        by = y0.new_empty((len(bounds), *shape)) if not whole else None  # checkpoints at segment starts
        bz = y0.new_empty((len(bounds), *shape)) if not whole else None
        ybuf[0].copy_(y0)
        zbuf[0].zero_()
        emission = spec.emission(steps, shape, projection)
        for k, (start, stop) in enumerate(bounds):
            n = stop - start
            if k > 0:  # carry the last state of the previous segment into slot 0
                ybuf[0].copy_(ybuf[seg])
                zbuf[0].copy_(zbuf[seg])
            if not whole:
                by[k].copy_(ybuf[0])
                bz[k].copy_(zbuf[0])
            _run(spec, ybuf, zbuf, sbuf, omega, alpha, weight, n)
            emission.absorb(ybuf[1:n + 1], start, stop)
        out = emission.output(ybuf[bounds[-1][1] - bounds[-1][0]])
        ctx.spec = spec
        ctx.whole = whole
        saved = (ybuf, zbuf, sbuf) if whole else (by, bz)
        ctx.save_for_backward(omega, alpha, weight, projection, *emission.saved(), *saved)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        spec = ctx.spec
        steps, dt, seg = spec.steps, spec.dt, spec.segment
        omega, alpha, weight, projection, *rest = ctx.saved_tensors
        shape = tuple(omega.shape)
        emission = spec.emission(steps, shape, projection)
        n_saved = spec.emission.n_saved
        emission.start_backward(grad_out, rest[:n_saved], ctx.needs_input_grad[4])
        rest = rest[n_saved:]
        weight_t = _transpose_kernel(weight).contiguous()
        gy = torch.zeros_like(omega)
        gz = torch.zeros_like(omega)
        g_omega = torch.zeros_like(omega)
        g_alpha = torch.zeros_like(alpha)
        g_weight = torch.zeros_like(weight)
        if emission.terminal is not None:  # a gradient on y_T itself: the first state undone below
            gy = gy + emission.terminal
        w = shape[3]
        if ctx.whole:
            ybuf, zbuf, sbuf = rest
        else:
            by, bz = rest
            ybuf, zbuf, sbuf = _empty(seg + 1, omega), _empty(seg + 1, omega), _empty(seg, omega)
        native = spec.kernels.native
        ubuf = None if native else omega.new_empty((seg, *shape))  # v (1 - s²) per step, for the weight gradient
        bounds = _segments(steps, seg)
        for k in range(len(bounds) - 1, -1, -1):
            start, stop = bounds[k]
            n = stop - start
            if not ctx.whole:  # recompute this segment from its checkpoint
                ybuf[0].copy_(by[k])
                zbuf[0].copy_(bz[k])
                _run(spec, ybuf, zbuf, sbuf, omega, alpha, weight, n)
            # inj[i] (n, B, C, H, W): the gradient the output sends to y_{start+i+1}, emitted by local step i.
            inj = emission.injection(start, stop, ybuf[1:n + 1])
            if native:
                if inj is not None and inj.stride()[3:] != (w, 1):  # the C kernel reads unit-stride rows
                    inj = inj.contiguous()
                gy = gy.contiguous()
                g_weight += _native.adjoint_segment(ybuf, zbuf, sbuf, omega, alpha, weight, inj, gy, gz, g_omega,
                                                    g_alpha, dt, n)
                continue
            for i in range(n - 1, -1, -1):  # local step i maps state i to state i+1 and emits y_{start+i+1}
                if inj is not None:
                    gy = gy + inj[i]
                gy, gz = spec.kernels.adjoint_into(
                    gy, gz, ybuf[i], zbuf[i], sbuf[i], omega, alpha, weight_t, g_omega, g_alpha, dt, ubuf[i]
                )
            g_weight += spec.kernels.weight_grad(ubuf[:n].flatten(0, 1), ybuf[:n].flatten(0, 1), weight)
        return gy, g_omega, g_alpha, g_weight, emission.projection_grad, None


def _check(name: str, x: torch.Tensor, shape: tuple | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")


def _check_steps(steps) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def _rollout_node(y0, omega, alpha, coupling_weight, projection, *, dt, steps, mode, segment, compile) -> torch.Tensor:
    """Check the common arguments, pick the segment and kernels, and apply the rollout node."""
    _check("y0", y0)
    if y0.dim() != 4:
        raise ValueError(f"y0 must have shape (B, C, H, W), got {tuple(y0.shape)}")
    _check("omega", omega, y0.shape)
    _check("alpha", alpha, y0.shape)
    c = y0.shape[1]
    _check("coupling_weight", coupling_weight, (c, c, 3, 3))
    _check_steps(steps)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (0 < dt < math.inf):
        raise ValueError(f"dt must be a positive finite float, got {dt!r}")
    if segment is None:
        segment = choose_segment(steps, y0.numel() * y0.element_size())
    elif isinstance(segment, bool) or not isinstance(segment, int) or not 1 <= segment:
        raise ValueError(f"segment must be an int in 1..steps={steps}, got {segment!r}")
    spec = _Spec(float(dt), steps, _EMISSIONS[mode], min(segment, steps), _kernels(compile, y0))
    if projection is None:
        projection = y0.new_zeros(0, steps)
    return _Rollout.apply(y0, omega, alpha, coupling_weight, projection, spec)


def nwm_rollout(
    y0: torch.Tensor,
    omega: torch.Tensor,
    alpha: torch.Tensor,
    coupling_weight: torch.Tensor,
    *,
    dt: float,
    steps: int,
    readout: str | None = None,
    time_weight: torch.Tensor | None = None,
    segment: int | None = None,
    compile: bool | None = None,
    channel_major: bool = False,
) -> torch.Tensor:
    r"""The NWM rollout from ``(y0, z0 = 0)``, optionally reduced by a temporal readout, fast and memory-lean.

    Equal (to float rounding) to ``nwm_rollout_plain`` followed by ``READOUTS[readout]``, in value and in gradient.

    Parameters
    ----------
    y0, omega, alpha : Tensor, shape (B, C, H, W)
        Initial position, natural frequency and damping.
    coupling_weight : Tensor, shape (C, C, 3, 3)
        :math:`W_y` (circular 3×3 coupling, no bias).
    dt : float
        The time step Δt.
    steps : int
        T.
    readout : {None, 'last', 'mean', 'max', 'fft', 'linear'}
        ``None`` returns the states; a name returns that readout's features, accumulated without storing the states.
    time_weight : Tensor, shape (K, T), optional
        The learned time projection (required for ``'linear'``, ignored otherwise), K = T // 2 + 1.
    segment : int, optional
        Steps per checkpointed segment (1..T). ``None``: :func:`choose_segment`.
    compile : bool, optional
        Use ``torch.compile``-d step kernels. ``None``: on CUDA, or when ``$TWI_ENGINE_COMPILE=1``.
    channel_major : bool
        For ``fft`` and ``linear``: order each pixel's K·C features channel-major (index ``c * K + k``), the layout
        the engine computes, instead of the readouts' frequency-major ``k * C + c`` (which costs a transposing copy).
        The NWM uses it and reorders its head's first-layer columns to match.

    Returns
    -------
    Tensor
        ``(B, T, C, H, W)`` for ``readout=None``; otherwise ``(B, H, W, F)`` with F = C (last, mean, max) or K·C
        (fft, linear), frequency-major unless ``channel_major``.

    Raises
    ------
    ValueError
        Unknown readout (the message lists the valid ones), mismatched shapes, bad ``steps``/``segment``/``dt``.
    TypeError
        A non-tensor input.

    Examples
    --------
    >>> from twi_core.models.dynamics import laplacian_kernel, nwm_rollout_plain
    >>> g = torch.Generator().manual_seed(0)
    >>> y0, om, al = (0.1 * torch.rand(1, 2, 6, 6, generator=g) for _ in range(3))
    >>> fast = nwm_rollout(y0, om, al, laplacian_kernel(2), dt=0.1, steps=5)
    >>> bool(torch.allclose(fast, nwm_rollout_plain(y0, om, al, laplacian_kernel(2), dt=0.1, steps=5)))
    True
    >>> tuple(nwm_rollout(y0, om, al, laplacian_kernel(2), dt=0.1, steps=5, readout="fft").shape)
    (1, 6, 6, 6)
    """
    if readout is not None and readout not in ENGINE_READOUTS:
        raise ValueError(f"unknown readout {readout!r}; expected None or one of {sorted(ENGINE_READOUTS)}")
    _check_steps(steps)
    bins = _num_bins(steps)
    projection = None
    if readout == "linear":
        if time_weight is None:
            raise ValueError("the 'linear' readout needs time_weight of shape (K, T); got None")
        _check("time_weight", time_weight, (bins, steps))
        projection = time_weight
    elif readout == "fft":
        _check("y0", y0)
        projection = _cached_projection(steps, y0.dtype, y0.device)
    mode = {None: "sequence", "linear": "project", "fft": "project"}.get(readout, readout)
    out = _rollout_node(y0, omega, alpha, coupling_weight, projection, dt=dt, steps=steps, mode=mode,
                        segment=segment, compile=compile)
    b, c, h, w = y0.shape
    if readout is None:
        return out  # (B, T, C, H, W)
    if readout in ("last", "mean", "max"):
        return out.permute(0, 2, 3, 1).contiguous()  # (B, C, H, W) -> (B, H, W, C)
    if readout == "fft":
        out = torch.complex(out[..., :bins], out[..., bins:]).abs()  # (B, H*W, C, K) magnitude, as rfft(...).abs()
    if channel_major:
        return out.reshape(b, h, w, c * bins)  # index c*K + k: the layout the engine computes
    return out.transpose(2, 3).reshape(b, h, w, bins * c)  # (B, H*W, K, C): frequency-major k*C + c


def nwm_features(
    y0: torch.Tensor,
    omega: torch.Tensor,
    alpha: torch.Tensor,
    coupling_weight: torch.Tensor,
    *,
    dt: float,
    steps: int,
    readout: str,
    time_weight: torch.Tensor | None = None,
    segment: int | None = None,
    compile: bool | None = None,
    channel_major: bool = False,
) -> torch.Tensor:
    """The readout features ``(B, H, W, F)`` of the rollout: :func:`nwm_rollout` with a readout name required.

    This is what :class:`twi_core.models.nwm.NWM` calls on its fast path (states are never stored).

    Raises
    ------
    ValueError
        ``readout`` is None or unknown (the message lists the valid ones), or as :func:`nwm_rollout`.
    """
    if readout not in ENGINE_READOUTS:
        raise ValueError(f"unknown readout {readout!r}; expected one of {sorted(ENGINE_READOUTS)}")
    return nwm_rollout(y0, omega, alpha, coupling_weight, dt=dt, steps=steps, readout=readout,
                       time_weight=time_weight, segment=segment, compile=compile, channel_major=channel_major)


def nwm_mixed(
    y0: torch.Tensor,
    omega: torch.Tensor,
    alpha: torch.Tensor,
    coupling_weight: torch.Tensor,
    mix: torch.Tensor,
    *,
    dt: float,
    steps: int,
    segment: int | None = None,
    compile: bool | None = None,
) -> torch.Tensor:
    r"""A channel-mixing linear map of the whole state sequence, accumulated online: :math:`\sum_{t,c} M_{p t c}\, y_t[c]`.

    With :math:`M_{p t c} = \sum_k W^{(1)}_{p,\,kC + c}\, W^{time}_{k t}` this is the first layer of the per-pixel head
    applied to the ``linear`` readout (before its bias), computed without the readout's K·C features per pixel: for
    the Multi-MNIST NWM (C = 16, T = 100, K = 51, first hidden width 32) the features are 816 numbers per pixel, the
    result 32, and the arithmetic falls from K·C·(T + 32) to T·C·32 multiply-adds per pixel.

    Parameters
    ----------
    y0, omega, alpha, coupling_weight, dt, steps, segment, compile
        As :func:`nwm_rollout`.
    mix : Tensor, shape (P, T, C)
        :math:`M`.

    Returns
    -------
    Tensor
        ``(B, H, W, P)``, channels-last.

    Examples
    --------
    >>> from twi_core.models.dynamics import laplacian_kernel, nwm_rollout_plain
    >>> g = torch.Generator().manual_seed(0)
    >>> y0, om, al = (0.1 * torch.rand(1, 2, 6, 6, generator=g) for _ in range(3))
    >>> m = torch.randn(3, 5, 2, generator=g)
    >>> out = nwm_mixed(y0, om, al, laplacian_kernel(2), m, dt=0.1, steps=5)
    >>> ys = nwm_rollout_plain(y0, om, al, laplacian_kernel(2), dt=0.1, steps=5)  # (B, T, C, H, W)
    >>> bool(torch.allclose(out, torch.einsum("ptc,btchw->bhwp", m, ys), atol=1e-6))
    True
    """
    _check("y0", y0)
    if y0.dim() != 4:
        raise ValueError(f"y0 must have shape (B, C, H, W), got {tuple(y0.shape)}")
    _check("mix", mix)
    if mix.dim() != 3 or mix.shape[1] != steps or mix.shape[2] != y0.shape[1]:
        raise ValueError(f"mix must have shape (P, T={steps}, C={y0.shape[1]}), got {tuple(mix.shape)}")
    out = _rollout_node(y0, omega, alpha, coupling_weight, mix, dt=dt, steps=steps, mode="mix", segment=segment,
                        compile=compile)  # (P, B, H, W)
    return out.permute(1, 2, 3, 0)
