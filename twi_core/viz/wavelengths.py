"""Figures of chapter 5: the wavelength distributions of the hidden states, the share above threshold against the
validation loss (Figure 10), and the separability of the NWM's state sequences."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["separability_plot", "threshold_vs_loss", "wavelength_distributions"]


def wavelength_distributions(hists: Mapping[tuple[int, int], np.ndarray], bins: np.ndarray, *, seed: int = 0,
                             threshold: float | None = None, ax=None):
    """Wavelength densities of one seed's checkpoints, one curve per epoch, darker as training goes (Figure 10, left)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.4), constrained_layout=True)
    epochs = sorted(e for s, e in hists if s == seed)
    centres = np.sqrt(bins[1:] * bins[:-1])
    cmap = plt.get_cmap("viridis")
    for k, e in enumerate(epochs):
        ax.plot(centres, hists[(seed, e)], color=cmap(k / max(1, len(epochs) - 1)),
                label="init" if e == 0 else f"epoch {e}")
    if threshold:
        ax.axvline(threshold, color="0.3", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wavelength (px)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return ax


def threshold_vs_loss(curves, *, ax=None):
    """Share of locations above threshold (left axis) and negative validation loss (right axis) against the epoch, one
    line per seed (Figure 10, right)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.4), constrained_layout=True)
    right = ax.twinx()
    for k, (seed, g) in enumerate(curves.groupby("seed")):
        ax.plot(g["epoch"], 100 * g["frac_above"], marker="o", color=f"C{k}", label=f"seed {seed}: % above")
        right.plot(g["epoch"], -g["val_loss"], marker="s", ls="--", color=f"C{k}", alpha=0.6,
                   label=f"seed {seed}: −loss")
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.set_ylabel("% of locations above threshold")
    right.set_ylabel("− validation loss (dashed)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return ax, right


def separability_plot(table, spectra: Mapping[str, np.ndarray], *, k_max: int = 10):
    """Left: the distribution of separability (s1² share) per model; right: the mean normalised singular-value
    spectra."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True,
                               gridspec_kw={"width_ratios": [1.3, 1]})
    labels = list(spectra)
    data = [table.loc[(table["model"] == m) & table["moving"], "separability"].dropna().to_numpy() for m in labels]
    keep = [k for k, d in enumerate(data) if len(d)]
    a.boxplot([data[k] for k in keep], orientation="horizontal", tick_labels=[labels[k] for k in keep])
    a.axvline(1.0, color="0.4", ls=":", lw=1)
    a.axvline(0.5, color="0.4", ls=":", lw=1)
    a.set_xlabel("separability s₁² / Σ s²  (1 standing, ½ travelling plane wave)")
    a.tick_params(axis="y", labelsize=8)
    for k, m in enumerate(labels):
        sp = np.asarray(spectra[m])[:k_max]
        if np.isfinite(sp).any():
            b.plot(np.arange(1, len(sp) + 1), sp, marker="o", ms=3, label=m, color=f"C{k}")
    b.set_yscale("log")
    b.set_xlabel("singular value index k")
    b.set_ylabel("share of variance s_k² / Σ s²")
    b.legend(fontsize=7, frameon=False)
    return fig
