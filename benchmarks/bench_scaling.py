"""How the plain and fast NWM training steps scale with T, image size and batch (time and saved-for-backward memory).

Usage::

    python benchmarks/bench_scaling.py --json book/_data/perf_scaling.json
    python benchmarks/bench_scaling.py --smoke          # CI: two tiny points per axis, one repeat; seconds

Each point is the Tetrominoes NWM-linear configuration with one quantity changed (base: B = 4, T = 100, 64×64), timed
plain vs fast interleaved in this process (median of ``--repeats``), with the bytes autograd saves for backward. The
appendix page "Performance" plots the JSON.

``--smoke`` sweeps each axis over two tiny values (T 5, 10; 16, 24 px; B 1, 2) around a base of B = 1, T = 10,
16×16, one repeat: every point is measured and printed as usual, the ratios are noise at that size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from twi_core.benchmarking import bench_training_step, machine, save_results
from twi_core.models.registry import paper_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96])
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--base", type=int, nargs=3, default=[4, 100, 64], metavar=("B", "T", "SIZE"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="two tiny values per axis, one repeat (CI, seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.sizes, args.batches, args.base, args.repeats = [5, 10], [16, 24], [1, 2], [1, 10, 16], 1
    if args.threads:
        torch.set_num_threads(args.threads)
    base_b, base_t, base_size = args.base
    cfg = paper_config("tetrominoes", "nwm", "linear")
    points = [("steps", v, base_b, v, base_size) for v in args.steps]
    points += [("image_size", v, base_b, base_t, v) for v in args.sizes]
    points += [("batch", v, v, base_t, base_size) for v in args.batches]
    result = {"machine": machine(), "base": {"batch": base_b, "steps": base_t, "image_size": base_size}, "points": []}
    print(f"machine: {result['machine']}")
    print(f"{'vary':>10} {'value':>6} {'plain s':>8} {'fast s':>8} {'ratio':>6} {'saved plain':>12} {'saved fast':>11}")
    for vary, value, batch, steps, size in points:
        r = bench_training_step({**cfg, "steps": steps, "image_size": size}, batch, repeats=args.repeats,
                                check=False)
        row = {"vary": vary, "value": value, "batch": batch, "steps": steps, "image_size": size,
               **{k: r[k] for k in ("plain_s", "fast_s", "ratio", "saved_bytes_plain", "saved_bytes_fast", "flops")}}
        result["points"].append(row)
        print(f"{vary:>10} {value:>6} {r['plain_s']:8.3f} {r['fast_s']:8.3f} {r['ratio']:6.2f} "
              f"{r['saved_bytes_plain'] / 2**20:10.0f}Mi {r['saved_bytes_fast'] / 2**20:9.0f}Mi", flush=True)
    if args.json:
        save_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
