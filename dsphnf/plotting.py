"""Figures shared by the commands and the book: profiles with credible bands, binned sky profiles.

:func:`plot_band` is the one way a profile with 68 % / 95 % bands is drawn
(median line, shaded bands from the ``key_lo``/``key_hi`` and
``key_lo95``/``key_hi95`` columns of a :class:`dsphnf.result.Result` profile).
:func:`plot_binned_profiles` draws the output of
:func:`dsphnf.binned.binned_profiles` (Sigma(R), sigma_los(R)) against model curves.
Units: r, R in kpc; rho in Msun/kpc^3; M in Msun; nu in kpc^-3; velocities in km/s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .outputs import atomic_file
from .style import DPI, SMALL_PT

__all__ = ["plot_band", "plot_binned_profiles", "save_figure", "AXIS_LABELS"]

#: y-axis label with units, and whether the axis is logarithmic, for each profile quantity.
AXIS_LABELS: dict[str, tuple[str, bool]] = {
    "rho": (r"$\rho_{\rm DM}(r)$ [M$_\odot$ kpc$^{-3}$]", True),
    "M": (r"$M(<r)$ [M$_\odot$]", True),
    "nu": (r"$\nu(r)$ [kpc$^{-3}$, one star]", True),
    "sigma_r": (r"$\sigma_r(r)$ [km s$^{-1}$]", False),
    "beta": (r"$\beta(r)$", False),
}
#: Band width -> (suffix of the lower / upper column, shading alpha).
BANDS: dict[int, tuple[str, str, float]] = {68: ("_lo", "_hi", 0.3), 95: ("_lo95", "_hi95", 0.12)}


def _profile_of(run: Any) -> Mapping[str, np.ndarray]:
    """The profile columns of a :class:`dsphnf.result.Result` or of a plain mapping."""
    return run.profile if hasattr(run, "profile") else run


def plot_band(ax, profile: Any, key: str = "rho", *, label: str | None = None, color: str | None = None,
              truth: Mapping[str, np.ndarray] | None = None, bands: Sequence[int] = (68, 95),
              band_labels: bool = True):
    """Draw a profile's median and its shaded credible bands on ``ax``.

    Parameters
    ----------
    ax : matplotlib Axes
    profile : Result or mapping
        Columns ``r`` [kpc], ``key`` and, where present, ``key_lo``/``key_hi``
        (68 %) and ``key_lo95``/``key_hi95`` (95 %).  A band whose columns are
        absent, entirely NaN or of zero width (lower = upper, e.g. a single
        flow) is skipped and left out of the legend.
    key : str
        The quantity: ``rho`` [Msun/kpc^3], ``M`` [Msun], ``nu`` [kpc^-3],
        ``sigma_r`` [km/s] or ``beta``; sets the y label (with units) and scale.
    label : str, optional
        Legend label of the median (default "median"); the bands are labelled
        "<label> 68 %" and "<label> 95 %".
    color : str, optional
        Colour of the line and bands (default: the axes' next colour).
    truth : mapping, optional
        Columns ``r`` and ``key`` of the true profile, drawn dashed black as "truth".
    bands : sequence of int
        Which bands to draw, from 68 and 95.
    band_labels : bool
        Give the bands legend entries (False: only the median and the truth,
        for figures that overlay several runs and explain the shading once).

    Returns
    -------
    Axes
        ``ax``, with log r axis, labels and a legend of what was drawn.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> r = np.geomspace(0.1, 1.0, 5)
    >>> ax = plot_band(Figure().add_subplot(), {"r": r, "M": r**3, "M_lo": 0.8 * r**3, "M_hi": 1.2 * r**3}, "M")
    >>> [t.get_text() for t in ax.get_legend().get_texts()], ax.get_xlabel()
    (['median', 'median 68 %'], 'r [kpc]')
    """
    p = _profile_of(profile)
    r = np.asarray(p["r"], dtype=float)
    name = label or "median"
    (line,) = ax.plot(r, p[key], color=color, label=name)
    color = line.get_color()
    unknown = [b for b in bands if int(b) not in BANDS]
    if unknown:
        raise ValueError(f"bands {unknown} not available; choose from {sorted(BANDS)}")
    for width in sorted(bands, reverse=True):
        lo_suffix, hi_suffix, alpha = BANDS[int(width)]
        lo, hi = p.get(key + lo_suffix), p.get(key + hi_suffix)
        if lo is None or hi is None:
            continue
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if not np.any(ok) or np.all(lo[ok] == hi[ok]):  # absent, NaN, or of zero width (e.g. one flow)
            continue
        ax.fill_between(r, lo, hi, color=color, alpha=alpha, lw=0,
                        label=f"{name} {int(width)} %" if band_labels else None)
    if truth is not None and key in truth:
        ax.plot(truth["r"], truth[key], "k--", label="truth")
    ylabel, log = AXIS_LABELS.get(key, (key, False))
    ax.set_xscale("log")
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="r [kpc]", ylabel=ylabel)
    ax.legend(fontsize=SMALL_PT, frameon=False)
    return ax


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
        Output of :func:`dsphnf.binned.binned_profiles`.
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
    save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` atomically at the style's resolution (:data:`dsphnf.style.DPI`) and close it.

    The format follows the suffix of ``path`` (PNG when there is none).
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".").lower() or "png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
