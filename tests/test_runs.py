"""The run store: caching by key, corrupt records, recorded errors, loading models back."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch

from twi_core import runs, train
from test_train import TinySegmenter, config, tiny  # noqa: F401  (tiny is a fixture)


def test_obtain_trains_once_then_loads(tiny, tmp_cache, monkeypatch):
    cfg = config(epochs=2)
    run = runs.obtain(cfg, device="cpu", progress=False)
    assert run.status == "complete"
    assert run.path.parent == tmp_cache / "runs"
    assert run.path.name.startswith("toy-tiny-s3-") and run.path.name.endswith(cfg.key())
    mtime = os.stat(run.path / train.RESULT_FILE).st_mtime_ns

    def must_not_train(*args, **kwargs):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(runs, "fit", must_not_train)
    again = runs.obtain(cfg, device="cpu", progress=False)
    assert again.result == run.result
    assert os.stat(run.path / train.RESULT_FILE).st_mtime_ns == mtime


def test_a_changed_config_is_a_different_run(tiny, tmp_cache):
    a = runs.obtain(config(epochs=1), progress=False)
    b = runs.obtain(config(epochs=1, lr=5e-3), progress=False)
    assert a.path != b.path and a.result["key"] != b.result["key"]


def test_run_exposes_history_and_models(tiny, tmp_cache):
    run = runs.obtain(config(epochs=2, save_epoch_checkpoints=True), progress=False)
    assert isinstance(run.history, pd.DataFrame)
    assert list(run.history["epoch"]) == [1, 2]
    assert {"train_loss", "val_loss", "val_fg_acc", "val_fg_iou"} <= set(run.history.columns)
    best = run.model()
    assert isinstance(best, TinySegmenter) and not best.training
    x = torch.rand(1, 2, 8, 8)
    assert best(x).shape == (1, 3, 8, 8)
    last, first = run.model("last"), run.epoch_model(1)
    assert not torch.equal(last.net[0].weight, first.net[0].weight)
    with pytest.raises(ValueError, match="kept epochs: \\[1, 2\\]"):
        run.epoch_model(7)
    with pytest.raises(ValueError, match="expected one of \\['best', 'last'\\]"):
        run.model("worst")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not-a-record"])
def test_a_corrupt_result_is_detected_and_rerun(tiny, tmp_cache, damage):
    cfg = config(epochs=1)
    run = runs.obtain(cfg, progress=False)
    path = run.path / train.RESULT_FILE
    text = path.read_text()
    path.write_text({"truncate": text[: len(text) // 2], "garbage": "\x00\x01", "not-a-record": "[1, 2]"}[damage])
    with pytest.raises(ValueError):
        runs.load(run.path)
    again = runs.obtain(cfg, progress=False)
    assert again.status == "complete"
    assert json.loads(path.read_text())["metrics"] == run.result["metrics"]
    assert (run.path / "result.json.corrupt").exists()


def test_an_exception_is_recorded_and_retried(tiny, tmp_cache, monkeypatch):
    def broken(kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(train, "_build_model", broken)
    run = runs.obtain(config(epochs=1), progress=False)
    assert run.status == "error" and "out of memory" in run.result["error"]
    assert runs.load(run.path).status == "error"


def test_error_runs_are_retried_and_failed_runs_are_not(tiny, tmp_cache, monkeypatch):
    cfg = config(epochs=1)
    real = train._build_model
    monkeypatch.setattr(train, "_build_model", lambda kwargs: (_ for _ in ()).throw(RuntimeError("boom")))
    assert runs.obtain(cfg, progress=False).status == "error"
    monkeypatch.setattr(train, "_build_model", real)
    assert runs.obtain(cfg, progress=False).status == "complete"

    bad = config(epochs=1, model={"name": "tiny", "poison": True})
    failed = runs.obtain(bad, progress=False)
    assert failed.status == "failed"
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("a failed (NaN) run was retried"))
    assert runs.obtain(bad, progress=False).status == "failed"


def test_labels_are_stored_but_not_keyed(tiny, tmp_cache):
    run = runs.obtain(config(epochs=1), progress=False, labels={"family": "tiny", "preset": "smoke"})
    assert run.result["labels"] == {"family": "tiny", "preset": "smoke"}
    assert runs.load(run.path).result["labels"]["preset"] == "smoke"


def test_iter_runs_lists_finished_runs(tiny, tmp_cache):
    runs.obtain(config(epochs=1), progress=False)
    runs.obtain(config(epochs=1, seed=4), progress=False)
    (tmp_cache / "runs" / "junk").mkdir()
    (tmp_cache / "runs" / "junk" / "result.json").write_text("{")
    found = list(runs.iter_runs())
    assert sorted(r.config.seed for r in found) == [3, 4]


def test_obtain_rejects_a_non_config():
    with pytest.raises(TypeError, match="TrainConfig"):
        runs.obtain({"dataset": "toy"})


def test_a_real_model_round_trips_through_the_store(tmp_cache):
    """With the real data and model registries: the stored checkpoint rebuilds its own model, strictly."""
    from twi_core import models, reproduce

    cfg = reproduce.train_config("tetrominoes", "cnn", 2, preset="smoke", n_train=8, n_val=4, n_test=4)
    run = runs.obtain(cfg, progress=False)
    assert run.status == "complete", run.result.get("error")
    assert run.result["data_source"] and run.result["n_params"] == models.count_parameters(run.model())
    model = run.model()
    assert model.config == models.build(**cfg.model).config
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == (2, 6, 64, 64)
    reloaded = runs.load(run.path)
    assert reloaded.result == run.result and reloaded.config == cfg


def test_a_run_in_training_elsewhere_is_waited_for_not_trained_twice(tiny, tmp_cache, monkeypatch, capsys):
    """While another process holds a run's lock, obtain() waits; when that process has finished the run, obtain()
    returns it without training."""
    import fcntl
    import threading

    cfg = config(epochs=1)
    done = runs.obtain(cfg, device="cpu", progress=False)  # the result the "other process" will have written
    saved = (done.path / train.RESULT_FILE).read_bytes()
    (done.path / train.RESULT_FILE).unlink()

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained a run that another process was training")

    monkeypatch.setattr(runs, "fit", must_not_train)
    other = open(done.path / runs.LOCK_FILE, "a")  # a second open file description: flock treats it as another owner
    fcntl.flock(other, fcntl.LOCK_EX)
    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault("run", runs.obtain(cfg, device="cpu", progress=True)))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive() and "run" not in got  # blocked on the lock
    (done.path / train.RESULT_FILE).write_bytes(saved)  # the other process finishes ...
    fcntl.flock(other, fcntl.LOCK_UN)  # ... and lets go
    other.close()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert got["run"].status == "complete" and got["run"].result == done.result
    assert "another process is training it; waiting" in capsys.readouterr().out


def test_a_finished_run_with_a_broken_or_crafted_checkpoint_is_trained_again(tiny, tmp_cache, monkeypatch):
    from test_train import _Exploit

    cfg = config(epochs=1)
    first = runs.obtain(cfg, progress=False)
    marker = tmp_cache / "executed"
    torch.save({"w": _Exploit(marker)}, first.path / train.CHECKPOINT_FILE)
    with pytest.warns(RuntimeWarning, match=r"checkpoint.pt does not load"):
        again = runs.obtain(cfg, progress=False)
    assert not marker.exists() and again.status == "complete"
    assert (again.path / "checkpoint.pt.corrupt").exists()
    assert again.model() is not None                                     # the retrained checkpoint serves
    (again.path / train.CHECKPOINT_FILE).write_bytes(b"")                # zero bytes: detected the same way
    with pytest.warns(RuntimeWarning, match=r"checkpoint.pt does not load"):
        assert runs.obtain(cfg, progress=False).status == "complete"


def test_obtain_table_tabulates_the_runs_of_a_page_and_raises_for_an_errored_run(tiny, tmp_cache, monkeypatch):
    points = [{"family": "tiny", "variant": "4", "seed": s, "config": config(epochs=1, seed=s)} for s in (0, 1)]
    found, table = runs.obtain_table(points, grid="page", preset="smoke", progress=False)
    assert list(found) == [("toy", "tiny", "4", 0), ("toy", "tiny", "4", 1)]
    assert list(table["seed"]) == [0, 1] and set(table["status"]) == {"complete"}
    assert table["fg_iou"].notna().all() and set(runs.TABLE_METRICS) <= set(table.columns)
    assert set(table["source"]) == {"live"} and (table["epochs"] == 1).all()
    assert found[("toy", "tiny", "4", 1)].record.labels["grid"] == "page"

    def boom(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(runs, "fit", boom)
    broken = [{"family": "tiny", "variant": "4", "seed": 2, "config": config(epochs=1, seed=2)}]
    with pytest.raises(RuntimeError, match="failed: MemoryError: out of memory"):
        runs.obtain_table(broken, grid="page", preset="smoke", progress=False)
