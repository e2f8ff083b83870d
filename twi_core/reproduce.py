"""Batch reproduction of the paper's tables: one import for the grids, the batch runner and the aggregation.

``twi reproduce GRID --preset P --jobs N --out DIR`` expands a grid into points (dataset × model family × variant ×
seed), executes ``book/run.ipynb`` under papermill for each point (the executed notebook is kept in the run folder),
``N`` at a time, skips runs that are already complete, records failures and goes on, and prints a summary.
``--executor slurm`` submits the points as a job array through :mod:`submitit`. ``twi aggregate DIR`` turns the run
folders into a table of mean ± std and min / median / max over seeds per configuration, beside the paper's numbers.

This module gathers the public names of :mod:`twi_core.grids` (the grids, the scales and each run's configuration),
:mod:`twi_core.batch` (the papermill / SLURM / inline runner) and :mod:`twi_core.aggregation` (the paper's tables and
statistics over seeds), so ``from twi_core.reproduce import train_config`` keeps working; the command line is
:mod:`twi_core.cli`.
"""

from __future__ import annotations

from twi_core.aggregation import AGGREGATE_METRICS, aggregate, collect, paper_table, render_table
from twi_core.batch import EXECUTORS, default_notebook, run_grid, run_point
from twi_core.grids import GRIDS, RUN_PRESETS, Grid, Point, expand, grid_table, preset_table, train_config

__all__ = ["GRIDS", "Grid", "Point", "RUN_PRESETS", "EXECUTORS", "train_config", "expand", "run_grid", "run_point",
           "aggregate", "collect", "render_table", "paper_table", "default_notebook", "grid_table", "preset_table",
           "AGGREGATE_METRICS"]
