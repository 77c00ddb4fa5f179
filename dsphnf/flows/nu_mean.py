"""An optional mean function of the smoothness prior on ln nu: a Zhao profile fitted to the stars' projected radii.

Why: the roughness penalty of :mod:`dsphnf.flows.prior` on the third
logarithmic derivative of ln nu leaves free only what is quadratic in ln r,
a log-slope that changes *linearly* in ln r. A real tracer turns over: a
Plummer sphere's slope goes from 0 in the core to -5 outside within about a
decade of radius. Where the stars are few (the centre), the penalty then
wins against the likelihood and pulls the turnover apart: the core is made
cuspy. On 50 mocks of a Plummer tracer (1000 sky positions each) flows
trained with the plain penalty had nu 0.041 dex too dense at R_half/4
(median; the untrained start was unbiased), and 0.17 dex with a penalty
3.3 times narrower (tau = 0.3); penalising the departure from the true
Plummer profile instead removed the bias (-0.006 dex) at the same scatter
(benchmarks/RESULTS.md).

With ``TrainConfig(nu_mean="zhao")`` the penalty is put on the departure of
ln nu from a mean function, a Zhao profile

    ln nu_Z(r) = -gamma ln r - ((beta - gamma)/alpha) ln(1 + (r/r_s)^alpha) + const,

fitted by maximum likelihood to the same stars' projected radii (the exact
Abel projection of :mod:`dsphnf.flows.surface`, their membership weights).
The family holds Plummer (2, 5, 0), the Gaia Challenge's non-Plummer tracers
and cusped tracers, so for all of them the prior is centred on a turnover of
the right sharpness and place, and the flow still answers for every departure
the data show. The mean is fixed before training (an empirical-Bayes mean); it
enters the objective only through its third derivative. It is not the
default: the fitted mean is itself noisy where the stars are few, and the
flows follow it there. On calibrate's single flows (20 mocks each) it helped
an isotropic Burkert halo a little, traded a third of the central bias on a
radial Osipkov-Merritt mock for a wider scatter, and made rho 0.075 dex low
at R_half/4 under a cusped (gamma = 0.5) tracer (benchmarks/RESULTS.md).

Units: standardised (radii in units of the flow's length scale L).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .surface import line_of_sight_terms, weighted_mean

__all__ = ["NU_MEANS", "ZhaoMean", "describe", "fit_zhao_mean", "zhao_log_nu"]

#: accepted values of ``TrainConfig.nu_mean``
NU_MEANS = ("none", "zhao")
#: bounds of the fitted shape: inner slope gamma, outer slope beta, sharpness alpha
GAMMA_RANGE, BETA_RANGE, ALPHA_RANGE = (0.0, 2.5), (3.2, 12.0), (0.3, 8.0)
#: ln r grid of the fit's own table [ln L]
_GRID = (math.log(1e-4), math.log(1e4), 161)
#: most distinct radii the fit sees (more are merged in runs of neighbours)
MOST_RADII = 2000
#: line-of-sight nodes of the fit (the flow's own loss uses 65)
_N_S = 33


def zhao_log_nu(lnr: torch.Tensor, gamma, beta, alpha, ln_rs) -> torch.Tensor:
    """ln nu of a Zhao profile at ln r (unnormalised), broadcasting over the parameters.

    >>> t = torch.tensor([-5.0, 0.0, 5.0], dtype=torch.float64)
    >>> plummer = zhao_log_nu(t, 0.0, 5.0, 2.0, 0.0)
    >>> torch.allclose(plummer, -2.5 * torch.log1p(torch.exp(2 * t)))
    True
    """
    return -gamma * lnr - (beta - gamma) / alpha * torch.nn.functional.softplus(alpha * (lnr - ln_rs))


def _bounded(z: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.sigmoid(z)


def _unbounded(x: float, lo: float, hi: float) -> float:
    p = (x - lo) / (hi - lo)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class ZhaoMean:
    """A Zhao profile's shape, the mean of the ln nu prior (one member, or (K, 1) tensors for K members).

    Attributes
    ----------
    gamma, beta, alpha : torch.Tensor
        Inner and outer log-slopes and the sharpness of the turnover.
    ln_rs : torch.Tensor
        ln of the turnover radius [ln L].
    """

    gamma: torch.Tensor
    beta: torch.Tensor
    alpha: torch.Tensor
    ln_rs: torch.Tensor

    def log_nu(self, lnr: torch.Tensor) -> torch.Tensor:
        """ln nu_Z at ln r [ln L] (up to a constant), on ``lnr``'s device and dtype."""
        p = [t.to(lnr) for t in (self.gamma, self.beta, self.alpha, self.ln_rs)]
        return zhao_log_nu(lnr, *p)

    def as_dict(self, length_scale: float = 1.0) -> dict[str, float]:
        """The shape as floats, r_s in units of ``length_scale`` (one member only)."""
        return {"gamma": float(self.gamma), "beta": float(self.beta), "alpha": float(self.alpha),
                "r_s": float(torch.exp(self.ln_rs)) * length_scale}

    def take(self, idx: torch.Tensor) -> "ZhaoMean":
        """The means of the members ``idx`` (a member axis only)."""
        return ZhaoMean(self.gamma[idx], self.beta[idx], self.alpha[idx], self.ln_rs[idx])

    @staticmethod
    def stack(means: list["ZhaoMean"]) -> "ZhaoMean":
        """K members' means as one with (K, 1) tensors."""
        return ZhaoMean(*(torch.stack([getattr(m, k) for m in means]).reshape(-1, 1)
                          for k in ("gamma", "beta", "alpha", "ln_rs")))


def describe(mean: ZhaoMean | None, length_scale: float) -> dict[str, float] | None:
    """One member's mean for its summary: gamma, beta, alpha and r_s [kpc] (None without a mean).

    ``length_scale`` is the member's L [kpc], the unit of the radii the mean was fitted to.

    >>> one = torch.tensor(0.0, dtype=torch.float64)
    >>> describe(ZhaoMean(one, one + 5.0, one + 2.0, one), 0.25)
    {'gamma': 0.0, 'beta': 5.0, 'alpha': 2.0, 'r_s': 0.25}
    >>> describe(None, 0.25) is None
    True
    """
    return None if mean is None else mean.as_dict(length_scale)


def _shape(z: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (_bounded(z[0], *GAMMA_RANGE), _bounded(z[1], *BETA_RANGE), _bounded(z[2], *ALPHA_RANGE), z[3])


def _nll(z: torch.Tensor, lnr: torch.Tensor, dt: float, R: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean -ln Sigma(R) of the Zhao profile with unbounded parameters ``z`` [nats per star]."""
    lnnu = zhao_log_nu(lnr, *_shape(z))
    ln_norm = torch.logsumexp(lnnu + 3.0 * lnr, dim=0) + math.log(4.0 * math.pi * dt)  # Int 4 pi r^3 nu dln r
    _, _, terms = line_of_sight_terms(lnr, lnnu - ln_norm, R, _N_S)
    return weighted_mean(-(math.log(2.0) + torch.logsumexp(terms, dim=-1)), weights)


def _distinct(R: torch.Tensor, w: torch.Tensor, most: int = MOST_RADII) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct radii of stars of positive weight, sorted, with their summed weights.

    A resample's duplicated rows and the same stars as multiplicity weights
    (:mod:`~dsphnf.flows.batched`) then give the fit the same numbers, bit for bit.
    More than ``most`` radii are merged in runs of neighbours into ``most``
    (each the weighted mean radius of its run, with the run's weight).
    """
    keep = w > 0
    R, inverse = torch.unique(R[keep], sorted=True, return_inverse=True)
    w = torch.zeros_like(R).index_add_(0, inverse, w[keep])
    if len(R) <= most:
        return R, w
    run = torch.div(torch.arange(len(R), device=R.device) * most, len(R), rounding_mode="floor")
    wsum = torch.zeros(most, dtype=R.dtype, device=R.device).index_add_(0, run, w)
    return torch.zeros_like(wsum).index_add_(0, run, w * R) / wsum, wsum


def fit_zhao_mean(R: torch.Tensor, weights: torch.Tensor | None = None, max_iter: int = 100) -> ZhaoMean:
    """Maximum-likelihood Zhao profile of stars at projected radii ``R`` [L] (member axis: one fit per row).

    Starts from the Plummer sphere of scale 1 (the flow's base) and runs
    L-BFGS in float64 on bounded parameters (:data:`GAMMA_RANGE`,
    :data:`BETA_RANGE`, :data:`ALPHA_RANGE`); deterministic.

    Parameters
    ----------
    R : torch.Tensor
        Projected radii (n,) or (K, n) [L].
    weights : torch.Tensor or None
        Membership weights (or multiplicities) of the stars, same shape; None: all one.

    Examples
    --------
    A Plummer sphere of scale 1 is found again from 4000 of its stars:

    >>> g = torch.Generator().manual_seed(0)
    >>> q = torch.rand(4000, generator=g, dtype=torch.float64)
    >>> R = torch.sqrt(q / (1 - q))  # projected Plummer: M(<R) = R^2 / (1 + R^2)
    >>> m = fit_zhao_mean(R)
    >>> lnr = torch.linspace(-2.0, 1.0, 7, dtype=torch.float64)
    >>> d = m.log_nu(lnr) - zhao_log_nu(lnr, 0.0, 5.0, 2.0, 0.0)
    >>> bool((d - d.mean()).abs().max() < 0.15)
    True
    """
    R = R.detach().to(torch.float64)
    w = torch.ones_like(R) if weights is None else weights.detach().to(torch.float64)
    if R.dim() == 2:
        return ZhaoMean.stack([fit_zhao_mean(R[k], w[k], max_iter) for k in range(R.shape[0])])
    R, w = _distinct(R, w)
    lnr = torch.linspace(*_GRID, dtype=torch.float64, device=R.device)
    dt = float(lnr[1] - lnr[0])
    z0 = [_unbounded(0.05, *GAMMA_RANGE), _unbounded(5.0, *BETA_RANGE), _unbounded(2.0, *ALPHA_RANGE), 0.0]
    z = torch.tensor(z0, dtype=torch.float64, device=R.device, requires_grad=True)
    opt = torch.optim.LBFGS([z], max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _nll(z, lnr, dt, R, w)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return ZhaoMean(*(t.detach() for t in _shape(z.detach())))
