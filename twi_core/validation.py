"""Checks of a batch's settings and paths, run before anything of the batch starts.

A batch (``twi reproduce``) that starts with a setting or a path that cannot work fails once per run, minutes or hours
later, and on a cluster in a log nobody reads. Everything that can be known before the first run is checked here
instead, and every failure is one :class:`SettingError` whose message names the setting, the value received and what
is accepted, so that the command line can print it as one line:

- the device (``auto``, ``cpu``, ``cuda``, ``cuda:N``; CUDA must be present where the runs execute on this machine);
- every preset override (``epochs``, ``batch_size``, ``lr``, ``n_train``, ``n_val``, ``n_test``, ``steps``, ``head``,
  ``recipe``, ``budget_minutes``) and the seeds;
- sizes: each split asked for exists in that size, and the training split holds at least one full batch;
- each model of the grid builds with its options (on the ``meta`` device: no memory, no weights);
- the run store can be created and written, the run notebook is a notebook, the executor's packages are installed;
- the environment variables the runs read (``TWI_HEAD_BF16``, ``TWI_TRAIN``, ``TWI_MNIST_SOURCE``).

:func:`check_request` takes what the caller typed and runs before the grid is expanded; :func:`check_points` takes the
expanded points. :func:`check_csv_path` and :func:`check_store_to_read` serve ``twi aggregate``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["SettingError", "check_request", "check_points", "check_device", "check_settings", "check_seeds",
           "check_writable_folder", "check_csv_path", "check_store_to_read", "check_notebook", "MAX_SEED"]

#: The largest seed: ``torch.manual_seed`` takes at most an unsigned 64-bit value; the signed range is what every
#: tool that reads a run record (JSON, pandas int64 columns) holds exactly.
MAX_SEED = 2**63 - 1

#: The submitit clusters ``--cluster`` accepts (``None``: let submitit detect SLURM).
CLUSTERS: tuple[str, ...] = ("slurm", "local", "debug")


class SettingError(ValueError):
    """A setting or path of a batch that cannot work.

    Parameters
    ----------
    what : str
        The setting as the user names it (``"--device"``, ``"setting 'n_train'"``, ``"--out"``).
    got : object
        The value received (shown with ``repr``), or a short description of the problem.
    accepted : str
        What would be accepted instead.
    """

    def __init__(self, what: str, got: Any, accepted: str) -> None:
        self.what, self.got, self.accepted = what, got, accepted
        shown = got if isinstance(got, _Problem) else repr(got)
        super().__init__(f"{what}: got {shown}; expected {accepted}")


class _Problem(str):
    """A description shown as is in a :class:`SettingError` (instead of a value's ``repr``)."""


# -- single values ------------------------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    # bool is an int subclass, but ``epochs=True`` is a typo, never a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _positive_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0)


def check_device(device: Any, *, here: bool = True) -> str:
    """Check a ``--device`` value; return it.

    Parameters
    ----------
    device : str
        ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    here : bool
        The runs execute on this machine (local, inline, submitit's local cluster): CUDA must then be present and
        ``N`` below the number of GPUs. ``False`` for a SLURM cluster, whose nodes may have GPUs this machine lacks.

    Raises
    ------
    SettingError
        Another string or type, or CUDA asked for where it is not available.
    """
    accepted = "'auto', 'cpu', 'cuda' or 'cuda:N'"
    if not isinstance(device, str):
        raise SettingError("--device", device, accepted)
    name, _, index = device.partition(":")
    if device in ("auto", "cpu"):
        return device
    if name != "cuda" or (index and not index.isdigit()) or device.endswith(":"):
        raise SettingError("--device", device, accepted)
    if not here:
        return device
    import torch

    if not torch.cuda.is_available():
        why = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise SettingError("--device", _Problem(f"{device!r}, but {why} on this machine"), "'auto' or 'cpu' here")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise SettingError("--device", _Problem(f"{device!r}, but this machine has {count} GPU(s)"),
                           f"'cuda:0' .. 'cuda:{count - 1}', 'cuda', 'auto' or 'cpu'")
    return device


def _head_names() -> list[str]:
    from twi_core.models.readouts import HEADS

    return sorted(HEADS)


def _recipe_names() -> list[str]:
    from twi_core.recipes import RECIPES

    return sorted(RECIPES)


#: Each preset override: (is the value acceptable, what is accepted). ``None`` is accepted everywhere (it keeps the
#: preset's value, as a papermill parameters cell passes it); the preset tables hold ``None`` for "the paper's value",
#: where :func:`twi_core.presets.resolve` cannot infer a type, so the rules are written out here.
_RULES: dict[str, tuple[Callable[[Any], bool], Callable[[], str]]] = {
    "epochs": (_positive_int, lambda: "an int >= 1"),
    "batch_size": (_positive_int, lambda: "an int >= 1"),
    "lr": (_positive_number, lambda: "a finite number > 0"),
    "n_train": (_positive_int, lambda: "an int >= 1 (images of the training split), or None for the full split"),
    "n_val": (_positive_int, lambda: "an int >= 1 (images of the validation split), or None for the full split"),
    "n_test": (_positive_int, lambda: "an int >= 1 (images of the test split), or None for the full split"),
    "steps": (_positive_int, lambda: "an int >= 1 (caps the time steps T), or None for the model's own"),
    "head": (lambda v: isinstance(v, str) and v in _head_names(), lambda: f"one of {_head_names()}, or None"),
    "recipe": (lambda v: isinstance(v, str) and v in _recipe_names(), lambda: f"one of {_recipe_names()}"),
    "budget_minutes": (_positive_number, lambda: "a finite number of minutes > 0, or None for no budget"),
}


def check_settings(overrides: Mapping[str, Any]) -> None:
    """Check preset overrides (``--set KEY=VALUE``) by name and value.

    Raises
    ------
    SettingError
        An unknown key (the message lists the valid ones) or a value the key does not accept.
    """
    from twi_core.reproduce import RUN_PRESETS

    valid = sorted(RUN_PRESETS["book"])
    for key, value in overrides.items():
        if key == "seeds":  # handled as a seed list (check_seeds); the CLI turns --set seeds=N into one
            continue
        if key not in _RULES:
            raise SettingError(f"--set {key}", _Problem(f"an unknown setting {key!r}"), f"one of {valid}")
        ok, accepted = _RULES[key]
        if value is not None and not ok(value):
            raise SettingError(f"setting {key!r}", value, accepted())


def check_seeds(seeds: Sequence[Any] | None) -> None:
    """Check a seed list: non-empty, ints in ``[0, MAX_SEED]``, each once.

    Raises
    ------
    SettingError
        A wrong type, an empty list, a negative or too large seed, or a seed given twice (two points would be the same
        run, trained twice over each other).
    """
    if seeds is None:
        return
    accepted = f"a non-empty list of distinct ints in [0, {MAX_SEED}]"
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise SettingError("--seeds", seeds, accepted)
    seeds = list(seeds)
    if not seeds:
        raise SettingError("--seeds", _Problem("an empty list"), accepted)
    for seed in seeds:
        if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
            raise SettingError("--seeds", _Problem(f"{seed!r} in {seeds!r}"), accepted)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise SettingError("--seeds", _Problem(f"{twice} more than once in {seeds!r}"), accepted)


# -- paths --------------------------------------------------------------------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (what ``mkdir(parents=True)`` would create into)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _can_write_in(folder: Path) -> str | None:
    """None when a file can be created in ``folder``; else the reason.

    Tried for real (a temporary file, removed at once) rather than asked of ``os.access``: as root ``os.access`` says
    yes to a read-only mount, and ACLs or quotas can say no where the mode bits say yes.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=".twi-write-test.", dir=folder)
    except OSError as err:
        return err.strerror or type(err).__name__
    os.close(fd)
    os.unlink(tmp)
    return None


def check_writable_folder(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Check that ``path`` is, or can be created as, a folder this process can write in; nothing is created.

    Raises
    ------
    SettingError
        ``path`` is a file, lies under a file, or its nearest existing folder cannot be written.
    """
    path = Path(path).expanduser()
    accepted = "a folder this user can create files in (it is created when missing)"
    if path.exists() and not path.is_dir():
        raise SettingError(what, _Problem(f"{str(path)!r}, which is a file, not a folder"), accepted)
    base = _nearest_existing(path)
    if not base.is_dir():
        raise SettingError(what, _Problem(f"{str(path)!r}, which lies under the file {str(base)!r}"), accepted)
    reason = _can_write_in(base)
    if reason is not None:
        where = "" if base == path else f" (its nearest existing folder {str(base)!r})"
        raise SettingError(what, _Problem(f"{str(path)!r}{where}, which cannot be written: {reason}"), accepted)
    return path


def check_csv_path(path: str | os.PathLike) -> Path:
    """Check that ``--csv PATH`` can be written (its folder is created when missing); nothing is written.

    Raises
    ------
    SettingError
        ``path`` is a folder, or its folder cannot be created or written.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise SettingError("--csv", _Problem(f"{str(path)!r}, which is a folder"), "a file path (e.g. table.csv)")
    try:
        check_writable_folder(path.parent, what="--csv")
    except SettingError as err:  # name the file asked for, not only its folder
        raise SettingError("--csv", _Problem(f"{str(path)!r}: {err.got}"), err.accepted) from None
    return path


def check_store_to_read(path: str | os.PathLike | None) -> Path:
    """The run store ``twi aggregate`` reads: an existing folder.

    Raises
    ------
    SettingError
        The folder does not exist, or is a file.
    """
    from twi_core import paths

    folder = paths.runs_dir(path)
    accepted = "an existing run store folder (the --out of twi reproduce)"
    if not folder.exists():
        raise SettingError("run store", _Problem(f"{str(folder)!r}, which does not exist"), accepted)
    if not folder.is_dir():
        raise SettingError("run store", _Problem(f"{str(folder)!r}, which is a file"), accepted)
    return folder


def check_notebook(path: str | os.PathLike) -> Path:
    """Check that ``--notebook PATH`` is a readable Jupyter notebook with a ``parameters`` cell.

    Raises
    ------
    SettingError
        Missing, a folder, not JSON, not a notebook, or without a cell tagged ``parameters`` (papermill would then
        inject the run's values nowhere it reads them, and every run would train the notebook's defaults: a silent
        wrong result).
    """
    path = Path(path).expanduser()
    accepted = "a Jupyter notebook (.ipynb) with a cell tagged 'parameters', like book/run.ipynb"
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "missing"
        raise SettingError("--notebook", _Problem(f"{str(path)!r}, which is {kind}"), accepted)
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SettingError("--notebook", _Problem(f"{str(path)!r}, which cannot be read as JSON ({err})"),
                           accepted) from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise SettingError("--notebook", _Problem(f"{str(path)!r}, which is not a notebook (no cell list)"), accepted)
    tagged = any("parameters" in (cell.get("metadata", {}).get("tags") or []) for cell in cells
                 if isinstance(cell, dict) and isinstance(cell.get("metadata", {}), dict))
    if not tagged:
        raise SettingError("--notebook", _Problem(f"{str(path)!r}, which has no cell tagged 'parameters'"), accepted)
    return path


# -- the whole request --------------------------------------------------------------------------------------------------

def _check_environment() -> None:
    """The variables each run reads: a typo there fails every run, so it fails here first."""
    from twi_core import store
    from twi_core.models.head import training_dtype

    for check in (lambda: training_dtype("cpu"), store.train_mode):
        try:
            check()
        except ValueError as err:
            name, _, rest = str(err).partition("; expected ")
            raise SettingError("environment", _Problem(name), rest or str(err)) from None


def _check_executor(executor: str, *, jobs: Any, cluster: str | None, slurm: Mapping[str, Any] | None) -> None:
    from twi_core.reproduce import EXECUTORS

    if executor not in EXECUTORS:
        raise SettingError("--executor", executor, f"one of {list(EXECUTORS)}")
    if not _positive_int(jobs):
        raise SettingError("--jobs", jobs, "an int >= 1")
    if cluster is not None:
        if executor != "slurm":
            raise SettingError("--cluster", _Problem(f"{cluster!r} with --executor {executor}"),
                               "no --cluster, or --executor slurm (submitit's clusters)")
        if cluster not in CLUSTERS:
            raise SettingError("--cluster", cluster, f"one of {list(CLUSTERS)}, or leave it out to detect SLURM")
    needed = {"local": ("papermill",), "slurm": ("papermill", "submitit"), "inline": ()}[executor]
    for package in needed:
        if importlib.util.find_spec(package) is None:
            raise SettingError("--executor", _Problem(f"{executor!r}, but the package {package!r} is not installed"),
                               f"pip install {package}, or --executor inline")
    for key, value in dict(slurm or {}).items():
        if key in ("gpus_per_node", "timeout_min"):
            flag = "--slurm-gpus" if key == "gpus_per_node" else "--slurm-time"
            minimum = 0 if key == "gpus_per_node" else 1
            if not _is_int(value) or value < minimum:
                raise SettingError(flag, value, f"an int >= {minimum}")
        elif key == "slurm_partition" and (not isinstance(value, str) or not value.strip()):
            raise SettingError("--slurm-partition", value, "a partition name")


def check_request(*, executor: str, jobs: Any, device: Any, out: str | os.PathLike | None,
                  notebook: str | os.PathLike | None, seeds: Sequence[Any] | None, overrides: Mapping[str, Any],
                  cluster: str | None = None, slurm: Mapping[str, Any] | None = None) -> None:
    """Check everything a batch was asked for that does not need the grid expanded.

    Parameters
    ----------
    executor, jobs, device, out, notebook, seeds, overrides, cluster, slurm
        As given to :func:`twi_core.batch.run_grid`; ``notebook=None`` is the default notebook (checked by
        the caller), ``out=None`` the default store.

    Raises
    ------
    SettingError
        The first setting or path that cannot work.
    """
    from twi_core import paths

    _check_executor(executor, jobs=jobs, cluster=cluster, slurm=slurm)
    # On a SLURM cluster the runs execute on its nodes, whose GPUs this (login) machine need not have.
    check_device(device, here=not (executor == "slurm" and cluster in (None, "slurm")))
    check_settings(overrides)
    check_seeds(seeds)
    _check_environment()
    check_writable_folder(paths.runs_dir(out), what="--out")
    if notebook is not None and executor != "inline":  # inline runs no notebook
        check_notebook(notebook)


def check_points(points: Sequence[Any]) -> None:
    """Check the expanded points of a grid: split sizes against each dataset and the batch size, and that each model
    builds with its options.

    Parameters
    ----------
    points : sequence of twi_core.grids.Point

    Raises
    ------
    SettingError
        A split asked for larger than the dataset's, fewer training images than one batch, or a model that does not
        build (e.g. a ``head`` or ``steps`` its family rejects).
    """
    import torch

    from twi_core import data, models

    sizes: dict[str, dict[str, int]] = {}
    built: set[str] = set()
    for point in points:
        cfg = point.config
        if cfg.dataset not in sizes:
            try:
                sizes[cfg.dataset] = data.split_sizes(cfg.dataset)
            except ValueError as err:  # e.g. TWI_MNIST_SOURCE misspelt
                raise SettingError(f"dataset {cfg.dataset!r}", _Problem(str(err)), "a valid data source") from None
        available = sizes[cfg.dataset]
        for split, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)):
            if n is not None and n > available[split]:
                raise SettingError(f"setting 'n_{split}'", _Problem(f"{n}, but the {split} split of {cfg.dataset} "
                                                                    f"has {available[split]} images"),
                                   f"an int in [1, {available[split]}], or None for the full split")
        n_train = available["train"] if cfg.n_train is None else cfg.n_train
        if n_train < cfg.batch_size:
            # drop_last=True (the authors' loader): no full batch means no training step at all.
            raise SettingError("setting 'batch_size'", _Problem(f"{cfg.batch_size} with n_train={n_train} on "
                                                                f"{cfg.dataset}"),
                               f"batch_size <= n_train (at most {n_train}), since only full batches train")
        signature = json.dumps(cfg.model, sort_keys=True)
        if signature in built:
            continue
        built.add(signature)
        try:
            with torch.device("meta"):  # shapes only: no memory, no initialisation cost
                models.build(**dict(cfg.model))
        except (TypeError, ValueError) as err:
            raise SettingError(f"model {point.family} {point.variant} on {cfg.dataset}", _Problem(str(err)),
                               "the options its family takes (see twi_core.models.build)") from None
