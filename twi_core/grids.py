"""The paper's run grids and the configuration of each of their runs.

A grid (:data:`GRIDS`) is a list of ``(dataset, family, variant)`` rows; :func:`expand` crosses it with seeds at a
scale (:data:`RUN_PRESETS`: ``smoke``, ``book``, ``paper``) into points (:class:`Point`), each holding the
:class:`~twi_core.train.TrainConfig` that :func:`train_config` builds.

- ``sanity``: three tiny runs on Tetrominoes (NWM-linear, Conv-LSTM-linear, CNN L = 2), to test the machinery.
- ``table1``: Tetrominoes and MNIST × {CNN L = 2…32, Conv-LSTM and NWM with each readout}: the paper's Table 1 (and 3).
- ``table2``: Multi-MNIST, NWM-linear vs U-Net widths 2…5: Table 2.
- ``polygons``: the NWM with each readout on Polygons.

The ``paper`` preset is the authors' protocol (300 epochs, full splits, batch 64, 10 seeds; 12 on Multi-MNIST, as in
their launch scripts); ``book`` and ``smoke`` shrink epochs, images, seeds and (``smoke``) the number of time steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from twi_core import presets

if TYPE_CHECKING:  # twi_core.train imports torch; `twi --help` and `twi reproduce --help` must not pay for it
    from twi_core.train import TrainConfig

__all__ = ["GRIDS", "Grid", "Point", "RUN_PRESETS", "train_config", "expand", "grid_table", "preset_table"]

#: Scale of each run, per preset. ``None``: the paper's value (full split, the model's own number of steps, the grid's
#: number of seeds). ``steps`` caps the time steps T of the recurrent models.
#: ``head`` replaces the per-pixel MLP head of the models that have one (``"small"``: 32 wide; the smoke scale only).
RUN_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "n_train": 16, "n_val": 8, "n_test": 8, "steps": 10,
              "head": "small", "seeds": 1, "recipe": "paper", "budget_minutes": None},
    "book": {"epochs": 3, "batch_size": 16, "lr": 1e-3, "n_train": 1000, "n_val": 200, "n_test": 200, "steps": None,
             "head": None, "seeds": 3, "recipe": "paper", "budget_minutes": None},
    "paper": {"epochs": 300, "batch_size": 64, "lr": 1e-3, "n_train": None, "n_val": None, "n_test": None,
              "steps": None, "head": None, "seeds": None, "recipe": "paper", "budget_minutes": None},
}

_FAMILY_TITLES = {"nwm": "NWM", "lstm": "Conv-LSTM", "cnn": "CNN", "unet": "U-Net"}


@dataclass(frozen=True)
class Grid:
    """A named set of ``(dataset, family, variant)`` rows, each run with several seeds."""

    description: str                           # one line for the book and ``--help``
    rows: tuple[tuple[str, str, Any], ...]      # (dataset, family, variant) as accepted by models.paper_config
    paper_seeds: int                            # seeds per row in the paper


@dataclass(frozen=True)
class Point:
    """One run of a grid: its labels and its training configuration."""

    grid: str
    dataset: str
    family: str
    variant: Any
    seed: int
    preset: str
    config: TrainConfig

    def labels(self) -> dict[str, Any]:
        """What the run record stores under ``labels`` (used by :func:`aggregate`)."""
        return {"grid": self.grid, "dataset": self.dataset, "family": self.family, "variant": self.variant,
                "seed": self.seed, "preset": self.preset}


def _variants(dataset: str, family: str) -> tuple[Any, ...]:
    from twi_core.models import PAPER_VARIANTS

    return tuple(PAPER_VARIANTS[(dataset, family)])


def _rows(datasets: Iterable[str], families: Iterable[str]) -> tuple[tuple[str, str, Any], ...]:
    return tuple((d, f, v) for d in datasets for f in families for v in _variants(d, f))


def _grids() -> dict[str, Grid]:
    return {
        "sanity": Grid("three tiny Tetrominoes runs (NWM-linear, Conv-LSTM-linear, CNN L=2) to test the machinery",
                      (("tetrominoes", "nwm", "linear"), ("tetrominoes", "lstm", "linear"),
                       ("tetrominoes", "cnn", 2)), 1),
        "table1": Grid("Table 1 (and 3): Tetrominoes and MNIST x {CNN depths, Conv-LSTM readouts, NWM readouts}",
                       _rows(("tetrominoes", "mnist"), ("cnn", "lstm", "nwm")), 10),
        "table2": Grid("Table 2: Multi-MNIST, NWM-linear vs U-Net widths 2-5",
                       (("multi_mnist", "nwm", "linear"), *_rows(("multi_mnist",), ("unet",))), 12),
        "polygons": Grid("Polygons: the NWM with each readout", _rows(("polygons",), ("nwm",)), 3),
    }


class _LazyGrids(Mapping[str, Grid]):
    """The grid registry, built on first use (it asks :mod:`twi_core.models` for the paper's variants)."""

    _names = ("sanity", "table1", "table2", "polygons")

    def __init__(self) -> None:
        self._built: dict[str, Grid] | None = None

    def _get(self) -> dict[str, Grid]:
        if self._built is None:
            self._built = _grids()
        return self._built

    def __getitem__(self, name: str) -> Grid:
        return self._get()[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


#: Named grids: ``sanity``, ``table1``, ``table2``, ``polygons``.
GRIDS: Mapping[str, Grid] = _LazyGrids()


#: What a grid name that is really a preset name means (``smoke`` was once both).
_NOT_A_GRID = ("{name!r} is a preset (a scale), not a grid; the grid of three tiny runs that tests the machinery is "
               "'sanity': twi reproduce sanity --preset {name}")


def _check_grid(grid: str) -> Grid:
    if grid not in GRIDS:
        if grid in presets.PRESETS:
            raise ValueError(_NOT_A_GRID.format(name=grid))
        raise ValueError(f"unknown grid {grid!r}; expected one of {list(GRIDS)}")
    return GRIDS[grid]


def _check_preset(preset: str | None) -> None:
    # $TWI_PRESET replaces the preset asked for, but a misspelt one is still an error.
    if preset is not None and preset not in presets.PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {list(presets.PRESETS)}")


def _normalise_variant(family: str, variant: Any) -> Any:
    # CNN depths and U-Net widths arrive as strings from the command line and papermill.
    if family in ("cnn", "unet") and isinstance(variant, str) and variant.strip().isdigit():
        return int(variant)
    return variant


def _recipe_defaults(overrides: dict[str, Any]) -> dict[str, Any]:
    """A non-paper recipe brings its own peak rate and batch size (:data:`twi_core.recipes.DEFAULT_LR`,
    :data:`~twi_core.recipes.DEFAULT_BATCH`) unless they are given; the presets' values are the authors'."""
    from twi_core import recipes

    name = overrides.get("recipe")
    if name is None or name == "paper":
        return overrides
    recipes.recipe(name)  # ValueError naming the valid recipes
    filled = dict(overrides)
    for key, table in (("lr", recipes.DEFAULT_LR), ("batch_size", recipes.DEFAULT_BATCH)):
        if filled.get(key) is None:
            filled[key] = table[name]
    return filled


def train_config(dataset: str, family: str, variant: Any, *, seed: int = 0, preset: str | None = "book",
                 **overrides: Any) -> TrainConfig:
    """The :class:`~twi_core.train.TrainConfig` of one grid point at a preset.

    Parameters
    ----------
    dataset, family, variant
        As accepted by :func:`twi_core.models.paper_config` (e.g. ``"tetrominoes", "nwm", "linear"``).
    seed : int
        The run's seed.
    preset : {"smoke", "book", "paper"}
        The scale (``$TWI_PRESET`` replaces it when set).
    **overrides
        Any key of :data:`RUN_PRESETS` (``epochs``, ``batch_size``, ``lr``, ``n_train``, ``n_val``, ``n_test``,
        ``steps``, ``head``, ``recipe``, ``budget_minutes``); ``None`` keeps the preset's value, except that a
        non-paper ``recipe`` brings its own ``lr`` and ``batch_size`` when they are not given.

    Raises
    ------
    ValueError
        Unknown preset, dataset, family, variant or override (the message lists the valid ones).

    Examples
    --------
    >>> cfg = train_config("tetrominoes", "cnn", "2", seed=1, preset="smoke")
    >>> cfg.model["depth"], cfg.epochs, cfg.n_train
    (2, 1, 16)
    >>> fast = train_config("tetrominoes", "nwm", "linear", recipe="fast")
    >>> fast.recipe, fast.batch_size, fast.lr
    ('fast', 4, 0.001)
    """
    from twi_core.models import paper_config
    from twi_core.train import TrainConfig

    if "seeds" in overrides:
        raise ValueError("'seeds' is a grid setting; pass seed=... for one run")
    _check_preset(preset)
    overrides = _recipe_defaults(overrides)
    settings = presets.resolve(RUN_PRESETS, preset, **overrides)
    variant = _normalise_variant(family, variant)
    model = dict(paper_config(dataset, family, variant))
    if settings.steps is not None and "steps" in model:
        model["steps"] = min(int(model["steps"]), settings.steps)
    if settings.head is not None and "head" in model:
        model["head"] = settings.head
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    return TrainConfig(dataset=dataset, model=model, seed=seed, epochs=settings.epochs,
                       batch_size=settings.batch_size, lr=settings.lr, n_train=settings.n_train,
                       n_val=settings.n_val, n_test=settings.n_test, recipe=settings.recipe,
                       budget_minutes=settings.budget_minutes)


def expand(grid: str, *, preset: str | None = "book", seeds: Sequence[int] | None = None,
           **overrides: Any) -> list[Point]:
    """The points of ``grid`` at ``preset``: every row × seed, with its training configuration.

    ``seeds`` defaults to ``0 .. n-1`` with ``n`` the preset's number of seeds (the paper's count at ``paper``).
    Everything is validated here, before anything runs.
    """
    spec = _check_grid(grid)
    _check_preset(preset)
    settings = presets.resolve(RUN_PRESETS, preset, **overrides)
    if seeds is None:
        seeds = range(settings.seeds or spec.paper_seeds)
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad or not seeds:
        raise ValueError(f"seeds must be a non-empty list of non-negative ints; got {seeds!r}")
    run_overrides = {k: v for k, v in overrides.items() if k != "seeds"}
    points = []
    for dataset, family, variant in spec.rows:
        for seed in seeds:
            config = train_config(dataset, family, variant, seed=seed, preset=settings.preset, **run_overrides)
            points.append(Point(grid, dataset, family, variant, seed, settings.preset, config))
    return points


def grid_table():
    """The grids as a table: name, description, configurations, seeds in the paper, runs at the paper's scale."""
    import pandas as pd

    rows = []
    for name in GRIDS:
        g = GRIDS[name]
        configs = ", ".join(sorted({f"{d}/{f}" for d, f, _ in g.rows}))
        rows.append({"grid": name, "what": g.description, "configurations": len(g.rows), "dataset/family": configs,
                     "seeds (paper)": g.paper_seeds, "runs (paper)": len(g.rows) * g.paper_seeds})
    return pd.DataFrame(rows)


def preset_table():
    """:data:`RUN_PRESETS` as a table (``None`` shown as the paper's value)."""
    import pandas as pd

    rows = [{"preset": p, **{k: ("paper's" if v is None else v) for k, v in s.items()}} for p, s in RUN_PRESETS.items()]
    return pd.DataFrame(rows).astype(object)
