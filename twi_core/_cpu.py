"""This machine's CPU: its model name and feature flags, read once from ``/proc/cpuinfo``.

Machines differ (AVX2-only, AVX-512, AMX, ``avx512_bf16``), and the package decides some things by them: the C
library is compiled for the flags (:mod:`twi_core.models._native`), the head trains in bf16 where that is faster
(:func:`twi_core.models.head.cpu_has_bf16`), and every run and benchmark records the model name.

Examples
--------
>>> isinstance(model_name(), str) and isinstance(flags(), frozenset)
True
"""

from __future__ import annotations

import functools
import platform

__all__ = ["flags", "model_name"]


@functools.lru_cache(maxsize=1)
def _first_processor() -> dict[str, str]:
    """The ``key: value`` lines of the first processor block of ``/proc/cpuinfo`` (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    return _first_processor().get("model name") or platform.processor() or platform.machine()


def flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    return frozenset(_first_processor().get("flags", "").split())
