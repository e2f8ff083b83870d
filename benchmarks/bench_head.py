"""Per-pixel MLP head, forward + cross-entropy + backward: plain ``nn.Sequential`` vs the fused head, side by side.

Usage::

    python benchmarks/bench_head.py                          # Tetrominoes head at 65,536 and 131,072 pixel rows
    python benchmarks/bench_head.py --rows 131072 --repeats 9 --head small --features 816 --classes 11
    python benchmarks/bench_head.py --reuse-freed-memory     # with glibc keeping freed memory (twi_core._memory)
    python benchmarks/bench_head.py --smoke                  # CI: one repeat at 4,096 rows (one image), seconds

The head is the Tetrominoes NWM-linear one (102 → 256 → 256 → 256 → 6); rows = B·H·W with 64×64 images (B = 16
and 32). Each variant runs in turn (plain, fused, fused without its workspace, plain, ...) in one process, and the
medians are reported, so the ratios hold even when the 2-core machine is shared. GFLOP/s counts the head's GEMMs only
(forward 2·MACs, backward 4·MACs: weight and input gradients) and is set against the fp32 GEMM rate measured in the
same process around the timed runs ("live", ``matmul_gflops``: 1024² GEMMs).

``--smoke`` runs the same equality check and interleaved timings at 4,096 rows (B = 1), one repeat, with torch's
thread count as set (``OMP_NUM_THREADS``) unless ``--threads`` is given: the table is printed, the ratios are noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.nn.functional as F

from twi_core._memory import reuse_freed_memory
from twi_core.models import head as head_module
from twi_core.models import workspace as workspace_module
from twi_core.benchmarking import machine, matmul_gflops, time_interleaved
from twi_core.models.readouts import HEADS, PixelMLP


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[65536, 131072], help="B·H·W (multiples of 4096)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--head", default="default", choices=sorted(HEADS))
    parser.add_argument("--features", type=int, default=102)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 2; --smoke: torch's)")
    parser.add_argument("--reuse-freed-memory", action="store_true",
                        help="first call twi_core._memory.reuse_freed_memory() (the workspace then steps aside)")
    parser.add_argument("--smoke", action="store_true", help="4,096 rows, one repeat (CI, seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.repeats = [4096], 1
    # A smoke run in CI shares the machine with other jobs: it keeps the caller's thread count rather than taking 2.
    if args.threads is not None or not args.smoke:
        torch.set_num_threads(args.threads or 2)
    heap = reuse_freed_memory() if args.reuse_freed_memory else False
    print(f"machine: {machine()}, glibc reuses freed memory: {heap}")
    hidden = HEADS[args.head]
    widths = (args.features, *hidden, args.classes)
    macs_per_row = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    print(f"head {' -> '.join(map(str, widths))}, median of {args.repeats} interleaved runs; "
          "'fused, no ws' is the fused head with its workspace off (fresh buffers every step)")
    print(f"{'rows':>7} {'plain s':>8} {'fused s':>8} {'no ws s':>8} {'ratio':>6} {'GF/s plain':>10} "
          f"{'GF/s fused':>10} {'live GEMM':>9} {'frac fused':>10} {'fwd rel':>8} {'grad rel':>8}")
    for rows in args.rows:
        batch, pixels = divmod(rows, 64 * 64)
        if pixels:
            raise SystemExit(f"--rows must be a multiple of 4096 (64×64 images), got {rows}")
        torch.manual_seed(0)
        model = PixelMLP(args.features, hidden, args.classes)
        x = torch.randn(batch, 64, 64, args.features, requires_grad=True)
        target = torch.randint(0, args.classes, (batch, 64, 64))

        def step(forward):
            model.zero_grad(set_to_none=True)
            x.grad = None
            logits = forward(x)
            F.cross_entropy(logits, target).backward()
            return logits.detach()

        def no_workspace():
            workspace_module.WORKSPACE.enabled = False
            try:
                return step(model.forward)
            finally:
                workspace_module.WORKSPACE.enabled = True

        # Equality first (also the warm-up): logits and every gradient, fused against plain.
        ref = step(model.forward_plain)
        ref_grads = [x.grad.clone(), *(p.grad.clone() for p in model.parameters())]
        out = step(model.forward)
        grads = [x.grad, *(p.grad for p in model.parameters())]
        fwd_rel, grad_rel = _rel(out, ref), max(_rel(a, b) for a, b in zip(grads, ref_grads))
        head_module.clear_workspace()
        live_before = matmul_gflops()
        times = time_interleaved({"plain": lambda: step(model.forward_plain), "fused": lambda: step(model.forward),
                                  "no_ws": no_workspace}, repeats=args.repeats)
        live = 0.5 * (live_before + matmul_gflops())
        med = {k: statistics.median(v) for k, v in times.items()}
        flops = 3 * 2 * macs_per_row * rows
        print(f"{rows:>7} {med['plain']:8.3f} {med['fused']:8.3f} {med['no_ws']:8.3f} "
              f"{med['plain'] / med['fused']:6.2f} {flops / med['plain'] / 1e9:10.1f} {flops / med['fused'] / 1e9:10.1f} "
              f"{live:9.1f} {flops / med['fused'] / 1e9 / live:10.2f} {fwd_rel:8.1e} {grad_rel:8.1e}", flush=True)
        head_module.clear_workspace()
    return 0


if __name__ == "__main__":
    sys.exit(main())
