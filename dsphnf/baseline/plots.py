"""Figures of the baseline: a corner plot of the posterior and the profile bands.

The corner plot is drawn by the ``corner`` package (Foreman-Mackey 2016):
1-D histograms with the 16/50/84 % quantiles on the diagonal, 2-D histograms
with the 68 % and 95 % contours below it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..plotting import plot_band, save_figure
from ..style import SMALL_PT

__all__ = ["corner_plot", "profile_plot"]


def corner_plot(samples: np.ndarray, names: Sequence[str], path: str | Path | None = None,
                truths: Mapping[str, float] | None = None, bins: int = 30):
    """Corner plot of (n, ndim) posterior ``samples`` with :func:`corner.corner`; saves to ``path`` if given.

    Parameters
    ----------
    samples : ndarray, shape (n, ndim)
    names : sequence of str
        Axis labels (parameter names).
    path : str or Path, optional
        Where to save the PNG (the figure is then closed).
    truths : mapping, optional
        Name -> true value, marked with lines.
    bins : int
        Histogram bins per axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with warnings.catch_warnings():  # corner imports arviz, whose 0.x announces its 1.0 refactor once a day
        warnings.simplefilter("ignore", FutureWarning)
        import corner

    samples = np.asarray(samples, dtype=float)
    lims = [tuple(np.percentile(samples[:, i], [0.5, 99.5])) for i in range(samples.shape[1])]
    lims = [(a, b) if b > a else (a - 0.5, a + 0.5) for a, b in lims]  # a parameter that never moved
    truth_list = None if truths is None else [truths.get(n) for n in names]
    fig = corner.corner(samples, labels=list(names), range=lims, bins=bins, truths=truth_list,
                        quantiles=(0.16, 0.5, 0.84), levels=(0.68, 0.95), show_titles=True, title_fmt=".3g",
                        title_kwargs={"fontsize": SMALL_PT}, label_kwargs={"fontsize": SMALL_PT}, truth_color="C3")
    if path is not None:
        save_figure(fig, path)
    return fig


def profile_plot(profile: Mapping[str, np.ndarray], path: str | Path | None = None, title: str = ""):
    """Four panels against r [kpc]: rho, M, sigma_r and beta, each median with its 68/95 % bands.

    ``profile`` holds the columns of ``profile_bands.csv`` (a quantity
    without band columns is drawn as its median only).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(9, 7))
    for axis, key, color in zip(ax.ravel(), ("rho", "M", "sigma_r", "beta"), ("C0", "C1", "C2", "C3")):
        plot_band(axis, profile, key, label="baseline", color=color)
    lowest = min(float(np.min(profile[k])) for k in ("beta", "beta_lo95") if k in profile)
    ax[1, 1].set_ylim(min(-1.0, lowest - 0.1), 1.0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
