"""Train a few Table 1 configurations at full data on a GPU, concurrently, and keep their results and checkpoints.

Usage::

    python benchmarks/gpu_runs.py --epochs 100 --out results/ tetrominoes/nwm/linear tetrominoes/cnn/2
    python benchmarks/gpu_runs.py --smoke --out /tmp/smoke    # CI: one smoke-preset run; on the CPU without CUDA

Each ``dataset/family/variant`` is :func:`twi_core.reproduce.train_config` at the ``paper`` preset (full splits,
batch 64, Adam 1e-3) with ``--epochs`` replacing the paper's 300, trained by :func:`twi_core.train.fit` in its own
process (the GPU runs them side by side; small models leave most of it idle). ``result.json`` (with its provenance:
device, torch version, git commit, wall time) and ``checkpoint.pt`` of each run are copied to ``--out/<slug>/`` as
soon as that run finishes. With ``--deadline S`` the runs still going after S seconds are stopped and their
``state.pt`` (the last completed epoch) is copied instead: put it back into a run folder of the same configuration and
:func:`twi_core.runs.obtain` continues from there (a lent GPU's time is limited; a run must not be lost to it).

``--smoke`` trains the same way (child processes, result and checkpoint copied) at the ``smoke`` preset for one epoch
(default point ``tetrominoes/nwm/linear``), generating only the images that preset uses. Without CUDA it says so and
trains on the CPU instead: only the GPU itself is skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import sys
from twi_core.reproduce import train_config
from twi_core.runs import obtain
dataset, family, variant, epochs, seed, preset, device = sys.argv[1:8]
cfg = train_config(dataset, family, variant, seed=int(seed), preset=preset, epochs=int(epochs))
run = obtain(cfg, device=device, progress=False)
print(run.path, run.status, flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("points", nargs="*", help="dataset/family/variant, e.g. tetrominoes/nwm/linear")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (required unless --smoke: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--deadline", type=float, default=None, help="seconds; stop the runs still going and keep state.pt")
    parser.add_argument("--device", default="cuda", help="torch device of the runs (default cuda)")
    parser.add_argument("--smoke", action="store_true",
                        help="the smoke preset, one epoch; on the CPU when CUDA is missing (CI, seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.points = args.points or ["tetrominoes/nwm/linear"]
        args.epochs = args.epochs or 1
    elif not args.points or args.epochs is None:
        parser.error("give at least one point and --epochs (or --smoke)")
    bad = [p for p in args.points if p.count("/") != 2]
    if bad:  # before any data is generated or child started: a typo must not cost minutes
        parser.error(f"points must be dataset/family/variant, got {bad}")
    preset = "smoke" if args.smoke else "paper"
    import torch

    if args.smoke and args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_runs --smoke: CUDA is not available here; skipped: training on the GPU. The runs train on the CPU "
              "instead (same child processes, same copying of results).", flush=True)
        args.device = "cpu"
    from twi_core.data import load  # generate each dataset once, before the children race for the cache
    from twi_core.reproduce import train_config

    for point in args.points:
        # The images the runs will read: whole splits at the paper preset, the preset's prefixes at smoke (generators
        # are prefix-stable, so a prefix is what the run loads).
        cfg = train_config(*point.split("/"), seed=args.seed, preset=preset, epochs=args.epochs)
        sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test} if args.smoke else {}
        for split in ("train", "val", "test"):
            load(cfg.dataset, split, n=sizes.get(split))
    store = Path(tempfile.mkdtemp(prefix="twi-gpu-runs-"))
    env = {**os.environ, "TWI_RUNS_DIR": str(store)}
    children = {}
    for point in args.points:
        dataset, family, variant = point.split("/")
        children[point] = subprocess.Popen([sys.executable, "-c", _CHILD, dataset, family, variant, str(args.epochs),
                                            str(args.seed), preset, args.device],
                                           stdout=subprocess.PIPE, text=True, env=env)
    start, status = time.monotonic(), 0
    while children:
        time.sleep(2)
        late = args.deadline is not None and time.monotonic() - start > args.deadline
        for point, child in list(children.items()):
            if child.poll() is None and not late:
                continue
            if child.poll() is None:
                child.kill()
            out = child.communicate()[0] or ""
            del children[point]
            dest = args.out / point.replace("/", "_")
            dest.mkdir(parents=True, exist_ok=True)
            runs = [d for d in store.iterdir() if d.name.startswith(point.replace("/", "-"))]
            kept = []
            for run in runs:
                for name in ("result.json", "checkpoint.pt") if child.returncode == 0 else ("state.pt",):
                    if (run / name).exists():
                        shutil.copy2(run / name, dest / name)
                        kept.append(name)
            status |= 0 if child.returncode == 0 else 1
            print(f"{point}: exit {child.returncode} after {time.monotonic() - start:.0f} s, kept {kept or 'nothing'}; "
                  f"{out.strip()[-200:]}", flush=True)
    if args.smoke:  # the results were copied to --out; a smoke run leaves no temporary store behind
        shutil.rmtree(store, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
