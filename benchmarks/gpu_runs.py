"""Train a few Table 1 configurations at full data on a GPU, concurrently, and keep their results and checkpoints.

Usage::

    python benchmarks/gpu_runs.py --epochs 100 --out results/ tetrominoes/nwm/linear tetrominoes/cnn/2

Each ``dataset/family/variant`` is :func:`twi_core.reproduce.train_config` at the ``paper`` preset (full splits,
batch 64, Adam 1e-3) with ``--epochs`` replacing the paper's 300, trained by :func:`twi_core.train.fit` in its own
process (the GPU runs them side by side; small models leave most of it idle). ``result.json`` (with its provenance:
device, torch version, git commit, wall time) and ``checkpoint.pt`` of each run are copied to ``--out/<slug>/`` as
soon as that run finishes. With ``--deadline S`` the runs still going after S seconds are stopped and their
``state.pt`` (the last completed epoch) is copied instead: put it back into a run folder of the same configuration and
:func:`twi_core.runs.obtain` continues from there (a lent GPU's time is limited; a run must not be lost to it).
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
    parser.add_argument("--deadline", type=float, default=None, help="seconds; stop the runs still going and keep state.pt")
    args = parser.parse_args(argv)
    from twi_core.data import load  # generate each dataset once, before the children race for the cache

    for dataset in sorted({p.split("/")[0] for p in args.points}):
        for split in ("train", "val", "test"):
            load(dataset, split)
    store = Path(tempfile.mkdtemp(prefix="twi-gpu-runs-"))
    env = {**os.environ, "TWI_RUNS_DIR": str(store)}
    children = {}
    for point in args.points:
        dataset, family, variant = point.split("/")
        children[point] = subprocess.Popen([sys.executable, "-c", _CHILD, dataset, family, variant, str(args.epochs),
                                            str(args.seed)], stdout=subprocess.PIPE, text=True, env=env)
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
    return status


if __name__ == "__main__":
    sys.exit(main())
