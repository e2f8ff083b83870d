"""Chapter 1, "Hearing the shape of a drum": the experiments and figures of ``book/01_drum.ipynb``.

Every function takes the chapter's resolved :class:`~twi_core.presets.Settings` (see :data:`TABLE`) and returns plain
data (pandas tables, numpy arrays) or a matplotlib figure; the physics lives in :mod:`twi_core.drum`.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from twi_core import drum
from twi_core.presets import Settings, resolve

__all__ = ["TABLE", "settings", "styled", "square_experiment", "plot_squares", "area_table", "isospectral_experiment",
           "plot_isospectral", "disk_experiment", "drum_sounds", "animation_frames", "IsospectralResult", "DiskResult"]

#: Scale-dependent settings of chapter 1. ``book`` and ``paper`` run the paper's 40,000 steps.
TABLE: dict[str, dict[str, Any]] = {
    "smoke": dict(
        sides=[13, 14, 15, 16, 17, 18, 19, 20, 21],  # square side lengths (grid spacings between clamped lines)
        steps=4000,  # time steps per square (the paper: 40,000)
        dt=0.5,  # time step of the squares (c * dt <= 1/sqrt(2))
        iso_sim_resolution=4,  # grid points per unit leg for the simulated GWW drums
        iso_sim_steps=8000,  # time steps of the GWW simulation
        iso_sim_dt=0.5,  # time step of the GWW simulation
        iso_eig_resolution=8,  # grid points per unit leg for the eigenvalue comparison with Driscoll
        n_modes=10,  # how many eigenfrequencies to compare
        disk_radius=8.0,  # radius of the circular drum (grid spacings)
        disk_steps=4000,  # time steps of the circular drum
        anim_frames=12,  # frames in the GIF and the scrubber
        anim_every=6,  # time steps between frames
        seed=0,  # random initial condition and probes of the GWW simulation
    ),
    "book": dict(
        sides=[13, 14, 15, 16, 17, 18, 19, 20, 21], steps=40000, dt=0.1,
        iso_sim_resolution=8, iso_sim_steps=40000, iso_sim_dt=0.5, iso_eig_resolution=32, n_modes=10,
        disk_radius=20.0, disk_steps=40000, anim_frames=60, anim_every=4, seed=0,
    ),
    "paper": dict(
        sides=[13, 14, 15, 16, 17, 18, 19, 20, 21], steps=40000, dt=0.1,
        iso_sim_resolution=8, iso_sim_steps=40000, iso_sim_dt=0.5, iso_eig_resolution=32, n_modes=10,
        disk_radius=20.0, disk_steps=40000, anim_frames=60, anim_every=4, seed=0,
    ),
}


def settings(preset: str | None = None, *, env: bool = True, **overrides: Any) -> Settings:
    """Resolve the chapter's settings (``$TWI_PRESET`` replaces ``preset``; ``None`` overrides are ignored)."""
    return resolve(TABLE, preset, env=env, **overrides)


def styled(table: pd.DataFrame, formats: dict[str, str]):
    """A table for the page: no index, per-column number formats, padded right-aligned cells."""
    return (table.style.hide(axis="index").format(formats, na_rep="–")
            .set_table_styles([{"selector": "td, th", "props": "padding: 2px 8px; text-align: right; white-space: nowrap;"}]))


# ----------------------------------------------------------------------------------------------------------------------
# Figure 2: square drums
# ----------------------------------------------------------------------------------------------------------------------

def square_experiment(cfg: Settings) -> tuple[pd.DataFrame, float]:
    """Simulate every square of ``cfg.sides`` as one batch and compare the measured fundamental with theory.

    Returns
    -------
    table, seconds
        One row per side: ``side``, ``free_neurons``, ``f_measured``, ``f_discrete`` (exact: 5-point Laplacian + leapfrog
        dispersion), ``f_semidiscrete`` (5-point Laplacian, continuous time), ``f_continuum`` (the paper's theory
        ``1/(sqrt 2 s)``), the relative errors ``err_discrete`` and ``err_continuum`` (measured / prediction - 1); and the
        wall time of the simulation.
    """
    sides = np.asarray(cfg.sides)
    t0 = time.perf_counter()
    run = drum.simulate([drum.square_mask(int(s)) for s in sides], cfg.steps, cfg.dt)
    seconds = time.perf_counter() - t0
    measured = drum.fundamental_frequency(run.trace, cfg.dt)
    table = pd.DataFrame({
        "side": sides,
        "free_neurons": (sides - 1) ** 2,
        "f_measured": measured,
        "f_discrete": drum.discrete_square_fundamental(sides, cfg.dt),
        "f_semidiscrete": drum.discrete_square_fundamental(sides),
        "f_continuum": drum.continuum_square_fundamental(sides),
    })
    table["err_discrete"] = table.f_measured / table.f_discrete - 1
    table["err_continuum"] = table.f_measured / table.f_continuum - 1
    return table, seconds


def plot_squares(table: pd.DataFrame, *, preset: str) -> plt.Figure:
    """The paper's Figure 2 (measured vs theoretical fundamental) beside the relative errors."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    lims = [table.f_continuum.min() * 0.95, table.f_continuum.max() * 1.05]
    ax1.plot(lims, lims, color="0.6", lw=1, label="measured = theory")
    ax1.plot(table.f_continuum, table.f_measured, "o", color="C0", label="measured vs continuum $1/(\\sqrt{2}\\,s)$")
    ax1.plot(table.f_discrete, table.f_measured, "x", color="C3", ms=8, label="measured vs exact discrete")
    for s, x, y in zip(table.side, table.f_continuum, table.f_measured):
        ax1.annotate(str(s), (x, y), textcoords="offset points", xytext=(-4, 6), fontsize=7, color="0.35")
    ax1.set(xlabel="theoretical fundamental frequency (cycles / unit time)",
            ylabel="measured lowest peak (cycles / unit time)", title=f"Square drums, side {table.side.min()}..{table.side.max()} ({preset} preset)")
    ax1.legend(fontsize=8, loc="upper left")
    ax2.axhline(0, color="0.6", lw=1)
    ax2.plot(table.side, 100 * table.err_continuum, "o-", color="C0", label="vs continuum theory (the paper's)")
    ax2.plot(table.side, 100 * (table.f_semidiscrete / table.f_continuum - 1), ":", color="C2",
             label="spatial part of the gap (5-point Laplacian, continuous time)")
    ax2.plot(table.side, 100 * table.err_discrete, "x-", color="C3", ms=8, label="vs exact discrete prediction")
    ax2.set(xlabel="side length $s$ (grid spacings)", ylabel="relative error of measured frequency (%)",
            title="Where the 'minor deviations' come from")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def area_table(table: pd.DataFrame, cfg: Settings) -> pd.DataFrame:
    """Area of each square recovered three ways: the continuum square law :math:`A = 1/(2 f_1^2)` applied to the measured
    fundamental, the exact discrete inversion of the measured fundamental, and the heat trace of the full discrete
    spectrum (no shape assumption)."""
    sides = table.side.to_numpy()
    heat = [drum.fit_heat_trace(drum.discrete_square_eigenvalues(int(s))) for s in sides]
    out = pd.DataFrame({
        "side": sides,
        "area": sides ** 2,
        "from_f1_continuum": drum.area_from_fundamental(table.f_measured.to_numpy()),
        "from_f1_discrete": drum.side_from_fundamental(table.f_measured.to_numpy(), cfg.dt) ** 2,
        "from_heat_trace": [h.area for h in heat],
        "perimeter": 4 * sides,
        "perimeter_from_heat_trace": [h.perimeter for h in heat],
    })
    for col in ("from_f1_continuum", "from_f1_discrete", "from_heat_trace"):
        out[f"err_{col}"] = out[col] / out.area - 1
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Isospectral drums
# ----------------------------------------------------------------------------------------------------------------------

class IsospectralResult(NamedTuple):
    """The GWW pair: simulated spectra, their peaks, and eigenvalues against Driscoll's table."""

    masks: tuple[np.ndarray, np.ndarray]  # the simulated drums, bool (H, W) each
    freqs: np.ndarray  # (K,) spectrum frequencies, cycles per unit time
    spectra: np.ndarray  # (2, K) magnitude spectra (root of the summed power over probes)
    peaks: pd.DataFrame  # first n_modes simulated frequencies of each drum, as unit-leg eigenvalues, and their gap
    eigen: pd.DataFrame  # discrete eigenvalues of both drums at iso_eig_resolution vs Driscoll's


def isospectral_experiment(cfg: Settings) -> IsospectralResult:
    """Simulate both Gordon-Webb-Wolpert drums (random initial displacement, a few random probes; one batch), read the
    first ``n_modes`` peaks of each, convert them to unit-leg eigenvalues through the exact leapfrog dispersion, and
    compare the eigenvalues of the discrete operator at ``iso_eig_resolution`` with Driscoll's."""
    n = cfg.iso_sim_resolution
    masks = tuple(drum.polygon_mask(drum.GWW_DRUMS[k], resolution=n) for k in ("gww1", "gww2"))
    canvas = drum.stack_masks(list(masks))
    rng = np.random.default_rng(cfg.seed)
    init = rng.standard_normal(canvas.shape) * canvas
    probes = np.stack([np.argwhere(m)[rng.choice(int(m.sum()), size=6, replace=False)] for m in canvas])  # (2, 6, 2)
    run = drum.simulate(canvas, cfg.iso_sim_steps, cfg.iso_sim_dt, init=init, probes=probes)
    freqs, mag = drum.spectrum(run.traces, cfg.iso_sim_dt)
    spectra = np.sqrt((mag ** 2).sum(axis=1))  # (2, K)
    peaks = [drum.spectral_peaks(run.traces[k], cfg.iso_sim_dt, rel_height=1e-3, count=cfg.n_modes) for k in range(2)]
    lam = [drum.eigenvalue_from_frequency(p, cfg.iso_sim_dt) * n * n for p in peaks]
    m = min(len(lam[0]), len(lam[1]))
    exact_sim = drum.discrete_dirichlet_eigenvalues(masks[0], cfg.n_modes, h=1.0 / n)[:m]
    peak_table = pd.DataFrame({"mode": np.arange(1, m + 1), "f_drum1": peaks[0][:m], "f_drum2": peaks[1][:m],
                               "lambda_drum1": lam[0][:m], "lambda_drum2": lam[1][:m],
                               "lambda_discrete": exact_sim, "driscoll": drum.driscoll_eigenvalues(m)})
    peak_table["f_gap"] = peak_table.f_drum1 / peak_table.f_drum2 - 1
    peak_table["err_vs_discrete"] = peak_table.lambda_drum1 / peak_table.lambda_discrete - 1
    ne = cfg.iso_eig_resolution
    fine = [drum.discrete_dirichlet_eigenvalues(drum.polygon_mask(drum.GWW_DRUMS[k], resolution=ne), cfg.n_modes,
                                                h=1.0 / ne) for k in ("gww1", "gww2")]
    eig_table = pd.DataFrame({"mode": np.arange(1, cfg.n_modes + 1), "drum1": fine[0], "drum2": fine[1],
                              "driscoll": drum.driscoll_eigenvalues(cfg.n_modes)})
    eig_table["gap_1_vs_2"] = eig_table.drum1 / eig_table.drum2 - 1
    eig_table["err_vs_driscoll"] = eig_table.drum1 / eig_table.driscoll - 1
    return IsospectralResult(masks, freqs, spectra, peak_table, eig_table)


def plot_isospectral(res: IsospectralResult, cfg: Settings) -> plt.Figure:
    """The two drums and their overlaid simulated spectra, with Driscoll's eigenfrequencies marked."""
    fig = plt.figure(figsize=(11, 3.8))
    grid = fig.add_gridspec(1, 4, width_ratios=[1, 1, 0.15, 3.2])
    for k, m in enumerate(res.masks):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(m, cmap="Greys", origin="lower", interpolation="nearest")
        ax.set(title=f"drum {k + 1}", xticks=[], yticks=[])
    ax = fig.add_subplot(grid[0, 3])
    n = cfg.iso_sim_resolution
    f_driscoll = drum.leapfrog_frequency(drum.driscoll_eigenvalues(cfg.n_modes) / (n * n), cfg.iso_sim_dt)
    sel = (res.freqs >= f_driscoll[0] * 0.8) & (res.freqs <= f_driscoll[-1] * 1.08)
    for k, ls in ((0, "-"), (1, "--")):
        ax.semilogy(res.freqs[sel], res.spectra[k][sel] / res.spectra[k][sel].max(), ls, lw=1,
                    label=f"drum {k + 1} (simulated)")
    for f in f_driscoll:
        ax.axvline(f, color="0.5", lw=0.6, ls=":")
    ax.set(xlabel="frequency (cycles / unit time)", ylabel="spectrum (normalised)", ylim=(1e-4, 2),
           title=f"Same spectrum ({n} grid points per leg, {cfg.iso_sim_steps} steps; dotted: Driscoll)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------------
# Circular drum
# ----------------------------------------------------------------------------------------------------------------------

class DiskResult(NamedTuple):
    """The circular drum: the simulated fundamental and the discrete spectrum against Bessel zeros."""

    f_measured: float  # lowest peak of the centre trace
    f_discrete: float  # the same from the discrete operator's lowest eigenvalue (leapfrog dispersion)
    f_bessel: float  # continuum: j01 / (2 pi R)
    table: pd.DataFrame  # lowest eigenvalues: discrete vs Bessel


def disk_experiment(cfg: Settings) -> DiskResult:
    """Simulate the circular drum of radius ``disk_radius`` and compare with :math:`\\lambda = j_{mn}^2/R^2`."""
    R = cfg.disk_radius
    mask = drum.disk_mask(R)
    run = drum.simulate(mask, cfg.disk_steps, cfg.dt)
    # rel_height 1e-3: at the centre of a disk the m = 0 modes grow in amplitude with their order, so the fundamental
    # holds only a few per cent of the largest peak
    f_meas = float(drum.fundamental_frequency(run.trace[0], cfg.dt, rel_height=1e-3))
    disc = drum.discrete_dirichlet_eigenvalues(mask, 8)
    bessel = drum.disk_eigenvalues(R, 8)
    table = pd.DataFrame({"mode": np.arange(1, 9), "discrete": disc, "bessel": bessel})
    table["rel_diff"] = table.discrete / table.bessel - 1
    return DiskResult(f_meas, float(drum.leapfrog_frequency(disc[0], cfg.dt)),
                      float(drum.leapfrog_frequency(bessel[0])), table)


# ----------------------------------------------------------------------------------------------------------------------
# Sound
# ----------------------------------------------------------------------------------------------------------------------

def drum_sounds(cfg: Settings, disk: DiskResult, iso: IsospectralResult, *, base_hz: float = 220.0,
                sample_rate: int = 22050) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Tones of the chapter's drums, synthesised from their computed spectra (:func:`twi_core.sound.tone`).

    Squares (the smallest and the largest side) and the disk share one pitch scale: the smallest square's fundamental
    sounds at ``base_hz``, so a larger drum sounds lower. The isospectral pair has a scale of its own (drum 1's
    fundamental at ``base_hz``) and is synthesised from each drum's own eigenvalues (``iso.eigen``); its two tones
    differ only as much as those computed eigenvalues do.

    Returns
    -------
    table : DataFrame
        ``drum, modes, fundamental_hz, max_rel_freq_diff_to_partner`` (the partner is the other GWW drum).
    waves : dict
        ``{drum: float32 samples}``.
    """
    from twi_core import sound

    sides = (min(cfg.sides), max(cfg.sides))
    square_lam = {s: drum.discrete_square_eigenvalues(s, cfg.n_modes) for s in sides}
    reference = float(square_lam[sides[0]][0])
    spectra = {f"square, side {s}": (lam, reference) for s, lam in square_lam.items()}
    spectra[f"disk, radius {cfg.disk_radius:g}"] = (disk.table["discrete"].to_numpy(), reference)
    gww = (iso.eigen["drum1"].to_numpy(), iso.eigen["drum2"].to_numpy())
    spectra["GWW drum 1"] = (gww[0], float(gww[0][0]))
    spectra["GWW drum 2"] = (gww[1], float(gww[0][0]))
    waves, rows = {}, []
    for name, (lam, ref) in spectra.items():
        waves[name] = sound.tone(lam, reference=ref, base_hz=base_hz, sample_rate=sample_rate)
        gap = float(np.max(np.abs(np.sqrt(gww[0] / gww[1]) - 1))) if name.startswith("GWW") else float("nan")
        rows.append({"drum": name, "modes": len(lam), "fundamental_hz": base_hz * float(np.sqrt(lam[0] / ref)),
                     "max_rel_freq_diff_to_partner": gap})
    return pd.DataFrame(rows), waves


# ----------------------------------------------------------------------------------------------------------------------
# Animation
# ----------------------------------------------------------------------------------------------------------------------

def animation_frames(cfg: Settings, *, shape: str = "gww") -> tuple[np.ndarray, list[str]]:
    """Frames of a vibrating membrane struck off-centre by a smooth bump; outside the drum is NaN (drawn grey).

    ``shape="gww"``: both isospectral drums side by side (``iso_sim_resolution``); ``"square"``: the side-21 square.
    Returns ``frames (T, H, W)`` and one title per frame.
    """
    if shape == "gww":
        masks = [drum.polygon_mask(drum.GWW_DRUMS[k], resolution=max(cfg.iso_sim_resolution, 8), pad=1)
                 for k in ("gww1", "gww2")]
    elif shape == "square":
        masks = [drum.square_mask(21, pad=1)]
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of ['gww', 'square']")
    canvas = drum.stack_masks(masks)
    S, H, W = canvas.shape
    init = np.zeros(canvas.shape)
    yy, xx = np.mgrid[0:H, 0:W]
    for k in range(S):
        ci, cj = drum.drum_centre(canvas[k])
        init[k] = np.exp(-((yy - ci) ** 2 + (xx - cj) ** 2) / (2 * 1.5 ** 2))
    dt = 0.5
    run = drum.simulate(canvas, cfg.anim_frames * cfg.anim_every, dt, init=init, frame_every=cfg.anim_every)
    frames = np.where(canvas[:, None], run.frames, np.nan)  # (S, T, H, W)
    gap = np.full((frames.shape[1], H, 2), np.nan)
    row = [frames[0]]
    for k in range(1, S):
        row += [gap, frames[k]]
    out = np.concatenate(row, axis=2)[:, ::-1]  # (T, H, W_total); flip rows so y points up
    titles = [f"t = {k * cfg.anim_every * dt:g}" for k in range(out.shape[0])]
    return out, titles
