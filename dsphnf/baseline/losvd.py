"""The baseline's line-of-sight velocity distribution (LOSVD): Gaussian, or heavy-tailed with a free kurtosis.

The Jeans equations give the LOSVD's second moment, sigma_los^2(R); its shape
is the distribution function's. Where the potential is deep for the tracer
(a cored tracer in a dense halo, radial orbits) the LOSVD has heavy tails: a
kurtosis k = <v^4> / <v^2>^2 of 5-6.5 on a Burkert halo with Osipkov-Merritt
orbits, against 3 for a Gaussian. A Gaussian likelihood then underestimates
the variance of a dispersion by a factor (k - 1) / 2 and its bands are too
narrow (``benchmarks/RESULTS.md``, chapter 7's radial mock).

``losvd="kurtosis"`` replaces the Gaussian by a Gaussian *scale mixture* with
log-normally spread variances,

    f(v) = sum_j W_j N(v | 0, m_j sigma_los^2),   m_j = exp(tau z_j) / sum_l W_l exp(tau z_l),

on the :data:`N_NODES` Gauss-Hermite nodes z_j (weights W_j, summing to one).
Its variance is sigma_los^2 exactly for every tau, so the Jeans equations hold
as before; tau is set by the kurtosis k >= 3 (tau = 0: the Gaussian), one
free parameter ``kurtosis`` shared by all radii. Velocity errors convolve
each component exactly: N(v | 0, m_j sigma_los^2 + err^2). A scale mixture
cannot be flatter than a Gaussian (k < 3, e.g. tangential orbits); there
the fit sits at k = 3, the Gaussian.

The kurtosis of a dwarf's stars changes with projected radius R (Lokas,
Mamon & Prada 2005 fit Draco's kurtosis profile): on an isotropic Burkert
halo with a Plummer tracer it falls from 4.4-4.9 inside 1.4 R_half to 3.4
beyond 2.8 R_half, and with radial orbits in the outskirts it rises outwards.
``losvd="kurtosis-radial"`` lets it: two free parameters, ``kurtosis_inner``
and ``kurtosis_outer``, the kurtosis at R_half/4 and 4 R_half
(:data:`KURTOSIS_NODES`, R_half the stars' median projected radius),
linear in ln R between them and constant beyond (:func:`kurtosis_at`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize

from ..errors import FitError
from .sampler import _laplace_cov  # the inverse finite-difference Hessian behind the sampler's start

__all__ = ["LOSVD_SHAPES", "LOSVD_PARAMETERS", "KURTOSIS_NODES", "DEFAULT_LOSVD", "N_NODES", "losvd_shape",
           "variance_multipliers", "log_losvd", "kurtosis_at", "kurtosis_of", "heavy_tails", "DispersionFit",
           "fit_dispersion"]

#: The LOSVD shapes of the baseline: ``gaussian`` (kurtosis 3), ``kurtosis`` (a free kurtosis >= 3 shared by all
#: radii) and ``kurtosis-radial`` (a free kurtosis at each of :data:`KURTOSIS_NODES`, linear in ln R between).
LOSVD_SHAPES = ("gaussian", "kurtosis", "kurtosis-radial")
#: The free parameters of each shape.
LOSVD_PARAMETERS: dict[str, tuple[str, ...]] = {"gaussian": (), "kurtosis": ("kurtosis",),
                                                "kurtosis-radial": ("kurtosis_inner", "kurtosis_outer")}
#: Projected radii of ``kurtosis_inner`` and ``kurtosis_outer`` in units of the stars' median projected radius.
KURTOSIS_NODES = (0.25, 4.0)
#: The default shape (``dsphnf baseline --losvd``).
DEFAULT_LOSVD = "gaussian"
#: Gauss-Hermite nodes of the scale mixture.
N_NODES = 8

_Z, _W = hermegauss(N_NODES)
_W = _W / _W.sum()
_LOG_2PI = float(np.log(2.0 * np.pi))
_TAU = np.linspace(0.0, 3.0, 6001)
_EXP = np.exp(np.outer(_TAU, _Z))
_KURTOSIS = 3.0 * (_EXP**2 @ _W) / (_EXP @ _W) ** 2  # increasing in tau, from 3


def losvd_shape(name: str, flag: str = "--losvd", error: type[Exception] = FitError) -> str:
    """``name`` if it is one of :data:`LOSVD_SHAPES`, else ``error`` in one line naming ``flag``.

    Examples
    --------
    >>> losvd_shape("kurtosis")
    'kurtosis'
    >>> losvd_shape("student")
    Traceback (most recent call last):
    ...
    dsphnf.errors.FitError: unknown --losvd 'student': use one of gaussian, kurtosis, kurtosis-radial
    """
    if name not in LOSVD_SHAPES:
        raise error(f"unknown {flag} {name!r}: use one of {', '.join(LOSVD_SHAPES)}")
    return name


def variance_multipliers(kurtosis: np.ndarray) -> np.ndarray:
    """The mixture's variance multipliers m_j for each kurtosis, shape (...) -> (..., N_NODES).

    sum_j W_j m_j = 1 (the variance is sigma_los^2) and 3 sum_j W_j m_j^2 = k
    (the kurtosis); k = 3 gives m_j = 1, the Gaussian.

    Examples
    --------
    >>> from numpy.polynomial.hermite_e import hermegauss
    >>> w = hermegauss(N_NODES)[1]; w = w / w.sum()
    >>> m = variance_multipliers(np.array([3.0, 6.0]))
    >>> np.round(m @ w, 12).tolist(), np.round(3 * (m**2 @ w), 4).tolist()
    ([1.0, 1.0], [3.0, 6.0])
    """
    k = np.asarray(kurtosis, dtype=float)
    if np.any(k < 3.0) or np.any(k > _KURTOSIS[-1]):
        raise FitError(f"the LOSVD kurtosis must be in [3, {_KURTOSIS[-1]:.0f}]")
    tau = np.interp(k, _KURTOSIS, _TAU)  # the table's steps of 5e-4 in tau leave k off by < 1e-5
    e = np.exp(np.multiply.outer(tau, _Z))
    return e / (e @ _W)[..., None]


def log_losvd(dv: np.ndarray, s2: np.ndarray, e2: np.ndarray, kurtosis: np.ndarray | None = None) -> np.ndarray:
    """ln of the LOSVD convolved with each star's velocity error, (B, N).

    Parameters
    ----------
    dv : ndarray, (B, N)
        v - v_sys [km/s].
    s2 : ndarray, (B, N)
        The model's sigma_los^2 at each star [(km/s)^2].
    e2 : ndarray, (N,)
        Squared velocity errors [(km/s)^2].
    kurtosis : ndarray (B,) or (B, N), or None
        The intrinsic LOSVD's kurtosis (>= 3), one per row or one per row and
        star (:func:`kurtosis_at`); None: a Gaussian.

    Examples
    --------
    >>> dv, s2, e2 = np.array([[0.0, 40.0]]), np.full((1, 2), 100.0), np.zeros(2)
    >>> bool(np.allclose(log_losvd(dv, s2, e2, np.array([3.0])), log_losvd(dv, s2, e2)))
    True
    >>> (log_losvd(dv, s2, e2, np.array([6.0])) > log_losvd(dv, s2, e2)).tolist()  # a higher peak, a heavier tail
    [[True, True]]
    """
    if kurtosis is None:
        var = s2 + e2
        return -0.5 * (np.log(2.0 * np.pi * var) + dv * dv / var)
    m = variance_multipliers(kurtosis)  # (B, K) or (B, N, K)
    m = m[:, None, :] if m.ndim == 2 else m
    inv = m * s2[..., None]  # (B, N, K), in place from here: this is the baseline's inner loop
    inv += e2[None, :, None]
    np.reciprocal(inv, out=inv)
    half_d2 = -0.5 * dv * dv
    x = half_d2[..., None] * inv
    np.exp(x, out=x)
    np.sqrt(inv, out=inv)
    x *= inv
    with np.errstate(divide="ignore"):
        out = np.log(x @ _W) - 0.5 * _LOG_2PI
    far = ~np.isfinite(out)  # a star so far out that every component underflows: the broadest one, in logs
    if np.any(far):
        var = (m[..., -1] * s2 + e2[None, :])[far]
        out[far] = np.log(_W[-1]) - 0.5 * (_LOG_2PI + np.log(var)) + half_d2[far] / var
    return out


def kurtosis_at(R: np.ndarray, r_half: float, inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """The LOSVD's kurtosis at projected radii ``R`` [kpc] (N,) for rows of node values (B,) -> (B, N).

    ``inner`` and ``outer`` are the kurtosis at R_half/4 and 4 R_half
    (:data:`KURTOSIS_NODES`; ``r_half`` [kpc], the stars' median projected
    radius); linear in ln R between the nodes, constant beyond them.

    Examples
    --------
    >>> kurtosis_at(np.array([0.01, 0.05, 0.2, 0.8, 3.0]), 0.2, np.array([5.0]), np.array([3.0])).tolist()
    [[5.0, 5.0, 4.0, 3.0, 3.0]]
    """
    lo, hi = (np.log(x * r_half) for x in KURTOSIS_NODES)
    a = np.clip((np.log(np.asarray(R, dtype=float)) - lo) / (hi - lo), 0.0, 1.0)
    inner, outer = np.asarray(inner, dtype=float)[:, None], np.asarray(outer, dtype=float)[:, None]
    return inner + (outer - inner) * a[None, :]


def kurtosis_of(z: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The (weighted) kurtosis <z^4> / <z^2>^2 of values about zero, e.g. velocities standardised by a model.

    Examples
    --------
    >>> round(kurtosis_of(np.random.default_rng(0).normal(size=200_000)), 1)
    3.0
    """
    w = np.ones_like(z) if weights is None else np.asarray(weights, dtype=float)
    m2, m4 = np.average(z**2, weights=w), np.average(z**4, weights=w)
    return float(m4 / m2**2)


def heavy_tails(kurtosis: float, n_eff: float) -> bool:
    """Whether a kurtosis of ``n_eff`` stars' velocities is above a Gaussian's by more than three standard errors.

    The kurtosis of n Gaussian velocities scatters about 3 by sqrt(24 / n)
    (0.15 for 1000 stars); ``dsphnf baseline`` suggests ``--losvd kurtosis``
    above 3 + 3 sqrt(24 / n), where a Gaussian likelihood's errors of a
    dispersion are about sqrt((k - 1) / 2) times too small.

    Examples
    --------
    >>> heavy_tails(3.6, 1000), heavy_tails(3.6, 200)
    (True, False)
    """
    return bool(kurtosis > 3.0 + 3.0 * np.sqrt(24.0 / max(float(n_eff), 1.0)))


@dataclass(frozen=True)
class DispersionFit:
    """The maximum-likelihood dispersion of one group of stars, and how honest its error is.

    ``sigma2`` [(km/s)^2] and ``kurtosis`` (3 for the Gaussian) at the maximum;
    ``error`` = sqrt([H^-1]), the standard error of ln sigma^2 the likelihood's
    curvature H claims (kurtosis profiled out);
    ``error_ratio`` = sqrt([H^-1 J H^-1] / [H^-1]) for ln sigma^2: the
    spread the stars' scores give the estimate (J, their outer product) over
    the one the likelihood's curvature H claims. One where the likelihood's
    bands are right, above one where they are too narrow by that factor
    (a Gaussian on a LOSVD of kurtosis k: about sqrt((k - 1) / 2)).
    """

    losvd: str
    sigma2: float
    kurtosis: float
    error: float
    error_ratio: float


def fit_dispersion(v: np.ndarray, verr: np.ndarray | None = None, losvd: str = DEFAULT_LOSVD) -> DispersionFit:
    """Fit a zero-mean LOSVD of one dispersion to velocities ``v`` [km/s] and measure its error's honesty.

    For a group of stars whose model dispersion is nearly the same (a ring
    of projected radius): does the ``losvd`` likelihood claim the right
    error of sigma^2? See :class:`DispersionFit`.

    Examples
    --------
    Stars of two dispersions, 8 and 16 km/s (a kurtosis of 4.69):

    >>> rng = np.random.default_rng(1)
    >>> v = rng.normal(0.0, np.where(rng.random(20_000) < 0.8, 8.0, 16.0))
    >>> gauss, heavy = fit_dispersion(v), fit_dispersion(v, losvd="kurtosis")
    >>> round(gauss.error_ratio, 1), round(heavy.error_ratio, 1), round(heavy.kurtosis, 1)
    (1.4, 1.0, 4.7)
    """
    v = np.asarray(v, dtype=float)
    e2 = np.zeros_like(v) if verr is None else np.asarray(verr, dtype=float) ** 2
    free = losvd_shape(losvd) != "gaussian"  # one group of stars: kurtosis-radial is one free kurtosis too

    def per_star(p: np.ndarray) -> np.ndarray:
        k = np.array([p[1]]) if free else None
        return log_losvd(v[None], np.full((1, v.size), np.exp(p[0])), e2, k)[0]

    x0 = [np.log(max(np.mean(v**2 - e2), 1e-6))] + ([4.0] if free else [])
    bounds = [(None, None)] + ([(3.0, 30.0)] if free else [])
    x = optimize.minimize(lambda p: -per_star(p).sum(), x0, method="L-BFGS-B", bounds=bounds).x
    h = 1e-4
    n = 2 if free and x[1] > 3.0 + 2 * h else 1  # on the Gaussian edge the kurtosis is not free: ln sigma^2 alone
    step = np.eye(x.size)[:n] * h
    scores = np.array([(per_star(x + step[i]) - per_star(x - step[i])) / (2 * h) for i in range(n)])
    inv = _laplace_cov(lambda p: np.array([per_star(np.r_[q, x[n:]]).sum() for q in p]), x[:n], np.full(n, h))
    ratio = float(np.sqrt((inv @ (scores @ scores.T) @ inv)[0, 0] / inv[0, 0]))
    return DispersionFit(losvd, float(np.exp(x[0])), float(x[1]) if free else 3.0, float(np.sqrt(inv[0, 0])), ratio)
