"""Batch execution of a grid: the run notebook under papermill per point, locally, on SLURM (submitit) or inline.

:func:`run_grid` expands a grid (:mod:`twi_core.grids`), skips runs that are already complete in the run store,
executes ``book/run.ipynb`` for each other point (the executed notebook is kept in the run folder), ``jobs`` at a
time, records failures and goes on, and returns a summary. ``executor="slurm"`` submits the points as a job array
through :mod:`submitit`.
"""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from twi_core import paths
from twi_core.grids import Point, expand

__all__ = ["EXECUTORS", "default_notebook", "run_point", "run_grid"]


def default_notebook() -> Path:
    """The run notebook: ``book/run.ipynb`` of a checkout, else the copy installed with the package.

    In a checkout (an editable install) the book's own notebook is used, so an edit to it takes effect at once. An
    installed package (``pip install .``, no checkout around it) carries a byte-identical copy as package data,
    ``twi_core/resources/run.ipynb`` (``tests/test_packaging.py`` keeps the two equal).

    Raises
    ------
    FileNotFoundError
        If neither exists (a broken install); the message says to pass ``--notebook``.
    """
    checkout = Path(__file__).resolve().parents[1] / "book" / "run.ipynb"
    if checkout.is_file():
        return checkout
    # A wheel is unpacked into site-packages, so the resource is a real file papermill can open by path.
    packaged = Path(str(resources.files("twi_core") / "resources" / "run.ipynb"))
    if packaged.is_file():
        return packaged
    raise FileNotFoundError(f"the run notebook is neither at {checkout} nor at {packaged}; pass --notebook PATH")


# -- running one point ------------------------------------------------------------------------------------------------

def _status(path: Path) -> str | None:
    from twi_core import runs

    try:
        return runs.load(path).status
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _parameters(point: Point, *, store: Path, device: str, threads: int | None) -> dict[str, Any]:
    cfg = point.config
    return {"dataset": point.dataset, "family": point.family, "variant": point.variant, "seed": point.seed,
            "preset": point.preset, "grid": point.grid, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "lr": cfg.lr, "n_train": cfg.n_train, "n_val": cfg.n_val, "n_test": cfg.n_test,
            "steps": cfg.model.get("steps"), "head": cfg.model.get("head"), "store": str(store), "device": device,
            "threads": threads,
            "expected_key": cfg.key()}


def run_point(point: Point, *, store: str | os.PathLike, notebook: str | os.PathLike, device: str = "auto",
              threads: int | None = None) -> dict[str, Any]:
    """Execute the run notebook for ``point`` under papermill, unless its run is already finished.

    Returns a summary row: ``run``, ``status`` (``skipped`` for a finished run found in the store, else the status the
    run ended with, ``error`` when the notebook itself failed), ``seconds``. Never raises for a failing run.
    """
    import papermill

    from twi_core import runs

    store = Path(store)
    path = runs.run_dir(point.config, store=store)
    t0 = time.perf_counter()
    before = _status(path)
    if before in runs.FINISHED:
        return {"run": path.name, "status": "skipped", "result": before, "seconds": 0.0}
    path.mkdir(parents=True, exist_ok=True)
    error = None
    try:
        papermill.execute_notebook(str(notebook), str(path / "run.ipynb"),
                                   parameters=_parameters(point, store=store, device=device, threads=threads),
                                   cwd=str(path), progress_bar=False, log_output=False, kernel_name="python3")
    except Exception as err:  # papermill raises for a failing cell; the run record says more
        error = f"{type(err).__name__}: {err}"
    status = _status(path)
    if status is None:  # the notebook died before obtain() could record anything
        runs.record_error(point.config, error or "the run notebook ended without a run record", store=store,
                          labels=point.labels())
        status = runs.ERROR
    return {"run": path.name, "status": status, "result": status, "seconds": round(time.perf_counter() - t0, 1)}


def _run_point_job(point: Point, store: str, notebook: str, device: str, threads: int | None) -> dict[str, Any]:
    """Module-level so that process pools and submitit can pickle it."""
    return run_point(point, store=store, notebook=notebook, device=device, threads=threads)


def _local(points: list[Point], *, jobs: int, submit_args: tuple, **_: Any) -> list[dict[str, Any]]:
    if jobs == 1:
        return [_run_point_job(p, *submit_args) for p in points]
    from concurrent.futures import ThreadPoolExecutor

    # Threads are enough: each papermill call waits on its own kernel process, which does the work.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_run_point_job, points, *[[a] * len(points) for a in submit_args]))


def _slurm(points: list[Point], *, jobs: int, submit_args: tuple, out: Path, cluster: str | None = None,
           slurm: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    import submitit

    executor = submitit.AutoExecutor(folder=str(out / "_submitit" / "%j"), cluster=cluster)
    options = {"timeout_min": 72 * 60, "slurm_array_parallelism": jobs, **dict(slurm or {})}
    if executor.cluster != "slurm":  # submitit's local executor (tests) knows no slurm_* options
        options = {k: v for k, v in options.items() if not k.startswith("slurm_")}
    executor.update_parameters(**options)
    job_list = executor.map_array(_run_point_job, points, *[[a] * len(points) for a in submit_args])
    rows = []
    for point, job in zip(points, job_list):
        try:
            rows.append(job.result())
        except Exception as err:  # a job killed by the scheduler: recorded, the others go on
            from twi_core import runs

            runs.record_error(point.config, f"submitit job failed: {type(err).__name__}: {err}",
                              store=submit_args[0], labels=point.labels())
            rows.append({"run": runs.run_dir(point.config, store=submit_args[0]).name, "status": "error",
                         "result": "error", "seconds": None})
    return rows


def _inline(points: list[Point], *, submit_args: tuple, **_: Any) -> list[dict[str, Any]]:
    """In this process, one at a time, without papermill (no executed notebook is kept): for quick checks."""
    from twi_core import runs

    store, _, device, _ = submit_args
    rows = []
    for point in points:
        t0 = time.perf_counter()
        run = runs.obtain(point.config, store=store, device=device, progress=False, labels=point.labels())
        rows.append({"run": run.path.name, "status": run.status, "result": run.status,
                     "seconds": round(time.perf_counter() - t0, 1)})
    return rows


#: How points are executed: ``local`` (papermill, ``jobs`` notebooks at a time), ``slurm`` (papermill in a
#: submitit job array) or ``inline`` (this process, no notebook; for quick checks and tests).
EXECUTORS: dict[str, Callable[..., list[dict[str, Any]]]] = {"local": _local, "slurm": _slurm, "inline": _inline}


def run_grid(grid: str, *, preset: str | None = "book", jobs: int = 1, out: str | os.PathLike | None = None,
             executor: str = "local", seeds: Sequence[int] | None = None, notebook: str | os.PathLike | None = None,
             device: str = "auto", dry_run: bool = False, cluster: str | None = None,
             slurm: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None,
             echo: Callable[[str], None] = print):
    """Run every point of ``grid``; returns a pandas DataFrame summary (one row per point).

    Parameters
    ----------
    grid : str
        A name of :data:`GRIDS`.
    preset : str
        ``smoke``, ``book`` or ``paper`` (``$TWI_PRESET`` replaces it when set).
    jobs : int
        Points run at the same time (local) or the job array's parallelism (slurm).
    out : path, optional
        The run store to fill; default :func:`twi_core.paths.runs_dir`.
    executor : {"local", "slurm", "inline"}
        ``slurm`` submits through :class:`submitit.AutoExecutor` (``cluster="local"`` runs it locally, for tests);
        ``inline`` trains in this process without papermill.
    seeds : list of int, optional
        Seeds of every row; default ``0 .. n-1`` for the preset's ``n``.
    notebook : path, optional
        The run notebook; default :func:`default_notebook`.
    device : str
        Passed to each run (``auto``: CUDA when present).
    dry_run : bool
        Only list the points and whether they are done.
    slurm : dict, optional
        submitit parameters, e.g. ``{"slurm_partition": "gpu", "gpus_per_node": 1, "timeout_min": 600}``.
    overrides : dict, optional
        Values replacing the preset's (keys of :data:`RUN_PRESETS`).

    Raises
    ------
    ValueError
        Unknown grid, preset, executor, override name or value, before anything runs.
    """
    import pandas as pd

    from twi_core import runs

    from twi_core import validation

    # Every setting and path is checked before anything runs (validation.SettingError, a ValueError, names it).
    notebook = Path(notebook) if notebook is not None else default_notebook()
    validation.check_request(executor=executor, jobs=jobs, device=device, out=out, notebook=notebook, seeds=seeds,
                             overrides=dict(overrides or {}), cluster=cluster, slurm=slurm)
    points = expand(grid, preset=preset, seeds=seeds, **dict(overrides or {}))
    validation.check_points(points)
    store = paths.runs_dir(out)
    todo = [p for p in points if _status(runs.run_dir(p.config, store=store)) not in runs.FINISHED]
    echo(f"grid {grid!r} at preset {points[0].preset!r}: {len(points)} runs, {len(points) - len(todo)} already "
         f"finished, {len(todo)} to run with {executor} x{jobs} into {store}")
    if dry_run:
        rows = [{"run": runs.run_dir(p.config, store=store).name, "status": "to run" if p in todo else "finished",
                 **p.labels()} for p in points]
        return pd.DataFrame(rows)
    store.mkdir(parents=True, exist_ok=True)
    # Share this machine's cores between local jobs; a cluster job uses what it was given.
    threads = max(1, (os.cpu_count() or 1) // jobs) if executor == "local" else None
    submit_args = (str(store), str(notebook), device, threads)
    t0 = time.perf_counter()
    done = EXECUTORS[executor](todo, jobs=jobs, submit_args=submit_args, out=store, cluster=cluster, slurm=slurm)
    by_name = {row["run"]: row for row in done}
    rows = []
    for p in points:
        name = runs.run_dir(p.config, store=store).name
        row = by_name.get(name) or {"run": name, "status": "skipped", "result": _status(store / name), "seconds": 0.0}
        rows.append({**row, **p.labels()})
    summary = pd.DataFrame(rows)
    counts = summary["status"].value_counts().to_dict()
    echo(f"done in {time.perf_counter() - t0:.1f} s: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return summary
