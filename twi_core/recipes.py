r"""Training recipes: the authors' protocol (``"paper"``) and a faster one (``"fast"``), as learning-rate schedules.

A recipe says how the learning rate moves over a run and whether gradients are clipped; the optimiser (Adam, default
betas, no weight decay), the loss and the data order are the same for every recipe, and so for every model family, so
comparisons between families stay fair. The peak rate is :attr:`twi_core.train.TrainConfig.lr`.

``paper``
    The authors' protocol: the constant rate ``lr`` (1e-3), no clipping.
``fast``
    Batch 4 instead of 16 at the same peak rate 1e-3 (four times the updates per image seen), a linear warm-up over
    the first 5 % of training from ``lr / 10``, the peak held until 70 %, then a cosine decay to ``lr / 50`` at the
    end; gradients clipped to a global norm of 1. Chosen from measured learning curves of the Tetrominoes
    NWM-linear (2,000 training images × 6 epochs, seed 0, validation FG-IoU after the last epoch; 2-core Xeon): the
    constant 1e-3 ends at 0.744 at batch 16, 0.826 at batch 8 and 0.879 at batch 4 (with a dip to 0.665 one epoch
    before); this recipe at batch 4 ends at 0.868 with no dip. A cosine decay over the whole run at batch 16 had ended
    *lower* than the constant rate (0.591 at a peak of 1e-3, 0.530 at 3e-3): at this budget the model is still
    learning when such a decay has already cut the rate. The curves are drawn in the "Time to accuracy" section of
    the Performance appendix.

The schedule is a function of the *progress* ``p`` in [0, 1]: the fraction of the planned optimiser steps taken, or,
for a run with a wall-clock budget (``TrainConfig.budget_minutes``), the fraction of the budget spent, whichever is
larger. So a budgeted run decays to its final rate when its time runs out, whatever the machine's speed.

.. math::

    \eta(p) = \eta_{\max}\,\Big(s + (1 - s)\,\frac{p}{w}\Big)\ \ (p < w),\qquad
    \eta(p) = \eta_{\max}\ \ (w \le p \le d),\qquad
    \eta(p) = \eta_{\max}\,\Big(f + (1 - f)\,\tfrac12\big(1 + \cos\pi\tfrac{p - d}{1 - d}\big)\Big)\ \ (p > d)

with warm-up fraction :math:`w`, start factor :math:`s`, decay start :math:`d = w + h` (:math:`h` the hold) and final
factor :math:`f`.

Examples
--------
>>> fast = RECIPES["fast"]
>>> round(fast.factor(0.0), 3), fast.factor(0.05), fast.factor(0.7), round(fast.factor(0.85), 2), round(fast.factor(1.0), 3)
(0.1, 1.0, 1.0, 0.51, 0.02)
>>> RECIPES["paper"].factor(0.7)
1.0
>>> recipe("slow")
Traceback (most recent call last):
...
ValueError: unknown recipe 'slow'; expected one of ['fast', 'paper']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Recipe", "RECIPES", "DEFAULT_BATCH", "DEFAULT_LR", "recipe"]


@dataclass(frozen=True)
class Recipe:
    """A learning-rate schedule over the progress of a run, and a gradient clip."""

    name: str
    warmup: float = 0.0            # fraction of the run spent warming up (0: none)
    start: float = 1.0             # rate at the start of the warm-up, as a fraction of the peak
    final: float = 1.0             # rate at the end, as a fraction of the peak (1 with warmup 0: constant)
    clip_norm: float | None = None  # global gradient-norm clip (None: no clipping)
    hold: float = 0.0              # fraction of the run held at the peak after the warm-up, before the decay

    def factor(self, progress: float) -> float:
        """The rate at ``progress`` (clamped to [0, 1]) as a fraction of the peak rate."""
        p = min(max(float(progress), 0.0), 1.0)
        if p < self.warmup:
            return self.start + (1.0 - self.start) * p / self.warmup
        decay_from = self.warmup + self.hold
        if self.final == 1.0 or p <= decay_from:
            return 1.0
        q = (p - decay_from) / (1.0 - decay_from) if decay_from < 1.0 else 1.0
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * q))

    @property
    def constant(self) -> bool:
        """Whether the rate never changes (the schedule can then be skipped)."""
        return self.warmup == 0.0 and self.final == 1.0


#: The recipes by name.
RECIPES: dict[str, Recipe] = {
    "paper": Recipe("paper"),
    "fast": Recipe("fast", warmup=0.05, start=0.1, hold=0.65, final=0.02, clip_norm=1.0),
}


#: The peak rate (``TrainConfig.lr``) and the batch size each recipe is used with: the authors' 1e-3 at 16, and the
#: fast recipe's measured choice. :func:`twi_core.grids.train_config` fills them in for a non-paper recipe when they
#: are not given.
DEFAULT_LR: dict[str, float] = {"paper": 1e-3, "fast": 1e-3}
DEFAULT_BATCH: dict[str, int] = {"paper": 16, "fast": 4}


def recipe(name: str) -> Recipe:
    """The recipe called ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}") from None
