"""The one binned estimator of the sky profiles Sigma(R) and sigma_los(R), and its chi^2 against a model.

The fits are unbinned; these binned summaries are for display and checks
(``dsphnf demo``, the flow's data-vs-model figure, the book):

- annuli holding equal numbers of stars (edges at quantiles of R), or given edges;
- Sigma(R) [stars/kpc^2] = membership weight in the annulus / its area, with
  Poisson errors sqrt(sum w^2) / area;
- sigma_los(R) [km/s]: the maximum-likelihood intrinsic dispersion with the
  per-star velocity errors removed (:func:`dsphnf.kinematics.ml_dispersion`),
  with bootstrap errors (resampling the stars of the annulus).

The exact model counterpart, averaged over the same annuli, is
:func:`dsphnf.projection.annulus_averages`; :func:`chi2` compares the two.
Units: R in kpc, velocities in km/s.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from .kinematics import kish_size, ml_dispersion

__all__ = ["Stars", "annulus_edges", "binned_profiles", "chi2", "Chi2", "BINNED_COLUMNS"]

#: Per-annulus columns of :func:`binned_profiles` (the last two only with velocities).
BINNED_COLUMNS = ("R_lo", "R_hi", "R", "n", "Sigma", "Sigma_err", "sigma_los", "sigma_los_err")
#: Fewest stars in an annulus for a dispersion (fewer: NaN).
MIN_STARS_DISPERSION = 3


class Stars(Protocol):
    """What the estimator reads from a catalogue (e.g. :class:`dsphnf.catalog.Catalog`)."""

    x: np.ndarray  # kpc
    y: np.ndarray  # kpc
    vz: np.ndarray | None  # km/s
    vz_err: np.ndarray | None  # km/s

    @property
    def weights(self) -> np.ndarray: ...


def annulus_edges(R: np.ndarray, n_bins: int) -> np.ndarray:
    """Edges [kpc] of ``n_bins`` annuli holding equal numbers of stars: 0, the R quantiles, max R.

    >>> annulus_edges(np.arange(1.0, 9.0), 2)
    array([0. , 4.5, 8. ])
    """
    edges = np.quantile(np.asarray(R, dtype=float), np.linspace(0.0, 1.0, n_bins + 1))
    edges[0] = 0.0
    return edges


def binned_profiles(stars: Stars, n_bins: int = 10, n_boot: int = 200, seed: int = 0,
                    edges: np.ndarray | None = None, normalise: bool = False) -> dict[str, np.ndarray]:
    """Sigma(R) and sigma_los(R) of a star sample in annuli.

    Parameters
    ----------
    stars : Catalog
        x, y [kpc], optional vz, vz_err [km/s]; membership probabilities act
        as weights.
    n_bins : int
        Number of equal-number annuli (ignored when ``edges`` is given).
    n_boot : int
        Bootstrap resamples (within each annulus) for the sigma_los errors;
        0 uses the Gaussian error sigma / sqrt(2 (n_kish - 1)) instead (fast,
        for large samples).
    seed : int
        Seed of the bootstrap.
    edges : ndarray, optional
        Annulus edges [kpc], increasing.  Stars outside [edges[0], edges[-1]]
        fall in no annulus (the sum of ``n`` then counts fewer stars than given).
    normalise : bool
        Divide Sigma and its error by the total weight of all stars: the
        fraction of the stars per kpc^2 (to compare samples of different sizes).

    Returns
    -------
    dict
        One value per annulus: ``R_lo``, ``R_hi``, ``R`` (weighted mean R;
        NaN for an empty annulus) [kpc], ``n`` (stars), ``Sigma``,
        ``Sigma_err`` [stars/kpc^2, weighted], and with velocities
        ``sigma_los``, ``sigma_los_err`` [km/s] (NaN with fewer than 3 stars).

    Examples
    --------
    >>> from dsphnf.catalog import Catalog
    >>> b = binned_profiles(Catalog(np.linspace(0.1, 1.0, 40), np.zeros(40)), n_bins=4)
    >>> b["n"].tolist(), round(float(b["Sigma"][0] * np.pi * b["R_hi"][0] ** 2), 6)
    ([10.0, 10.0, 10.0, 10.0], 10.0)
    """
    x, y = np.asarray(stars.x, dtype=float), np.asarray(stars.y, dtype=float)
    R, w = np.hypot(x, y), np.asarray(stars.weights, dtype=float)
    edges = annulus_edges(R, n_bins) if edges is None else np.asarray(edges, dtype=float)
    nb = len(edges) - 1
    idx = np.searchsorted(edges, R, side="right") - 1
    idx[R == edges[-1]] = nb - 1  # the outermost annulus includes its outer edge
    rng = np.random.default_rng(seed)
    scale = 1.0 / w.sum() if normalise else 1.0
    out: dict[str, list] = {k: [] for k in BINNED_COLUMNS}
    for b in range(nb):
        sel = idx == b
        area = np.pi * (edges[b + 1] ** 2 - edges[b] ** 2)
        wb = w[sel]
        out["R_lo"].append(edges[b])
        out["R_hi"].append(edges[b + 1])
        out["R"].append(np.average(R[sel], weights=wb) if wb.sum() > 0 else np.nan)
        out["n"].append(int(sel.sum()))
        out["Sigma"].append(scale * wb.sum() / area)
        out["Sigma_err"].append(scale * np.sqrt(np.sum(wb**2)) / area)
        if stars.vz is not None:
            err = None if stars.vz_err is None else np.asarray(stars.vz_err, dtype=float)[sel]
            sig, sig_err = _annulus_dispersion(np.asarray(stars.vz, dtype=float)[sel], err, wb, n_boot, rng)
            out["sigma_los"].append(sig)
            out["sigma_los_err"].append(sig_err)
    res = {k: np.asarray(v, dtype=float) for k, v in out.items()}
    if stars.vz is None:
        del res["sigma_los"], res["sigma_los_err"]
    return res


def _annulus_dispersion(v: np.ndarray, err: np.ndarray | None, w: np.ndarray, n_boot: int,
                        rng: np.random.Generator) -> tuple[float, float]:
    """ML sigma_los [km/s] of one annulus and its bootstrap (or Gaussian, n_boot = 0) error."""
    if v.size < MIN_STARS_DISPERSION:
        return float("nan"), float("nan")
    sig = ml_dispersion(v, err, w)[2]
    if n_boot <= 0:
        return sig, sig / np.sqrt(2.0 * max(kish_size(w) - 1.0, 1.0))
    boots = []
    for _ in range(n_boot):
        k = rng.integers(0, v.size, v.size)
        boots.append(ml_dispersion(v[k], None if err is None else err[k], w[k])[2])
    return sig, float(np.std(boots, ddof=1))


class Chi2(NamedTuple):
    """chi^2 of binned data against a model: the value, the number of annuli used, the p-value."""

    value: float
    n: int
    p: float


def chi2(data: np.ndarray, err: np.ndarray, model: np.ndarray) -> Chi2:
    """chi^2 = sum ((data - model) / err)^2 over the finite points with err > 0, and its p-value.

    The p-value is the chi^2 survival function for as many degrees of freedom
    as points (the model has no parameters fitted to these data).

    >>> c = chi2(np.array([1.0, 2.0, np.nan]), np.array([0.5, 1.0, 1.0]), np.array([2.0, 2.0, 2.0]))
    >>> c.value, c.n, round(c.p, 4)
    (4.0, 2, 0.1353)
    """
    from scipy.stats import chi2 as chi2_distribution

    data, err, model = (np.asarray(a, dtype=float) for a in (data, err, model))
    ok = np.isfinite(data) & np.isfinite(err) & (err > 0) & np.isfinite(model)
    value = float(np.sum(((data[ok] - model[ok]) / err[ok]) ** 2))
    n = int(ok.sum())
    return Chi2(value, n, float(chi2_distribution.sf(value, n)))
