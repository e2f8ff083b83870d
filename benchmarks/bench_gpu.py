"""The NWM training step on a GPU: the plain eager step against the fast engine, compiled kernels and CUDA graphs.

Usage (on a machine with CUDA)::

    python benchmarks/bench_gpu.py --json book/_data/perf_gpu.json
    python benchmarks/bench_gpu.py --batch 64 --repeats 30 --epoch        # also a full Tetrominoes epoch through fit()
    python benchmarks/bench_gpu.py --smoke                                # CI: tiny sizes; without CUDA, the CPU side

Variants of one training step (forward, cross-entropy, backward, Adam update) of the Tetrominoes NWM-linear (T = 100,
176,124 parameters), each on its own copy of the same initial weights, timed with CUDA events (median of ``--repeats``
steps after warm-up, variants interleaved round by round so that clock drift hits all alike):

- ``plain``: the specification rollout (:func:`~twi_core.models.dynamics.nwm_rollout_plain`), eager, Adam (foreach);
- ``plain+graph``: the same step replayed as a CUDA graph (:class:`twi_core.train_step.GraphedStep`);
- ``fast``: the engine (:mod:`twi_core.models.engine`) with eager kernels, eager step;
- ``fast+graph``: the engine with eager kernels in a CUDA graph;
- ``fast+compile+graph``: the engine with ``torch.compile``-d step kernels in a CUDA graph (the default of
  :func:`twi_core.train.fit` on CUDA).

Equality: logits and every parameter gradient of one step, fast+compile against plain and against plain in float64;
and the parameters after 5 graphed steps against 5 eager steps on the same batches. Memory: peak allocated bytes of one
Multi-MNIST training step (C = 16, 128×128, T = 100, batch 64) plain vs fast. ``--epoch``: a full Tetrominoes epoch
(10,000 images, batch 64, validation included) through :func:`twi_core.train.fit`, graphed and eager.

``--smoke`` (CI, seconds): T = 10 steps, batch 2, two repeats, Multi-MNIST memory at 32×32 and batch 2, no epochs. With
CUDA every section runs at those sizes. Without CUDA it says what it skips (CUDA events, CUDA graphs, compiled kernels,
GPU memory) and runs the rest on the CPU: the ``plain`` and ``fast`` eager steps built as on the GPU, their gradient
equality against float64, and their timings (``perf_counter``, interleaved) in the usual summary; exit status 0.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from twi_core.benchmarking import machine, save_results, training_flops_per_image
from twi_core.models.registry import build, paper_config
from twi_core.train_step import EagerStep, GraphedStep


def _config(dataset: str, **changes) -> dict:
    cfg = dict(paper_config(dataset, "nwm", "linear"))
    cfg.update(changes)
    return cfg


def _batch(cfg: dict, batch: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    size = cfg["image_size"]
    x = torch.rand(batch, cfg["in_channels"], size, size, generator=g)
    y = torch.randint(0, cfg["num_classes"], (batch, size, size), generator=g)
    return x.to(device), y.to(device)


def _compile_env(on: bool) -> None:
    os.environ["TWI_ENGINE_COMPILE"] = "1" if on else "0"


#: Model changes of a ``--smoke`` run (few recurrence steps; Multi-MNIST also small images): the same code paths.
SMOKE_CHANGES = {"tetrominoes": {"steps": 10}, "multi_mnist": {"steps": 10, "image_size": 32}}
#: The variants that run without CUDA (graphs need it; compiling on the CPU would take most of a smoke run).
CPU_VARIANTS = ("plain", "fast")


def _variant(name: str, base_state: dict, cfg: dict, x, y, device: str = "cuda"):
    """A fresh model (same initial weights) and its step callable for variant ``name`` on ``device``."""
    engine = "plain" if name.startswith("plain") else "fast"
    model = build(**{**cfg, "engine": engine}).to(device)
    model.load_state_dict(base_state)
    graphed = name.endswith("+graph")
    _compile_env("compile" in name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphed)
    step = GraphedStep(model, optimizer, x, y) if graphed else EagerStep(model, optimizer)
    return model, step


def _time_round_robin(steps: dict, x, y, repeats: int, warmup: int = 3) -> dict[str, list[float]]:
    """Milliseconds per step of each callable, measured with CUDA events, variants interleaved."""
    for name, step in steps.items():
        _compile_env("compile" in name)
        for _ in range(warmup):
            step(x, y)
    torch.cuda.synchronize()
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _compile_env("compile" in name)
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step(x, y)
            stop.record()
            stop.synchronize()
            times[name].append(start.elapsed_time(stop))
    return times


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _grads(model, x, y):
    model.zero_grad(set_to_none=True)
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    return logits.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _fast_vs_plain(cfg: dict, batch: int, device: str):
    """One batch through the ``plain`` and ``fast`` engines from the same weights, and the plain model in float64:
    ``(plain model, x, y, {forward/gradient relative errors})``. On CUDA the fast engine's kernels are compiled. The
    per-pixel head stays in fp32 (``TWI_HEAD_BF16=0``): on an AMX CPU its bf16 training path would make the float64
    comparison measure bf16 rounding instead of the engines."""
    os.environ["TWI_HEAD_BF16"] = "0"
    torch.manual_seed(0)
    base = build(**{**cfg, "engine": "plain"}).to(device)
    x, y = _batch(cfg, batch, device, seed=1)
    fast = build(**{**cfg, "engine": "fast"}).to(device)
    fast.load_state_dict(base.state_dict())
    exact = copy.deepcopy(base).double()
    _compile_env(device == "cuda")
    lf, gf = _grads(fast, x, y)
    lp, gp = _grads(base, x, y)
    _, ge = _grads(exact, x.double(), y)
    worst = lambda ga, gb: max(_rel(ga[k], gb[k]) for k in gb if float(gb[k].norm()) > 0)  # noqa: E731
    return base, x, y, {"forward_rel_fast_vs_plain": _rel(lf, lp), "grad_rel_fast_vs_plain": worst(gf, gp),
                        "grad_rel_fast_vs_fp64": worst(gf, ge), "grad_rel_plain_vs_fp64": worst(gp, ge)}


def equality(cfg: dict, batch: int) -> dict:
    """Fast (compiled kernels) vs plain vs plain in float64 on one step; graphed vs eager over 5 updates."""
    base, x, y, equal = _fast_vs_plain(cfg, batch, "cuda")
    from twi_core.models import engine as _engine

    u, yy = torch.randn(6400, 2, 64, 64, device="cuda"), torch.randn(6400, 2, 64, 64, device="cuda")
    w = torch.zeros(2, 2, 3, 3, device="cuda")
    kernels = _engine._kernels(True, torch.device("cuda"), 2)
    out_wg = {"weight_grad_function": f"{kernels.weight_grad.__module__}.{kernels.weight_grad.__name__}",
              "weight_grad_rel_vs_gemm_form": _rel(kernels.weight_grad(u, yy, w), _engine._weight_grad(u, yy, w))}
    for name, fn in (("device", kernels.weight_grad), ("gemm", _engine._weight_grad)):
        fn(u, yy, w)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(5):
            fn(u, yy, w)
        stop.record()
        stop.synchronize()
        out_wg[f"weight_grad_ms_{name}_N6400"] = start.elapsed_time(stop) / 5
    del u, yy
    out = {**equal, **out_wg}
    # Graphed vs eager training: the gradient of the first update (same weights), then the weights after 5 updates
    # on 5 batches (Adam's first steps are about lr * sign(g), so rounding of tiny gradients shows up as lr-sized
    # differences in single weights; "moved" is how far the 5 updates take the weights, for scale).
    batches = [_batch(cfg, batch, "cuda", seed=10 + i) for i in range(5)]
    models = {}
    for graphed in (False, True):
        m = build(**{**cfg, "engine": "fast"}).cuda()
        m.load_state_dict(base.state_dict())
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, capturable=graphed)
        step = GraphedStep(m, opt, *batches[0]) if graphed else EagerStep(m, opt)
        for i, (bx, by) in enumerate(batches):
            step(bx, by)
            if i == 0:
                models[f"grad{int(graphed)}"] = [p.grad.detach().clone() for p in m.parameters()]
        models[graphed] = m
    out["grad_rel_graphed_vs_eager_step1"] = max(_rel(g, h) for g, h in zip(models["grad1"], models["grad0"]))
    out["params_rel_graphed_vs_eager_after_5"] = max(
        _rel(p.detach(), q.detach()) for p, q in zip(models[True].parameters(), models[False].parameters()))
    out["params_rel_moved_after_5"] = max(
        _rel(p.detach(), q.detach()) for p, q in zip(models[False].parameters(), base.parameters()))
    return out


def step_times(cfg: dict, batch: int, repeats: int, variants: list[str], tf32: bool) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)
    base_state = build(**{**cfg, "engine": "plain"}).state_dict()
    x, y = _batch(cfg, batch, "cuda")
    steps, compile_s = {}, {}
    for name in variants:
        t0 = time.perf_counter()
        _, steps[name] = _variant(name, base_state, cfg, x, y)
        if not name.endswith("+graph"):
            _compile_env("compile" in name)
            steps[name](x, y)  # first call: compile (when compiled) and allocate
        torch.cuda.synchronize()
        compile_s[name] = time.perf_counter() - t0
    times = _time_round_robin(steps, x, y, repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    flops = training_flops_per_image(cfg) * batch
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"batch": batch, "tf32": tf32, "median_ms": med, "times_ms": times, "setup_s": compile_s,
            "ratio_vs_plain": {k: med["plain"] / v for k, v in med.items()} if "plain" in med else {},
            "tflops": {k: flops / (v / 1e3) / 1e12 for k, v in med.items()}, "flops_per_step": flops}


def memory(batch: int, compiled: bool = True, changes: dict | None = None) -> dict:
    """Peak allocated GPU memory of one Multi-MNIST training step, plain vs fast (``changes``: to the model config)."""
    cfg = _config("multi_mnist", **(changes or {}))
    out = {"batch": batch, "compiled_kernels": compiled}
    torch.manual_seed(0)
    base = build(**{**cfg, "engine": "plain"}).cuda()
    x, y = _batch(cfg, batch, "cuda")
    grads = {}
    for which in ("fast", "plain"):
        model = build(**{**cfg, "engine": which}).cuda()
        model.load_state_dict(base.state_dict())
        _compile_env(compiled)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        try:
            t0 = time.perf_counter()
            _, grads[which] = _grads(model, x, y)
            torch.cuda.synchronize()
            out[f"peak_bytes_{which}"] = torch.cuda.max_memory_allocated() - before
            out[f"step_s_{which}"] = time.perf_counter() - t0
        except torch.cuda.OutOfMemoryError as err:
            out[f"peak_bytes_{which}"] = None
            out[f"error_{which}"] = f"out of memory: {str(err).splitlines()[0]}"
        del model
    if len(grads) == 2:
        out["grad_rel_fast_vs_plain"] = max(_rel(grads["fast"][k], grads["plain"][k]) for k in grads["plain"]
                                            if float(grads["plain"][k].norm()) > 0)
        out["peak_share_fast"] = out["peak_bytes_fast"] / out["peak_bytes_plain"]
    return out


def epoch(graph: bool, epochs: int = 2, engine: str = "fast") -> dict:
    """A full Tetrominoes training through fit(): 10,000 images per epoch at batch 64, validation after each."""
    import dataclasses

    from twi_core.reproduce import train_config
    from twi_core.train import fit

    _compile_env(engine == "fast")
    cfg = train_config("tetrominoes", "nwm", "linear", preset="paper", epochs=epochs)
    cfg = dataclasses.replace(cfg, model={**cfg.model, "engine": engine})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = fit(cfg, tmp, device="cuda", progress=False, graph=graph)
        wall = time.perf_counter() - t0
    return {"graph": graph, "engine": engine, "epochs": epochs, "epoch_s": [h["time_s"] for h in result["history"]], "wall_s": wall,
            "val_fg_iou": [h["val_fg_iou"] for h in result["history"]], "train_loss": [h["train_loss"] for h in result["history"]],
            "n_train": result["n_images"]["train"], "batch_size": cfg.batch_size, "train_step": result["train_step"]}


def profile(cfg: dict, batch: int, variants: list[str], rows: int = 22) -> dict:
    """GPU time by kernel of one eager step per variant (torch.profiler): where a step's time goes."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.manual_seed(0)
    base_state = build(**{**cfg, "engine": "plain"}).state_dict()
    x, y = _batch(cfg, batch, "cuda")
    out = {}
    for name in variants:
        _, step = _variant(name, base_state, cfg, x, y)
        _compile_env("compile" in name)
        for _ in range(3):
            step(x, y)
        torch.cuda.synchronize()
        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            step(x, y)
            torch.cuda.synchronize()
        events = [e for e in prof.key_averages() if e.device_time_total > 0]
        events.sort(key=lambda e: -e.self_device_time_total)
        total = sum(e.self_device_time_total for e in events)
        out[name] = {"gpu_ms": total / 1e3, "top": [(e.key[:90], e.count, round(e.self_device_time_total / 1e3, 3))
                                                    for e in events[:rows]]}
        print(f"\n-- profile {name}, B={batch}: GPU busy {total / 1e3:.2f} ms --")
        for key, count, ms in out[name]["top"]:
            print(f"{ms:9.3f} ms {count:6d}x  {key}")
    return out


def cpu_smoke(cfg: dict, batch: int, repeats: int) -> dict:
    """The part of the comparison that runs without CUDA: the eager ``plain`` and ``fast`` steps on the CPU.

    Parameters
    ----------
    cfg : dict
        Model configuration (the smoke one: few steps).
    batch, repeats : int
        Images per step; timed steps per variant (interleaved, after one warm-up step each).

    Returns
    -------
    dict
        ``equality`` (forward and gradient relative errors, fast vs plain and both vs float64) and a ``steps`` entry
        shaped like :func:`step_times`' (``median_ms``, ``ratio_vs_plain``, ``tflops``), timed with ``perf_counter``.
    """
    from twi_core.benchmarking import time_interleaved

    base, x, y, equal = _fast_vs_plain(cfg, batch, "cpu")
    # The steps themselves are built by _variant, as on the GPU, only on the CPU.
    steps = {name: _variant(name, base.state_dict(), cfg, x, y, device="cpu")[1] for name in CPU_VARIANTS}
    times = time_interleaved({name: (lambda step=step: step(x, y)) for name, step in steps.items()}, repeats=repeats)
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    flops = training_flops_per_image(cfg) * batch
    return {"equality": equal, "steps": {"batch": batch, "tf32": False, "device": "cpu", "median_ms": med,
                                         "ratio_vs_plain": {k: med["plain"] / v for k, v in med.items()},
                                         "tflops": {k: flops / (v / 1e3) / 1e12 for k, v in med.items()}}}


def _guard(results: dict, key: str, fn, *args, **kwargs) -> None:
    try:
        results[key] = fn(*args, **kwargs)
    except Exception as err:  # report and go on: one failing section must not cost the others
        results[key] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        print(f"[{key}] FAILED: {type(err).__name__}: {err}", flush=True)
    print(f"[{key}] {json.dumps(results[key], default=float)[:1500]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--variants", nargs="+",
                        default=["plain", "plain+graph", "fast", "fast+graph", "fast+compile+graph"])
    parser.add_argument("--tf32", action="store_true", help="also time every variant with TF32 matmuls")
    parser.add_argument("--mm-batch", type=int, default=64, help="Multi-MNIST batch for peak memory (0: skip)")
    parser.add_argument("--epoch", action="store_true", help="also train full Tetrominoes epochs through fit()")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the Multi-MNIST peak memory, with eager step kernels (no compile time)")
    parser.add_argument("--profile", nargs="*", default=None, help="profile these variants (eager steps) and stop")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, no epochs; without CUDA only the CPU side (CI, seconds)")
    args = parser.parse_args(argv)
    changes = SMOKE_CHANGES if args.smoke else {}
    if args.smoke:
        args.batch, args.repeats, args.mm_batch, args.epoch, args.tf32 = [2], 2, 2, False, False
    if not torch.cuda.is_available():
        if not args.smoke:
            print("bench_gpu needs CUDA; none is available here", file=sys.stderr)
            return 2
        return _smoke_without_cuda(args, _config("tetrominoes", **changes["tetrominoes"]))
    results: dict = {"machine": machine(), "steps": []}
    print(f"machine: {results['machine']}", flush=True)
    cfg = _config("tetrominoes", **changes.get("tetrominoes", {}))
    if args.profile is not None:
        _guard(results, "profile", profile, cfg, args.batch[0], args.profile or ["plain", "fast+compile"])
        if args.json:
            save_results(args.json, results)
        return 0
    if args.memory_only:
        _guard(results, "memory", memory, args.mm_batch, False, changes.get("multi_mnist"))
        if args.json:
            save_results(args.json, results)
        return 0
    _guard(results, "equality", equality, cfg, 2 if args.smoke else 16)
    for batch in args.batch:
        for tf32 in ([False, True] if args.tf32 else [False]):
            _guard(results, f"steps_b{batch}_tf32{int(tf32)}", step_times, cfg, batch, args.repeats, args.variants, tf32)
            results["steps"].append(results.pop(f"steps_b{batch}_tf32{int(tf32)}"))
    if args.mm_batch:
        _guard(results, "memory", memory, args.mm_batch, True, changes.get("multi_mnist"))
    if args.epoch:
        _guard(results, "epoch_graphed", epoch, True)
        _guard(results, "epoch_eager", epoch, False, 1)
        _guard(results, "epoch_plain_eager", epoch, False, 1, "plain")
    if args.json:
        save_results(args.json, results)
    _summary(results)
    return 0


def _summary(results: dict) -> None:
    """The closing lines: per batch every variant's median, ratio to plain and throughput; then the checks."""
    print("\n== summary ==")
    for r in results["steps"]:
        if "median_ms" not in r:
            continue
        where = f" ({r['device']})" if "device" in r else ""
        print(f"B={r['batch']} tf32={r['tf32']}{where}: " + ", ".join(
            f"{k} {v:.2f} ms (x{r['ratio_vs_plain'].get(k, float('nan')):.1f}, {r['tflops'][k]:.1f} TFLOP/s)"
            for k, v in r["median_ms"].items()))
    for key in ("equality", "memory", "epoch_graphed", "epoch_eager", "epoch_plain_eager"):
        if key in results:
            print(key, {k: v for k, v in results[key].items() if k != "traceback"})


def _smoke_without_cuda(args, cfg: dict) -> int:
    """``--smoke`` on a machine without CUDA: say what is skipped, run the CPU side, print the usual summary."""
    skipped = [v for v in args.variants if v not in CPU_VARIANTS]
    print(f"bench_gpu --smoke: CUDA is not available here; skipped: the variants {skipped} (CUDA graphs, compiled "
          "kernels), CUDA-event timing, the Multi-MNIST GPU memory and the profile. Running the eager plain and fast "
          "steps on the CPU instead.", flush=True)
    results: dict = {"machine": machine(), "steps": []}
    print(f"machine: {results['machine']}", flush=True)
    _guard(results, "cpu", cpu_smoke, cfg, args.batch[0], args.repeats)
    if "error" in results["cpu"]:
        return 1  # the CPU side is all a smoke run without CUDA checks: its failure must fail the run
    results["equality"] = results["cpu"]["equality"]
    results["steps"].append(results.pop("cpu")["steps"])
    if args.json:
        save_results(args.json, results)
    _summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
