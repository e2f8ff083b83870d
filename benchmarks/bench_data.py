"""Dataset generation and cache-load speed: the full Tetrominoes set (targets: generate <= 15 s, load <= 1 s).

Run: ``python benchmarks/bench_data.py [--repeats 3]``. Uses a fresh temporary cache, so nothing of yours is touched.
Prints CPU seconds (process time, all threads; wall time is unreliable on a shared 2-core machine, the last call's
wall time is shown beside it), medians over repeats, side by side with the targets, and the other generators' cost per
image.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from twi_core import data


def _timed(fn) -> float:
    """Process CPU seconds of ``fn()`` (all threads): robust on a shared machine, unlike wall time."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _timed.wall = time.perf_counter() - t0
    return time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="cache loads to take the median of")
    parser.add_argument("--per-image", type=int, default=200, help="images per other generator")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data.load("multi_mnist", "train", n=1, root=tmp)        # caches the MNIST digits outside the timings
        gen = _timed(lambda: [data.load("tetrominoes", s, root=tmp) for s in data.SPLITS])
        gen_wall = _timed.wall
        loads = [_timed(lambda: [data.load("tetrominoes", s, root=tmp) for s in data.SPLITS])
                 for _ in range(args.repeats)]
        load_wall = _timed.wall
        train_loads = [_timed(lambda: data.load("tetrominoes", "train", root=tmp)) for _ in range(args.repeats)]
        print("Tetrominoes, all splits (12,000 images)")
        print(f"  generate + cache     {gen:7.2f} s CPU  ({gen_wall:.2f} s wall; target <= 15 s; ratio {gen / 15:.2f})")
        print(f"  load from cache      {statistics.median(loads):7.2f} s CPU  ({load_wall:.2f} s wall; target <= 1 s; ratio "
              f"{statistics.median(loads):.2f}; median of {args.repeats})")
        print(f"  load train (10,000)  {statistics.median(train_loads):7.2f} s CPU")
        for name in ("polygons", "polygons_single", "multi_mnist"):
            t = _timed(lambda: data.load(name, "train", n=args.per_image, root=tmp))
            print(f"{name:16s} generate {1e3 * t / args.per_image:6.2f} ms/image ({args.per_image} images, "
                  f"{t * 10_000 / args.per_image:5.1f} s per 10,000)")


if __name__ == "__main__":
    main()
