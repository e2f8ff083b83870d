"""Measurement helpers for the fast NWM engine: FLOP counts, side-by-side step timing, saved bytes, equality checks.

Used by the scripts in ``benchmarks/`` and by the appendix page "Performance"
(:mod:`twi_core.chapters.appendix_performance`). Timings are
always taken plain and fast **interleaved in one process** and reported as medians and ratios, because the development
machine's 2 cores are shared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NOMINAL_GFLOPS",
    "bench_training_step",
    "collect_runs",
    "run_sweep_parser",
    "compare_models",
    "machine",
    "matmul_gflops",
    "model_pair",
    "peak_rss_step",
    "save_results",
    "saved_bytes",
    "time_interleaved",
    "training_flops_per_image",
]

#: fp32 matmul throughput of the development machine (2-core AMD EPYC, AVX-512), DESIGN.md §7, GFLOP/s.
NOMINAL_GFLOPS = 138.0


def machine() -> dict[str, Any]:
    """A short description of where a measurement ran (CPU model, threads, torch version, device, whether the
    engine's CPU recurrence ran in its C library or in torch kernels, and the dtype a wide head trains in on the CPU:
    narrower heads than :data:`twi_core.models.head.MIN_BF16_WIDTH` train in fp32)."""
    from twi_core import _cpu
    from twi_core.models import _native
    from twi_core.models.head import training_dtype

    return {"cpu": _cpu.model_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "cpu_kernels": "C library" if _native.available() else f"torch ({_native.unavailable_reason()})",
            "cpu_wide_head_dtype": str(training_dtype("cpu")).removeprefix("torch.")}


def save_results(path, result: dict[str, Any]) -> None:
    """Write a benchmark's results as JSON (atomically, folders created; numpy/torch scalars as floats)."""
    import json
    from pathlib import Path

    from twi_core._io import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1, default=float))
    print(f"wrote {path}")


def run_sweep_parser(doc: str, *, out) -> argparse.ArgumentParser:
    """The options of a benchmark that trains one run into a store per call and then ``--collect`` s the store.

    ``--store`` (required), ``--seed``, ``--threads``, ``--collect``, ``--out`` (default ``out``), ``--setup`` (how
    the runs were executed, stored with the results) and ``--smoke``; the script adds its own.
    """
    from pathlib import Path

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="run store of the measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--collect", action="store_true", help=f"write {Path(out).name} and stop")
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--setup", default="each run one process with one torch thread, two runs side by side",
                        help="how the runs were executed (stored with the results, shown with them)")
    parser.add_argument("--smoke", action="store_true", help="a tiny configuration, for CI")
    return parser


def collect_runs(store, out, record: Callable[[Any], dict[str, Any]], *, field: str, setup: str = "",
                 sort_key: Callable[[dict[str, Any]], Any] | None = None) -> int:
    """Every finished run under ``store`` as ``record(run)``, with the machine, into ``out`` (JSON) under ``field``.

    Returns the number of runs written.
    """
    from twi_core import runs

    items = [record(run) for run in runs.iter_runs(store)]
    if sort_key is not None:
        items.sort(key=sort_key)
    save_results(out, {"machine": machine(), "setup": setup, field: items})
    return len(items)


def model_pair(config: dict[str, Any], *, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """``(fast, plain)``: the same NWM weights with ``engine='fast'`` and ``engine='plain'``."""
    from twi_core.models.registry import build

    torch.manual_seed(seed)
    fast = build(**{**config, "engine": "fast"})
    plain = build(**{**config, "engine": "plain"})
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def _batch(config: dict[str, Any], batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size, c_in, n = config["image_size"], config["in_channels"], config["num_classes"]
    x = torch.rand(batch, c_in, size, size, generator=g)
    target = torch.randint(0, n, (batch, size, size), generator=g)
    return x, target


def _step(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    logits = model(x)
    F.cross_entropy(logits, target).backward()
    return logits.detach()


def time_interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int = 3, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn (a, b, a, b, ...) after ``warmup`` calls each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def matmul_gflops(*, size: int = 1024, repeats: int = 5) -> float:
    """Median fp32 GEMM throughput measured now (GFLOP/s): the live FLOP limit under the current machine load."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    t = time_interleaved({"mm": lambda: a @ b}, repeats=repeats)["mm"]
    return 2 * size**3 / statistics.median(t) / 1e9


def training_flops_per_image(config: dict[str, Any]) -> float:
    """FLOPs of one training step per image (forward + backward ≈ 3 × forward), counted from the architecture.

    Forward multiply-accumulates per pixel: encoders (3×3 convs), the recurrence (9·C²·T), the time projection (K·C·T,
    ``linear`` only) and the per-pixel head; FLOPs = 2 × MACs. For the Tetrominoes NWM-linear this is 0.753 GMAC per
    image forward (our count of the authors' model, ``cornn_model2.py`` in
    the authors' repository, KempnerInstitute/traveling-waves-integrate).
    """
    from twi_core.models.readouts import HEADS, READOUTS, num_frequency_bins

    c_in, c_m, c = config["in_channels"], config.get("mid_channels", 16), config.get("hidden_channels", 2)
    steps, n = config.get("steps", 100), config["num_classes"]
    readout, head = config.get("readout", "linear"), config.get("head", "default")
    enc = 2 * (9 * c_in * c_m + 9 * c_m * c_m + 9 * c_m * c) + (9 * c_in * c_m + 2 * 9 * c_m * c_m + 9 * c_m * c)
    rec = 9 * c * c * steps
    proj = num_frequency_bins(steps) * c * steps if readout == "linear" else 0
    widths = (READOUTS[readout].num_features(channels=c, steps=steps), *HEADS[head], n)
    mlp = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    pixels = config["image_size"] ** 2
    return 3 * 2 * (enc + rec + proj + mlp) * pixels


def saved_bytes(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> int:
    """Bytes autograd holds for the backward pass after the forward, measured with hooks.

    Per distinct storage, the extent its saved views reach (not the storage's size): the fast path's CPU buffers come
    from a reused pool (:mod:`twi_core.models.head`) whose blocks can be larger than a smaller batch needs.
    """
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        extent = 1 + sum((n - 1) * abs(st) for n, st in zip(t.shape, t.stride())) if t.numel() else 0
        used = min(s.nbytes(), (t.storage_offset() + extent) * t.element_size())
        storages[s.data_ptr()] = max(storages.get(s.data_ptr(), 0), used)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), target)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def compare_models(fast: nn.Module, plain: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                   float64: bool = False) -> dict[str, float]:
    """Relative differences (L2) of logits and of every parameter gradient (the worst one) between the two models.

    With ``float64``, also each model's worst gradient error against the plain model run in float64 (the exact
    answer up to 1e-15): it shows how large float32 rounding is on its own, next to the fast-vs-plain difference.
    """
    import copy

    logits_fast = _step(fast, x, target)
    logits_plain = _step(plain, x, target)

    def worst(a: nn.Module, b: nn.Module) -> float:
        out = 0.0
        for p, q in zip(a.parameters(), b.parameters()):
            if q.grad is not None and float(q.grad.norm()) > 0:
                out = max(out, _rel(p.grad.double(), q.grad.double()))
        return out

    result = {"forward_rel": _rel(logits_fast, logits_plain), "grad_rel_max": worst(fast, plain)}
    if float64:
        exact = copy.deepcopy(plain).double()
        _step(exact, x.double(), target)
        result["grad_rel_fast_vs_fp64"] = worst(fast, exact)
        result["grad_rel_plain_vs_fp64"] = worst(plain, exact)
    return result


def bench_training_step(config: dict[str, Any], batch: int, *, repeats: int = 3, check: bool = True,
                        memory: bool = True, float64: bool = False) -> dict[str, Any]:
    """Plain vs fast training step (forward + cross-entropy + backward) of one NWM configuration, side by side.

    Returns medians (seconds), the ratio plain/fast, saved-for-backward bytes of both, the equality checks, the FLOPs
    per step and the fraction of the fp32 FLOP limit (nominal 138 GFLOP/s, and live: measured GEMM rate right now).
    """
    fast, plain = model_pair(config)
    x, target = _batch(config, batch)
    out: dict[str, Any] = {"batch": batch, "config": {k: config[k] for k in sorted(config)}}
    if check:
        out.update(compare_models(fast, plain, x, target, float64=float64))
    if memory:
        out["saved_bytes_fast"] = saved_bytes(fast, x, target)
        out["saved_bytes_plain"] = saved_bytes(plain, x, target)
    gflops_before = matmul_gflops()
    times = time_interleaved({"fast": lambda: _step(fast, x, target), "plain": lambda: _step(plain, x, target)},
                             repeats=repeats, warmup=0 if check else 1)
    gflops_live = 0.5 * (gflops_before + matmul_gflops())
    fast_s, plain_s = statistics.median(times["fast"]), statistics.median(times["plain"])
    flops = training_flops_per_image(config) * batch
    out.update(
        fast_s=fast_s, plain_s=plain_s, ratio=plain_s / fast_s, times=times, flops=flops,
        limit_s_nominal=flops / (NOMINAL_GFLOPS * 1e9), fraction_nominal=flops / (NOMINAL_GFLOPS * 1e9) / fast_s,
        plain_fraction_nominal=flops / (NOMINAL_GFLOPS * 1e9) / plain_s,
        gemm_gflops_live=gflops_live, fraction_live=flops / (gflops_live * 1e9) / fast_s,
    )
    return out


_RSS_CHILD = """
import json, sys, torch
from twi_core.models import engine
from twi_core.benchmarking import _batch, _step, model_pair
config, batch, which, budget = json.loads(sys.argv[1])
engine.SAVE_BUDGET_BYTES = budget
fast, plain = model_pair(config)
model = fast if which == "fast" else plain
x, target = _batch(config, batch)
def hwm():  # peak RSS of this process image (ru_maxrss would include the parent's peak inherited at fork)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
before = hwm()
_step(model, x, target)
print(json.dumps(hwm() - before))
"""


def peak_rss_step(config: dict[str, Any], batch: int, which: str, *, budget: int | None = None) -> int:
    """Peak resident memory added by one training step (bytes), measured in a fresh Python process.

    ``which`` is ``'fast'`` or ``'plain'``; ``budget`` replaces the engine's save budget in the child (to checkpoint as
    at a larger batch).
    """
    import json
    import subprocess
    import sys

    from twi_core.models import engine

    if which not in ("fast", "plain"):
        raise ValueError(f"which must be 'fast' or 'plain', got {which!r}")
    args = json.dumps([config, batch, which, engine.SAVE_BUDGET_BYTES if budget is None else budget])
    done = subprocess.run([sys.executable, "-c", _RSS_CHILD, args], capture_output=True, text=True, check=True)
    return int(json.loads(done.stdout.strip().splitlines()[-1]))
