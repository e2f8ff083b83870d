"""The ``twi`` command line: ``twi reproduce GRID`` (:mod:`twi_core.batch`) and ``twi aggregate DIR``
(:mod:`twi_core.aggregation`).

Every argparse definition lives here; the modules it calls know nothing of the command line. Importing this module
does not import torch (``twi --help`` and ``twi reproduce --help`` stay fast).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from typing import Any, Callable, Sequence

from twi_core import paths, presets
from twi_core.aggregation import AGGREGATE_METRICS, aggregate, render_table
from twi_core.batch import EXECUTORS, run_grid
from twi_core.grids import _NOT_A_GRID, GRIDS, RUN_PRESETS

__all__ = ["main", "COMMANDS"]

AddArgs = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def _grid_argument(text: str) -> str:
    """argparse ``type`` of the grid: a preset name given as the grid gets the message saying so."""
    if text in presets.PRESETS and text not in GRIDS:
        raise argparse.ArgumentTypeError(_NOT_A_GRID.format(name=text))
    return text


def _parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE; got {item!r} (keys: {sorted(RUN_PRESETS['book'])})")
        key, text = item.split("=", 1)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip()] = value
    return out


def _add_reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", type=_grid_argument, choices=list(GRIDS._names), help="the grid to run")  # type: ignore[attr-defined]
    p.add_argument("--preset", default=None, choices=list(presets.PRESETS),
                   help="the scale (default: $TWI_PRESET, else book; naming both differently is an error)")
    p.add_argument("--jobs", type=int, default=1, help="runs at the same time (default 1)")
    p.add_argument("--out", default=None, help="run store to fill (default: $TWI_RUNS_DIR or ~/.cache/twi/runs)")
    p.add_argument("--executor", default="local", choices=list(EXECUTORS),
                   help="local (papermill, --jobs at a time) | slurm (submitit job array) | inline (this process)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: 0..n-1 for the preset's n)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="settings",
                   help=f"override a preset value; keys: {', '.join(RUN_PRESETS['book'])}")
    p.add_argument("--notebook", default=None,
                   help="the run notebook (default: book/run.ipynb of this checkout, else the installed copy)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: CUDA when present)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether they are done, run nothing")
    p.add_argument("--cluster", default=None, help="submitit cluster for --executor slurm (default: detect; 'local' "
                                                   "runs the job array on this machine)")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-gpus", type=int, default=None, help="GPUs per job")
    p.add_argument("--slurm-time", type=int, default=None, help="minutes per job")


def _reproduce(args: argparse.Namespace) -> int:
    env_preset = os.environ.get("TWI_PRESET")
    if env_preset and env_preset not in presets.PRESETS:  # a misspelt variable first, not "they disagree"
        print(f"twi reproduce: error: TWI_PRESET: got {env_preset!r}; expected one of {list(presets.PRESETS)}",
              file=sys.stderr)
        return 2
    if args.preset and env_preset and env_preset != args.preset:
        print(f"twi reproduce: error: --preset {args.preset} and TWI_PRESET={env_preset} disagree; drop one of them",
              file=sys.stderr)
        return 2
    slurm: dict[str, Any] = {}
    if args.slurm_partition:
        slurm["slurm_partition"] = args.slurm_partition
    if args.slurm_gpus is not None:
        slurm["gpus_per_node"] = args.slurm_gpus
    if args.slurm_time is not None:
        slurm["timeout_min"] = args.slurm_time
    try:
        overrides = _parse_set(args.settings)
        seeds = args.seeds
        if "seeds" in overrides:  # --set seeds=N: the first N seeds (--help lists it among the settings)
            n = overrides.pop("seeds")
            if seeds is not None:
                raise ValueError("give the seeds once: --seeds S ... or --set seeds=N, not both")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"--set seeds=N needs a positive integer N; got {n!r}")
            seeds = list(range(n))
        summary = run_grid(args.grid, preset=args.preset, jobs=args.jobs, out=args.out, executor=args.executor,
                           seeds=seeds, notebook=args.notebook, device=args.device, dry_run=args.dry_run,
                           cluster=args.cluster, slurm=slurm, overrides=overrides)
    except (ValueError, TypeError, OSError) as err:  # OSError: a path that failed after the checks (a full disk)
        print(f"twi reproduce: error: {err}", file=sys.stderr)
        return 2
    cols = [c for c in ("run", "status", "seconds") if c in summary.columns]
    print(summary[cols].to_string(index=False))
    return 1 if (summary["status"] == "error").any() else 0


def _add_aggregate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default=None, help="run store (default: $TWI_RUNS_DIR or ~/.cache/twi/runs)")
    p.add_argument("--csv", default=None, help="write the full table (all statistics and the paper's) as CSV")
    p.add_argument("--metrics", nargs="+", default=["fg_iou", "fg_accuracy", "total_iou"],
                   help=f"metrics shown (of {', '.join(AGGREGATE_METRICS)})")


def _aggregate(args: argparse.Namespace) -> int:
    from twi_core._io import atomic_write_text

    import warnings

    from twi_core import validation

    try:
        validation.check_store_to_read(args.dir)
        if args.csv:  # before the work, not after it
            validation.check_csv_path(args.csv)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the skipped records are printed below instead
            table = aggregate(args.dir)
        shown = render_table(table, metrics=args.metrics)
    except (ValueError, OSError) as err:
        print(f"twi aggregate: error: {err}", file=sys.stderr)
        return 2
    skipped = table.attrs.get("skipped", [])
    for path, reason in skipped:
        print(f"twi aggregate: warning: skipped unreadable run record in {path}: {reason}", file=sys.stderr)
    if table.empty:
        print(f"no finished runs under {paths.runs_dir(args.dir)}")
        return 1 if skipped else 0
    if args.csv:
        try:
            atomic_write_text(args.csv, table.to_csv(index=False))
        except OSError as err:  # checked above, but a disk can fill up in between
            print(f"twi aggregate: error: cannot write --csv {args.csv}: {err}", file=sys.stderr)
            return 2
        print(f"wrote {args.csv}")
    print(shown.to_string(index=False))
    return 1 if skipped else 0


#: Sub-commands of the ``twi`` console script: name -> (help, add_arguments, run).
COMMANDS: dict[str, tuple[str, AddArgs, Run]] = {
    "reproduce": ("run a grid of trainings through the run notebook (papermill), locally or on SLURM",
                  _add_reproduce_args, _reproduce),
    "aggregate": ("tables of mean ± std and min/median/max over seeds per configuration, beside the paper",
                  _add_aggregate_args, _aggregate),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``twi`` console script."""
    from twi_core import __version__

    parser = argparse.ArgumentParser(prog="twi", description="Traveling Waves Integrate Spatial Information Through Time")
    parser.add_argument("--version", action="version", version=f"twi_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Run] = {}
    for name, (help_text, add_args, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        runners[name] = run
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        if not stop.code:  # --help and --version end the program as argparse means them to
            raise
        return int(stop.code)  # argparse's errors (a bad choice, a missing argument): the exit code, no traceback
    if args.command is None:
        parser.print_help()
        return 2
    return int(runners[args.command](args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
