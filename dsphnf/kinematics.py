"""Weighted summary statistics of a star sample: the one set used everywhere.

Membership probabilities act as weights.  These are the statistics of

- the catalogue summary (``dsphnf info``, :meth:`dsphnf.catalog.Catalog.summary`),
- catalogue validation (the systemic-velocity check),
- the Walker reader (the systemic velocity it removes),
- the flow's standardisation (its length unit L = the half-number radius and
  velocity unit V = the weighted standard deviation of v_z),
- the binned Sigma(R) / sigma_los(R) estimator (:mod:`dsphnf.binned`).

Positions in kpc, velocities in km/s.
"""
from __future__ import annotations

import numpy as np

__all__ = ["weighted_median", "half_number_radius", "weighted_mean", "weighted_mean_std", "kish_size",
           "ml_dispersion"]


def _weights(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)


def weighted_median(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted median: the smallest value at which the cumulative weight reaches half the total.

    No interpolation: the result is always one of the values (the lower
    median for an even number of equal weights).  Zero weights never decide.

    Parameters
    ----------
    values : ndarray
        Sample (any unit; returned in the same unit).
    weights : ndarray, optional
        Non-negative weights, e.g. membership probabilities (default ones).

    Examples
    --------
    >>> weighted_median([4.0, 1.0, 3.0, 2.0])
    2.0
    >>> weighted_median([1.0, 2.0, 3.0, 4.0], [3, 1, 1, 2])  # = median of 1, 1, 1, 2, 3, 4, 4
    2.0
    """
    v = np.asarray(values, dtype=float)
    w = _weights(v, weights)
    order = np.argsort(v)
    cw = np.cumsum(w[order]) / w.sum()
    return float(v[order][np.searchsorted(cw, 0.5)])


def half_number_radius(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Projected half-number radius R_half [kpc]: the weighted median of R = sqrt(x^2 + y^2).

    This is the length unit L of the flow's standardisation and the R_half
    printed by ``dsphnf info``.

    >>> half_number_radius([3.0, 0.0, 1.0], [4.0, 2.0, 0.0])
    2.0
    """
    return weighted_median(np.hypot(np.asarray(x, dtype=float), np.asarray(y, dtype=float)), weights)


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted mean sum(w v) / sum(w), e.g. the systemic velocity [km/s].

    >>> weighted_mean([1.0, 2.0, 4.0], [1.0, 1.0, 2.0])
    2.75
    """
    v = np.asarray(values, dtype=float)
    w = _weights(v, weights)
    return float(np.sum(w * v) / w.sum())


def weighted_mean_std(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted mean and standard deviation sqrt(sum(w (v - mean)^2) / sum(w)).

    The standard deviation has no small-sample correction: it is the maximum
    likelihood dispersion of a Gaussian without measurement errors.

    >>> weighted_mean_std([-1.0, 1.0, 3.0], [1.0, 2.0, 1.0])
    (1.0, 1.4142135623730951)
    """
    v = np.asarray(values, dtype=float)
    w = _weights(v, weights)
    m = weighted_mean(v, w)
    return m, float(np.sqrt(np.sum(w * (v - m) ** 2) / w.sum()))


def kish_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2.

    >>> kish_size([1.0, 1.0, 0.5, 0.5])
    3.6
    """
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / np.sum(w**2))


def ml_dispersion(
    v: np.ndarray, err: np.ndarray | float | None = None, weights: np.ndarray | None = None
) -> tuple[float, float, float, float]:
    """Maximum-likelihood mean and intrinsic dispersion with per-star errors.

    Maximises sum_i w_i ln N(v_i | mu, sigma^2 + err_i^2).  Uncertainties are
    from the inverse of the observed information matrix in (mu, sigma).
    Without errors this is :func:`weighted_mean_std` in closed form.

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

    Examples
    --------
    >>> mu, _, sigma, _ = ml_dispersion([-1.0, 1.0, 3.0], None, [1.0, 2.0, 1.0])
    >>> round(mu, 6), round(sigma, 6)
    (1.0, 1.414214)
    """
    from scipy import optimize

    v = np.asarray(v, dtype=float)
    e2 = np.zeros_like(v) if err is None else np.broadcast_to(np.asarray(err, dtype=float) ** 2, v.shape)
    w = _weights(v, weights)

    def mu_of(s2: float) -> float:
        a = w / (s2 + e2)
        return float(np.sum(a * v) / np.sum(a))

    def nll(s: float) -> float:
        V = s * s + e2
        if np.any(V <= 0):
            return np.inf
        return float(0.5 * np.sum(w * (np.log(V) + (v - mu_of(s * s)) ** 2 / V)))

    mean, spread = weighted_mean_std(v, w)
    if not np.any(e2 > 0):  # closed form: weighted mean and standard deviation
        sw = w.sum()
        if spread == 0.0:
            return mean, 0.0, 0.0, float("nan")
        return mean, spread / np.sqrt(sw), spread, spread / np.sqrt(2.0 * sw)
    hi = max(spread, 1e-6) * 2.0 + 1e-6
    floor = 0.0 if np.all(e2 > 0) else 1e-9 * hi
    res = optimize.minimize_scalar(nll, bounds=(floor, hi), method="bounded", options={"xatol": 1e-10 * hi})
    s = float(res.x)
    mu = mu_of(s * s)
    mu_err, s_err = _ml_errors(v, e2, w, mu, s)
    return mu, mu_err, s, s_err


def _ml_errors(v: np.ndarray, e2: np.ndarray, w: np.ndarray, mu: float, s: float) -> tuple[float, float]:
    """1-sigma errors of (mu, sigma) from the inverse observed information matrix."""
    V = s * s + e2
    r = v - mu
    h_mm = np.sum(w / V)
    h_ms = np.sum(w * 2.0 * s * r / V**2)
    h_ss = -np.sum(w * ((r**2 / V**2 - 1.0 / V) + s * s * (2.0 / V**2 - 4.0 * r**2 / V**3)))
    info = np.array([[h_mm, h_ms], [h_ms, h_ss]])
    try:
        cov = np.linalg.inv(info)
        return float(np.sqrt(max(cov[0, 0], 0.0))), float(np.sqrt(max(cov[1, 1], 0.0)))
    except np.linalg.LinAlgError:
        return float(1.0 / np.sqrt(h_mm)), float("nan")
