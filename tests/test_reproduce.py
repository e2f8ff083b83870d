"""Grids, validation before anything runs, the paper's tables, aggregation, the CLI, and the papermill batch under faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twi_core import cli, reproduce, runs
from twi_core._io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_env_preset(monkeypatch):
    monkeypatch.delenv("TWI_PRESET", raising=False)


# -- grids and validation ---------------------------------------------------------------------------------------------

def test_grids_have_the_papers_sizes(no_env_preset):
    # Reference notes §7: 2 datasets x 15 configurations x 10 seeds; Multi-MNIST 5 configurations x 12 seeds.
    assert len(reproduce.expand("table1", preset="paper")) == 300
    assert len(reproduce.expand("table2", preset="paper")) == 60
    assert len(reproduce.expand("sanity", preset="smoke")) == 3
    book = reproduce.expand("table2", preset="book")
    assert sorted({p.seed for p in book}) == [0, 1, 2]
    assert {(p.family, str(p.variant)) for p in book} == {("nwm", "linear"), *(("unet", str(w)) for w in (2, 3, 4, 5))}


def test_paper_preset_is_the_authors_protocol(no_env_preset):
    cfg = reproduce.train_config("tetrominoes", "nwm", "linear", seed=2200, preset="paper")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.n_train) == (300, 64, 1e-3, None)
    assert cfg.model["steps"] == 100 and cfg.model["readout"] == "linear"


def test_smoke_preset_caps_steps_and_parses_variants():
    cfg = reproduce.train_config("tetrominoes", "lstm", "fft", preset="smoke")
    assert cfg.model["steps"] == 10
    assert reproduce.train_config("mnist", "cnn", "8", preset="smoke").model["depth"] == 8
    assert "steps" not in reproduce.train_config("mnist", "cnn", 8, preset="smoke").model


@pytest.mark.parametrize("call, message", [
    (lambda: reproduce.expand("tabel1"), r"unknown grid 'tabel1'; expected one of \['sanity', 'table1', 'table2'"),
    (lambda: reproduce.expand("sanity", preset="huge"), r"unknown .*'huge'; expected one of \['smoke', 'book', 'paper'\]"),
    (lambda: reproduce.expand("sanity", epoch=3), r"unknown setting\(s\) \['epoch'\]; valid settings are .*'epochs'"),
    (lambda: reproduce.expand("sanity", seeds=[0, -1]), r"seeds must be"),
    (lambda: reproduce.train_config("mnist", "nwm", "fourier"), r"unknown variant 'fourier'.*'linear'"),
    (lambda: reproduce.train_config("mnist", "unet", 2), r"no 'unet' model on 'mnist'"),
    (lambda: reproduce.run_grid("sanity", executor="pbs", dry_run=True), r"--executor: got 'pbs'; expected one of .*'slurm'"),
    (lambda: reproduce.run_grid("sanity", jobs=0, dry_run=True), r"--jobs: got 0; expected an int >= 1"),
])
def test_bad_input_is_rejected_with_the_valid_choices(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_override_type_is_rejected():
    with pytest.raises(TypeError, match="epochs"):
        reproduce.expand("sanity", epochs="many")


def test_cli_errors_before_running_anything(tmp_path, capsys):
    assert cli.main(["reproduce", "nope", "--out", str(tmp_path)]) == 2
    assert "invalid choice: 'nope' (choose from 'sanity', 'table1', 'table2', 'polygons')" in capsys.readouterr().err
    assert cli.main(["reproduce", "smoke", "--out", str(tmp_path)]) == 2   # a preset given as the grid
    assert ("'smoke' is a preset (a scale), not a grid; the grid of three tiny runs that tests the machinery is "
            "'sanity': twi reproduce sanity --preset smoke") in capsys.readouterr().err
    with pytest.raises(ValueError, match="'paper' is a preset .* twi reproduce sanity --preset paper"):
        reproduce.expand("paper")
    assert cli.main(["reproduce", "sanity", "--out", str(tmp_path), "--set", "epoch=2"]) == 2
    assert "--set epoch: got an unknown setting 'epoch'; expected one of [" in capsys.readouterr().err
    assert cli.main(["reproduce", "sanity", "--out", str(tmp_path), "--preset", "tiny"]) == 2
    assert not any(tmp_path.iterdir())


def test_an_explicit_preset_and_a_different_twi_preset_are_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TWI_PRESET", "smoke")
    assert cli.main(["reproduce", "table1", "--preset", "paper", "--dry-run", "--out", str(tmp_path)]) == 2
    assert "--preset paper and TWI_PRESET=smoke disagree" in capsys.readouterr().err
    assert cli.main(["reproduce", "sanity", "--preset", "smoke", "--dry-run", "--out", str(tmp_path)]) == 0


def test_set_seeds_n_picks_the_first_n_seeds(tmp_path, capsys):
    assert cli.main(["reproduce", "sanity", "--dry-run", "--out", str(tmp_path), "--set", "seeds=2"]) == 0
    out = capsys.readouterr().out
    assert "-s1-" in out and "-s2-" not in out
    assert cli.main(["reproduce", "sanity", "--dry-run", "--out", str(tmp_path), "--set", "seeds=2",
                     "--seeds", "0"]) == 2
    assert "give the seeds once" in capsys.readouterr().err


def test_dry_run_lists_the_points(tmp_path, capsys):
    assert cli.main(["reproduce", "sanity", "--out", str(tmp_path), "--dry-run", "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count(" to run\n") == 6 and "tetrominoes-cnn-2-s1-" in out
    assert not any(tmp_path.iterdir())


def test_the_run_notebook_is_found_without_a_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert reproduce.default_notebook() == ROOT / "book" / "run.ipynb"


# -- the paper's numbers ----------------------------------------------------------------------------------------------

def test_paper_table_rows_and_values():
    table = reproduce.paper_table()
    assert len(table) == 35  # 30 rows of Table 1 + 5 of Table 2, each with its Table 3 row
    row = table.query("dataset == 'tetrominoes' and family == 'nwm' and variant == 'linear'").iloc[0]
    assert (row["paper_fg_iou_mean"], row["paper_fg_iou_std"]) == (0.98, 0.01)
    unet = table.query("dataset == 'multi_mnist' and family == 'unet' and variant == '2'").iloc[0]
    assert unet["paper_fg_iou_mean"] == 0.60 and unet["paper_total_iou_mean"] == 0.97
    assert not table.isna().any().any()


def test_paper_table3_iou_is_the_corrected_total_iou():
    # The corrected total IoU of an image is a/(2-a) of its pixel accuracy; Table 3's IoU obeys it (2 d.p. rounding,
    # and Jensen's inequality for means over seeds).
    table = reproduce.paper_table()
    acc = table["paper_pixel_accuracy_mean"]
    assert np.all(table["paper_total_iou_mean"] >= acc / (2 - acc) - 0.02)
    assert np.all(table["paper_total_iou_mean"] <= acc + 0.005)


# -- aggregation ------------------------------------------------------------------------------------------------------

def _fake_run(store: Path, *, family: str, variant, seed: int, status: str = "complete", fg_iou: float = 0.5,
              labels: bool = True) -> Path:
    config = reproduce.train_config("tetrominoes", family, variant, seed=seed, preset="smoke")
    test = {m: fg_iou for m in reproduce.AGGREGATE_METRICS}
    result = {"config": config.to_dict(), "key": config.key(), "status": status, "error": None,
              "metrics": {"val": test, "test": test} if status == "complete" else {}, "seed": seed,
              "device": "cpu", "git_commit": "abcdef123456", "finished": f"2026-01-0{seed + 1}T00:00:00+00:00",
              "n_images": {"train": 32}}
    if labels:
        result["labels"] = {"dataset": "tetrominoes", "family": family, "variant": variant, "seed": seed,
                            "preset": "smoke", "grid": "smoke"}
    path = runs.run_dir(config, store=store)
    atomic_write_json(path / "result.json", result)
    return path


def test_aggregate_statistics_over_seeds(tmp_path):
    values = [0.2, 0.5, 0.9]
    for seed, v in enumerate(values):
        _fake_run(tmp_path, family="nwm", variant="linear", seed=seed, fg_iou=v)
    _fake_run(tmp_path, family="nwm", variant="linear", seed=3, status="failed")
    _fake_run(tmp_path, family="nwm", variant="linear", seed=4, status="error")
    _fake_run(tmp_path, family="cnn", variant=2, seed=0, fg_iou=0.1, labels=False)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text('{"config": ')

    with pytest.warns(RuntimeWarning, match=r"skipped unreadable run record in .*broken"):
        table = reproduce.aggregate(tmp_path)
    assert [p for p, _ in table.attrs["skipped"]] == [str(tmp_path / "broken")]
    nwm = table.query("family == 'nwm'").iloc[0]
    assert (nwm["n_seeds"], nwm["n_failed"]) == (3, 1)
    assert nwm["fg_iou_mean"] == pytest.approx(np.mean(values))
    assert nwm["fg_iou_std"] == pytest.approx(np.std(values, ddof=1))
    assert (nwm["fg_iou_min"], nwm["fg_iou_median"], nwm["fg_iou_max"]) == pytest.approx((0.2, 0.5, 0.9))
    assert nwm["paper_fg_iou_mean"] == 0.98 and nwm["devices"] == "cpu" and nwm["commits"] == "abcdef12"
    cnn = table.query("family == 'cnn'").iloc[0]  # labels inferred from the config of a chapter's run
    assert (cnn["variant"], cnn["n_seeds"], cnn["preset"]) == ("2", 1, "unknown")
    assert np.isnan(cnn["fg_iou_std"])
    assert list(table["family"]) == ["cnn", "nwm"]

    shown = reproduce.render_table(table)
    line = shown.query("model == 'NWM'").iloc[0]
    assert line["fg_iou"] == "0.53 ± 0.35" and line["fg_iou (paper)"] == "0.98 ± 0.01"
    assert line["fg_iou min/med/max"] == "0.20 / 0.50 / 0.90" and line["seeds"] == "3 (+1 NaN)"
    with pytest.raises(ValueError, match="unknown metric"):
        reproduce.render_table(table, metrics=["iou"])


def test_aggregate_cli_writes_csv(tmp_path, capsys):
    for seed in range(2):
        _fake_run(tmp_path / "store", family="nwm", variant="linear", seed=seed, fg_iou=0.4 + 0.2 * seed)
    assert cli.main(["aggregate", str(tmp_path / "store"), "--csv", str(tmp_path / "agg.csv")]) == 0
    out = capsys.readouterr().out
    assert "0.50 ± 0.14" in out
    csv = pd.read_csv(tmp_path / "agg.csv")
    assert csv.loc[0, "fg_iou_mean"] == pytest.approx(0.5) and "paper_fg_iou_mean" in csv.columns
    assert cli.main(["aggregate", str(tmp_path / "missing")]) == 2            # a missing store is an error
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["aggregate", str(tmp_path / "empty")]) == 0
    assert "no finished runs" in capsys.readouterr().out
    (tmp_path / "store" / "broken").mkdir()
    (tmp_path / "store" / "broken" / "result.json").write_text("{")
    assert cli.main(["aggregate", str(tmp_path / "store")]) == 1              # reported, and the exit says so
    assert "skipped unreadable run record" in capsys.readouterr().err


def test_aggregate_never_mixes_configurations_or_counts_a_copied_run_twice(tmp_path):
    import shutil

    for seed in range(2):
        _fake_run(tmp_path, family="nwm", variant="linear", seed=seed, fg_iou=0.5)
    longer = reproduce.train_config("tetrominoes", "nwm", "linear", seed=0, preset="smoke", epochs=5)
    record = {"config": longer.to_dict(), "key": longer.key(), "status": "complete", "error": None, "seed": 0,
              "metrics": {"test": {m: 0.9 for m in reproduce.AGGREGATE_METRICS}},
              "labels": {"dataset": "tetrominoes", "family": "nwm", "variant": "linear", "seed": 0, "preset": "smoke"}}
    atomic_write_json(runs.run_dir(longer, store=tmp_path) / "result.json", record)
    first = runs.run_dir(reproduce.train_config("tetrominoes", "nwm", "linear", seed=0, preset="smoke"), store=tmp_path)
    shutil.copytree(first, tmp_path / "copy" / first.name)                    # the same run, stored twice
    table = reproduce.aggregate(tmp_path, with_paper=False)
    assert sorted(zip(table["epochs"], table["n_seeds"])) == [("1", 2), ("5", 1)]
    assert sorted(table["fg_iou_mean"]) == pytest.approx([0.5, 0.9])


# -- the batch itself: papermill, faults, submitit ---------------------------------------------------------------------

TINY = ["--set", "n_train=8", "--set", "n_val=4", "--set", "n_test=4", "--set", "steps=4"]


def _batch(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "twi_core.cli", "reproduce", "sanity", "--preset", "smoke", "--jobs", "1",
           "--out", str(out), *TINY, *extra]
    env = {**os.environ, "TWI_PRESET": "smoke", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _finished(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/result.json")}


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    drop = [c for c in table.columns if c in ("finished", "devices", "commits")]
    return table.drop(columns=drop).reset_index(drop=True)


@pytest.mark.slow
def test_batch_survives_sigkill_and_a_corrupt_record(tmp_cache):
    killed, clean = tmp_cache / "killed", tmp_cache / "clean"
    proc = _batch(killed)
    deadline = time.monotonic() + 120
    while not _finished(killed) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert _finished(killed), f"no run finished before the kill: {proc.communicate()[0]}"
    os.killpg(proc.pid, signal.SIGKILL)  # the batch, its papermill kernel, everything
    proc.wait()
    first = _finished(killed)
    assert 1 <= len(first) < 3, "the kill came too late to interrupt the batch"

    rerun = _batch(killed)
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log
    after = _finished(killed)
    assert len(after) == 3
    assert all(after[name] == mtime for name, mtime in first.items()), "a completed run was recomputed"
    for name in after:
        assert (killed / name / "run.ipynb").exists() and (killed / name / "checkpoint.pt").exists()

    # The uninterrupted reference batch runs in this process (same runs, no notebook kernels: faster).
    ref = reproduce.run_grid("sanity", preset="smoke", out=clean, executor="inline", echo=lambda s: None,
                             overrides={"n_train": 8, "n_val": 4, "n_test": 4, "steps": 4})
    assert set(ref["status"]) == {"complete"}
    pd.testing.assert_frame_equal(_comparable(reproduce.aggregate(killed)), _comparable(reproduce.aggregate(clean)))

    # A corrupt record is detected and only that run is trained again.
    victim = sorted(after)[0]
    (killed / victim / "result.json").write_text('{"status": "compl')
    again = reproduce.run_grid("sanity", preset="smoke", out=killed, executor="inline", echo=lambda s: None,
                               overrides={"n_train": 8, "n_val": 4, "n_test": 4, "steps": 4})
    assert sorted(again["status"]) == ["complete", "skipped", "skipped"]
    final = _finished(killed)
    assert final[victim] != after[victim]
    assert all(final[n] == after[n] for n in after if n != victim)
    pd.testing.assert_frame_equal(_comparable(reproduce.aggregate(killed)), _comparable(reproduce.aggregate(clean)))


@pytest.mark.slow
def test_slurm_path_through_submitits_local_executor(tmp_cache):
    summary = reproduce.run_grid("sanity", preset="smoke", jobs=2, out=tmp_cache / "slurm", executor="slurm",
                                 cluster="local", seeds=[0],
                                 overrides={"n_train": 8, "n_val": 4, "n_test": 4, "steps": 4}, echo=lambda s: None)
    assert set(summary["status"]) == {"complete"}
    assert (tmp_cache / "slurm" / "_submitit").exists()
