"""The run record: what ``result.json`` holds, as one typed object written and read here only.

:func:`twi_core.train.fit` and :func:`twi_core.runs.record_error` build a :class:`RunResult` and write it;
:func:`twi_core.runs.load` reads it back. The field names are those of ``result.json``; fields are added, never
renamed, and an older record (one that lacks fields added since) still reads, with the defaults below. Fields this
version does not know are kept in :attr:`RunResult.extra` and written back unchanged, so nothing read is lost.

Examples
--------
>>> from twi_core.train import TrainConfig
>>> cfg = TrainConfig(dataset="tetrominoes", model={"name": "cnn", "depth": 2}, epochs=1)
>>> rec = RunResult.from_dict({"config": cfg.to_dict(), "key": cfg.key(), "status": "error", "error": "boom"})
>>> rec.status, rec.error, rec.images_seen, rec.test_metric("fg_iou")
('error', 'boom', 0, None)
>>> RunResult.from_dict(rec.to_dict()) == rec
True
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from twi_core._io import atomic_write_json, read_json

__all__ = ["RunResult", "RESULT_FILE", "COMPLETE", "FAILED", "ERROR", "STATUSES"]

#: The record's file inside a run folder.
RESULT_FILE = "result.json"
#: Status of a run that trained to its end (or budget) and was tested.
COMPLETE = "complete"
#: Status of a run whose training loss became NaN (recorded, not raised, like the authors' ``exit()``).
FAILED = "failed"
#: Status of a run that raised; the traceback is in ``error``.
ERROR = "error"
STATUSES = (COMPLETE, FAILED, ERROR)

#: Fields written only when they hold something (older readers never saw them empty).
_OPTIONAL = ("continued_from", "labels")


@dataclass(frozen=True)
class RunResult:
    """One run's record (``result.json``).

    Attributes
    ----------
    config : TrainConfig
        What was trained. ``key`` is ``config.key()`` when the record was written.
    status : {"complete", "failed", "error"}
    error : str or None
        Why a run failed or errored.
    metrics : dict
        ``{"val": {...}, "test": {...}}`` of the best checkpoint (no ``"test"`` unless complete).
    best_epoch : int
        The epoch of the best validation loss (0: none).
    history : list of dict
        One row per epoch (see :func:`twi_core.train.fit`).
    images_seen : int
        Training images presented.
    wall_time_s : float or None
        Training time, summed over resumes.
    continued_from : str or None
        The key of the shorter run this one continued (:func:`twi_core.train.continue_from`).
    labels : dict
        Descriptive fields of a batch (family, variant, preset, grid); not part of the key.
    extra : dict
        Fields of the file this version does not know, kept as they were.
    """

    config: Any  # TrainConfig (not imported at module level: train imports this module)
    key: str
    status: str
    error: str | None = None
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None
    package_version: str | None = None
    git_commit: str | None = None
    device: str | None = None
    device_name: str | None = None
    torch_version: str | None = None
    train_step: str | None = None
    training_format: int | None = None
    recipe: str = "paper"
    images_seen: int = 0
    stopped_by: str | None = None
    head_dtype: str | None = None
    wall_time_s: float | None = None
    started: str | None = None
    finished: str | None = None
    data_source: str | None = None
    n_params: int | None = None
    n_images: Mapping[str, int] = field(default_factory=dict)
    continued_from: str | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"run status must be one of {list(STATUSES)}; got {self.status!r}")
        if self.status == COMPLETE and "test" not in self.metrics:
            raise ValueError("a complete run record needs test metrics")

    # -- reading the record ------------------------------------------------------------------------------------------

    def test_metric(self, name: str) -> float | None:
        """The test value of metric ``name`` (``fg_iou``, ``fg_accuracy``, ...), None when not tested."""
        return self.metrics.get("test", {}).get(name)

    @property
    def epochs_trained(self) -> int:
        """Epochs in the learning curves."""
        return len(self.history)

    # -- conversion --------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``result.json`` mapping: known fields in their order, then :attr:`extra`."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name == "config":
                value = value.to_dict()
            elif f.name in _OPTIONAL and not value:
                continue
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunResult":
        """Read a ``result.json`` mapping (older records included).

        Raises
        ------
        ValueError
            Not a run record: not a mapping, no ``config``/``key``/``status``, an unknown status, or ``complete``
            without test metrics.
        """
        from twi_core.train import TRAINING_FORMAT, TrainConfig

        if not isinstance(values, Mapping) or not {"config", "key", "status"} <= set(values):
            raise ValueError("not a run record (needs config, key and status)")
        if not isinstance(values["config"], Mapping):
            raise ValueError(f"'config' must be a dict of TrainConfig fields; got {type(values['config']).__name__}")
        # What readers (aggregation, the pages) use without further checks must never crash them or enter a table
        # as a wrong number: metrics {split: {name: number or null}}, labels a dict, and the configuration's own key
        # (for records of the current training format; older ones keep the key they were trained under).
        metrics = values.get("metrics") or {}
        if not isinstance(metrics, Mapping) or not all(isinstance(v, Mapping) for v in metrics.values()):
            raise ValueError(f"'metrics' must be {{split: {{metric: value}}}}; got {metrics!r:.80}")
        for split, numbers in metrics.items():
            bad = {k: v for k, v in numbers.items()
                   if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))}
            if bad:
                raise ValueError(f"metrics of {split!r} must be numbers or null; got {bad!r:.80}")
        if not isinstance(values.get("labels") or {}, Mapping):
            raise ValueError(f"'labels' must be a dict; got {type(values['labels']).__name__}")
        config = TrainConfig.from_dict(values["config"])
        if values.get("training_format", TRAINING_FORMAT) == TRAINING_FORMAT and values["key"] != config.key():
            raise ValueError(f"its key {values['key']!r} is not its configuration's ({config.key()!r}): an edited or "
                             "mixed-up record")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("config", "extra")}
        # A null where this version has a non-null default (an older writer's "unknown") takes the default.
        kwargs = {k: v for k, v in values.items() if k in fields and (v is not None or fields[k].default is None)}
        extra = {k: v for k, v in values.items() if k not in fields and k != "config"}
        return cls(config=config, extra=extra, **kwargs)

    def write(self, run_dir: str | os.PathLike) -> Path:
        """Write ``result.json`` into ``run_dir`` (atomically)."""
        return atomic_write_json(Path(run_dir) / RESULT_FILE, self.to_dict())

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> "RunResult":
        """Read ``run_dir/result.json``.

        Raises
        ------
        FileNotFoundError
            No record (the run never finished).
        ValueError
            A truncated or invalid file, or not a run record (the file is named).
        """
        path = Path(run_dir) / RESULT_FILE
        data = read_json(path)
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from err
