r"""Claims that can fail: one side's metric against another's over seeds, with a 95 % interval and a verdict.

A claim "A beats B" is checked on per-seed values (test FG-IoU of each run). The difference of means gets Welch's
95 % interval (unequal variances, Welch–Satterthwaite degrees of freedom),

.. math::

    \Delta = \bar a - \bar b,\qquad s_\Delta = \sqrt{s_a^2/n_a + s_b^2/n_b},\qquad
    \nu = \frac{s_\Delta^4}{\frac{(s_a^2/n_a)^2}{n_a - 1} + \frac{(s_b^2/n_b)^2}{n_b - 1}},\qquad
    \Delta \pm t_{0.975,\nu}\, s_\Delta,

and the verdict is

* ``"holds"`` when the whole interval lies above the margin,
* ``"does not hold"`` when it does not (the difference may be zero, or of the other sign),
* ``"not testable at this scale"`` when a side has fewer than ``min_seeds`` runs, or when both sides sit at the chance
  level (no model learned, so a difference says nothing about the claim); the reason is given.

Examples
--------
>>> c = compare([0.90, 0.92, 0.91], [0.40, 0.45, 0.38], chance=0.0)
>>> c["verdict"], round(c["difference"], 3), c["low"] > 0.4
('holds', 0.5, True)
>>> compare([0.9, 0.91], [0.4, 0.4, 0.4], chance=0.0)["verdict"]
'not testable at this scale'
>>> compare([0.01, 0.0, 0.02], [0.0, 0.0, 0.01], chance=0.0, chance_tolerance=0.05)["reason"]
'both sides at the chance level (0.00 ± 0.05)'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HOLDS", "DOES_NOT_HOLD", "NOT_TESTABLE", "COLUMNS", "compare", "above", "correlation", "claims_table",
           "welch_interval", "mean_std_text", "seeds_text", "images_text", "verdict_summary",
           "model_rows", "per_seed", "for_display"]

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
NOT_TESTABLE = "not testable at this scale"
#: The columns of :func:`claims_table`, the check tables the pages print.
COLUMNS = ["claim", "ours", "other", "difference", "95% low", "95% high", "seeds", "images", "chance", "verdict",
           "reason", "holds"]


def welch_interval(a: Sequence[float], b: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), low, high)``: Welch's interval at ``level`` for the difference of means.

    With zero spread on both sides the interval is the point itself.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's interval needs at least 2 values per side; got {len(a)} and {len(b)}")
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return diff, diff - half, diff + half


def compare(ours: Sequence[float], other: Sequence[float], *, chance: float, margin: float = 0.0,
            min_seeds: int = 3, chance_tolerance: float = 0.02, level: float = 0.95) -> dict:
    """Check "ours beats other by more than ``margin``" on per-seed values.

    Parameters
    ----------
    ours, other
        Per-seed values of the metric (higher is better); NaNs (failed runs) are dropped.
    chance
        The metric's value for a model that learned nothing (e.g. FG-IoU 0 for "all background").
    margin
        The claimed lead (0: "beats").
    min_seeds
        Runs needed per side (the issue's rule: 3).
    chance_tolerance
        Both sides within this of ``chance`` means that neither learned: not testable.

    Returns
    -------
    dict
        ``ours_mean, other_mean, difference, low, high, n_ours, n_other, chance, margin, verdict, reason``.
    """
    a = np.asarray([v for v in ours if v is not None and np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in other if v is not None and np.isfinite(v)], dtype=float)
    out = {"ours_mean": float(a.mean()) if len(a) else math.nan, "other_mean": float(b.mean()) if len(b) else math.nan,
           "difference": math.nan, "low": math.nan, "high": math.nan, "n_ours": len(a), "n_other": len(b),
           "chance": chance, "margin": margin, "level": level}
    if len(a) < min_seeds or len(b) < min_seeds:
        return {**out, "verdict": NOT_TESTABLE,
                "reason": f"{len(a)} and {len(b)} seeds; the check needs at least {min_seeds} per side"}
    diff, low, high = welch_interval(a, b, level=level)
    out.update(difference=diff, low=low, high=high)
    if abs(out["ours_mean"] - chance) <= chance_tolerance and abs(out["other_mean"] - chance) <= chance_tolerance:
        return {**out, "verdict": NOT_TESTABLE,
                "reason": f"both sides at the chance level ({chance:.2f} ± {chance_tolerance:.2f})"}
    if low > margin:
        return {**out, "verdict": HOLDS, "reason": f"the {level:.0%} interval lies above {margin:g}"}
    return {**out, "verdict": DOES_NOT_HOLD, "reason": f"the {level:.0%} interval reaches {margin:g} or below"}


def above(values: Sequence[float], level: float, *, min_seeds: int = 3, confidence: float = 0.95) -> dict:
    """Check "the mean of ``values`` lies above ``level``" (e.g. a chance level) with a one-sample t interval.

    Examples
    --------
    >>> above([0.30, 0.35, 0.32], 0.1)["verdict"]
    'holds'
    >>> above([0.05, 0.15, 0.10], 0.1)["verdict"]
    'does not hold'
    """
    from scipy import stats

    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    out = {"ours_mean": float(a.mean()) if len(a) else math.nan, "other_mean": level, "n_ours": len(a),
           "n_other": 0, "chance": level, "margin": 0.0, "level": confidence,
           "difference": math.nan, "low": math.nan, "high": math.nan}
    if len(a) < min_seeds:
        seeds = f"{len(a)} seed{'' if len(a) == 1 else 's'}"
        return {**out, "verdict": NOT_TESTABLE, "reason": f"{seeds}; the check needs at least {min_seeds}"}
    se = float(a.std(ddof=1)) / math.sqrt(len(a))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(a) - 1)) * se
    diff = float(a.mean()) - level
    out.update(difference=diff, low=diff - half, high=diff + half)
    if diff - half > 0:
        return {**out, "verdict": HOLDS, "reason": f"the {confidence:.0%} interval lies above the level"}
    return {**out, "verdict": DOES_NOT_HOLD, "reason": f"the {confidence:.0%} interval reaches the level"}


def model_rows(table, family: str, variant) -> "pd.DataFrame":
    """The completed runs of one model (``family``, ``variant``) in a runs table (the columns of
    :func:`twi_core.runs.obtain_table`), one row per seed."""
    ok = table[table["status"] == "complete"]
    return ok[(ok["family"] == family) & (ok["variant"].astype(str) == str(variant))]


def per_seed(rows, column: str) -> list[float]:
    """``column`` of ``rows`` (:func:`model_rows`) as numbers, missing values dropped; ``[]`` without the column.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"family": "cnn", "variant": [8, 8, 4], "status": ["complete", "failed", "complete"],
    ...                   "fg_iou": [0.3, None, 0.2]})
    >>> per_seed(model_rows(t, "cnn", "8"), "fg_iou"), per_seed(model_rows(t, "cnn", 8), "images_seen")
    ([0.3], [])
    """
    import pandas as pd

    return pd.to_numeric(rows[column], errors="coerce").dropna().tolist() if column in rows else []


def images_text(ours: Sequence[int], other: Sequence[int]) -> str:
    """The training images each side of a claim saw, for the check tables' ``images`` column (one side only for a
    claim against a fixed level, when ``other`` is empty).

    Examples
    --------
    >>> images_text([80_000, 80_000], [30_000]), images_text([2_000], []), images_text([10, 30], [20])
    ('80,000 vs 30,000', '2,000', '10–30 vs 20')
    """
    def side(values: Sequence[int]) -> str:
        v = sorted({int(x) for x in values})
        return "–" if not v else f"{v[0]:,}" if len(v) == 1 else f"{v[0]:,}–{v[-1]:,}"
    return f"{side(ours)} vs {side(other)}" if len(other) else side(ours)


def verdict_summary(checks) -> str:
    """How many claims of a check table (:func:`claims_table`) got each verdict, for the prose under it.

    Examples
    --------
    >>> t = claims_table([("A beats B", compare([0.9, 0.92, 0.91], [0.4, 0.45, 0.38], chance=0.0)),
    ...                   ("A beats C", compare([0.9], [0.4], chance=0.0))])
    >>> verdict_summary(t)
    '1 holds, 1 not testable at this scale (of 2)'
    >>> verdict_summary(claims_table([("A beats B", compare([0.9, 0.92, 0.91], [0.4, 0.45, 0.38], chance=0.0))] * 2))
    '2 hold (of 2)'
    """
    counts = checks["verdict"].value_counts()
    plural = {HOLDS: "hold", DOES_NOT_HOLD: "do not hold"}  # "3 do not hold", not "3 does not hold"
    parts = [f"{int(counts[v])} {v if int(counts[v]) == 1 else plural.get(v, v)}"
             for v in (HOLDS, DOES_NOT_HOLD, NOT_TESTABLE) if v in counts]
    return f"{', '.join(parts)} (of {len(checks)})"


def claims_table(checks: Sequence[tuple[str, dict]]):
    """``[(claim, result of compare or above)]`` as the pages' check table (:data:`COLUMNS`, one row per claim).

    ``holds`` is a bool column kept for older callers (True only for the verdict ``holds``). ``images`` is the
    training images each side saw (a result's ``"images"`` entry, set by the caller), "–" where not given.

    Examples
    --------
    >>> t = claims_table([("A beats B", compare([0.9, 0.92, 0.91], [0.4, 0.45, 0.38], chance=0.0))])
    >>> t.loc[0, ["seeds", "verdict"]].tolist()
    ['3 vs 3', 'holds']
    """
    import pandas as pd

    rows = [{"claim": claim, "ours": c["ours_mean"], "other": c["other_mean"], "difference": c["difference"],
             "95% low": c["low"], "95% high": c["high"], "seeds": f"{c['n_ours']} vs {c['n_other']}",
             "images": c.get("images", "–"), "chance": c["chance"], "verdict": c["verdict"], "reason": c["reason"],
             "holds": c["verdict"] == HOLDS}
            for claim, c in checks]
    return pd.DataFrame(rows, columns=COLUMNS)


def for_display(checks, *, index: Sequence[str] = ("claim",)):
    """A check table (:func:`claims_table`) as the pages print it: numbers to 3 decimals, the difference and its
    95 % interval in one column, ``holds`` dropped, and ``index`` (columns of ``checks``) as the index. (Display it
    under ``pd.option_context("display.max_colwidth", None)``: pandas cuts longer strings, the reasons, at 50.)

    Examples
    --------
    >>> t = claims_table([("A beats B", compare([0.9, 0.92, 0.91], [0.4, 0.45, 0.38], chance=0.0))])
    >>> for_display(t).loc["A beats B", ["difference [95 % interval]", "verdict"]].tolist()
    ['0.500 [0.418, 0.582]', 'holds']
    """
    def number(x: float) -> str:
        return "–" if x != x else f"{x:.3f}"

    def interval(row) -> str:
        if row["difference"] != row["difference"]:
            return "–"
        return f"{row['difference']:.3f} [{row['95% low']:.3f}, {row['95% high']:.3f}]"

    out = checks.drop(columns=["holds"]).copy()
    out.insert(out.columns.get_loc("difference"), "difference [95 % interval]", out.apply(interval, axis=1))
    out = out.drop(columns=["difference", "95% low", "95% high"])
    for column in ("ours", "other", "chance"):
        out[column] = out[column].map(number)
    return out.set_index(list(index))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def correlation(series: Sequence[tuple[Sequence[float], Sequence[float]]], *, min_seeds: int = 3,
                n_permutations: int = 10_000, alpha: float = 0.05, seed: int = 0) -> dict:
    r"""Check "x and y rise together" over checkpoints, one ``(x, y)`` series per seed, against a permutation null.

    The statistic is the mean over seeds of Pearson's :math:`r` between ``x`` and ``y`` along each series. The null
    hypothesis is that the pairing of ``x`` with ``y`` within a series carries nothing: ``x`` is shuffled within each
    series independently, ``n_permutations`` times, and

    .. math:: p = \frac{1 + \#\{\bar r_{\text{perm}} \ge \bar r\}}{1 + n_{\text{perm}}}.

    Two quantities that both follow training (each changes with the epoch) correlate under this test too, so *holds*
    says the two move together, not that one causes the other.

    Parameters
    ----------
    series
        Per seed, the two sequences over its checkpoints (e.g. the share of long wavelengths and −validation loss).
    min_seeds
        Seeds with a defined :math:`r` (≥ 3 checkpoints, neither sequence constant) needed for a verdict.

    Returns
    -------
    dict
        ``mean_r, r (per seed), n_seeds, p, n_permutations, verdict, reason``.

    Examples
    --------
    >>> up = [(np.arange(6.0), np.arange(6.0) + np.array([0, .1, -.1, 0, .1, 0]))] * 3
    >>> correlation(up)["verdict"]
    'holds'
    >>> correlation([(np.ones(5), np.arange(5.0))] * 3)["reason"]
    '0 of 3 seeds give a defined correlation (>= 3 checkpoints, neither series constant); the check needs 3'
    """
    pairs = [(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y in series]
    rs = [_pearson(x, y) for x, y in pairs]
    usable = [(x, y) for (x, y), r in zip(pairs, rs) if np.isfinite(r)]
    out = {"r": rs, "n_seeds": len(usable), "n_permutations": n_permutations, "alpha": alpha,
           "mean_r": float(np.mean([r for r in rs if np.isfinite(r)])) if usable else math.nan, "p": math.nan}
    if len(usable) < min_seeds:
        return {**out, "verdict": NOT_TESTABLE,
                "reason": f"{len(usable)} of {len(pairs)} seeds give a defined correlation (>= 3 checkpoints, "
                          f"neither series constant); the check needs {min_seeds}"}
    rng = np.random.default_rng(seed)
    null = np.zeros(n_permutations)
    for x, y in usable:
        shuffled = rng.permuted(np.broadcast_to(x, (n_permutations, x.size)), axis=1)
        xs = shuffled - shuffled.mean(1, keepdims=True)
        yc = y - y.mean()
        null += (xs @ yc) / (np.linalg.norm(xs, axis=1) * np.linalg.norm(yc))
    null /= len(usable)
    p = float((1 + np.sum(null >= out["mean_r"] - 1e-12)) / (1 + n_permutations))
    out["p"] = p
    if out["mean_r"] > 0 and p < alpha:
        return {**out, "verdict": HOLDS, "reason": f"mean r {out['mean_r']:.2f} > 0, permutation p = {p:.3g} < {alpha:g}"}
    return {**out, "verdict": DOES_NOT_HOLD,
            "reason": f"mean r {out['mean_r']:.2f}, permutation p = {p:.3g} (needs r > 0 and p < {alpha:g})"}


def mean_std_text(mean: float, std: float = math.nan, digits: int = 2) -> str:
    """A mean and its standard deviation as the tables print them: ``"0.91 ± 0.01"``.

    Parameters
    ----------
    mean : float
        The mean; NaN prints as ``"–"``.
    std : float, optional
        The standard deviation; NaN (one seed, or none reported) prints the mean alone.
    digits : int
        Decimals of both numbers.

    Returns
    -------
    str

    Examples
    --------
    >>> mean_std_text(0.9123, 0.0101)
    '0.91 ± 0.01'
    >>> mean_std_text(0.9123), mean_std_text(float("nan"), 0.1)
    ('0.91', '–')
    """
    if mean != mean:
        return "–"
    return f"{mean:.{digits}f}" if std != std else f"{mean:.{digits}f} ± {std:.{digits}f}"


def seeds_text(values, digits: int = 2) -> str:
    """Mean ± sample standard deviation (``ddof=1``) of per-seed values, through :func:`mean_std_text`.

    Parameters
    ----------
    values : sequence or pandas.Series
        One value per seed; entries that are not numbers (``None``, NaN, text) are left out.
    digits : int
        Decimals of both numbers.

    Returns
    -------
    str
        ``"–"`` without a value, the value alone for one seed, else ``"mean ± std"``.

    Examples
    --------
    >>> seeds_text([0.90, 0.92, None]), seeds_text([0.5]), seeds_text([])
    ('0.91 ± 0.01', '0.50', '–')
    """
    import pandas as pd

    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if v.empty:
        return "–"
    if len(v) == 1:
        return mean_std_text(v.iloc[0], digits=digits)
    return mean_std_text(v.mean(), v.std(ddof=1), digits)
