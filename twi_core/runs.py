"""Run records and the run store: trained models cached by configuration.

The store (:func:`twi_core.paths.runs_dir`, ``$TWI_RUNS_DIR``) holds one folder per run, named by a readable slug and the
configuration's key, e.g. ``tetrominoes-nwm-linear-s0-3f2a9c81d0e4``. :func:`obtain` returns the complete run with the
same key when there is one, and otherwise trains it (continuing a killed run from its last epoch) and stores it. The key
hashes the configuration *and* the package version, so a changed configuration or package never reuses a stale run.

A run folder holds ``result.json`` (written last, atomically), ``checkpoint.pt`` (best weights and the model's build
arguments, :mod:`twi_core.models.checkpoints`), ``state.pt``
(resume state) and, under the batch runner, the executed notebook ``run.ipynb``. A truncated or invalid ``result.json``
is detected and the run is trained again.

Examples
--------
>>> from twi_core.runs import obtain                                             # doctest: +SKIP
>>> run = obtain(TrainConfig(dataset="tetrominoes", model=paper_config(...), epochs=2))   # doctest: +SKIP
>>> run.result["metrics"]["test"]["fg_iou"], run.history.tail()                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from twi_core import paths
from twi_core.records import COMPLETE, ERROR, FAILED, RunResult
from twi_core.records import RESULT_FILE
from twi_core.train import CHECKPOINT_FILE, EPOCH_DIR, STATE_FILE, TrainConfig, _now, fit, git_commit

__all__ = ["Run", "obtain", "obtain_table", "TABLE_METRICS", "load", "run_dir", "slug", "iter_runs", "record_error", "remove",
           "FINISHED", "COMPLETE", "FAILED", "ERROR"]

# complete: trained to the end and tested; failed: ended by a NaN loss (deterministic, so not retried); error: an
# exception (killed kernel, out of memory, bug), retried by the next obtain().
FINISHED = (COMPLETE, FAILED)

# Options that tell runs of one model family apart, in the order they enter the slug.
_SLUG_OPTIONS = ("readout", "depth", "num_layers", "width", "c_mid", "base_channels", "hidden_channels", "steps")


def slug(config: TrainConfig) -> str:
    """A readable folder-name prefix: dataset, model name, its distinguishing options and the seed."""
    parts = [config.dataset, str(config.model.get("name"))]
    for option in _SLUG_OPTIONS[:4]:
        if option in config.model:
            parts.append(str(config.model[option]))
    parts.append(f"s{config.seed}")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def run_dir(config: TrainConfig, *, store: str | os.PathLike | None = None) -> Path:
    """The folder of ``config``'s run in ``store`` (default :func:`twi_core.paths.runs_dir`)."""
    return paths.runs_dir(store) / f"{slug(config)}-{config.key()}"


@dataclass(frozen=True)
class Run:
    """A stored run: its folder and its record.

    Attributes
    ----------
    path : Path
        The run folder.
    record : RunResult
        Its ``result.json``, typed (:class:`twi_core.records.RunResult`).
    """

    path: Path
    record: RunResult

    @property
    def config(self) -> TrainConfig:
        """The configuration it was trained with."""
        return self.record.config

    @functools.cached_property
    def result(self) -> dict:
        """The record as the ``result.json`` mapping (field names of :func:`twi_core.train.fit`)."""
        return self.record.to_dict()

    @property
    def status(self) -> str:
        """``"complete"``, ``"failed"`` (NaN loss) or ``"error"`` (exception)."""
        return self.record.status

    @property
    def metrics(self) -> dict:
        """``{split: {metric: value}}`` of the best checkpoint."""
        return dict(self.record.metrics)

    @property
    def history(self):
        """Learning curves: a pandas DataFrame with one row per epoch (``epoch``, ``train_loss``, ``val_loss``, ...)."""
        import pandas as pd

        return pd.DataFrame(self.record.history)

    def raise_for_error(self) -> "Run":
        """This run, or ``RuntimeError`` naming it and the first line of its error when its status is ``"error"``."""
        if self.status == ERROR:
            lines = str(self.record.error or "").strip().splitlines()
            raise RuntimeError(f"run {self.path.name} failed: {lines[0] if lines else 'unknown error'}")
        return self

    def _load(self, state_dict: dict) -> torch.nn.Module:
        from twi_core import train

        model = train._build_model(self.config.model)  # twi_core.models.build(**config.model)
        model.load_state_dict(state_dict, strict=True)
        return model.eval()

    def model(self, which: str = "best") -> torch.nn.Module:
        """The trained model in eval mode on CPU: ``"best"`` (best validation loss) or ``"last"`` (last epoch)."""
        files = {"best": CHECKPOINT_FILE, "last": STATE_FILE}
        if which not in files:
            raise ValueError(f"unknown checkpoint {which!r}; expected one of {list(files)}")
        path = self.path / files[which]
        if not path.exists():
            raise FileNotFoundError(f"run {self.path.name} has no {which} checkpoint ({path.name})")
        if which == "best":
            return self._load(_weights(path))
        return self._load(torch.load(path, map_location="cpu", weights_only=True)["model"])

    def epoch_model(self, epoch: int) -> torch.nn.Module:
        """The model after ``epoch`` (1-based), when the run kept ``save_epoch_checkpoints``."""
        path = self.path / EPOCH_DIR / f"epoch_{epoch:03d}.pt"
        if not path.exists():
            kept = sorted(int(p.stem.split("_")[1]) for p in (self.path / EPOCH_DIR).glob("epoch_*.pt"))
            raise ValueError(f"run {self.path.name} has no checkpoint of epoch {epoch!r}; kept epochs: {kept or 'none'}"
                             " (train with save_epoch_checkpoints=True)")
        return self._load(_weights(path))

    def __repr__(self) -> str:
        return f"Run({self.path.name!r}, status={self.status!r})"


def _weights(path: Path) -> dict:
    """The weights of a checkpoint file (self-describing or a bare ``state_dict``), loaded with weights_only=True."""
    from twi_core.models.checkpoints import read_checkpoint

    return read_checkpoint(path)[1]


def load(path: str | os.PathLike) -> Run:
    """Load the run in folder ``path``.

    Raises
    ------
    FileNotFoundError
        No ``result.json`` (the run never finished).
    ValueError
        ``result.json`` is truncated, invalid, or not a run record (no config, key or status; complete without test
        metrics).
    """
    path = Path(path)
    return Run(path=path, record=RunResult.read(path))




def _finished(path: Path, key: str) -> Run | None:
    """The finished run at ``path`` with ``key``, or None (missing, unfinished, errored, corrupt or another key)."""
    try:
        run = load(path)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        # A corrupt record: keep the evidence beside the run, then train again.
        bad = path / RESULT_FILE
        if bad.exists():
            bad.replace(path / f"{RESULT_FILE}.corrupt")
        print(f"warning: {err}; the run will be trained again", flush=True)
        return None
    if run.record.key != key or run.status not in FINISHED:
        return None
    checkpoint = path / CHECKPOINT_FILE
    if run.status == COMPLETE and checkpoint.exists():
        try:  # weights_only inside: a crafted file fails here instead of running code
            from twi_core.train import check_weights

            check_weights(run.config, _weights(checkpoint))  # and they fit the model, or .model() fails later
        except Exception as err:
            from twi_core.train import set_aside

            set_aside(checkpoint, f"does not load ({type(err).__name__}: {err}); the run will be trained again")
            for name in (RESULT_FILE, STATE_FILE):  # the state would resume past the lost checkpoint: start over
                if (path / name).exists():
                    set_aside(path / name, "belongs to a checkpoint that was set aside")
            return None
    return run


def obtain(config: TrainConfig, *, store: str | os.PathLike | None = None, device: str | torch.device = "auto",
           progress: bool = True, labels: dict | None = None) -> Run:
    """The finished run of ``config`` from the store, training (or continuing) it first when needed.

    Parameters
    ----------
    config : TrainConfig
        What to train.
    store : path, optional
        The run store; default :func:`twi_core.paths.runs_dir` (``$TWI_RUNS_DIR``).
    device : str or torch.device
        ``"auto"`` (CUDA when available) or any torch device.
    progress : bool
        Progress bar on stderr and one line per epoch on stdout.
    labels : dict, optional
        Extra descriptive fields stored in ``result.json`` under ``"labels"`` (the batch runner records its grid point:
        family, variant, preset). They do not enter the key.

    Returns
    -------
    Run
        Status ``"complete"``, ``"failed"`` (NaN loss) or ``"error"`` (an exception, recorded with its traceback in
        ``result["error"]``). No exception from training escapes, so a batch goes on. A run found in the shipped
        store (:mod:`twi_core.store`, after the user's store) is returned from there, read-only.

    Raises
    ------
    twi_core.store.MissingRunError
        ``$TWI_TRAIN=never`` and the run is in neither store.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    from twi_core import store as _shipped

    mode = _shipped.train_mode()
    path = run_dir(config, store=store)
    found = _finished(path, config.key())
    if found is not None:
        return found
    if mode != "always":
        shipped = _shipped.find(config)
        if shipped is not None:
            return shipped
    if mode == "never":
        raise _shipped.MissingRunError(_shipped.missing_message(config))
    lock = path / LOCK_FILE
    if lock.exists() and not lock.is_file():  # a folder (or device) where the lock file belongs: cannot be locked
        return record_error(config, f"the training lock {lock} is not a file; remove it and run again", store=store,
                            labels=labels)
    with _training_lock(path, progress=progress):
        found = _finished(path, config.key())  # another process may have finished it while this one waited
        if found is not None:
            return found
        _continue_shorter(config, path, store=store, progress=progress)
        try:
            result = fit(config, path, device=device, progress=progress, resume=True, labels=labels)
        except Exception as err:  # recorded, not raised: the batch goes on
            if progress:
                print(f"run {path.name} raised {type(err).__name__}: {err}", flush=True)
            return record_error(config, f"{type(err).__name__}: {err}\n{traceback.format_exc()}", store=store,
                                labels=labels)
    return Run(path=path, record=RunResult.from_dict(result))


#: The test metrics :func:`obtain_table` puts in its rows.
TABLE_METRICS = ("fg_accuracy", "fg_iou", "fg_loss", "pixel_accuracy", "total_iou", "pixel_loss")


def obtain_table(points: Sequence[Mapping[str, Any]], *, grid: str, preset: str,
                 store: str | os.PathLike | None = None, progress: bool = True):
    """:func:`obtain` every run of a page's grid and tabulate them: the one run-table of chapters 3 and 4.

    Parameters
    ----------
    points : sequence of dict
        ``{"family", "variant", "seed", "config"}`` (and ``"dataset"``; default ``config.dataset``), as the chapters'
        ``live_points`` return them.
    grid, preset : str
        Labels recorded with each run (``grid`` names the page, e.g. ``"chapter3"``).

    Returns
    -------
    runs : dict
        ``(dataset, family, variant, seed) -> Run``.
    table : pandas.DataFrame
        One row per run: the labels, ``status``, the test metrics of :data:`TABLE_METRICS`, and where the run comes
        from (``source``: ``stored`` or ``live``; parameters, steps, epochs, images seen, wall time, device, data
        source, recipe, commit, finished).

    Raises
    ------
    RuntimeError
        A run that ended in an error (:meth:`Run.raise_for_error`); a NaN-loss run is tabulated as ``failed``.
    """
    import pandas as pd

    from twi_core import store as _store

    runs, rows = {}, []
    for p in points:
        config = p["config"]
        dataset = p.get("dataset", config.dataset)
        labels = {"grid": grid, "dataset": dataset, "family": p["family"], "variant": p["variant"],
                  "seed": p["seed"], "preset": preset}
        run = obtain(config, store=store, progress=progress, labels=labels).raise_for_error()
        runs[(dataset, p["family"], p["variant"], p["seed"])] = run
        test, rec = run.metrics.get("test", {}), run.record
        rows.append({"dataset": dataset, "family": p["family"], "variant": p["variant"], "seed": p["seed"],
                     "status": run.status, **{m: test.get(m, float("nan")) for m in TABLE_METRICS},
                     "n_params": rec.n_params, "steps": config.model.get("steps"), "epochs": config.epochs,
                     "n_train": rec.n_images.get("train"), "best_epoch": rec.best_epoch,
                     "wall_time_s": rec.wall_time_s, "device": rec.device_name or rec.device,
                     "data_source": rec.data_source, "run": run.path.name, "source": _store.provenance(run),
                     "images_seen": rec.images_seen, "recipe": rec.recipe, "commit": (rec.git_commit or "")[:7],
                     "finished": rec.finished})
    return runs, pd.DataFrame(rows)


def shorter_runs(config: TrainConfig, *, store: str | os.PathLike | None = None) -> Iterator[tuple[int, Path]]:
    """``(epochs, folder)`` of every shorter run of ``config`` with a resume state that training ``config`` passes
    through exactly (:func:`twi_core.train.continues`), longest first; at each length the store's folder before the
    shipped store's (verified against its manifest)."""
    from twi_core import store as _shipped
    from twi_core.train import continues

    for epochs in range(config.epochs - 1, 0, -1):
        shorter = dataclasses.replace(config, epochs=epochs)
        if not continues(shorter, config):
            return
        shipped = _shipped.find(shorter)  # None when absent
        for folder in (run_dir(shorter, store=store), shipped.path if shipped is not None else None):
            if folder is not None and (folder / STATE_FILE).exists():
                yield epochs, folder


def _continue_shorter(config: TrainConfig, path: Path, *, store, progress: bool) -> None:
    """Start a fresh run from the longest shorter run of it in the store (or, failing that, in the shipped store,
    whose runs keep their resume state) (:func:`shorter_runs`): asking for more epochs continues the run instead of
    starting over."""
    if (path / STATE_FILE).exists():
        return
    from twi_core.train import continue_from

    for epochs, folder in shorter_runs(config, store=store):
        if continue_from(folder, config, path):
            if progress:
                print(f"{path.name}: continuing {folder.name} after its {epochs} epoch(s)", flush=True)
            return


#: The lock file inside a run folder, held by the process that trains the run.
LOCK_FILE = ".training.lock"


@contextlib.contextmanager
def _training_lock(path: Path, *, progress: bool) -> Iterator[None]:
    """Hold an exclusive lock on the run folder ``path`` while training it.

    Two processes asked for the same configuration at once (two notebooks, two batch workers on a shared store) would
    otherwise both train it and write over each other's checkpoints; with the lock the second one waits, then finds the
    finished run. ``flock`` locks are released by the kernel when their process dies, so a killed run never leaves a
    stale lock. Where ``fcntl`` does not exist (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"run {path.name}: another process is training it; waiting for it to finish", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_error(config: TrainConfig, error: str, *, store: str | os.PathLike | None = None,
                 labels: dict | None = None) -> Run:
    """Write a ``result.json`` with status ``"error"`` for ``config`` (the next :func:`obtain` retries it)."""
    path = run_dir(config, store=store)
    record = RunResult(config=config, key=config.key(), status=ERROR, error=error, seed=config.seed,
                       git_commit=git_commit(), finished=_now(), labels=dict(labels or {}))
    record.write(path)
    return Run(path=path, record=record)


def iter_runs(root: str | os.PathLike | None = None, *, finished_only: bool = True,
              skipped: list[tuple[Path, str]] | None = None) -> Iterator[Run]:
    """Every run under ``root`` (recursively; default the store), skipping unreadable records.

    ``skipped``, if given, receives ``(folder, reason)`` for every record that could not be read, so that callers can
    report them instead of losing them silently.
    """
    root = paths.runs_dir(root)
    for result in sorted(root.rglob(RESULT_FILE)):
        try:
            run = load(result.parent)
        except (ValueError, TypeError, FileNotFoundError) as err:
            if skipped is not None:
                skipped.append((result.parent, f"{type(err).__name__}: {err}"))
            continue
        if finished_only and run.status not in FINISHED:
            continue
        yield run


def remove(run: Run) -> None:
    """Delete a run folder from the store."""
    shutil.rmtree(run.path)
