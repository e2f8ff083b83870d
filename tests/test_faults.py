"""Fault injection: bad settings, bad inputs and crafted or corrupt files end in a clear error or a recovery.

Every case here is one of two kinds, and the test says which:

- **clear error**: a ``ValueError``/``TypeError`` (in-process) or exit status 2 with one ``error:`` line on stderr
  (command line) that names what was wrong and what is accepted; never a traceback, never a half-started batch;
- **recovery**: the damaged file is set aside (``*.corrupt``) or ignored and the run is trained again to the same
  result, or the record is skipped with its reason; never a silent wrong result, never code from a file executed.

The tables below are the inventory: :data:`CLI_CASES` (every batch setting), :data:`AGGREGATE_CASES`,
:data:`MODEL_CASES` (each model family's entry), :data:`RESULT_DAMAGE`, :data:`STATE_DAMAGE`,
:data:`CHECKPOINT_DAMAGE` (every file of a run folder). ``tests/test_runs.py`` and ``tests/test_train.py`` hold the
older cases (truncated, garbage and non-record ``result.json``; crafted, truncated and empty ``state.pt``; crafted and
empty ``checkpoint.pt``); these extend them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from twi_core import cli, drum, models, reproduce, runs, train
from test_train import TinySegmenter, _Exploit, config, tiny  # noqa: F401  (tiny is a fixture)

ROOT = Path(__file__).resolve().parents[1]


# -- every batch setting, through the command line ----------------------------------------------------------------------

def _no_cuda() -> bool:
    return not torch.cuda.is_available()


#: (id, extra arguments after ``twi reproduce sanity --preset smoke --dry-run --out DIR``, environment changes, text the error line
#: must hold, a reason to skip or None). ``{tmp}`` in an argument is the test's temporary folder.
CLI_CASES = [
    ("device-cuda-without-cuda", ["--device", "cuda"], {}, "--device: got 'cuda', but",
     None if _no_cuda() else "CUDA is present here"),
    ("device-cuda-index-too-high", ["--device", "cuda:99"], {}, "--device: got 'cuda:99'", None),
    ("device-unknown", ["--device", "gpu"], {}, "--device: got 'gpu'; expected 'auto', 'cpu', 'cuda'", None),
    ("device-bad-index", ["--device", "cuda:x"], {}, "--device: got 'cuda:x'", None),
    ("device-empty", ["--device", ""], {}, "--device: got ''", None),
    ("device-mps", ["--device", "mps"], {}, "--device: got 'mps'", None),
    ("head-unknown", ["--set", "head=huge"], {}, "setting 'head': got 'huge'; expected one of", None),
    ("head-not-a-name", ["--set", "head=3"], {}, "setting 'head': got 3", None),
    ("steps-zero", ["--set", "steps=0"], {}, "setting 'steps': got 0; expected an int >= 1", None),
    ("steps-negative", ["--set", "steps=-3"], {}, "setting 'steps': got -3", None),
    ("steps-text", ["--set", "steps=abc"], {}, "setting 'steps': got 'abc'", None),
    ("steps-float", ["--set", "steps=2.5"], {}, "setting 'steps': got 2.5", None),
    ("epochs-zero", ["--set", "epochs=0"], {}, "setting 'epochs': got 0; expected an int >= 1", None),
    ("epochs-negative", ["--set", "epochs=-1"], {}, "setting 'epochs': got -1", None),
    ("epochs-float", ["--set", "epochs=2.5"], {}, "setting 'epochs': got 2.5", None),
    ("epochs-bool", ["--set", "epochs=True"], {}, "setting 'epochs': got True", None),
    ("batch-zero", ["--set", "batch_size=0"], {}, "setting 'batch_size': got 0", None),
    ("batch-above-n-train", ["--set", "batch_size=32"], {}, "setting 'batch_size': got 32 with n_train=16", None),
    ("n-train-below-batch", ["--set", "n_train=4"], {}, "setting 'batch_size': got 8 with n_train=4", None),
    ("n-train-above-split", ["--set", "n_train=100000"], {}, "the train split of tetrominoes has 10000 images", None),
    ("n-val-zero", ["--set", "n_val=0"], {}, "setting 'n_val': got 0", None),
    ("n-test-above-split", ["--set", "n_test=99999"], {}, "the test split of tetrominoes has 1000 images", None),
    ("lr-zero", ["--set", "lr=0"], {}, "setting 'lr': got 0; expected a finite number > 0", None),
    ("lr-negative", ["--set", "lr=-1e-3"], {}, "setting 'lr': got -0.001", None),
    ("lr-nan", ["--set", "lr=nan"], {}, "setting 'lr': got 'nan'", None),
    ("lr-inf", ["--set", "lr=1e999"], {}, "setting 'lr': got inf", None),
    ("recipe-unknown", ["--set", "recipe=turbo"], {}, "setting 'recipe': got 'turbo'; expected one of", None),
    ("budget-zero", ["--set", "budget_minutes=0"], {}, "setting 'budget_minutes': got 0", None),
    ("budget-negative", ["--set", "budget_minutes=-5"], {}, "setting 'budget_minutes': got -5", None),
    ("setting-unknown", ["--set", "epoch=2"], {}, "--set epoch: got an unknown setting 'epoch'", None),
    ("setting-without-value", ["--set", "epochs"], {}, "--set expects KEY=VALUE; got 'epochs'", None),
    ("seeds-n-zero", ["--set", "seeds=0"], {}, "--set seeds=N needs a positive integer N; got 0", None),
    ("seeds-n-text", ["--set", "seeds=many"], {}, "--set seeds=N needs a positive integer N; got 'many'", None),
    ("seed-negative", ["--seeds", "-1"], {}, "--seeds: got -1 in [-1]", None),
    ("seed-twice", ["--seeds", "0", "0"], {}, "--seeds: got [0] more than once", None),
    ("seed-too-large", ["--seeds", str(2**64)], {}, f"--seeds: got {2**64}", None),
    ("seed-float", ["--seeds", "1.5"], {}, "argument --seeds: invalid int value: '1.5'", None),
    ("seeds-twice-two-ways", ["--seeds", "0", "--set", "seeds=2"], {}, "give the seeds once", None),
    ("jobs-zero", ["--jobs", "0"], {}, "--jobs: got 0; expected an int >= 1", None),
    ("jobs-negative", ["--jobs", "-2"], {}, "--jobs: got -2", None),
    ("jobs-text", ["--jobs", "two"], {}, "argument --jobs: invalid int value: 'two'", None),
    ("executor-unknown", ["--executor", "pbs"], {}, "argument --executor: invalid choice: 'pbs'", None),
    ("cluster-without-slurm", ["--cluster", "local"], {}, "--cluster: got 'local' with --executor local", None),
    ("cluster-unknown", ["--executor", "slurm", "--cluster", "pbs"], {}, "--cluster: got 'pbs'", None),
    ("slurm-time-zero", ["--executor", "slurm", "--cluster", "local", "--slurm-time", "0"], {},
     "--slurm-time: got 0; expected an int >= 1", None),
    ("slurm-gpus-negative", ["--executor", "slurm", "--cluster", "local", "--slurm-gpus", "-1"], {},
     "--slurm-gpus: got -1", None),
    ("preset-unknown", ["--preset", "tiny"], {}, "argument --preset: invalid choice: 'tiny'", None),
    ("preset-env-unknown", [], {"TWI_PRESET": "huge"}, "TWI_PRESET: got 'huge'; expected one of", None),
    ("preset-flag-and-env-differ", [], {"TWI_PRESET": "book"}, "--preset smoke and TWI_PRESET=book disagree", None),
    ("head-bf16-env-unknown", [], {"TWI_HEAD_BF16": "maybe"}, "TWI_HEAD_BF16='maybe'", None),
    ("train-env-unknown", [], {"TWI_TRAIN": "sometimes"}, "TWI_TRAIN='sometimes'", None),
    ("notebook-missing", ["--notebook", "{tmp}/nope.ipynb"], {}, "--notebook: got", None),
    ("notebook-folder", ["--notebook", "{tmp}"], {}, "which is a folder", None),
    ("notebook-not-json", ["--notebook", "{tmp}/text.ipynb"], {}, "cannot be read as JSON", None),
    ("notebook-no-parameters-cell", ["--notebook", "{tmp}/plain.ipynb"], {}, "no cell tagged 'parameters'", None),
    ("out-is-a-file", ["--out", "{tmp}/file"], {}, "which is a file, not a folder", None),
    ("out-under-a-file", ["--out", "{tmp}/file/runs"], {}, "which lies under the file", None),
    ("out-not-writable-proc", ["--out", "/proc/twi-runs"], {}, "which cannot be written", None),
    ("out-not-writable-mode", ["--out", "{tmp}/locked/runs"], {}, "which cannot be written",
     "root writes into a 0555 folder" if os.geteuid() == 0 else None),
]


def _materials(tmp: Path) -> None:
    """The files the CLI cases point at."""
    (tmp / "file").write_text("not a folder\n")
    (tmp / "text.ipynb").write_text("this is not JSON")
    (tmp / "plain.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1"}],
                                                 "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o555)


def _assert_one_clear_line(err: str, expected: str, command: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"twi {command}: error: "), err
    assert expected in lines[0], err


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_a_bad_setting_stops_the_batch_before_it_starts(case, tmp_path, capsys, monkeypatch):
    name, extra, env, expected, skip = case
    if skip:
        pytest.skip(skip)
    monkeypatch.delenv("TWI_PRESET", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _materials(tmp_path)
    out = tmp_path / "store"
    argv = ["reproduce", "sanity", "--preset", "smoke", "--dry-run", "--out", str(out),
            *[a.format(tmp=tmp_path) for a in extra]]
    if "--out" in extra:  # the case's own --out replaces the default one
        i = argv.index("--out")
        del argv[i:i + 2]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    _assert_one_clear_line(err, expected, "reproduce")
    assert not out.exists()                                               # nothing of the batch started


def test_the_checks_pass_a_good_batch_and_a_cluster_may_have_gpus_this_machine_lacks(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TWI_PRESET", raising=False)
    assert cli.main(["reproduce", "sanity", "--dry-run", "--out", str(tmp_path / "s")]) == 0
    if _no_cuda():  # a SLURM submission from a login node without GPUs for GPU nodes: not this machine's business
        assert cli.main(["reproduce", "sanity", "--dry-run", "--out", str(tmp_path / "s"), "--executor", "slurm",
                         "--device", "cuda"]) == 0
    assert "error" not in capsys.readouterr().err


def test_validation_runs_inside_run_grid_too():
    # The API and the command line share the checks: a caller of run_grid gets the same SettingError (a ValueError).
    from twi_core.validation import SettingError

    with pytest.raises(SettingError, match=r"setting 'steps': got 'ten'"):
        reproduce.run_grid("sanity", preset="smoke", dry_run=True, overrides={"steps": "ten"})
    with pytest.raises(ValueError, match=r"--seeds: got \[3\] more than once"):
        reproduce.run_grid("sanity", preset="smoke", dry_run=True, seeds=[3, 3])


#: (id, arguments after ``twi aggregate``, text the error line must hold).
AGGREGATE_CASES = [
    ("store-missing", ["{tmp}/missing"], "run store: got", ),
    ("store-is-a-file", ["{tmp}/file"], "which is a file"),
    ("csv-is-a-folder", ["{tmp}/store", "--csv", "{tmp}"], "--csv: got"),
    ("csv-under-a-file", ["{tmp}/store", "--csv", "{tmp}/file/table.csv"], "file', which is a file, not a folder"),
    ("csv-not-writable", ["{tmp}/store", "--csv", "/proc/table.csv"], "which cannot be written"),
    ("metric-unknown", ["{tmp}/store", "--metrics", "iou"], "unknown metric(s) ['iou']"),
]


@pytest.mark.parametrize("case", AGGREGATE_CASES, ids=[c[0] for c in AGGREGATE_CASES])
def test_aggregate_fails_clearly(case, tmp_path, capsys):
    name, args, expected = case
    _materials(tmp_path)
    (tmp_path / "store").mkdir()
    code = cli.main(["aggregate", *[a.format(tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err
    assert code == 2, err
    _assert_one_clear_line(err, expected, "aggregate")


@pytest.mark.parametrize("argv, expected", [
    (["reproduce", "sanity", "--dry-run", "--device", "cuda:99"], "--device: got 'cuda:99'"),
    (["reproduce", "sanity", "--dry-run", "--out", "{tmp}/file/runs"], "which lies under the file"),
    (["aggregate", "{tmp}/missing"], "which does not exist"),
])
def test_a_real_process_prints_one_line_and_no_traceback(argv, expected, tmp_path):
    _materials(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWI_RUNS_DIR": str(tmp_path / "default-store")}
    env.pop("TWI_PRESET", None)
    proc = subprocess.run([sys.executable, "-m", "twi_core.cli", *[a.format(tmp=tmp_path) for a in argv]],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr                       # exactly one line
    _assert_one_clear_line(proc.stderr, expected, argv[0])


# -- model inputs: every family's entry -----------------------------------------------------------------------------

FAMILIES = {"nwm": dict(steps=4, head="small"), "lstm": dict(steps=4, head="small"), "cnn": dict(depth=2),
            "unet": dict(width=2)}

#: (id, input maker for (channels, size), error type, text of the message).
MODEL_CASES = [
    ("float64", lambda c, s: torch.rand(2, c, s, s, dtype=torch.float64), TypeError,
     "x has dtype torch.float64, but this model's weights are torch.float32"),
    ("float16", lambda c, s: torch.rand(2, c, s, s, dtype=torch.float16), TypeError, "x has dtype torch.float16"),
    ("bfloat16", lambda c, s: torch.rand(2, c, s, s).bfloat16(), TypeError, "x has dtype torch.bfloat16"),
    ("empty-batch", lambda c, s: torch.rand(0, c, s, s), ValueError, "x is an empty batch (0, "),
    ("integer", lambda c, s: torch.ones(2, c, s, s, dtype=torch.uint8), TypeError, "floating-point tensor"),
    ("numpy", lambda c, s: np.zeros((2, c, s, s), np.float32), TypeError, "got a ndarray"),
    ("no-batch-axis", lambda c, s: torch.rand(c, s, s), ValueError, "x must have shape (B, "),
    ("wrong-channels", lambda c, s: torch.rand(2, c + 1, s, s), ValueError, "channels; this model expects"),
    ("wrong-size", lambda c, s: torch.rand(2, c, s + 1, s + 1), ValueError, "this model was built for image_size"),
    ("nan", lambda c, s: torch.full((2, c, s, s), float("nan")), ValueError, "NaN or infinite"),
]


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("case", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_a_bad_input_is_refused_at_the_models_entry(family, case):
    name, make, error, text = case
    size = 32 if family == "unet" else 8  # four halvings need 16 | size
    model = models.build(family, in_channels=1, num_classes=3, image_size=size, **FAMILIES[family])
    with pytest.raises(error) as info:
        model(make(1, size))
    assert text in str(info.value)
    # At the entry, not deep inside a convolution or an engine: the innermost frame is the shared input check.
    assert traceback.extract_tb(info.tb)[-1].name == "check_input"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_float64_model_takes_float64_input(family):
    # Handled sensibly: the input must match the weights, so a model converted to float64 runs in float64.
    size = 32 if family == "unet" else 8
    model = models.build(family, in_channels=1, num_classes=3, image_size=size, **FAMILIES[family]).double()
    out = model(torch.rand(2, 1, size, size, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (2, 3, size, size)


# -- the drum's fundamental of a silent trace ---------------------------------------------------------------------------

@pytest.mark.parametrize("trace", [np.zeros(200), np.full(200, 0.1), np.full(200, -3.0)], ids=["zero", "0.1", "-3"])
def test_a_trace_without_oscillation_has_no_fundamental(trace):
    with pytest.raises(ValueError, match="no spectral peak found: the trace is constant"):
        drum.fundamental_frequency(trace, 0.1)
    assert drum.spectral_peaks(trace, 0.1).size == 0                      # not 200 made-up peaks


def test_in_a_batch_a_silent_trace_is_nan_and_the_others_are_kept():
    t = np.arange(4000) * 0.1
    batch = np.stack([np.cos(2 * np.pi * 0.3 * t), np.zeros_like(t), np.full_like(t, 2.0)])
    with pytest.warns(RuntimeWarning, match="2 of 3 traces have no spectral peak"):
        f = drum.fundamental_frequency(batch, 0.1)
    assert f[0] == pytest.approx(0.3, abs=1e-5) and np.isnan(f[1:]).all()
    # A silent probe does not shift the peaks of the others when probes are combined.
    np.testing.assert_allclose(drum.spectral_peaks(batch, 0.1, count=1), drum.spectral_peaks(batch[0], 0.1, count=1))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_diverged_trace_is_an_error(bad):
    trace = np.cos(np.arange(200.0))
    trace[50] = bad
    with pytest.raises(ValueError, match="NaN or infinite samples"):
        drum.fundamental_frequency(trace, 0.1)


def test_a_small_real_oscillation_still_counts():
    # Relative, not absolute: a quiet probe (amplitude 1e-9 on an offset of 1) still has its frequency.
    t = np.arange(4000) * 0.1
    assert drum.fundamental_frequency(1.0 + 1e-9 * np.sin(2 * np.pi * 0.2 * t), 0.1) == pytest.approx(0.2, abs=1e-5)


# -- every file of a run folder -------------------------------------------------------------------------------------

def _tiny_run(tmp_cache) -> runs.Run:
    run = runs.obtain(config(epochs=1), progress=False)
    assert run.status == "complete"
    return run


def _record(path: Path) -> dict:
    return json.loads((path / train.RESULT_FILE).read_text())


def _edit(field: str, value):
    def damage(path: Path) -> None:
        record = _record(path)
        head, _, tail = field.partition(".")
        if tail:
            record[head][tail] = value
        else:
            record[head] = value
        (path / train.RESULT_FILE).write_text(json.dumps(record))
    return damage


def _replace_with_folder(name: str):
    def damage(path: Path) -> None:
        (path / name).unlink()
        (path / name).mkdir()
    return damage


#: (id, damage to a finished run's folder). Each must end in a recovery: the next obtain() trains the run again (or
#: finds it intact) to the same metrics, and aggregate() skips the record with its reason or reads it right.
RESULT_DAMAGE = [
    ("non-utf8", lambda p: (p / train.RESULT_FILE).write_bytes(b"\xff\xfe{")),
    ("a-folder", _replace_with_folder(train.RESULT_FILE)),
    ("foreign-key", _edit("key", "0123456789ab")),
    ("complete-without-test", _edit("metrics", {"val": {}})),
    ("metrics-not-a-dict", _edit("metrics", [1, 2])),
    ("test-metrics-a-list", _edit("metrics.test", [0.5])),
    ("test-metric-text", _edit("metrics.test", {"fg_iou": "high"})),
    ("labels-not-a-dict", _edit("labels", ["a"])),
    ("config-unknown-key", _edit("config.colour", "red")),
    ("config-wrong-type", _edit("config.epochs", "one")),
    ("config-not-a-dict", _edit("config", "tiny")),
    ("status-unknown", _edit("status", "done")),
]


@pytest.mark.parametrize("case", RESULT_DAMAGE, ids=[c[0] for c in RESULT_DAMAGE])
def test_a_damaged_result_is_skipped_with_its_reason_then_trained_again(case, tiny, tmp_cache):
    name, damage = case
    run = _tiny_run(tmp_cache)
    good = run.result["metrics"]
    damage(run.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table = reproduce.collect(tmp_cache / "runs")
    # Never a silent wrong row: either the record is listed as skipped, or it is not counted as finished.
    assert table.empty, table
    if name != "status-unknown":  # an unknown status is a record of an unfinished run, not an unreadable one
        assert [Path(p).name for p, _ in table.attrs["skipped"]] == [run.path.name]
    again = runs.obtain(run.config, progress=False)
    assert again.status == "complete" and again.result["metrics"] == good
    assert runs.load(run.path).result["metrics"] == good


def _state(path: Path) -> dict:
    return torch.load(path / train.STATE_FILE, weights_only=True)


def _save_state(path: Path, state) -> None:
    torch.save(state, path / train.STATE_FILE)


def _stop_after_first_epoch(cfg, run_dir, monkeypatch) -> None:
    """Train epoch 1 of a 2-epoch run, then die as a killed process would (state.pt written, no result.json)."""
    real, calls = train._train_epoch, []

    def stop_in_epoch_two(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train, "_train_epoch", stop_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.fit(cfg, run_dir, device="cpu", progress=False)
    monkeypatch.setattr(train, "_train_epoch", real)


def _wrong_shapes(path: Path) -> None:
    state = _state(path)
    state["model"] = {k: torch.zeros(*(s + 1 for s in v.shape)) for k, v in state["model"].items()}
    _save_state(path, state)


def _drop_weight(path: Path) -> None:
    state = _state(path)
    state["model"].pop(next(iter(state["model"])))
    _save_state(path, state)


def _bad_rng(path: Path) -> None:
    state = _state(path)
    state["rng"] = {"torch": torch.zeros(3, dtype=torch.uint8)}
    _save_state(path, state)


def _bad_optimizer(path: Path) -> None:
    state = _state(path)
    state["optimizer"] = {"state": {}, "param_groups": [{"params": [0]}]}
    _save_state(path, state)


STATE_DAMAGE = [
    ("foreign-key", lambda p: _save_state(p, {**_state(p), "key": "0123456789ab"})),
    ("missing-fields", lambda p: _save_state(p, {"key": _state(p)["key"]})),
    ("not-a-dict", lambda p: _save_state(p, torch.zeros(3))),
    ("weights-wrong-shape", _wrong_shapes),
    ("weights-missing-key", _drop_weight),
    ("rng-wrong", _bad_rng),
    ("optimizer-wrong", _bad_optimizer),
    ("a-folder", _replace_with_folder(train.STATE_FILE)),
]


@pytest.mark.parametrize("case", STATE_DAMAGE, ids=[c[0] for c in STATE_DAMAGE])
def test_a_damaged_state_is_set_aside_and_the_run_starts_over_identically(case, tiny, tmp_path, monkeypatch):
    name, damage = case
    cfg = config(epochs=2)
    clean = train.fit(cfg, tmp_path / "clean", device="cpu", progress=False)
    run_dir = tmp_path / "run"
    _stop_after_first_epoch(cfg, run_dir, monkeypatch)
    damage(run_dir)
    with pytest.warns(RuntimeWarning, match=r"state.pt cannot be resumed from"):
        result = train.fit(cfg, run_dir, device="cpu", progress=False)
    assert result["status"] == "complete" and len(result["history"]) == 2
    # Started over from scratch, so it ends as the uninterrupted run does (bit-identical on CPU).
    assert result["metrics"] == clean["metrics"]
    assert (run_dir / "state.pt.corrupt").exists()


def _bare_wrong_shapes(path: Path) -> None:
    weights = runs._weights(path / train.CHECKPOINT_FILE)
    torch.save({k: torch.zeros(*(s + 1 for s in v.shape)) for k, v in weights.items()}, path / train.CHECKPOINT_FILE)


def _described_wrong_shapes(path: Path) -> None:
    from twi_core.models.checkpoints import checkpoint_dict, read_checkpoint

    kwargs, weights = read_checkpoint(path / train.CHECKPOINT_FILE)
    bad = {k: torch.zeros(*(s + 1 for s in v.shape)) for k, v in weights.items()}
    torch.save(checkpoint_dict(kwargs, bad), path / train.CHECKPOINT_FILE)


CHECKPOINT_DAMAGE = [
    ("truncated", lambda p: (p / train.CHECKPOINT_FILE).write_bytes((p / train.CHECKPOINT_FILE).read_bytes()[:64])),
    ("not-a-checkpoint", lambda p: torch.save([1, 2, 3], p / train.CHECKPOINT_FILE)),
    ("crafted-nested", lambda p: torch.save({"format": "twi-checkpoint-1", "model": {"name": "tiny"},
                                             "state_dict": {"w": _Exploit(p / "executed")}},
                                            p / train.CHECKPOINT_FILE)),
    ("bare-wrong-shapes", _bare_wrong_shapes),
    ("described-wrong-shapes", _described_wrong_shapes),
    ("a-folder", _replace_with_folder(train.CHECKPOINT_FILE)),
]


@pytest.mark.parametrize("case", CHECKPOINT_DAMAGE, ids=[c[0] for c in CHECKPOINT_DAMAGE])
def test_a_damaged_checkpoint_of_a_finished_run_is_set_aside_and_trained_again(case, tiny, tmp_cache):
    name, damage = case
    run = _tiny_run(tmp_cache)
    good = run.result["metrics"]
    damage(run.path)
    with pytest.warns(RuntimeWarning, match=r"checkpoint.pt does not load"):
        again = runs.obtain(run.config, progress=False)
    assert not (run.path / "executed").exists()                          # nothing in the file ran
    assert again.status == "complete" and again.result["metrics"] == good
    assert isinstance(again.model(), TinySegmenter)                      # the retrained checkpoint serves


def test_a_lock_file_that_is_a_folder_is_a_clear_error_not_a_hang(tiny, tmp_cache):
    cfg = config(epochs=1)
    path = runs.run_dir(cfg)
    (path / runs.LOCK_FILE).mkdir(parents=True)
    run = runs.obtain(cfg, progress=False)
    # Recorded (a batch goes on) with the reason, and the next obtain() after the fix trains it.
    assert run.status == runs.ERROR and runs.LOCK_FILE in run.result["error"]
    (path / runs.LOCK_FILE).rmdir()
    assert runs.obtain(cfg, progress=False).status == "complete"
