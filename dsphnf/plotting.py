"""Binned summaries of a catalogue and the figures drawn from them.

The binned estimators here are for display and checks only (the fits are
unbinned): the surface density Sigma(R) [stars/kpc^2] in equal-number
annuli with Poisson errors, and the intrinsic line-of-sight dispersion
sigma_los(R) [km/s] per annulus (maximum likelihood with the per-star
velocity errors removed) with bootstrap errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .catalog import Catalog
from .kinematics import ml_dispersion
from .outputs import atomic_file

__all__ = ["binned_profiles", "plot_binned_profiles"]


def binned_profiles(cat: Catalog, n_bins: int = 10, n_boot: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Sigma(R) and sigma_los(R) in annuli holding equal numbers of stars.

    Parameters
    ----------
    cat : Catalog
        Stars; membership probabilities act as weights.
    n_bins : int
        Number of annuli (edges at quantiles of R).
    n_boot : int
        Bootstrap resamples (within each annulus) for the sigma_los errors;
        0 uses the Gaussian error sigma / sqrt(2 (n_eff - 1)) instead (fast,
        for large samples).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``R_lo``, ``R_hi``, ``R`` (weighted mean R) [kpc], ``n`` (stars),
        ``Sigma``, ``Sigma_err`` [stars/kpc^2, weighted], and with velocities
        ``sigma_los``, ``sigma_los_err`` [km/s].
    """
    R, w = cat.R, cat.weights
    edges = np.quantile(R, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0] = 0.0
    idx = np.clip(np.searchsorted(edges, R, side="right") - 1, 0, n_bins - 1)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("R_lo", "R_hi", "R", "n", "Sigma", "Sigma_err", "sigma_los", "sigma_los_err")}
    for b in range(n_bins):
        sel = idx == b
        area = np.pi * (edges[b + 1] ** 2 - edges[b] ** 2)
        wb = w[sel]
        out["R_lo"].append(edges[b])
        out["R_hi"].append(edges[b + 1])
        out["R"].append(np.average(R[sel], weights=wb) if wb.sum() > 0 else np.nan)
        out["n"].append(int(sel.sum()))
        out["Sigma"].append(wb.sum() / area)
        out["Sigma_err"].append(np.sqrt(np.sum(wb**2)) / area)
        if cat.vz is not None and sel.sum() >= 3:
            v = cat.vz[sel]
            e = None if cat.vz_err is None else cat.vz_err[sel]
            sig = ml_dispersion(v, e, wb)[2]
            out["sigma_los"].append(sig)
            if n_boot > 0:
                boots = []
                for _ in range(n_boot):
                    k = rng.integers(0, v.size, v.size)
                    boots.append(ml_dispersion(v[k], None if e is None else e[k], wb[k])[2])
                out["sigma_los_err"].append(np.std(boots, ddof=1))
            else:
                n_eff = wb.sum() ** 2 / np.sum(wb**2)
                out["sigma_los_err"].append(sig / np.sqrt(2.0 * max(n_eff - 1.0, 1.0)))
        else:
            out["sigma_los"].append(np.nan)
            out["sigma_los_err"].append(np.nan)
    res = {k: np.asarray(v, dtype=float) for k, v in out.items()}
    if cat.vz is None:
        del res["sigma_los"], res["sigma_los_err"]
    return res


def plot_binned_profiles(
    path: str | Path,
    binned: Mapping[str, np.ndarray],
    model: Mapping[str, np.ndarray] | None = None,
    title: str = "",
    model_binned: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Two panels, Sigma(R) and sigma_los(R), data points against model curves.

    Parameters
    ----------
    path : str or Path
        Output image (format from the extension), written atomically.
    binned : mapping
        Output of :func:`binned_profiles`.
    model : mapping, optional
        ``R`` [kpc], ``Sigma`` [stars/kpc^2] and ``sigma_los`` [km/s] curves.
    title : str
        Figure title.
    model_binned : mapping, optional
        The model averaged over the same annuli (``Sigma``, ``sigma_los``),
        drawn as open squares at the data radii: the like-for-like comparison
        in wide annuli.
    """
    import matplotlib.pyplot as plt

    has_v = "sigma_los" in binned
    fig, axes = plt.subplots(1, 2 if has_v else 1, figsize=(10 if has_v else 5, 4), squeeze=False)
    ax = axes[0, 0]
    xerr = np.vstack([binned["R"] - binned["R_lo"], binned["R_hi"] - binned["R"]])
    ax.errorbar(binned["R"], binned["Sigma"], yerr=binned["Sigma_err"], xerr=xerr, fmt="o", ms=4,
                color="k", label="stars (Poisson errors)")
    if model is not None:
        ax.plot(model["R"], model["Sigma"], color="C3", label="true projection")
    if model_binned is not None:
        ax.plot(binned["R"], model_binned["Sigma"], "s", mfc="none", color="C3", label="true, annulus average")
    ax.set(xscale="log", yscale="log", xlabel="R [kpc]", ylabel=r"$\Sigma(R)$ [stars kpc$^{-2}$]")
    ax.legend(frameon=False)
    if has_v:
        ax = axes[0, 1]
        ax.errorbar(binned["R"], binned["sigma_los"], yerr=binned["sigma_los_err"], xerr=xerr, fmt="o", ms=4,
                    color="k", label="stars (ML, bootstrap errors)")
        if model is not None and "sigma_los" in model:
            ax.plot(model["R"], model["sigma_los"], color="C3", label="true projection")
        if model_binned is not None and "sigma_los" in model_binned:
            ax.plot(binned["R"], model_binned["sigma_los"], "s", mfc="none", color="C3", label="true, annulus average")
        ax.set(xscale="log", xlabel="R [kpc]", ylabel=r"$\sigma_{\rm los}(R)$ [km s$^{-1}$]")
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
