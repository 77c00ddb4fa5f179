"""Figures of the baseline: a corner plot of the posterior and the profile bands.

The corner plot is drawn with matplotlib alone (the ``corner`` package is
not a dependency): 1-D histograms on the diagonal, 2-D histograms with the
68% and 95% highest-density contours below it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["corner_plot", "profile_plot"]


def _levels(h: np.ndarray, fractions: Sequence[float]) -> list[float]:
    """Histogram heights enclosing the given probability fractions (highest first)."""
    flat = np.sort(h.ravel())[::-1]
    cum = np.cumsum(flat)
    cum /= cum[-1]
    lv = [flat[min(np.searchsorted(cum, f), flat.size - 1)] for f in fractions]
    return sorted(set(lv))


def corner_plot(samples: np.ndarray, names: Sequence[str], path: str | Path | None = None,
                truths: Mapping[str, float] | None = None, bins: int = 30):
    """Corner plot of (n, ndim) posterior ``samples``; saves to ``path`` if given.

    Parameters
    ----------
    samples : ndarray, shape (n, ndim)
    names : sequence of str
        Axis labels (parameter names).
    path : str or Path, optional
        Where to save the PNG.
    truths : mapping, optional
        Name -> true value, marked with lines.
    bins : int
        Histogram bins per axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    samples = np.asarray(samples, dtype=float)
    n = samples.shape[1]
    size = max(1.6 * n, 4.0)
    fig, axes = plt.subplots(n, n, figsize=(size, size), squeeze=False)
    lims = [np.percentile(samples[:, i], [0.5, 99.5]) for i in range(n)]
    lims = [(a, b) if b > a else (a - 0.5, a + 0.5) for a, b in lims]
    truths = dict(truths or {})
    for i in range(n):
        for j in range(n):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(samples[:, i], bins=bins, range=lims[i], histtype="step", color="k", density=True)
                q = np.percentile(samples[:, i], [16, 50, 84])
                for v in q:
                    ax.axvline(v, color="C0", ls="--", lw=0.8)
                ax.set_title(f"{names[i]} = {q[1]:.3g}$^{{+{q[2] - q[1]:.2g}}}_{{-{q[1] - q[0]:.2g}}}$", fontsize=7)
                ax.set_yticks([])
            else:
                h, xe, ye = np.histogram2d(samples[:, j], samples[:, i], bins=bins, range=[lims[j], lims[i]])
                xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
                ax.pcolormesh(xe, ye, h.T, cmap="Greys", shading="flat")
                lv = _levels(h, [0.95, 0.68])
                if len(lv) >= 1 and h.max() > 0:
                    try:
                        ax.contour(xc, yc, h.T, levels=lv, colors="C0", linewidths=0.8)
                    except ValueError:
                        pass
                ax.set_ylim(lims[i])
                if names[i] in truths:
                    ax.axhline(truths[names[i]], color="C3", lw=0.8)
            ax.set_xlim(lims[j])
            if names[j] in truths:
                ax.axvline(truths[names[j]], color="C3", lw=0.8)
            ax.tick_params(labelsize=6)
            if i == n - 1:
                ax.set_xlabel(names[j], fontsize=7)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=7)
            elif j > 0:
                ax.set_yticklabels([])
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig


def profile_plot(profile: Mapping[str, np.ndarray], path: str | Path | None = None, title: str = ""):
    """Four panels: rho (68/95% bands), M (68%), sigma_r and beta medians vs r [kpc].

    ``profile`` holds the columns of ``profile.csv``.
    """
    import matplotlib.pyplot as plt

    r = np.asarray(profile["r"])
    fig, ax = plt.subplots(2, 2, figsize=(9, 7))
    a = ax[0, 0]
    a.fill_between(r, profile["rho_lo95"], profile["rho_hi95"], color="C0", alpha=0.2, label="95%")
    a.fill_between(r, profile["rho_lo"], profile["rho_hi"], color="C0", alpha=0.4, label="68%")
    a.loglog(r, profile["rho"], color="C0", label="median")
    a.set_ylabel(r"$\rho_{\rm DM}$ [M$_\odot$ kpc$^{-3}$]")
    a.legend(fontsize=8)
    a = ax[0, 1]
    a.fill_between(r, profile["M_lo"], profile["M_hi"], color="C1", alpha=0.4)
    a.loglog(r, profile["M"], color="C1")
    a.set_ylabel(r"$M(<r)$ [M$_\odot$]")
    a = ax[1, 0]
    a.semilogx(r, profile["sigma_r"], color="C2")
    a.set_ylabel(r"$\sigma_r$ [km/s]")
    a = ax[1, 1]
    a.semilogx(r, profile["beta"], color="C3")
    a.set_ylabel(r"$\beta$")
    a.set_ylim(min(-1.0, float(np.min(profile["beta"])) - 0.1), 1.0)
    for a in ax.ravel():
        a.set_xlabel("r [kpc]")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
