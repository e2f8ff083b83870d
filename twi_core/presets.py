"""Scale presets: one name selects the scale of every notebook, test and batch run.

========  ==============================  ===============================================
preset    used by                         budget
========  ==============================  ===============================================
smoke     tests and CI                    each notebook <= 60 s on a 2-core CPU
book      the default book build          whole book <= 25 min on a 2-core CPU
paper     batch reproduction              the paper's configurations (meant for GPUs)
========  ==============================  ===============================================

Each module that has scale-dependent settings keeps its own table ``{preset: {key: value}}`` and resolves it with
:func:`resolve`. The environment variable ``TWI_PRESET``, when set, replaces the preset a caller asked for, so
``TWI_PRESET=smoke pytest`` runs every notebook small without touching them.

Examples
--------
>>> table = {"smoke": {"steps": 10}, "book": {"steps": 1000}, "paper": {"steps": 40000}}
>>> cfg = resolve(table, "book", env=False)
>>> cfg.steps, cfg.preset
(1000, 'book')
>>> resolve(table, "book", steps=None, env=False).steps   # None means "no override" (papermill parameters)
1000
"""

from __future__ import annotations

import contextlib
import os
from types import MappingProxyType
from typing import Any, Iterator, Mapping

__all__ = ["PRESETS", "Settings", "active_preset", "pinned", "resolve"]

#: The valid preset names, smallest first.
PRESETS: tuple[str, ...] = ("smoke", "book", "paper")


def active_preset(preset: str | None = None, *, env: bool = True) -> str:
    """The preset in force: ``$TWI_PRESET`` if set (and ``env``), else ``preset``, else ``"book"``.

    Raises
    ------
    ValueError
        If the name is not one of :data:`PRESETS`.
    """
    name = os.environ.get("TWI_PRESET") if env else None
    name = name or preset or "book"
    if name not in PRESETS:
        source = "TWI_PRESET" if env and os.environ.get("TWI_PRESET") else "preset"
        raise ValueError(f"unknown {source} {name!r}; expected one of {list(PRESETS)}")
    return name


@contextlib.contextmanager
def pinned(preset: str) -> Iterator[str]:
    """Within the block ``$TWI_PRESET`` is ``preset``, for this process and every process it starts; restored after.

    For work whose scale must not follow the book's: the batch-runner demonstration of the "Reproducing" appendix
    always runs the tiny ``smoke`` grid, also when the book itself is built with ``TWI_PRESET=paper``.

    Examples
    --------
    >>> with pinned("smoke"):
    ...     active_preset("paper")
    'smoke'
    """
    name = active_preset(preset, env=False)  # validates
    before = os.environ.get("TWI_PRESET")
    os.environ["TWI_PRESET"] = name
    try:
        yield name
    finally:
        if before is None:
            os.environ.pop("TWI_PRESET", None)
        else:
            os.environ["TWI_PRESET"] = before


class Settings(Mapping[str, Any]):
    """A read-only configuration with attribute access; ``preset`` names the scale it was resolved at."""

    def __init__(self, values: Mapping[str, Any], preset: str) -> None:
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))
        object.__setattr__(self, "preset", preset)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"no setting {key!r}; settings are {sorted(self._values)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Settings are read-only; pass overrides to resolve()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict copy, with ``preset`` included (for run records)."""
        return {"preset": self.preset, **self._values}

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Settings(preset={self.preset!r}, {body})"


def _check_type(key: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = type(default)(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise TypeError(f"setting {key!r} must be {type(default).__name__} (like {default!r}); got {value!r}")
    return value


def resolve(table: Mapping[str, Mapping[str, Any]], preset: str | None = None, /, *, env: bool = True,
            **overrides: Any) -> Settings:
    """Resolve a preset table into :class:`Settings`, applying overrides.

    Parameters
    ----------
    table
        ``{preset: {key: value}}`` with the same keys for every preset in :data:`PRESETS`.
    preset
        The preset asked for; ``$TWI_PRESET`` replaces it when set (unless ``env=False``).
    **overrides
        Values replacing the preset's. ``None`` means "keep the preset's value", so a papermill parameters cell can
        hold ``None`` for every override. Unknown keys and wrong types raise.

    Raises
    ------
    ValueError
        Unknown preset or unknown override key (the message lists the valid ones).
    TypeError
        An override of the wrong type.
    """
    name = active_preset(preset, env=env)
    missing = [p for p in PRESETS if p not in table]
    if missing:
        raise ValueError(f"preset table lacks {missing}; it must define all of {list(PRESETS)}")
    base = dict(table[name])
    unknown = sorted(k for k in overrides if k not in base)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid settings are {sorted(base)}")
    for key, value in overrides.items():
        if value is not None:
            base[key] = _check_type(key, value, base[key])
    return Settings(base, name)
