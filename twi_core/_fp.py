"""Floating-point mode for CPU training: denormal numbers flushed to zero.

A damped oscillator far from any input decays through the denormal range (:math:`|y| < 1.2\\cdot10^{-38}` in float32),
where every multiply takes a microcode assist. Measured on the Multi-MNIST NWM (C = 16, 128×128, one image, 2-core
Xeon): one training step of the torch path took 47.6 s with denormals and 3.95 s without. Values that small change
nothing the models compute, so training runs with them flushed (:func:`flush_denormals`); the C kernels of
:mod:`twi_core.models._native` set the same mode for themselves.

Examples
--------
>>> import torch
>>> with flush_denormals() as can:
...     tiny = torch.tensor([1e-30]) * 1e-9          # 1e-39 is a denormal float32
>>> (float(tiny[0]) == 0.0) == can                    # flushed where the CPU can flush (x86 with SSE3)
True
>>> float(torch.tensor([1e-30]) * 1e-9) > 0.0       # outside the block: torch's default, denormals kept
True
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Callable, Iterator, TypeVar

import torch

__all__ = ["flush_denormals", "flushing_denormals"]

_lock = threading.Lock()
_depth = 0
F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def flush_denormals() -> Iterator[bool]:
    """Flush denormals to zero inside the block (nested blocks share one setting); yields whether the CPU can.

    torch has no getter for the mode, so the outermost block restores torch's default (denormals kept).
    """
    global _depth
    with _lock:
        _depth += 1
        supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                torch.set_flush_denormal(False)


def flushing_denormals(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`flush_denormals`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with flush_denormals():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
