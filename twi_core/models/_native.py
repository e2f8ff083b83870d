r"""The NWM recurrence and its adjoint as one small C library for the CPU (few channels, float32).

:mod:`twi_core.models.engine` runs a segment of the rollout (and of its adjoint) through :func:`forward_segment` and
:func:`adjoint_segment` when :func:`available` says so, and through torch ops otherwise; tests hold both to the plain
specification. The source is ``_nwm_cpu.c`` next to this file (its header states the equations). It is compiled on
first use with the system C compiler (``$CC`` or ``cc``; ``-O3 -march=native``, well under a second) into the user
cache (``~/.cache/twi/native``), keyed by a hash of the source, the flags and the CPU's feature flags, so a changed
source or machine never loads a stale library. Written atomically: concurrent first uses cannot see a half-written
file.

Why C and not ``torch.compile``: inductor's kernel for the same step ran no faster than the eager torch ops on the
2-core development CPU (2.07 vs 2.00 ms per step at B = 32, after 16 s of compiling per shape), while this library
keeps one image's state in cache for all its steps and needs compiling once per machine, for every shape.

Threads: images are independent, so the batch is split into contiguous ranges, one per thread
(``torch.get_num_threads()``), each a ctypes call that releases the GIL. ``$TWI_ENGINE_NATIVE=0`` turns the library
off (the torch kernels then run); without a C compiler it is off and :func:`unavailable_reason` says why.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from twi_core import _cpu
from twi_core.paths import cache_root

__all__ = ["MAX_CHANNELS", "MIX_BLOCK", "WIDE_CHANNELS", "WIDE_MAX_CHANNELS", "WIDE_WIDTH", "adjoint_segment",
           "available", "forward_segment", "library_path", "mix_absorb", "mix_adjoint", "mix_supported", "supports",
           "unavailable_reason"]

log = logging.getLogger(__name__)

#: The most oscillator channels the row-by-row kernels handle (their per-pixel work grows as C² with one accumulator
#: pass per tap; for more, mkldnn's convolution is the faster coupling) ...
MAX_CHANNELS = 4
#: ... and the register-blocked "wide" kernels, for C a multiple of WIDE_CHANNELS up to WIDE_MAX_CHANNELS and W a
#: multiple of WIDE_WIDTH (16 floats: one AVX-512 vector, two AVX2 ones): the Multi-MNIST NWM's C = 16 at 128x128.
WIDE_CHANNELS, WIDE_MAX_CHANNELS, WIDE_WIDTH = 8, 64, 16
#: The head-mixing kernels (:func:`mix_absorb`, :func:`mix_adjoint`) take C and P multiples of MIX_BLOCK.
MIX_BLOCK = 16
_SOURCE = Path(__file__).with_name("_nwm_cpu.c")
_FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-fPIC", "-shared", "-std=c11")
_lock = threading.Lock()
_reason: str | None = None


def library_path() -> Path:
    """Where the compiled library for this source, these flags and this CPU lives (it may not exist yet)."""
    key = hashlib.sha256()
    for part in (_SOURCE.read_bytes(), " ".join(_FLAGS).encode(), platform.machine().encode(),
                 " ".join(sorted(_cpu.flags())).encode()):
        key.update(part)
    return cache_root() / "native" / f"nwm_cpu-{key.hexdigest()[:16]}.so"


def _compile(target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler found ($CC, cc or gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([compiler, *_FLAGS, "-o", tmp, str(_SOURCE), "-lm"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{compiler} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        os.replace(tmp, target)  # atomic: another process sees the old state or the whole library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_F, _I, _D = ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.POINTER(ctypes.c_double)
_P = ctypes.c_ssize_t


@functools.cache
def _library() -> ctypes.CDLL | None:
    global _reason
    if os.environ.get("TWI_ENGINE_NATIVE", "") == "0":
        _reason = "turned off by $TWI_ENGINE_NATIVE=0"
        return None
    try:
        with _lock:
            path = library_path()
            if not path.exists():
                _compile(path)
            try:
                lib = ctypes.CDLL(str(path))  # CDLL (not PyDLL): calls release the GIL, so threads run in parallel
            except OSError as error:  # a truncated or foreign file under our name: build it again, once
                log.warning("rebuilding %s, which did not load: %s", path, error)
                _compile(path)
                lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError) as error:
        _reason = f"the C kernels could not be built or loaded: {error}"
        log.info("twi native NWM kernels unavailable: %s", _reason)
        return None
    lib.twi_nwm_scratch_floats.argtypes = [_I, _I, _I]
    lib.twi_nwm_scratch_floats.restype = _P
    lib.twi_nwm_forward.argtypes = [_F, _F, _F, _F, _F, _F, _F, _I, _I, _I, _I, _I, ctypes.c_float, _I, _I]
    lib.twi_nwm_forward.restype = _I
    lib.twi_nwm_adjoint.argtypes = [_F, _F, _F, _F, _F, _F, _F, _P, _P, _P, _F, _F, _F, _F, _D, _F,
                                    _I, _I, _I, _I, _I, ctypes.c_float, _I, _I]
    lib.twi_nwm_adjoint.restype = _I
    lib.twi_mix_absorb.argtypes = [_F, _F, _F, _I, _I, _I, _P, _I, _I, _I]
    lib.twi_mix_absorb.restype = _I
    lib.twi_mix_adjoint.argtypes = [_F, _D, _F, _F, _F, _I, _I, _I, _P, _I, _I, _I]
    lib.twi_mix_adjoint.restype = _I
    return lib


def available() -> bool:
    """Whether the compiled library can be used in this process (compiles it on first call)."""
    return _library() is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    return None if available() else _reason


def channels_supported(channels: int, width: int) -> bool:
    """Whether the kernels take C = ``channels`` at width W: C <= :data:`MAX_CHANNELS` (row by row), or the wide path.

    >>> channels_supported(2, 64), channels_supported(16, 128), channels_supported(16, 100), channels_supported(5, 64)
    (True, True, False, False)
    """
    wide = (channels % WIDE_CHANNELS == 0 and channels <= WIDE_MAX_CHANNELS and width % WIDE_WIDTH == 0)
    return 1 <= channels <= MAX_CHANNELS or wide


def supports(y0: torch.Tensor) -> bool:
    """Whether a rollout from states like ``y0`` (B, C, H, W) can run here: CPU, float32, 3 <= H, 3 <= W <= 4096, and
    C as :func:`channels_supported` allows."""
    return (y0.device.type == "cpu" and y0.dtype == torch.float32 and y0.dim() == 4
            and y0.shape[2] >= 3 and 3 <= y0.shape[3] <= 4096 and channels_supported(y0.shape[1], y0.shape[3])
            and available())


def _scratch(lib, parts: int, c: int, h: int, w: int) -> torch.Tensor:
    """One scratch area per thread (the C side says how many floats a call needs)."""
    return torch.empty(parts, int(lib.twi_nwm_scratch_floats(c, h, w)), dtype=torch.float32)


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="twi-nwm")


# A forked child inherits the pool object but not its threads, and would wait forever on work no thread takes: it
# starts a fresh pool instead.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.cache_clear)


def _ranges(batch: int) -> list[tuple[int, int]]:
    parts = max(1, min(batch, torch.get_num_threads()))
    edges = [round(k * batch / parts) for k in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _parallel(call, ranges: list[tuple[int, int]]) -> None:
    """``call(b0, b1, k)`` for the k-th range, on the pool's threads; a non-zero return is an error."""
    if len(ranges) == 1:
        codes = [call(*ranges[0], 0)]
    else:
        codes = list(_pool(len(ranges)).map(lambda k: call(*ranges[k], k), range(len(ranges))))
    if any(codes):
        raise RuntimeError(f"the native NWM kernel rejected its arguments (codes {codes})")


def _ptr(t: torch.Tensor, kind=_F):
    return ctypes.cast(t.data_ptr(), kind)


def _need_contiguous(**tensors: torch.Tensor) -> None:
    for name, t in tensors.items():
        if not t.is_contiguous() or t.dtype != torch.float32 or t.device.type != "cpu":
            raise ValueError(f"{name} must be a contiguous float32 CPU tensor, got {t.dtype} on {t.device} "
                             f"with strides {t.stride()}")


def forward_segment(ybuf: torch.Tensor, zbuf: torch.Tensor, sbuf: torch.Tensor, omega: torch.Tensor,
                    alpha: torch.Tensor, weight: torch.Tensor, dt: float, n: int) -> None:
    """n steps from slot 0: ``ybuf``/``zbuf`` ``(≥ n+1, B, C, H, W)`` get states 1..n, ``sbuf`` the n couplings."""
    weight = weight.detach().contiguous()
    _need_contiguous(ybuf=ybuf, zbuf=zbuf, sbuf=sbuf, omega=omega, alpha=alpha, weight=weight)
    b, c, h, w = omega.shape
    lib = _library()
    args = [_ptr(t) for t in (ybuf, zbuf, sbuf, omega, alpha, weight)]
    ranges = _ranges(b)
    scratch = _scratch(lib, len(ranges), c, h, w)
    _parallel(lambda b0, b1, k: lib.twi_nwm_forward(*args, _ptr(scratch[k]), n, b, c, h, w, dt, b0, b1), ranges)


def adjoint_segment(ybuf: torch.Tensor, zbuf: torch.Tensor, sbuf: torch.Tensor, omega: torch.Tensor,
                    alpha: torch.Tensor, weight: torch.Tensor, inj: torch.Tensor | None, gy: torch.Tensor,
                    gz: torch.Tensor, g_omega: torch.Tensor, g_alpha: torch.Tensor, dt: float, n: int) -> torch.Tensor:
    """n adjoint steps (t = n-1..0) in place on ``gy, gz, g_omega, g_alpha`` (B, C, H, W); returns this segment's
    coupling-weight gradient (C, C, 3, 3).

    ``inj`` (n, B, C, H, W), possibly strided but with unit-stride H×W planes, or None: the gradient injected into
    :math:`y_{t+1}` before step t's adjoint.
    """
    weight = weight.detach().contiguous()
    _need_contiguous(ybuf=ybuf, zbuf=zbuf, sbuf=sbuf, omega=omega, alpha=alpha, weight=weight, gy=gy, gz=gz,
                     g_omega=g_omega, g_alpha=g_alpha)
    b, c, h, w = omega.shape
    if inj is not None:
        if tuple(inj.shape) != (n, b, c, h, w) or inj.dtype != torch.float32 or inj.stride()[3:] != (w, 1):
            raise ValueError(f"inj must be float32 of shape {(n, b, c, h, w)} with unit-stride rows, got "
                             f"{inj.dtype} {tuple(inj.shape)} strides {inj.stride()}")
        inj_ptr, (st, sb, sc) = _ptr(inj), inj.stride()[:3]
    else:
        inj_ptr, st, sb, sc = None, 0, 0, 0
    ranges = _ranges(b)
    g_weight = torch.zeros(len(ranges), c, c, 3, 3, dtype=torch.float64)  # one partial sum per thread
    lib = _library()
    scratch = _scratch(lib, len(ranges), c, h, w)
    args = [_ptr(t) for t in (ybuf, zbuf, sbuf, omega, alpha, weight)]
    grads = [_ptr(t) for t in (gy, gz, g_omega, g_alpha)]

    def call(b0: int, b1: int, k: int) -> int:
        return lib.twi_nwm_adjoint(*args, inj_ptr, st, sb, sc, *grads, _ptr(g_weight[k], _D), _ptr(scratch[k]),
                                   n, b, c, h, w, dt, b0, b1)

    _parallel(call, ranges)
    return g_weight.sum(0).to(weight.dtype)


def mix_supported(ys: torch.Tensor, outputs: int) -> bool:
    """Whether :func:`mix_absorb` / :func:`mix_adjoint` take states like ``ys`` (n, B, C, H, W) mixed into ``outputs``
    channels: CPU float32, C and P multiples of :data:`MIX_BLOCK`, H*W of :data:`WIDE_WIDTH` (the Multi-MNIST NWM's
    C = 16, P = 32 at 128x128), and the library built.

    >>> mix_supported(torch.zeros(2, 1, 16, 8, 8), 32) == available(), mix_supported(torch.zeros(2, 1, 2, 8, 8), 32)
    (True, False)
    """
    c, hw = ys.shape[2], ys[0, 0, 0].numel()
    return (ys.device.type == "cpu" and ys.dtype == torch.float32 and ys.dim() == 5 and c % MIX_BLOCK == 0
            and outputs % MIX_BLOCK == 0 and hw % WIDE_WIDTH == 0 and available())


def mix_absorb(out: torch.Tensor, ys: torch.Tensor, mix: torch.Tensor) -> None:
    r"""``out`` (P, B, H*W) += :math:`\sum_{t, c} M_{p t c}\, y_t[c]` for one segment's states ``ys`` (n, B, C, H, W)
    and its slice ``mix`` (P, n, C) of the head's mixing map, in place (:func:`mix_supported` must hold)."""
    n, b, c = ys.shape[:3]
    hw, p = ys[0, 0, 0].numel(), mix.shape[0]
    m = mix.detach().permute(1, 2, 0).contiguous()  # (n, C, P)
    _need_contiguous(out=out, ys=ys, mix=m)
    lib = _library()
    ptrs = (_ptr(out), _ptr(ys), _ptr(m))
    _parallel(lambda b0, b1, k: lib.twi_mix_absorb(*ptrs, n, b, c, hw, p, b0, b1), _ranges(b))


def mix_adjoint(grad: torch.Tensor, ys: torch.Tensor, mix: torch.Tensor, *, weight_grad: bool = True,
                out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""The adjoint of :func:`mix_absorb`: ``(inj, g_mix)`` for the gradient ``grad`` (P, B, H*W) of its output.

    ``inj`` (n, B, C, H, W) is the gradient reaching each state, :math:`\sum_p M_{p t c}\, g_p`, written into ``out``
    when given (a reused buffer: a fresh one is page-faulted in on every call); ``g_mix`` (P, n, C) the gradient of
    ``mix``, :math:`\sum_{b, x} g_p[b, x]\, y_t[b, c, x]` (computed either way; None unless ``weight_grad``)."""
    n, b, c = ys.shape[:3]
    hw, p = ys[0, 0, 0].numel(), mix.shape[0]
    mt = mix.detach().transpose(0, 1).contiguous()  # (n, P, C)
    _need_contiguous(grad=grad, ys=ys, mix=mt)
    ranges = _ranges(b)
    inj = torch.empty_like(ys) if out is None else out
    _need_contiguous(out=inj)
    if inj.shape != ys.shape:
        raise ValueError(f"out must have the states' shape {tuple(ys.shape)}, got {tuple(inj.shape)}")
    gm = torch.zeros(len(ranges), n, p, c, dtype=torch.float64)  # one partial sum per thread
    lib = _library()
    ptrs = (_ptr(grad), _ptr(ys), _ptr(mt))
    _parallel(lambda b0, b1, k: lib.twi_mix_adjoint(_ptr(inj), _ptr(gm[k], _D), *ptrs, n, b, c, hw, p, b0, b1), ranges)
    return inj, (gm.sum(0).transpose(0, 1).to(mix.dtype) if weight_grad else None)
