"""How long the waves run: the Polygons NWM-FFT trained at several horizons T·Δt, the same images for each.

The paper runs the polygon NWM for 500 steps and does not print the step size (its other datasets use Δt = 0.1, and
the authors' polygon notebook is not in their repository), while the book's stored runs use T = 100, Δt = 0.2. This
measures how much the horizon matters at a reduced scale: one run of :func:`twi_core.runs.obtain` per ``(T, Δt)`` in
its own store (resumable), then ``--collect`` writes every finished run's scores and curves, with the machine, into
``book/_data/polygon_horizons.json``, which chapter 2 draws.

    python benchmarks/polygon_horizons.py --store runs/horizons --steps 500 --dt 0.1
    python benchmarks/polygon_horizons.py --collect --store runs/horizons

``--smoke`` trains a tiny configuration (CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from twi_core.benchmarking import run_sweep_parser

    parser = run_sweep_parser(__doc__, out=ROOT / "book" / "_data" / "polygon_horizons.json")
    parser.add_argument("--steps", type=int, default=100, help="NWM time steps T")
    parser.add_argument("--dt", type=float, default=0.2, help="NWM step size")
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    from twi_core import runs
    from twi_core.chapters import ch2_polygons as ch2

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.collect:
        return collect(args.store, args.out, setup=args.setup)
    if args.smoke:
        config = ch2.polygon_config("smoke", steps=4, dt=args.dt, save_epoch_checkpoints=False)
    else:
        config = ch2.polygon_config("book", steps=args.steps, dt=args.dt, n_train=args.n_train, epochs=args.epochs,
                                    n_val=100, n_test=100, seed=args.seed, save_epoch_checkpoints=False)
    run = runs.obtain(config, store=args.store, progress=True)
    test = run.metrics.get("test", {})
    print(f"{run.path.name}: {run.status}; T = {config.model['steps']}, dt = {config.model['dt']}, "
          f"test FG-IoU {test.get('fg_iou', float('nan')):.3f}")
    return 0 if run.status == runs.COMPLETE else 1


def _point(run) -> dict:
    """One finished run of the sweep: its horizon, scores and validation curve."""
    cfg, test = run.config, run.metrics.get("test", {})
    return {"steps": cfg.model["steps"], "dt": cfg.model["dt"], "n_train": cfg.n_train, "epochs": cfg.epochs,
            "seed": cfg.seed, "wall_time_s": run.record.wall_time_s, "test_fg_iou": test.get("fg_iou"),
            "test_fg_accuracy": test.get("fg_accuracy"),
            "history": [{k: row.get(k) for k in ("epoch", "images_seen", "val_fg_iou", "val_loss")}
                        for row in run.result["history"]]}


def collect(store: Path, out: Path, *, setup: str = "") -> int:
    """Every finished run under ``store``, by horizon, with the machine, into ``out``."""
    from twi_core.benchmarking import collect_runs

    n = collect_runs(store, out, _point, field="points", setup=setup, sort_key=lambda p: (p["steps"] * p["dt"],
                                                                                           p["steps"]))
    print(f"{n} horizons -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
