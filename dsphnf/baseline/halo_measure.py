"""The default prior measure of the baseline's halo: flat in the log density the data measure.

A Zhao halo rho(r) = rho0 x^-gamma (1 + x^alpha)^((gamma - beta)/alpha),
x = r / r_s, with priors flat in log10 rho0, log10 r_s and gamma puts most of
its prior volume where the data cannot tell the parameters apart: every
r_s well beyond the stars gives the same pure power law rho ~ r^-gamma inside
them, so the flat log10 r_s prior (up to 32 kpc) piles prior mass onto that
two-parameter sub-family.  Marginalised over it, the posterior of rho at
R_half is ~1.3x narrower than the likelihood allows and the bands undercover
(benchmarks/calibration_baseline.md).

The default measure instead is flat in what the stars constrain: the log
density at ``k + 1`` radii spread evenly in ln r over the data,
r_j = R_half / 4 x 16^(j/k), j = 0..k, for ``k`` free shape parameters among
log10 r_s, gamma and alpha_dm (``k`` = 3: 0.25, 0.63, 1.59, 4 R_half; ``k`` =
2: 0.25, 1, 4; ``k`` = 1, e.g. ``--halo nfw``: 0.25, 4).  The log density at
the first radius moves one-to-one with log10 rho0, so the measure in the
sampled parameters is the Jacobian of the ``k`` log-density differences
ln rho(r_{j+1}) - ln rho(r_j) with respect to the free shape parameters:

    p(log10 rho0, log10 r_s, gamma, alpha) ∝ |det d(Delta_1..Delta_k) / d(ln r_s, gamma, alpha)|

inside the usual boxes (or user priors) of the parameters.  It vanishes as
r_s -> infinity (every difference tends to -gamma ln(r_{j+1}/r_j), whatever
r_s) and as r_s -> 0 (every slope tends to -beta): parameters that change
nothing the data see get no prior weight of their own, and inside the data the
prior on the density profile is flat.  The closed-form derivatives, with
y = x^alpha / (1 + x^alpha):

    d ln rho / d ln r_s = gamma + (beta - gamma) y      (minus the log slope at r)
    d ln rho / d gamma  = -ln(y) / alpha
    d ln rho / d alpha  = (beta - gamma) [ln(1 + x^alpha) / alpha - y ln x] / alpha
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["MEASURE_RADII", "SHAPE_PARAMETERS", "log_density_derivatives", "log_halo_measure"]

#: Radii of the measure in units of R_half, for 1, 2 and 3 free shape parameters: R_half/4 to 4 R_half.
MEASURE_RADII: dict[int, tuple[float, ...]] = {k: tuple(0.25 * 16.0 ** (j / k) for j in range(k + 1))
                                               for k in (1, 2, 3)}

#: The halo parameters the measure covers (log10 rho0 enters one-to-one).
SHAPE_PARAMETERS = ("log10_rs", "gamma", "alpha_dm")


def log_density_derivatives(r: np.ndarray, rs: np.ndarray, gamma: np.ndarray, alpha: np.ndarray,
                            beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """d ln rho / d (ln r_s, gamma, alpha) of a Zhao halo, batched: params (B,), r (n,) -> three (B, n).

    Parameters
    ----------
    r : ndarray
        Radii [kpc], shape (n,).
    rs, gamma, alpha, beta : ndarray
        Scale radius [kpc], inner slope, transition sharpness and outer slope, shape (B,).

    Examples
    --------
    >>> r, rs = np.array([0.5]), np.array([1.0])
    >>> g, a, b = np.array([1.0]), np.array([1.0]), np.array([3.0])
    >>> d_rs, d_g, d_a = log_density_derivatives(r, rs, g, a, b)
    >>> round(float(d_rs[0, 0]), 6), round(float(d_g[0, 0]), 6)  # 1 + 2/3 and ln 3
    (1.666667, 1.098612)
    >>> round(float(d_a[0, 0]), 6)  # 2 (ln 1.5 - ln(0.5) / 3)
    1.273028
    """
    lx = np.log(np.asarray(r, dtype=float))[None, :] - np.log(rs)[:, None]
    a = alpha[:, None]
    y = 1.0 / (1.0 + np.exp(-a * lx))
    d_rs = gamma[:, None] + (beta - gamma)[:, None] * y
    d_gamma = np.logaddexp(0.0, -a * lx) / a  # -ln(y) / alpha, stable for any x
    d_alpha = (beta - gamma)[:, None] * (np.logaddexp(0.0, a * lx) / a - y * lx) / a
    return d_rs, d_gamma, d_alpha


def log_halo_measure(params: Mapping[str, np.ndarray], free: Sequence[str], r_half: float) -> np.ndarray:
    """ln |Jacobian| of the log-density differences at the measure radii, (B,).

    Parameters
    ----------
    params : mapping
        Unpacked parameters (:meth:`BaselineModel.unpack`): ``rs`` [kpc],
        ``gamma``, ``alpha_dm``, ``beta_dm``, arrays of shape (B,).
    free : sequence of str
        The free shape parameters among :data:`SHAPE_PARAMETERS`.
    r_half : float
        The data's median projected radius [kpc]; radii r_j = c_j r_half.

    Returns
    -------
    ndarray
        Log measure (up to a constant; 0 when no shape parameter is free).

    Examples
    --------
    >>> p = {"rs": np.array([1.0, 1e3]), "gamma": np.array([1.0, 1.0]),
    ...      "alpha_dm": np.ones(2), "beta_dm": np.full(2, 3.0)}
    >>> m = log_halo_measure(p, ("log10_rs", "gamma"), 0.2)
    >>> bool(m[0] - m[1] > 5.0)  # r_s = 1000 kpc, far beyond the stars, has almost no prior weight
    True
    """
    free = [n for n in SHAPE_PARAMETERS if n in free]
    B = np.asarray(params["rs"]).shape[0]
    if not free:
        return np.zeros(B)
    r = r_half * np.asarray(MEASURE_RADII[len(free)])
    derivatives = log_density_derivatives(r, params["rs"], params["gamma"], params["alpha_dm"], params["beta_dm"])
    cols = dict(zip(SHAPE_PARAMETERS, (np.diff(d, axis=1) for d in derivatives)))
    jacobian = np.stack([cols[n] for n in free], axis=2)  # (B, k differences, k parameters)
    with np.errstate(divide="ignore"):
        return np.log(np.abs(np.linalg.det(jacobian)))
