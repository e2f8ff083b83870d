"""Batch reproduction of the paper's tables: named grids, a papermill runner, SLURM through submitit, aggregation.

``twi reproduce GRID --preset P --jobs N --out DIR`` expands a grid into points (dataset × model family × variant ×
seed), executes ``book/run.ipynb`` under papermill for each point (the executed notebook is kept in the run folder),
``N`` at a time, skips runs that are already complete, records failures and goes on, and prints a summary.
``--executor slurm`` submits the points as a job array through :mod:`submitit`. ``twi aggregate DIR`` turns the run
folders into a table of mean ± std and min / median / max over seeds per configuration, beside the paper's numbers.

Grids (:data:`GRIDS`) and scales (:data:`RUN_PRESETS`):

- ``sanity``: three tiny runs on Tetrominoes (NWM-linear, Conv-LSTM-linear, CNN L = 2), to test the machinery.
- ``table1``: Tetrominoes and MNIST × {CNN L = 2…32, Conv-LSTM and NWM with each readout}: the paper's Table 1 (and 3).
- ``table2``: Multi-MNIST, NWM-linear vs U-Net widths 2…5: Table 2.
- ``polygons``: the NWM with each readout on Polygons.

The ``paper`` preset is the authors' protocol (300 epochs, full splits, batch 64, 10 seeds; 12 on Multi-MNIST; reference
notes §7); ``book`` and ``smoke`` shrink epochs, images, seeds and (``smoke``) the number of time steps.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from twi_core import paths, presets

if TYPE_CHECKING:  # twi_core.train imports torch; `twi --help` and `twi reproduce --help` must not pay for it
    from twi_core.train import TrainConfig

__all__ = ["GRIDS", "Grid", "Point", "RUN_PRESETS", "EXECUTORS", "CLI_COMMANDS", "train_config", "expand", "run_grid",
           "aggregate", "render_table", "paper_table", "default_notebook", "grid_table", "preset_table",
           "AGGREGATE_METRICS"]

#: Scale of each run, per preset. ``None``: the paper's value (full split, the model's own number of steps, the grid's
#: number of seeds). ``steps`` caps the time steps T of the recurrent models.
#: ``head`` replaces the per-pixel MLP head of the models that have one (``"small"``: 32 wide; the smoke scale only).
RUN_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "n_train": 16, "n_val": 8, "n_test": 8, "steps": 10,
              "head": "small", "seeds": 1, "recipe": "paper", "budget_minutes": None},
    "book": {"epochs": 3, "batch_size": 16, "lr": 1e-3, "n_train": 1000, "n_val": 200, "n_test": 200, "steps": None,
             "head": None, "seeds": 3, "recipe": "paper", "budget_minutes": None},
    "paper": {"epochs": 300, "batch_size": 64, "lr": 1e-3, "n_train": None, "n_val": None, "n_test": None,
              "steps": None, "head": None, "seeds": None, "recipe": "paper", "budget_minutes": None},
}

_FAMILY_TITLES = {"nwm": "NWM", "lstm": "Conv-LSTM", "cnn": "CNN", "unet": "U-Net"}


@dataclass(frozen=True)
class Grid:
    """A named set of ``(dataset, family, variant)`` rows, each run with several seeds."""

    description: str                           # one line for the book and ``--help``
    rows: tuple[tuple[str, str, Any], ...]      # (dataset, family, variant) as accepted by models.paper_config
    paper_seeds: int                            # seeds per row in the paper


@dataclass(frozen=True)
class Point:
    """One run of a grid: its labels and its training configuration."""

    grid: str
    dataset: str
    family: str
    variant: Any
    seed: int
    preset: str
    config: TrainConfig

    def labels(self) -> dict[str, Any]:
        """What the run record stores under ``labels`` (used by :func:`aggregate`)."""
        return {"grid": self.grid, "dataset": self.dataset, "family": self.family, "variant": self.variant,
                "seed": self.seed, "preset": self.preset}


def _variants(dataset: str, family: str) -> tuple[Any, ...]:
    from twi_core.models import PAPER_VARIANTS

    return tuple(PAPER_VARIANTS[(dataset, family)])


def _rows(datasets: Iterable[str], families: Iterable[str]) -> tuple[tuple[str, str, Any], ...]:
    return tuple((d, f, v) for d in datasets for f in families for v in _variants(d, f))


def _grids() -> dict[str, Grid]:
    return {
        "sanity": Grid("three tiny Tetrominoes runs (NWM-linear, Conv-LSTM-linear, CNN L=2) to test the machinery",
                      (("tetrominoes", "nwm", "linear"), ("tetrominoes", "lstm", "linear"),
                       ("tetrominoes", "cnn", 2)), 1),
        "table1": Grid("Table 1 (and 3): Tetrominoes and MNIST x {CNN depths, Conv-LSTM readouts, NWM readouts}",
                       _rows(("tetrominoes", "mnist"), ("cnn", "lstm", "nwm")), 10),
        "table2": Grid("Table 2: Multi-MNIST, NWM-linear vs U-Net widths 2-5",
                       (("multi_mnist", "nwm", "linear"), *_rows(("multi_mnist",), ("unet",))), 12),
        "polygons": Grid("Polygons: the NWM with each readout", _rows(("polygons",), ("nwm",)), 3),
    }


class _LazyGrids(Mapping[str, Grid]):
    """The grid registry, built on first use (it asks :mod:`twi_core.models` for the paper's variants)."""

    _names = ("sanity", "table1", "table2", "polygons")

    def __init__(self) -> None:
        self._built: dict[str, Grid] | None = None

    def _get(self) -> dict[str, Grid]:
        if self._built is None:
            self._built = _grids()
        return self._built

    def __getitem__(self, name: str) -> Grid:
        return self._get()[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


#: Named grids: ``sanity``, ``table1``, ``table2``, ``polygons``.
GRIDS: Mapping[str, Grid] = _LazyGrids()


#: What a grid name that is really a preset name means (``smoke`` was once both).
_NOT_A_GRID = ("{name!r} is a preset (a scale), not a grid; the grid of three tiny runs that tests the machinery is "
               "'sanity': twi reproduce sanity --preset {name}")


def _check_grid(grid: str) -> Grid:
    if grid not in GRIDS:
        if grid in presets.PRESETS:
            raise ValueError(_NOT_A_GRID.format(name=grid))
        raise ValueError(f"unknown grid {grid!r}; expected one of {list(GRIDS)}")
    return GRIDS[grid]


def _grid_argument(text: str) -> str:
    """argparse ``type`` of the grid: a preset name given as the grid gets the message saying so."""
    if text in presets.PRESETS and text not in GRIDS:
        raise argparse.ArgumentTypeError(_NOT_A_GRID.format(name=text))
    return text


def _check_preset(preset: str | None) -> None:
    # $TWI_PRESET replaces the preset asked for, but a misspelt one is still an error.
    if preset is not None and preset not in presets.PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {list(presets.PRESETS)}")


def _normalise_variant(family: str, variant: Any) -> Any:
    # CNN depths and U-Net widths arrive as strings from the command line and papermill.
    if family in ("cnn", "unet") and isinstance(variant, str) and variant.strip().isdigit():
        return int(variant)
    return variant


def train_config(dataset: str, family: str, variant: Any, *, seed: int = 0, preset: str | None = "book",
                 **overrides: Any) -> TrainConfig:
    """The :class:`~twi_core.train.TrainConfig` of one grid point at a preset.

    Parameters
    ----------
    dataset, family, variant
        As accepted by :func:`twi_core.models.paper_config` (e.g. ``"tetrominoes", "nwm", "linear"``).
    seed : int
        The run's seed.
    preset : {"smoke", "book", "paper"}
        The scale (``$TWI_PRESET`` replaces it when set).
    **overrides
        Any key of :data:`RUN_PRESETS` (``epochs``, ``batch_size``, ``lr``, ``n_train``, ``n_val``, ``n_test``,
        ``steps``, ``head``, ``recipe``, ``budget_minutes``); ``None`` keeps the preset's value.

    Raises
    ------
    ValueError
        Unknown preset, dataset, family, variant or override (the message lists the valid ones).

    Examples
    --------
    >>> cfg = train_config("tetrominoes", "cnn", "2", seed=1, preset="smoke")
    >>> cfg.model["depth"], cfg.epochs, cfg.n_train
    (2, 1, 16)
    """
    from twi_core.models import paper_config
    from twi_core.train import TrainConfig

    if "seeds" in overrides:
        raise ValueError("'seeds' is a grid setting; pass seed=... for one run")
    _check_preset(preset)
    settings = presets.resolve(RUN_PRESETS, preset, **overrides)
    variant = _normalise_variant(family, variant)
    model = dict(paper_config(dataset, family, variant))
    if settings.steps is not None and "steps" in model:
        model["steps"] = min(int(model["steps"]), settings.steps)
    if settings.head is not None and "head" in model:
        model["head"] = settings.head
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    return TrainConfig(dataset=dataset, model=model, seed=seed, epochs=settings.epochs,
                       batch_size=settings.batch_size, lr=settings.lr, n_train=settings.n_train,
                       n_val=settings.n_val, n_test=settings.n_test, recipe=settings.recipe,
                       budget_minutes=settings.budget_minutes)


def expand(grid: str, *, preset: str | None = "book", seeds: Sequence[int] | None = None,
           **overrides: Any) -> list[Point]:
    """The points of ``grid`` at ``preset``: every row × seed, with its training configuration.

    ``seeds`` defaults to ``0 .. n-1`` with ``n`` the preset's number of seeds (the paper's count at ``paper``).
    Everything is validated here, before anything runs.
    """
    spec = _check_grid(grid)
    _check_preset(preset)
    settings = presets.resolve(RUN_PRESETS, preset, **overrides)
    if seeds is None:
        seeds = range(settings.seeds or spec.paper_seeds)
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad or not seeds:
        raise ValueError(f"seeds must be a non-empty list of non-negative ints; got {seeds!r}")
    run_overrides = {k: v for k, v in overrides.items() if k != "seeds"}
    points = []
    for dataset, family, variant in spec.rows:
        for seed in seeds:
            config = train_config(dataset, family, variant, seed=seed, preset=settings.preset, **run_overrides)
            points.append(Point(grid, dataset, family, variant, seed, settings.preset, config))
    return points


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


# -- the paper's numbers and aggregation ------------------------------------------------------------------------------

#: Test metrics aggregated over seeds, in display order.
AGGREGATE_METRICS: tuple[str, ...] = ("fg_accuracy", "fg_iou", "fg_loss", "pixel_accuracy", "total_iou",
                                      "paper_total_iou_bitwise", "macro_iou", "pixel_loss")

# The paper's column names -> ours (Table 3's "IoU" is the corrected total IoU: a/(2-a) of its Acc column).
_PAPER_COLUMNS = {"fg_acc": "fg_accuracy", "fg_iou": "fg_iou", "fg_loss": "fg_loss", "acc": "pixel_accuracy",
                  "iou": "total_iou", "loss": "pixel_loss"}
_PAPER_FAMILIES = {"CNN": "cnn", "LSTM": "lstm", "NWM": "nwm", "U-Net": "unet"}


def _paper_variant(arch: Any) -> str:
    text = str(arch).strip()
    return text[:-1] if text.endswith("c") and text[:-1].isdigit() else text.lower()


def paper_table():
    """The paper's Tables 1–3 as one pandas DataFrame, one row per ``(dataset, family, variant)``.

    Columns: ``dataset``, ``family`` (``nwm``/``lstm``/``cnn``/``unet``), ``variant`` (readout name, CNN depth or U-Net
    width, as a string), ``params_paper``, and ``paper_<metric>_mean`` / ``paper_<metric>_std`` for ``fg_accuracy``,
    ``fg_iou``, ``fg_loss`` (Tables 1–2) and ``pixel_accuracy``, ``total_iou``, ``pixel_loss`` (Table 3). Two decimals,
    as printed in the paper; shipped in ``twi_core/resources``.
    """
    import pandas as pd

    frames = []
    for name in ("paper_table1_table2_foreground.csv", "paper_table3_all_pixels.csv"):
        with resources.files("twi_core").joinpath("resources", name).open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, dtype={"arch": str})
        df["family"] = df["model"].map(_PAPER_FAMILIES)
        df["variant"] = df["arch"].map(_paper_variant)
        rename = {}
        for theirs, ours in _PAPER_COLUMNS.items():
            for stat in ("mean", "std"):
                if f"{theirs}_{stat}" in df:
                    rename[f"{theirs}_{stat}"] = f"paper_{ours}_{stat}"
        df = df.rename(columns=rename)
        keep = ["dataset", "family", "variant", *[c for c in df.columns if c.startswith("paper_")]]
        if "params_paper" in df:
            keep.insert(3, "params_paper")
        frames.append(df[keep])
    return frames[0].merge(frames[1], on=["dataset", "family", "variant"], how="outer")


def _infer_labels(record) -> dict[str, Any]:
    """The grid labels of a run record written without them (by a direct :func:`twi_core.runs.obtain`)."""
    model = record.config.model
    variant = next((model[k] for k in ("readout", "depth", "width") if k in model), None)
    return {"dataset": record.config.dataset, "family": model.get("name"), "variant": variant, "preset": "unknown",
            "grid": None}


def _setting_group(config: Mapping[str, Any]) -> str:
    """A short hash of a run's configuration without its seed: runs that differ only by seed share it."""
    import hashlib
    import json

    blob = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:8]


def collect(root: str | os.PathLike | None = None):
    """One row per finished run under ``root`` (recursively): labels, status, test metrics and provenance.

    A run stored twice (the same key in two folders, e.g. a copied store) is counted once. Records that could not be
    read are listed in the frame's ``attrs["skipped"]`` as ``(folder, reason)``.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    """
    import pandas as pd

    from twi_core import runs

    folder = paths.runs_dir(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"run store {folder} does not exist")
    rows, seen, skipped = [], set(), []
    for run in runs.iter_runs(root, finished_only=True, skipped=skipped):
        rec = run.record
        if rec.key in seen:
            continue
        seen.add(rec.key)
        labels = {**_infer_labels(rec), **rec.labels}
        rows.append({"dataset": labels["dataset"], "family": labels["family"], "variant": str(labels["variant"]),
                     "preset": labels["preset"], "seed": rec.seed, "status": run.status,
                     **{m: rec.test_metric(m) for m in AGGREGATE_METRICS},
                     "epochs": rec.config.epochs, "n_train": rec.n_images.get("train"),
                     "images_seen": rec.images_seen, "recipe": rec.recipe,
                     "setting": _setting_group(rec.config.to_dict()),
                     "device": rec.device_name or rec.device, "git_commit": rec.git_commit,
                     "finished": rec.finished, "wall_time_s": rec.wall_time_s,
                     "data_source": rec.data_source, "run": run.path.name})
    columns = ["dataset", "family", "variant", "preset", "seed", "status", *AGGREGATE_METRICS, "epochs", "n_train",
               "images_seen", "recipe", "setting", "device", "git_commit", "finished", "wall_time_s", "data_source",
               "run"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["skipped"] = [(str(path), reason) for path, reason in skipped]
    return frame


def aggregate(root: str | os.PathLike | None = None, *, with_paper: bool = True):
    """Per configuration: statistics of the test metrics over seeds.

    Runs are grouped by ``(dataset, family, variant, preset)`` *and* their whole configuration apart from the seed
    (``setting``, a hash), so runs with other epochs, images or recipes are never averaged together or counted as more
    seeds: they get rows of their own. Columns: the keys, ``setting``, ``n_seeds`` (complete runs), ``n_failed``
    (NaN-loss runs), then for every metric of :data:`AGGREGATE_METRICS` ``<metric>_mean``, ``_std`` (ddof = 1, as
    pandas and the authors), ``_min``, ``_median``, ``_max``; then provenance (``epochs``, ``n_train``,
    ``images_seen``, ``recipe``, ``devices``, ``commits``, ``finished``: the latest) and, with ``with_paper``, the
    paper's columns of :func:`paper_table`. Runs recorded as errors are left out; unreadable records are listed in
    ``attrs["skipped"]`` and warned about.
    """
    import warnings

    import pandas as pd

    runs_df = collect(root)
    skipped = runs_df.attrs.get("skipped", [])
    for path, reason in skipped:
        warnings.warn(f"skipped unreadable run record in {path}: {reason}", RuntimeWarning, stacklevel=2)
    keys = ["dataset", "family", "variant", "preset", "setting"]
    if runs_df.empty:
        table = pd.DataFrame(columns=[*keys, "n_seeds", "n_failed"])
        table.attrs["skipped"] = skipped
        return table
    complete = runs_df[runs_df["status"] == "complete"]
    out = []
    for key, group in runs_df.groupby(keys, sort=False, dropna=False):
        ok = complete.loc[group.index.intersection(complete.index)]
        row: dict[str, Any] = dict(zip(keys, key))
        row["n_seeds"] = len(ok)
        row["n_failed"] = int((group["status"] == "failed").sum())
        for m in AGGREGATE_METRICS:
            values = pd.to_numeric(ok[m], errors="coerce").dropna()
            row[f"{m}_mean"] = values.mean() if len(values) else float("nan")
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
            row[f"{m}_min"] = values.min() if len(values) else float("nan")
            row[f"{m}_median"] = values.median() if len(values) else float("nan")
            row[f"{m}_max"] = values.max() if len(values) else float("nan")
        row["epochs"] = ", ".join(str(v) for v in sorted(group["epochs"].dropna().unique()))
        row["n_train"] = ", ".join(str(int(v)) for v in sorted(group["n_train"].dropna().unique()))
        row["images_seen"] = ", ".join(str(int(v)) for v in sorted(group["images_seen"].dropna().unique()))
        row["recipe"] = ", ".join(sorted(str(v) for v in group["recipe"].dropna().unique()))
        row["devices"] = ", ".join(sorted(str(v) for v in group["device"].dropna().unique()))
        row["commits"] = ", ".join(sorted(str(v)[:8] for v in group["git_commit"].dropna().unique()))
        row["finished"] = group["finished"].dropna().max() if group["finished"].notna().any() else None
        out.append(row)
    table = pd.DataFrame(out)
    table = table.sort_values(["dataset", "family", "variant", "preset"], key=_sort_key, kind="stable")
    if with_paper:
        table = table.merge(paper_table(), on=["dataset", "family", "variant"], how="left")
    table = table.reset_index(drop=True)
    table.attrs["skipped"] = skipped
    return table


_ORDER = {
    "family": {"cnn": 0, "lstm": 1, "nwm": 2, "unet": 3},                 # the paper's row order
    "variant": {"last": 0, "mean": 1, "max": 2, "fft": 3, "linear": 4},   # readouts, then depths/widths by value
    "preset": {"smoke": 0, "book": 1, "paper": 2},
}


def _sort_key(column):
    order = _ORDER.get(column.name)
    if order is None:
        return column
    if column.name == "variant":
        return column.map(lambda v: order.get(v, 10 + int(v) if str(v).isdigit() else 1000))
    return column.map(lambda v: order.get(v, 99))


def render_table(table, *, metrics: Sequence[str] = ("fg_iou", "fg_accuracy", "total_iou"), digits: int = 2,
                 spread: bool = True):
    """A display table (strings): per configuration ``mean ± std`` over seeds, ``[min / median / max]`` and the paper.

    Parameters
    ----------
    table : DataFrame
        The output of :func:`aggregate` (with the paper's columns).
    metrics : sequence of str
        Names of :data:`AGGREGATE_METRICS` to show.
    digits : int
        Decimals (the paper prints 2).
    spread : bool
        Add the ``[min / median / max]`` column per metric.
    """
    import pandas as pd

    from twi_core.analysis.claims import mean_std_text

    unknown = [m for m in metrics if m not in AGGREGATE_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(AGGREGATE_METRICS)}")
    rows = []
    for _, r in table.iterrows():
        row = {"dataset": r["dataset"], "model": _FAMILY_TITLES.get(r["family"], r["family"]),
               "variant": r["variant"], "preset": r["preset"], "seeds": int(r["n_seeds"])}
        if "epochs" in table.columns:  # settings that tell rows of the same model apart
            row["epochs"], row["images seen"] = r.get("epochs"), r.get("images_seen") or "–"
        if r.get("n_failed", 0):
            row["seeds"] = f"{int(r['n_seeds'])} (+{int(r['n_failed'])} NaN)"
        for m in metrics:
            row[m] = mean_std_text(r.get(f"{m}_mean", float("nan")), r.get(f"{m}_std", float("nan")), digits)
            if spread:
                lo, med, hi = (r.get(f"{m}_{s}", float("nan")) for s in ("min", "median", "max"))
                row[f"{m} min/med/max"] = "–" if lo != lo else f"{lo:.{digits}f} / {med:.{digits}f} / {hi:.{digits}f}"
            paper_mean = r.get(f"paper_{m}_mean", float("nan"))
            if f"paper_{m}_mean" in table.columns:
                row[f"{m} (paper)"] = mean_std_text(paper_mean if paper_mean is not None else float("nan"),
                                                    r.get(f"paper_{m}_std", float("nan")), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def grid_table():
    """The grids as a table: name, description, configurations, seeds in the paper, runs at the paper's scale."""
    import pandas as pd

    rows = []
    for name in GRIDS:
        g = GRIDS[name]
        configs = ", ".join(sorted({f"{d}/{f}" for d, f, _ in g.rows}))
        rows.append({"grid": name, "what": g.description, "configurations": len(g.rows), "dataset/family": configs,
                     "seeds (paper)": g.paper_seeds, "runs (paper)": len(g.rows) * g.paper_seeds})
    return pd.DataFrame(rows)


def preset_table():
    """:data:`RUN_PRESETS` as a table (``None`` shown as the paper's value)."""
    import pandas as pd

    rows = [{"preset": p, **{k: ("paper's" if v is None else v) for k, v in s.items()}} for p, s in RUN_PRESETS.items()]
    return pd.DataFrame(rows).astype(object)


# -- command line ------------------------------------------------------------------------------------------------------

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
CLI_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "reproduce": ("run a grid of trainings through the run notebook (papermill), locally or on SLURM",
                  _add_reproduce_args, _reproduce),
    "aggregate": ("tables of mean ± std and min/median/max over seeds per configuration, beside the paper",
                  _add_aggregate_args, _aggregate),
}
