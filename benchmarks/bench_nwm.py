"""Plain vs fast NWM training step, side by side in one process: medians, ratio, FLOP-limit fraction, memory, equality.

Usage::

    python benchmarks/bench_nwm.py                      # Tetrominoes NWM-linear at B = 16, 32 + Multi-MNIST memory
    python benchmarks/bench_nwm.py --batch 16 32 64 --repeats 5 --json book/_data/perf_nwm.json
    python benchmarks/bench_nwm.py --smoke              # CI: B = 1, T = 10, one repeat; seconds

A "training step" here is forward, cross-entropy and backward (the optimizer's update is ~2 ms and the same for both).
Timings are medians of ``--repeats`` interleaved steps (fast, plain, fast, plain, ...); the machine is shared, so read
the ratios. The fraction of the FLOP limit is reported against the nominal 138 GFLOP/s fp32 GEMM rate of this CPU and
against the GEMM rate measured in the same process around the timed steps ("live").
Multi-MNIST (C = 16, 128×128, T = 100) is measured at a reduced batch (``--mm-batch``, default 1) for memory and
gradient equality; saved-for-backward bytes scale linearly with the batch.

``--smoke`` runs every section (equality with float64, interleaved timings, saved bytes, the Multi-MNIST memory with
its two peak-RSS child processes) at B = 1 with T = 10 steps, Multi-MNIST at 32×32, one repeat. The checkpoint budget
is scaled with the workload, so the engine checkpoints as it would at full size. The table is printed; its ratios are
noise at that size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from twi_core._memory import reuse_freed_memory
from twi_core.models import engine
from twi_core.benchmarking import bench_training_step, machine, peak_rss_step, save_results
from twi_core.models.registry import paper_config


#: The Multi-MNIST workload the memory budget is set for: batch, image size, steps.
MM_FULL = (64, 128, 100)
#: Model changes of a ``--smoke`` run: few steps, and Multi-MNIST images small (the paths are the same).
SMOKE_CHANGES = {"tetrominoes": {"steps": 10}, "multi_mnist": {"steps": 10, "image_size": 32}}


def _cfg(dataset: str, readout: str = "linear", changes: dict | None = None) -> dict:
    cfg = paper_config(dataset, "nwm", readout)
    cfg.pop("name")
    return {"name": "nwm", **cfg, **(changes or {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--readouts", nargs="+", default=["linear"], help="Tetrominoes readouts to time")
    parser.add_argument("--mm-batch", type=int, default=1, help="Multi-MNIST batch for memory (0: skip)")
    parser.add_argument("--fp64-max-batch", type=int, default=16,
                        help="also compare gradients with a float64 run up to this batch")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--reuse-freed-memory", action="store_true",
                        help="first call twi_core._memory.reuse_freed_memory() (glibc keeps freed memory for reuse)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (e.g. book/_data/perf_nwm.json)")
    parser.add_argument("--smoke", action="store_true", help="B = 1, T = 10, one repeat, small Multi-MNIST (CI)")
    args = parser.parse_args(argv)
    changes = SMOKE_CHANGES if args.smoke else {}
    if args.smoke:
        args.batch, args.repeats, args.fp64_max_batch, args.mm_batch = [1], 1, 1, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reuse_freed_memory and not reuse_freed_memory():
        print("reuse_freed_memory(): not available here (glibc only)")
    result = {"machine": machine(), "tetrominoes": [], "multi_mnist": None}
    print(f"machine: {result['machine']}")
    print(f"{'readout':>8} {'B':>4} {'plain s':>8} {'fast s':>8} {'ratio':>6} {'limit s':>8} {'frac':>6} "
          f"{'frac live':>9} {'saved plain':>12} {'saved fast':>11} {'fwd rel':>8} {'grad rel':>8}")
    for readout in args.readouts:
        for batch in args.batch:
            r = bench_training_step(_cfg("tetrominoes", readout, changes.get("tetrominoes")), batch,
                                    repeats=args.repeats, float64=batch <= args.fp64_max_batch)
            r["readout"] = readout
            result["tetrominoes"].append(r)
            print(f"{readout:>8} {batch:>4} {r['plain_s']:8.3f} {r['fast_s']:8.3f} {r['ratio']:6.2f} "
                  f"{r['limit_s_nominal']:8.3f} {r['fraction_nominal']:6.2f} {r['fraction_live']:9.2f} "
                  f"{r['saved_bytes_plain'] / 2**20:10.0f}Mi {r['saved_bytes_fast'] / 2**20:9.0f}Mi "
                  f"{r['forward_rel']:8.1e} {r['grad_rel_max']:8.1e}", flush=True)
    for r in result["tetrominoes"]:
        if "grad_rel_fast_vs_fp64" in r:
            print(f"B={r['batch']} {r['readout']}: worst gradient error against float64: fast "
                  f"{r['grad_rel_fast_vs_fp64']:.1e}, plain {r['grad_rel_plain_vs_fp64']:.1e} (fast vs plain "
                  f"{r['grad_rel_max']:.1e})")
    if args.mm_batch:
        cfg = _cfg("multi_mnist", changes=changes.get("multi_mnist"))
        size, steps, channels = cfg["image_size"], cfg["steps"], cfg["hidden_channels"]
        # Checkpoint as the engine would at B = 64, 128x128, T = 100: its save budget scaled down by the workload
        # reduction (the saved bytes are proportional to batch x pixels x steps).
        full_b, full_size, full_t = MM_FULL
        engine.SAVE_BUDGET_BYTES = (engine.SAVE_BUDGET_BYTES * args.mm_batch * size * size * steps
                                    // (full_b * full_size * full_size * full_t))
        r = bench_training_step(cfg, args.mm_batch, repeats=1)
        r["segment"] = engine.choose_segment(steps, channels * size * size * 4 * args.mm_batch)
        for which in ("plain", "fast"):  # peak RSS of one step, each in a fresh process
            r[f"peak_rss_{which}"] = peak_rss_step(cfg, args.mm_batch, which, budget=engine.SAVE_BUDGET_BYTES)
        result["multi_mnist"] = r
        share = r["saved_bytes_fast"] / r["saved_bytes_plain"]
        print(f"\nMulti-MNIST NWM-linear (C={channels}, {size}x{size}, T={steps}) at B={args.mm_batch}: saved for "
              f"backward plain {r['saved_bytes_plain'] / 2**20:.0f} MiB, fast {r['saved_bytes_fast'] / 2**20:.0f} MiB "
              f"({share:.3f} of plain, segment {r['segment']}; x{64 // args.mm_batch} for B=64: plain "
              f"{r['saved_bytes_plain'] * 64 / args.mm_batch / 2**30:.1f} GiB, fast "
              f"{r['saved_bytes_fast'] * 64 / args.mm_batch / 2**30:.1f} GiB); step plain {r['plain_s']:.2f} s, "
              f"fast {r['fast_s']:.2f} s; peak RSS of a step plain "
              f"{r['peak_rss_plain'] / 2**20:.0f} MiB, fast {r['peak_rss_fast'] / 2**20:.0f} MiB "
              f"({r['peak_rss_fast'] / r['peak_rss_plain']:.3f}); forward rel {r['forward_rel']:.1e}, grad rel {r['grad_rel_max']:.1e}")
    if args.json:
        save_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
