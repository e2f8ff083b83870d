"""Train a few Table 1 configurations at full data on a GPU, concurrently, and keep their results and checkpoints.

Usage::

    python benchmarks/gpu_runs.py --epochs 100 --out results/ tetrominoes/nwm/linear tetrominoes/cnn/2

Each ``dataset/family/variant`` is :func:`twi_core.reproduce.train_config` at the ``paper`` preset (full splits,
batch 64, Adam 1e-3) with ``--epochs`` replacing the paper's 300, trained by :func:`twi_core.train.fit` in its own
process (the GPU runs them side by side; small models leave most of it idle). ``result.json`` (with its provenance:
device, torch version, git commit, wall time) and ``checkpoint.pt`` of each run are copied to ``--out/<slug>/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

_CHILD = """
import sys
from twi_core.reproduce import train_config
from twi_core.runs import obtain
dataset, family, variant, epochs, seed = sys.argv[1:6]
cfg = train_config(dataset, family, variant, seed=int(seed), preset="paper", epochs=int(epochs))
run = obtain(cfg, device="cuda", progress=False)
print(run.path, run.status, flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("points", nargs="+", help="dataset/family/variant, e.g. tetrominoes/nwm/linear")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from twi_core.data import load  # generate each dataset once, before the children race for the cache

    for dataset in sorted({p.split("/")[0] for p in args.points}):
        for split in ("train", "val", "test"):
            load(dataset, split)
    children = []
    for point in args.points:
        dataset, family, variant = point.split("/")
        children.append(subprocess.Popen([sys.executable, "-c", _CHILD, dataset, family, variant, str(args.epochs),
                                          str(args.seed)], stdout=subprocess.PIPE, text=True))
    status = 0
    for point, child in zip(args.points, children):
        out, _ = child.communicate()
        status |= child.returncode
        lines = out.strip().splitlines()
        if child.returncode or not lines:
            print(f"{point}: failed (exit {child.returncode})", flush=True)
            continue
        path = Path(lines[-1].split()[0])
        dest = args.out / point.replace("/", "_")
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("result.json", "checkpoint.pt"):
            if (path / name).exists():
                shutil.copy2(path / name, dest / name)
        print(f"{point}: {lines[-1]}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
