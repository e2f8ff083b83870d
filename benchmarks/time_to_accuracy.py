"""Time to accuracy: validation FG-IoU against wall time and images seen, the authors' protocol against the fast recipe.

Each point is one run of :func:`twi_core.runs.obtain` in its own store (resumable: a killed run continues), so the
curves are the runs' own ``history``. ``--collect`` gathers every finished run of the store into
``book/_data/time_to_accuracy.json`` (with the machine), which the Performance appendix draws.

    python benchmarks/time_to_accuracy.py --family nwm --variant linear --recipe fast --store runs/tta
    python benchmarks/time_to_accuracy.py --recipe paper --batch-size 4 --store runs/tta   # the constant rate at B = 4
    python benchmarks/time_to_accuracy.py --collect --store runs/tta

``--smoke`` trains a tiny configuration (CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from twi_core.benchmarking import run_sweep_parser

    parser = run_sweep_parser(__doc__, out=ROOT / "book" / "_data" / "time_to_accuracy.json")
    parser.add_argument("--family", default="nwm", choices=["nwm", "lstm", "cnn"])
    parser.add_argument("--variant", default="linear")
    parser.add_argument("--recipe", default="fast", choices=["paper", "fast"])
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's preset)")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (16 paper, 4 fast)")
    args = parser.parse_args(argv)

    import torch

    from twi_core import runs
    from twi_core.reproduce import train_config

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.collect:
        return collect(args.store, args.out, setup=args.setup)
    lr = args.lr  # None: the recipe's peak rate (twi_core.recipes.DEFAULT_LR)
    if args.smoke:
        config = train_config("tetrominoes", args.family, args.variant, preset="smoke", recipe=args.recipe, lr=lr)
    else:
        config = train_config("tetrominoes", args.family, args.variant, seed=args.seed, preset="book",
                              recipe=args.recipe, lr=lr, batch_size=args.batch_size, n_train=args.n_train,
                              epochs=args.epochs, n_val=1000, n_test=1000)
    run = runs.obtain(config, store=args.store, progress=True)
    history = run.history
    print(f"{run.path.name}: {run.status}; val FG-IoU by epoch "
          f"{[round(v, 3) for v in history['val_fg_iou']] if len(history) else []}")
    return 0 if run.status == runs.COMPLETE else 1


def _curve(run) -> dict:
    """One finished run as a learning curve: its model, recipe and per-epoch validation."""
    cfg = run.config
    return {"family": cfg.model["name"], "variant": cfg.model.get("readout", cfg.model.get("depth")),
            "recipe": cfg.recipe, "lr": cfg.lr, "batch_size": cfg.batch_size, "n_train": cfg.n_train,
            "seed": cfg.seed, "head_dtype": run.result.get("head_dtype"),
            "history": [{k: row.get(k) for k in ("epoch", "images_seen", "elapsed_s", "lr", "val_fg_iou", "val_loss",
                                                 "train_loss")} for row in run.result["history"]],
            "test_fg_iou": run.metrics.get("test", {}).get("fg_iou")}


def collect(store: Path, out: Path, *, setup: str = "") -> int:
    """Every finished run under ``store`` as curves, with the machine, into ``out``."""
    from twi_core.benchmarking import collect_runs

    print(f"{collect_runs(store, out, _curve, field='curves', setup=setup)} curves -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
