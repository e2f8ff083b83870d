"""Presets, atomic writes and paths: the small shared infrastructure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twi_core import _io, paths, presets

TABLE = {"smoke": {"steps": 10, "dt": 0.1, "name": "a", "sizes": [1, 2]},
         "book": {"steps": 1000, "dt": 0.1, "name": "b", "sizes": [1, 2, 3]},
         "paper": {"steps": 40000, "dt": 0.05, "name": "c", "sizes": [1]}}


def test_resolve_picks_preset_and_overrides(monkeypatch):
    monkeypatch.delenv("TWI_PRESET", raising=False)
    cfg = presets.resolve(TABLE, "book", steps=5, dt=None)
    assert cfg.preset == "book" and cfg.steps == 5 and cfg.dt == 0.1 and cfg["name"] == "b"
    assert cfg.as_dict()["preset"] == "book"


def test_env_replaces_preset(monkeypatch):
    monkeypatch.setenv("TWI_PRESET", "smoke")
    assert presets.resolve(TABLE, "paper").steps == 10
    assert presets.resolve(TABLE, "paper", env=False).steps == 40000


def test_int_widens_to_float_and_lists_convert(monkeypatch):
    monkeypatch.delenv("TWI_PRESET", raising=False)
    cfg = presets.resolve(TABLE, "book", dt=1, sizes=(4, 5))
    assert isinstance(cfg.dt, float) and cfg.sizes == [4, 5]


@pytest.mark.parametrize("kwargs, err, words", [
    ({"stepz": 3}, ValueError, "valid settings are"),
    ({"steps": "3"}, TypeError, "must be int"),
    ({"steps": True}, TypeError, "must be int"),
])
def test_bad_overrides(monkeypatch, kwargs, err, words):
    monkeypatch.delenv("TWI_PRESET", raising=False)
    with pytest.raises(err, match=words):
        presets.resolve(TABLE, "book", **kwargs)


def test_unknown_preset_lists_valid(monkeypatch):
    monkeypatch.setenv("TWI_PRESET", "huge")
    with pytest.raises(ValueError, match=r"TWI_PRESET 'huge'.*smoke"):
        presets.resolve(TABLE, "book")
    monkeypatch.delenv("TWI_PRESET")
    with pytest.raises(ValueError, match="expected one of"):
        presets.resolve(TABLE, "tiny")


def test_settings_are_read_only(monkeypatch):
    monkeypatch.delenv("TWI_PRESET", raising=False)
    cfg = presets.resolve(TABLE, "book")
    with pytest.raises(AttributeError):
        cfg.steps = 3
    with pytest.raises(AttributeError, match="settings are"):
        cfg.nope


def test_atomic_write_json_roundtrip_and_corruption(tmp_path):
    p = _io.atomic_write_json(tmp_path / "sub" / "r.json", {"a": float("nan"), "b": [1, 2]})
    data = _io.read_json(p)
    assert data["b"] == [1, 2] and data["a"] != data["a"]
    assert not [f for f in p.parent.iterdir() if f.name.endswith(".tmp")]
    p.write_text('{"a": 1, "b": [')  # truncated
    with pytest.raises(ValueError, match="not valid JSON"):
        _io.read_json(p)


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "f.bin"
    _io.atomic_write_bytes(target, b"old")

    def boom(path):
        path.write_bytes(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        _io.atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["f.bin"]


def test_sha256(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    assert _io.sha256_file(f) == _io.sha256_bytes(b"abc") == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_paths_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TWI_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("TWI_RUNS_DIR", str(tmp_path / "r"))
    assert paths.data_dir() == tmp_path / "d" and paths.runs_dir() == tmp_path / "r"
    assert paths.data_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("TWI_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert paths.data_dir() == tmp_path / "c" / "twi" / "data"


def test_the_tests_and_their_kernels_use_a_private_cache():
    # tests/conftest.py moves every cache into a temporary folder; a notebook kernel (a child process) inherits it.
    private = Path(os.environ["TWI_TESTS_CACHE"])
    assert paths.cache_root() == private / "xdg" / "twi"
    assert not paths.cache_root().is_relative_to(Path.home() / ".cache")
    code = "from twi_core import paths; print(paths.cache_root(), paths.data_dir(), paths.runs_dir(), sep='|')"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert child.stdout.strip().split("|") == [str(paths.cache_root()), str(paths.data_dir()), str(paths.runs_dir())]


def test_cli_version_and_help(capsys):
    from twi_core import __version__, cli
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    assert cli.main([]) == 2


def test_pinned_preset_sets_and_restores_the_environment(monkeypatch):
    import subprocess
    import sys

    from twi_core.presets import active_preset, pinned

    monkeypatch.setenv("TWI_PRESET", "paper")
    with pinned("smoke") as name:
        assert name == "smoke" and active_preset("book") == "smoke"
        child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['TWI_PRESET'])"],
                               capture_output=True, text=True, check=True)
        assert child.stdout.strip() == "smoke"  # processes started inside (papermill kernels) see it too
    assert os.environ["TWI_PRESET"] == "paper"
    monkeypatch.delenv("TWI_PRESET")
    with pytest.raises(ValueError, match=r"unknown preset 'tiny'; expected one of \['smoke', 'book', 'paper'\]"):
        with pinned("tiny"):
            pass
    with pinned("book"):
        pass
    assert "TWI_PRESET" not in os.environ


def test_atomic_writes_follow_the_umask_and_clean_up_after_killed_writers(tmp_path):
    import os
    import subprocess
    import sys

    from twi_core import _io

    old = os.umask(0o002)                                   # a group-shared store
    try:
        _io.atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o664
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".a.json.{int(dead.stdout)}.x1y2.tmp"       # what a kill -9 mid-write leaves
    orphan.write_text("partial")
    mine = tmp_path / f".a.json.{os.getpid()}.live.tmp"                # a live writer's file is left alone
    mine.write_text("in progress")
    _io.atomic_write_text(tmp_path / "a.json", "{}")
    assert not orphan.exists() and mine.exists()
