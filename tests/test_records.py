"""The typed run record: old records read, unknown fields survive, bad records are named, field names never change."""

from __future__ import annotations

import json

import pytest

from test_train import config, tiny  # noqa: F401  (the toy data and model of the training tests)
from twi_core import train
from twi_core.records import RESULT_FILE, RunResult
from twi_core.train import TrainConfig

CFG = TrainConfig(dataset="tetrominoes", model={"name": "cnn", "depth": 2}, epochs=1)

#: The field names of ``result.json`` as written since training format 2: added to, never renamed.
FIELDS = ["config", "key", "status", "error", "metrics", "best_epoch", "history", "seed", "package_version",
          "git_commit", "device", "device_name", "torch_version", "train_step", "training_format", "recipe",
          "images_seen", "stopped_by", "head_dtype", "wall_time_s", "started", "finished", "data_source", "n_params",
          "n_images"]


def complete(**extra):
    return {"config": CFG.to_dict(), "key": CFG.key(), "status": "complete",
            "metrics": {"val": {"fg_iou": 0.5}, "test": {"fg_iou": 0.4}}, **extra}


def test_an_old_record_reads_with_defaults():
    old = complete(seed=0, wall_time_s=12.0, recipe=None)  # before images_seen, recipe... existed
    rec = RunResult.from_dict(old)
    assert rec.images_seen == 0 and rec.recipe == "paper" and rec.test_metric("fg_iou") == 0.4
    assert rec.config == CFG and rec.wall_time_s == 12.0


def test_unknown_fields_are_kept_and_written_back(tmp_path):
    rec = RunResult.from_dict(complete(from_the_future={"x": 1}))
    assert rec.extra == {"from_the_future": {"x": 1}}
    rec.write(tmp_path)
    assert json.loads((tmp_path / RESULT_FILE).read_text())["from_the_future"] == {"x": 1}
    assert RunResult.read(tmp_path) == rec


@pytest.mark.parametrize("bad, message", [
    ({"config": CFG.to_dict(), "key": "k"}, "needs config, key and status"),
    ({"config": CFG.to_dict(), "key": CFG.key(), "status": "done"}, "status must be one of"),
    ({"config": CFG.to_dict(), "key": CFG.key(), "status": "complete", "metrics": {"val": {}}}, "needs test metrics"),
    ([1, 2], "needs config, key and status"),
])
def test_a_bad_record_is_named(tmp_path, bad, message):
    (tmp_path / RESULT_FILE).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=message) as err:
        RunResult.read(tmp_path)
    assert str(tmp_path / RESULT_FILE) in str(err.value)


def test_fit_writes_the_documented_fields(tiny, tmp_path):
    out = train.fit(config(epochs=1), tmp_path, device="cpu", progress=False)
    written = json.loads((tmp_path / RESULT_FILE).read_text())
    assert list(written)[:len(FIELDS)] == FIELDS
    assert written == out
    assert "continued_from" not in written and "labels" not in written  # written only when set
