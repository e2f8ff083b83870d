"""Dataset generation and cache-load speed: the full Tetrominoes set (targets: generate <= 15 s, load <= 1 s).

Run: ``python benchmarks/bench_data.py [--repeats 3]``. Uses a fresh temporary cache, so nothing of yours is touched.
Prints CPU seconds (process time, all threads; wall time is unreliable on a shared 2-core machine, the last call's
wall time is shown beside it), medians over repeats, side by side with the targets, and the other generators' cost per
image.

``--smoke`` (CI, seconds): the same generate / load / per-image paths on the first 8 images of each Tetrominoes split,
one repeat and 2 images per other generator; the targets are scaled to the images generated, so the ratios keep their
meaning (but say little at that size: fixed costs dominate).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from twi_core import data

#: Images of all three Tetrominoes splits, the size the targets are set for.
FULL_IMAGES = 12_000
#: Images per split in a ``--smoke`` run.
SMOKE_IMAGES = 8


def _timed(fn) -> float:
    """Process CPU seconds of ``fn()`` (all threads): robust on a shared machine, unlike wall time."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _timed.wall = time.perf_counter() - t0
    return time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="cache loads to take the median of")
    parser.add_argument("--per-image", type=int, default=200, help="images per other generator")
    parser.add_argument("--smoke", action="store_true",
                        help="8 images per Tetrominoes split, one repeat, 2 images per other generator (CI, seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.per_image = 1, 2
    # n=None loads whole splits; the smoke run takes a prefix of each (generators are prefix-stable, so this is the
    # same generation and cache code, only less of it).
    n = SMOKE_IMAGES if args.smoke else None
    sizes = {s: n or count for s, count in data.split_sizes("tetrominoes").items()}
    total = sum(sizes.values())
    # The targets are for the full 12,000 images: scaled linearly to the images actually generated.
    gen_target, load_target = 15 * total / FULL_IMAGES, 1 * total / FULL_IMAGES
    with tempfile.TemporaryDirectory() as tmp:
        data.load("multi_mnist", "train", n=1, root=tmp)        # caches the MNIST digits outside the timings
        gen = _timed(lambda: [data.load("tetrominoes", s, n=n, root=tmp) for s in data.SPLITS])
        gen_wall = _timed.wall
        loads = [_timed(lambda: [data.load("tetrominoes", s, n=n, root=tmp) for s in data.SPLITS])
                 for _ in range(args.repeats)]
        load_wall = _timed.wall
        train_loads = [_timed(lambda: data.load("tetrominoes", "train", n=n, root=tmp)) for _ in range(args.repeats)]
        print(f"Tetrominoes, all splits ({total:,} images)" + (" [--smoke]" if args.smoke else ""))
        print(f"  generate + cache     {gen:7.2f} s CPU  ({gen_wall:.2f} s wall; target <= {gen_target:.3g} s; "
              f"ratio {gen / gen_target:.2f})")
        print(f"  load from cache      {statistics.median(loads):7.2f} s CPU  ({load_wall:.2f} s wall; target <= "
              f"{load_target:.3g} s; ratio {statistics.median(loads) / load_target:.2f}; median of {args.repeats})")
        label = f"load train ({sizes['train']:,})"
        print(f"  {label:<21}{statistics.median(train_loads):7.2f} s CPU")
        for name in ("polygons", "polygons_single", "multi_mnist"):
            t = _timed(lambda: data.load(name, "train", n=args.per_image, root=tmp))
            print(f"{name:16s} generate {1e3 * t / args.per_image:6.2f} ms/image ({args.per_image} images, "
                  f"{t * 10_000 / args.per_image:5.1f} s per 10,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
