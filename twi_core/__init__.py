"""twi_core: the package behind the executable book *Traveling Waves Integrate Spatial Information Through Time*.

Subpackages and modules (one job each; the README holds the full map):

- :mod:`twi_core.presets`  scale presets (``smoke`` / ``book`` / ``paper``) and the configuration resolver
- :mod:`twi_core.drum`     the wave-equation RNN on a drum and drum theory (chapter 1)
- :mod:`twi_core.data`     the four segmentation datasets, generated and cached
- :mod:`twi_core.models`   NWM, Conv-LSTM, CNN, U-Net and readouts, with ``build`` and ``paper_config``
- :mod:`twi_core.metrics`  the paper's segmentation metrics and standard ones
- :mod:`twi_core.train`    the authors' training protocol, resumable
- :mod:`twi_core.runs`     run records and the run store (runs cached by configuration)
- :mod:`twi_core.grids`    the paper's run grids, scales and each run's configuration
- :mod:`twi_core.batch`    batch execution of a grid under papermill, locally or on SLURM
- :mod:`twi_core.aggregation` the paper's tables and statistics over seeds
- :mod:`twi_core.reproduce` the three above under one import; :mod:`twi_core.cli` the ``twi`` command
- :mod:`twi_core.analysis` spectra, wavelengths, space-time separability
- :mod:`twi_core.viz`      GIFs, kernel-free scrubbers, plots
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
