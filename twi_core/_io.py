"""Atomic file writes and content hashes, shared by the data cache, run records and checkpoints.

Every file the package writes goes through here, so that a process killed at any moment leaves either the old file or
the new one, never a truncated one (write to a temporary file in the same folder, ``fsync``, then ``os.replace``).
Files get the permissions the user's umask allows (``mkstemp`` alone would make every file private, 0600, so a group
could not share a store or cache). The temporary file's name carries the writer's process id; a temporary file left
by a writer that was killed is removed by the next write of the same file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "sha256_file", "sha256_bytes",
           "read_json"]


def _file_mode() -> int:
    """0666 less the process umask (read without changing it where /proc allows; else set and restored at once)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` whose writer (the pid in their name) no longer runs."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically.

    The temporary file lives in the destination folder so that ``os.replace`` is a rename on one file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (NaN allowed, keys in insertion order) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a truncated or invalid file raises ``ValueError`` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON (truncated or corrupt?): {err}") from err
    except UnicodeDecodeError as err:  # binary garbage: a ValueError already, but one that does not name the file
        raise ValueError(f"{path} is not UTF-8 text (corrupt?): {err}") from err
    except IsADirectoryError:  # a folder where a record belongs: as unreadable as a corrupt file, and set aside alike
        raise ValueError(f"{path} is a folder, not a JSON file") from None


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
