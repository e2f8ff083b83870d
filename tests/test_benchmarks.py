"""Every benchmark's ``--smoke`` mode runs in a fresh process and prints its usual table.

These are smoke tests, not timings: each benchmark runs at its smallest sizes (seconds), and the test checks that it
exits with 0 and prints the line that carries its result (a table header and a row with a ratio, or the summary), not
how fast anything was. Without CUDA, the GPU benchmarks must say what they skipped and still exit with 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

_NUMBER = r"[0-9]+\.[0-9]+"
_CUDA = torch.cuda.is_available()

#: Per benchmark: extra arguments ({tmp}: the test's temporary folder) and regular expressions its output must match.
#: The patterns hold a number where the benchmark prints a ratio or a time, so a header printed above an empty or
#: broken table does not pass.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "bench_data.py": ([], [r"Tetrominoes, all splits \(24 images\) \[--smoke\]",
                           rf"generate \+ cache .*target <= {_NUMBER} s; ratio {_NUMBER}\)",
                           rf"load from cache .*ratio {_NUMBER}; median of 1\)",
                           rf"multi_mnist +generate +{_NUMBER} ms/image \(2 images"]),
    "bench_drum.py": ([], [r"path +wall s +cpu s +us/step +x conv2d +max rel err f1",
                           rf"stencil float32 +{_NUMBER} +{_NUMBER} +{_NUMBER} +{_NUMBER} ",
                           rf"target: 9 squares x 2000 steps <= {_NUMBER} s \(wall\) -> best {_NUMBER} s \(ratio "
                           rf"{_NUMBER}\)"]),
    "bench_head.py": ([], [r"rows +plain s +fused s +no ws s +ratio",
                           rf"\n +4096 +{_NUMBER} +{_NUMBER} +{_NUMBER} +{_NUMBER} "]),
    "bench_multi_mnist.py": ([], [r"path +median s +vs fast",
                                  rf"\nfast +{_NUMBER} +1\.00x", rf"\nplain +{_NUMBER} +{_NUMBER}x",
                                  r"fast vs plain: logits rel [0-9.e+-]+, worst gradient rel [0-9.e+-]+; against float64"]),
    "bench_nwm.py": ([], [r"readout +B +plain s +fast s +ratio",
                          rf"\n +linear +1 +{_NUMBER} +{_NUMBER} +{_NUMBER} ",
                          r"B=1 linear: worst gradient error against float64",
                          r"Multi-MNIST NWM-linear \(C=16, 32x32, T=10\) at B=1: saved for backward"]),
    "bench_scaling.py": ([], [r"vary +value +plain s +fast s +ratio +saved plain +saved fast",
                              *(rf"\n *{vary} +{value} +{_NUMBER} +{_NUMBER} +{_NUMBER} "
                                for vary, value in (("steps", 5), ("steps", 10), ("image_size", 16),
                                                    ("image_size", 24), ("batch", 1), ("batch", 2)))]),
    "bench_gpu.py": ([], [r"== summary ==", rf"B=2 tf32=False.*: plain {_NUMBER} ms \(x1\.0, .*fast {_NUMBER} ms",
                          r"equality \{'forward_rel_fast_vs_plain'",
                          *([] if _CUDA else [r"CUDA is not available here; skipped: the variants \['plain\+graph'",
                                              r"B=2 tf32=False \(cpu\)"])]),
    "gpu_runs.py": (["--out", "{tmp}/out"],
                    [r"tetrominoes/nwm/linear: exit 0 after [0-9]+ s, kept \['result.json', 'checkpoint.pt'\]",
                     *([] if _CUDA else [r"CUDA is not available here; skipped: training on the GPU"])]),
    "polygon_horizons.py": (["--store", "{tmp}/store"],
                            [rf"polygons-nwm-fft-s0-[0-9a-f]+: complete; T = 4, dt = 0.2, test FG-IoU {_NUMBER}"]),
    "time_to_accuracy.py": (["--store", "{tmp}/store"],
                            [rf"tetrominoes-nwm-linear-s0-[0-9a-f]+: complete; val FG-IoU by epoch \[{_NUMBER}\]"]),
}


def test_every_benchmark_has_a_case():
    """A new benchmark script must get a smoke case here (and a ``--smoke`` flag)."""
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(CASES)


def _run(script: str, args: list[str], *, smoke: bool = True) -> subprocess.CompletedProcess:
    # The conftest has put the run's private caches (TWI_DATA_DIR, TWI_RUNS_DIR, XDG_CACHE_HOME) into os.environ;
    # the child inherits them. PYTHONPATH: `python benchmarks/x.py` puts benchmarks/ first on sys.path, not the
    # repository, so without it an installed twi_core elsewhere would be the one measured.
    env = {**os.environ, "TWI_PRESET": "smoke", "TWI_HEAD_BF16": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    flags = ["--smoke"] if smoke else []
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *flags, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def _smoke(script: str, tmp_path: Path) -> str:
    """Run ``script --smoke``, check its exit status and patterns; its output."""
    args, patterns = CASES[script]
    done = _run(script, [a.format(tmp=tmp_path) for a in args])
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} --smoke exited with {done.returncode}:\n{output[-3000:]}"
    missing = [p for p in patterns if not re.search(p, output)]
    assert not missing, f"{script} --smoke output lacks {missing}:\n{output[-3000:]}"
    return output


# gpu_runs has its own test below (it also checks the files), so its ~10 s run is not made twice.
@pytest.mark.parametrize("script", sorted(set(CASES) - {"gpu_runs.py"}))
def test_smoke_prints_its_table(script, tmp_path):
    _smoke(script, tmp_path)


def test_gpu_runs_smoke_copies_the_results(tmp_path):
    """gpu_runs keeps each run's result and checkpoint in --out/<slug>/, and its smoke run leaves no store behind."""
    output = _smoke("gpu_runs.py", tmp_path)
    kept = tmp_path / "out" / "tetrominoes_nwm_linear"
    assert sorted(p.name for p in kept.iterdir()) == ["checkpoint.pt", "result.json"]
    # The child prints its run folder, inside the temporary store the smoke run must have removed.
    run_path = Path(re.search(r"(\S*twi-gpu-runs-[^/\s]+)/\S+ complete", output).group(1))
    assert run_path.is_absolute() and not run_path.exists()


def test_gpu_runs_rejects_a_malformed_point(tmp_path):
    """A point that is not dataset/family/variant fails in argument parsing (status 2), before any work."""
    done = _run("gpu_runs.py", ["--out", str(tmp_path), "tetrominoes/nwm"])
    assert done.returncode == 2
    assert "points must be dataset/family/variant" in done.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(_CUDA, reason="checks the message of a machine without CUDA")
def test_bench_gpu_without_smoke_still_needs_cuda():
    """Only --smoke falls back to the CPU: a real measurement without CUDA is an error (status 2)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_gpu.py")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "bench_gpu needs CUDA" in done.stderr


def _gpu_runs_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_runs", BENCHMARKS / "gpu_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_runs_store_runs_dry_run_names_the_shipped_state_it_continues(tmp_path):
    """--store-runs --dry-run lists every seed of the matching store runs, the shipped run each one continues, and its
    chunks; it trains and writes nothing."""
    done = _run("gpu_runs.py", ["--store-runs", "^mnist-nwm-linear", "--epochs", "500", "--chunk", "200", "--dry-run",
                                "--out", str(tmp_path / "work")], smoke=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("mnist-nwm-linear-s") for line in lines), done.stdout  # ^ anchors
    for line in lines:
        match = re.search(r": 500 epochs, continuing mnist-nwm-linear-s\d-[0-9a-f]{12} \(shipped, (\d+) epochs\); "
                          r"chunks end at \[(.*)\]", line)
        assert match, line
        start = int(match.group(1))
        assert match.group(2) == ", ".join(str(e) for e in [*range(start + 200, 500, 200), 500])
    assert not (tmp_path / "work").exists()


def test_gpu_runs_chunk_targets():
    chunks = _gpu_runs_module().chunk_targets
    assert chunks(0, 5, 2) == [2, 4, 5]
    assert chunks(3, 5, None) == [5]
    assert chunks(5, 5, 2) == []
    with pytest.raises(ValueError, match="chunk must be a positive number of epochs"):
        chunks(0, 5, 0)


def test_gpu_runs_store_child_trains_in_chunks_and_keeps_the_last(tmp_path):
    """The child of --store-runs trains a run in chunks, each continued from the one before, and removes each chunk's
    folder once the next has finished: the work store ends with one run whose record holds every epoch."""
    import dataclasses
    import json

    from twi_core import runs
    from twi_core.records import RunResult
    from twi_core.reproduce import train_config

    config = train_config("tetrominoes", "cnn", 2, preset="smoke", epochs=3)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _gpu_runs_module()._STORE_CHILD, json.dumps(config.to_dict()),
                           str(tmp_path), "cpu", "[1, 3]"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"tetrominoes-cnn-2-s0-[0-9a-f]+ complete 1 epochs: test FG-IoU [0-9.]+, [0-9]+ s\n"
                     r".* complete 3 epochs: test FG-IoU [0-9.]+", done.stdout), done.stdout
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert [p.name for p in folders] == [runs.run_dir(config, store=tmp_path).name]
    record = RunResult.read(folders[0])
    assert [entry["epoch"] for entry in record.history] == [1, 2, 3]
    assert record.continued_from == dataclasses.replace(config, epochs=1).key()  # the first chunk, since removed
