"""Summary kinematics of a star sample: weighted medians, maximum-likelihood dispersions.

Velocities in km/s; membership probabilities act as weights.
"""
from __future__ import annotations

import numpy as np

__all__ = ["weighted_median", "ml_dispersion"]


def weighted_median(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted median (the value where the cumulative weight reaches half)."""
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    order = np.argsort(v[keep])
    v, w = v[keep][order], w[keep][order]
    c = np.cumsum(w) - 0.5 * w
    return float(np.interp(0.5 * w.sum(), c, v))


def ml_dispersion(
    v: np.ndarray, err: np.ndarray | float | None = None, weights: np.ndarray | None = None
) -> tuple[float, float, float, float]:
    """Maximum-likelihood mean and intrinsic dispersion with per-star errors.

    Maximises sum_i w_i ln N(v_i | mu, sigma^2 + err_i^2).  Uncertainties are
    from the inverse of the observed information matrix in (mu, sigma).

    Parameters
    ----------
    v : ndarray
        Velocities [km/s].
    err : ndarray, float or None
        1-sigma velocity errors [km/s] (None: no errors).
    weights : ndarray, optional
        Membership weights (default ones).

    Returns
    -------
    mu, mu_err, sigma, sigma_err : float
        Mean and intrinsic dispersion [km/s] with their 1-sigma errors.
    """
    from scipy import optimize

    v = np.asarray(v, dtype=float)
    e2 = np.zeros_like(v) if err is None else np.broadcast_to(np.asarray(err, dtype=float) ** 2, v.shape)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)

    def mu_of(s2: float) -> float:
        a = w / (s2 + e2)
        return float(np.sum(a * v) / np.sum(a))

    def nll(s: float) -> float:
        V = s * s + e2
        if np.any(V <= 0):
            return np.inf
        return float(0.5 * np.sum(w * (np.log(V) + (v - mu_of(s * s)) ** 2 / V)))

    spread = float(np.sqrt(np.sum(w * (v - np.average(v, weights=w)) ** 2) / w.sum()))
    if not np.any(e2 > 0):  # closed form: weighted mean and standard deviation
        sw = w.sum()
        mu = float(np.sum(w * v) / sw)
        if spread == 0.0:
            return mu, 0.0, 0.0, float("nan")
        return mu, spread / np.sqrt(sw), spread, spread / np.sqrt(2.0 * sw)
    hi = max(spread, 1e-6) * 2.0 + 1e-6
    floor = 0.0 if np.all(e2 > 0) else 1e-9 * hi
    res = optimize.minimize_scalar(nll, bounds=(floor, hi), method="bounded", options={"xatol": 1e-10 * hi})
    s = float(res.x)
    mu = mu_of(s * s)
    V = s * s + e2
    r = v - mu
    h_mm = np.sum(w / V)
    h_ms = np.sum(w * 2.0 * s * r / V**2)
    h_ss = -np.sum(w * ((r**2 / V**2 - 1.0 / V) + s * s * (2.0 / V**2 - 4.0 * r**2 / V**3)))
    info = np.array([[h_mm, h_ms], [h_ms, h_ss]])
    try:
        cov = np.linalg.inv(info)
        smu, ss = float(np.sqrt(max(cov[0, 0], 0.0))), float(np.sqrt(max(cov[1, 1], 0.0)))
    except np.linalg.LinAlgError:
        smu, ss = float(1.0 / np.sqrt(h_mm)), float("nan")
    return mu, smu, s, ss
