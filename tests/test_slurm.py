"""The batch on a real SLURM cluster: submitted through ``--executor slurm``, cancelled mid-way, resubmitted.

Needs a working ``sinfo`` (``tests/slurm/cluster.sh up`` starts a single-node cluster on this machine); skipped
otherwise, and a failure when ``TWI_REQUIRE_SLURM=1`` (CI, where the cluster is expected to be up).

The test cluster has no accounting database, so ``sacct`` cannot report a cancelled job and submitit would wait for
it forever; the test therefore stops the submitting process after ``scancel``, as a user would (Ctrl-C), and
resubmits. What must hold: the finished runs are kept, the cancelled ones train again, and the aggregate is the one
of an uninterrupted batch.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from twi_core import reproduce

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_train": 8, "n_val": 4, "n_test": 4, "steps": 4}


def _slurm_works() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


if not _slurm_works():
    if os.environ.get("TWI_REQUIRE_SLURM") == "1":
        raise RuntimeError("TWI_REQUIRE_SLURM=1 but sinfo does not work; start the cluster: tests/slurm/cluster.sh up")
    pytest.skip("no SLURM cluster (sinfo does not work); tests/slurm/cluster.sh up starts one", allow_module_level=True)


def _batch(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "twi_core.cli", "reproduce", "sanity", "--preset", "smoke", "--executor", "slurm",
           "--jobs", "1", "--out", str(out), *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]]
    # sbatch exports this environment to the jobs: they import this checkout and run small.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWI_PRESET": "smoke", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _complete(out: Path) -> dict[str, int]:
    """Run folder -> mtime of its result.json, for the runs that completed."""
    from twi_core import runs

    done = {}
    for path in out.glob("*/result.json"):
        try:
            if runs.load(path.parent).status == "complete":
                done[path.parent.name] = path.stat().st_mtime_ns
        except (ValueError, FileNotFoundError):
            continue
    return done


def _our_jobs(out: Path) -> list[str]:
    """The SLURM job ids of this batch: submitit names its log folders after them (``<array>_<task>``)."""
    folders = (out / "_submitit").glob("*") if (out / "_submitit").exists() else []
    return sorted({p.name.split("_")[0] for p in folders if p.name.split("_")[0].isdigit()})


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    drop = [c for c in table.columns if c in ("finished", "devices", "commits")]
    return table.drop(columns=drop).reset_index(drop=True)


def _wait_until_gone(ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-o", "%A", "-j", ",".join(ids)], capture_output=True, text=True)
        if not out.stdout.strip():
            return
        time.sleep(1)
    raise AssertionError(f"jobs {ids} still queued after scancel")


@pytest.mark.slow
def test_a_cancelled_slurm_batch_resubmitted_gives_the_uninterrupted_aggregate(tmp_path):
    out = tmp_path / "slurm"
    proc = _batch(out)
    deadline = time.monotonic() + 900
    while not _complete(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(1)
    assert _complete(out), f"no run completed on the cluster: {proc.communicate()[0] if proc.poll() is not None else ''}"
    ids = _our_jobs(out)
    assert ids, "no submitit job folder found"
    subprocess.run(["scancel", *ids], check=True)  # the batch's own jobs, by id
    _wait_until_gone(ids)
    os.killpg(proc.pid, signal.SIGTERM)  # the submitter would wait for sacct, which this cluster lacks
    proc.wait(timeout=60)
    first = _complete(out)
    assert 1 <= len(first) < 3, "the cancel came too late to interrupt the batch"

    again = _batch(out)
    log = again.communicate(timeout=1200)[0]
    assert again.returncode == 0, log
    after = _complete(out)
    assert len(after) == 3, log
    assert all(after[name] == mtime for name, mtime in first.items()), "a completed run was trained again"

    clean = tmp_path / "clean"
    ref = reproduce.run_grid("sanity", preset="smoke", out=clean, executor="inline", echo=lambda s: None,
                             overrides=TINY)
    assert set(ref["status"]) == {"complete"}
    pd.testing.assert_frame_equal(_comparable(reproduce.aggregate(out)), _comparable(reproduce.aggregate(clean)))
