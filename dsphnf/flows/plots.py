"""Figures of a flow fit: profiles with bands, data against model, loss curves.

The binned data summaries drawn here are for display only (the fit is
unbinned): Sigma(R) [fraction of stars per kpc^2] in equal-number annuli and
sigma_los(R) [km/s] per annulus (weighted dispersion, mean squared velocity
error removed). The model curves come from samples of every ensemble member
binned in the same annuli (median and 16-84 % over members).

Every function takes the :class:`~dsphnf.result.Result` of
:func:`~dsphnf.flows.fit.fit_flow` (its ``artefacts`` a
:class:`~dsphnf.flows.artefacts.FlowArtefacts`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

# No matplotlib.use() here: a library must not switch the backend (in a notebook it
# replaced the inline backend, and the book lost its figures); headless runs get Agg
# from matplotlib's own fallback.
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..plotting import plot_band, save_figure
from ..style import SMALL_PT

__all__ = ["binned_sky", "model_sky", "plot_profiles", "plot_data_vs_model", "plot_losses", "save_all"]


def binned_sky(x, y, vz=None, w=None, verr=None, n_bins: int = 10, edges=None) -> dict[str, np.ndarray]:
    """Sigma(R) [fraction/kpc^2] and sigma_los(R) [km/s] in annuli (equal-number unless ``edges``).

    The library's one binned estimator (:func:`dsphnf.binned.binned_profiles`, Gaussian
    sigma_los errors), plus the annulus ``edges`` [kpc].
    """
    from ..binned import binned_profiles
    from ..catalog import Catalog

    b = binned_profiles(Catalog(x, y, vz, verr if vz is not None else None, w), n_bins=n_bins, n_boot=0,
                        edges=edges, normalise=True)
    b["edges"] = np.append(b["R_lo"], b["R_hi"][-1])
    return b


@torch.no_grad()
def model_sky(result, edges: np.ndarray, n: int = 20000, seed: int = 0) -> dict[str, np.ndarray]:
    """Sigma(R) and sigma_los(R) of every member's flow samples in the annuli ``edges``."""
    art = result.artefacts
    sig, slos = [], []
    for k, flow in enumerate(art.flows):
        L, V = art.scales_of(k)["L"], art.scales_of(k)["V"]
        p = next(flow.parameters())
        g = torch.Generator(device=p.device).manual_seed(seed + k)
        s = flow.sample_projected(n, g).double().cpu().numpy()
        b = binned_sky(s[:, 0] * L, s[:, 1] * L, s[:, 2] * V if s.shape[1] == 3 else None, edges=edges)
        sig.append(b["Sigma"])
        if "sigma_los" in b:
            slos.append(b["sigma_los"])
    out = {"Sigma": np.percentile(sig, [50, 16, 84], axis=0)}
    if slos:
        out["sigma_los"] = np.percentile(slos, [50, 16, 84], axis=0)
    return out


def plot_profiles(result, truth: Callable[[np.ndarray], dict] | None = None, path: str | os.PathLike | None = None):
    """rho(r) and M(r) with 68/95 % bands (nu(r) for a positions-only fit); ``truth(r)`` may add curves.

    With an inferred anisotropy two more panels show the learned beta(r) and
    sigma_r(r), sigma_t(r) (one tangential component) with their bands.
    """
    from ..anisotropy import INFERRED_FORMS

    p = result.profile
    r = p["r"]
    tr = truth(r) if truth is not None else None
    keys = ["rho", "M"] if "rho" in p else ["nu"]
    if "rho" in p and "sigma_t" in p and result.summary["settings"]["anisotropy"] in INFERRED_FORMS:
        keys += ["beta", "sigma"]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        if key != "sigma":
            plot_band(ax, p, key, label="flow", color="C0", truth=tr)
            continue
        plot_band(ax, p, "sigma_r", label=r"flow $\sigma_r$", color="C0", truth=tr)
        plot_band(ax, p, "sigma_t", label=r"flow $\sigma_t$", color="C1",
                  truth=None if tr is None or "sigma_t" not in tr else {"r": tr["r"], "sigma_t": tr["sigma_t"]})
        ax.set_ylabel(r"$\sigma_r(r)$, $\sigma_t(r)$ [km s$^{-1}$]")
    fig.suptitle(f"flow fit: {result.summary['settings']['anisotropy']}, inner {result.summary['settings']['inner']}, "
                 f"{len(result.artefacts.flows)} flow(s)", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_data_vs_model(result, n_bins: int = 10, path: str | os.PathLike | None = None):
    """Binned Sigma(R) and sigma_los(R) of the data against the flows' samples."""
    d = result.artefacts.data
    kin = "vz" in d
    b = binned_sky(d["x"], d["y"], d.get("vz"), d["w"], d.get("verr"), n_bins=n_bins)
    m = model_sky(result, b["edges"])
    fig, axes = plt.subplots(1, 2 if kin else 1, figsize=(10.4 if kin else 5.2, 4.2), squeeze=False)
    ax = axes[0, 0]
    ax.errorbar(b["R"], b["Sigma"], b["Sigma_err"], fmt="o", color="k", ms=4, label="data (binned)")
    ax.plot(b["R"], m["Sigma"][0], color="C1", label="flow samples")
    ax.fill_between(b["R"], m["Sigma"][1], m["Sigma"][2], color="C1", alpha=0.3, lw=0)
    ax.set(xscale="log", yscale="log", xlabel="R [kpc]", ylabel=r"$\Sigma(R)$ [fraction kpc$^{-2}$]")
    ax.legend(fontsize=SMALL_PT)
    if kin:
        ax = axes[0, 1]
        ax.plot(b["R"], b["sigma_los"], "o", color="k", ms=4, label="data (binned)")
        ax.plot(b["R"], m["sigma_los"][0], color="C1", label="flow samples")
        ax.fill_between(b["R"], m["sigma_los"][1], m["sigma_los"][2], color="C1", alpha=0.3, lw=0)
        ax.set(xscale="log", xlabel="R [kpc]", ylabel=r"$\sigma_{\rm los}(R)$ [km/s]")
        ax.legend(fontsize=SMALL_PT)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_losses(result, path: str | os.PathLike | None = None):
    """Training loss with the prior (running mean over 20 steps) and any validation loss of every member."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, h in enumerate(result.artefacts.history):
        loss = np.asarray(h["loss"])
        if loss.size:
            kern = np.ones(min(20, loss.size)) / min(20, loss.size)
            ax.plot(h["step"][kern.size - 1:], np.convolve(loss, kern, "valid"), color=f"C{k % 10}", alpha=0.7,
                    label=f"member {k + 1}: training (penalised)")
        if h["val_loss"]:
            ax.plot(h["val_step"], h["val_loss"], "o-", ms=2, color=f"C{k % 10}", label=f"member {k + 1}: validation")
    ax.set(xlabel="step", ylabel="loss [nats/star]")
    ax.legend(fontsize=SMALL_PT)
    if path is not None:
        save_figure(fig, path)
    return fig


def save_all(result, folder: str | os.PathLike) -> list[Path]:
    """Write profiles.png, data_vs_model.png and loss.png into ``folder``."""
    folder = Path(folder)
    paths = [folder / "profiles.png", folder / "data_vs_model.png", folder / "loss.png"]
    plot_profiles(result, path=paths[0])
    plot_data_vs_model(result, path=paths[1])
    plot_losses(result, path=paths[2])
    return paths
