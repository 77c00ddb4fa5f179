"""Learned anisotropy beta(r) of a flow: a free profile or a parametric family, fitted with the flow.

A flow with an inferred anisotropy (``Inferred(family)`` of
:mod:`dsphnf.anisotropy`) keeps the isotropic speed map and the exact
anisotropy layer of :mod:`~dsphnf.flows.cnf` (tangential velocities scaled by
sqrt(1 - beta(r))), but beta(r) is a module whose parameters are trained
together with the flow, through the same exact likelihood
(:mod:`~dsphnf.flows.losvd`) as a given beta. Every module starts at
isotropy (beta = 0 everywhere, or at every radius of the data for the
Osipkov-Merritt family, whose r_a starts at 10 L). Their priors (smoothness,
and the fourth-order Jeans equation that lets the LOSVD's shape inform beta)
are in :mod:`~dsphnf.flows.beta_prior`.

Radii are standardised (units of the length scale L [kpc] of the flow);
:meth:`LearnedAnisotropy.describe` reports the parameters in kpc.

Families
--------
``free``
    y(r) = beta / (2 - beta) (the symmetrised anisotropy, sigma_r^2 - sigma_t^2
    over sigma_r^2 + sigma_t^2 with sigma_t one tangential component) is a
    bounded function of a cubic B-spline s(x) of x = ln r:
    y = Y_MIN + (Y_MAX - Y_MIN) sigmoid(s + S0), so that beta stays in
    (:data:`BETA_MIN`, :data:`BETA_MAX`) = (-3, 0.95), and s = 0 is isotropy.
    The spline has :data:`N_KNOTS` coefficients on uniform knots over
    ln r in [ln 0.01, ln 50] (the stars lie at ~0.02-10 L); ln r is softly
    saturated at both ends (C-infinity), so that beta is constant far outside.
    Its smoothness prior is :func:`~dsphnf.flows.beta_prior.anisotropy_penalty`.
``constant``
    beta = bounded(s), one parameter.
``om``
    beta = r^2 / (r^2 + r_a^2), ln(r_a / L) learned (start ln 10).
``cuddeford``
    beta = (b0 + r^2/r_a^2) / (1 + r^2/r_a^2), b0 bounded, ln(r_a / L) (start ln 10).
``baes``
    beta = b0 + (binf - b0) / (1 + (r_a/r)^eta), b0 and binf bounded,
    ln(r_a / L) (start 0), eta in (0.5, 4) (start 2).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BETA_MIN", "BETA_MAX", "N_KNOTS", "LearnedAnisotropy", "FreeBeta", "learned_anisotropy",
           "bounded_beta", "symmetrised"]

#: Bounds of beta for the bounded parametrisation (free profile, constant, b0, binf).
BETA_MIN, BETA_MAX = -3.0, 0.95
Y_MIN, Y_MAX = BETA_MIN / (2.0 - BETA_MIN), BETA_MAX / (2.0 - BETA_MAX)
#: offset of the sigmoid so that s = 0 gives y = 0 (isotropy)
S0 = math.log(-Y_MIN / Y_MAX)
#: Every learned parameter enters multiplied by GAIN: the optimiser (Adam, whose steps are
#: ~lr in parameter units) then moves the anisotropy GAIN times faster than the network
#: weights. Measured with GAIN = 1: a learned Osipkov-Merritt r_a moved at Adam's top speed
#: for all 400 steps and stopped at twice the truth (PlumCoreOm, benchmarks/RESULTS.md).
GAIN = 5.0
#: Coefficients of the free profile's cubic B-spline in ln r.
N_KNOTS = 10
#: ln r range [ln L] of the spline's knots.
SPLINE_RANGE = (math.log(0.01), math.log(50.0))
_ETA_RANGE = (0.5, 4.0)


def symmetrised(beta: torch.Tensor) -> torch.Tensor:
    """y = beta / (2 - beta), in (-1, 1) for beta in (-inf, 1).

    >>> float(symmetrised(torch.tensor(-2.0)))
    -0.5
    """
    return beta / (2.0 - beta)


def bounded_beta(s: torch.Tensor) -> torch.Tensor:
    """beta in (BETA_MIN, BETA_MAX) from an unbounded s (s = 0: beta = 0), via y = beta / (2 - beta).

    >>> float(bounded_beta(torch.tensor(0.0)))
    0.0
    >>> b = bounded_beta(torch.tensor([-40.0, 40.0]))
    >>> [round(float(x), 3) for x in b]
    [-3.0, 0.95]
    """
    y = Y_MIN + (Y_MAX - Y_MIN) * torch.sigmoid(s + S0)
    return 2.0 * y / (1.0 + y)


def _bspline(x: torch.Tensor, coef: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Uniform cubic B-spline with coefficients ``coef`` (K,) on [lo, hi] at ``x`` inside (lo, hi)."""
    k = coef.shape[0]
    t = (x - lo) / ((hi - lo) / (k - 3))
    i = torch.floor(t.detach()).clamp(0, k - 4).long()
    u = t - i.to(t)
    b0 = (1.0 - u) ** 3 / 6.0
    b1 = (3.0 * u**3 - 6.0 * u**2 + 4.0) / 6.0
    b2 = (-3.0 * u**3 + 3.0 * u**2 + 3.0 * u + 1.0) / 6.0
    b3 = u**3 / 6.0
    return coef[i] * b0 + coef[i + 1] * b1 + coef[i + 2] * b2 + coef[i + 3] * b3


class LearnedAnisotropy(nn.Module):
    """Base class: beta at standardised radii, with learned parameters.

    Subclasses define :meth:`forward` (beta at radii r [L], differentiable in
    r and in the parameters) and :meth:`describe`.
    """

    family: str = ""

    def forward(self, r: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, length_scale: float) -> dict[str, float]:
        """The learned parameters in physical units (r_a in kpc); empty for the free profile."""
        return {}

    def spec(self) -> str:
        return self.family


class FreeBeta(LearnedAnisotropy):
    """Free beta(r): bounded y = beta/(2 - beta) of a cubic B-spline in ln r (module docstring).

    >>> m = FreeBeta().double()
    >>> float(m(torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)).detach().abs().max())
    0.0
    """

    family = "free"

    def __init__(self, n_knots: int = N_KNOTS) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.zeros(int(n_knots)))  # s = GAIN * spline(coef)

    def spline_argument(self, r: torch.Tensor) -> torch.Tensor:
        """ln r, softly saturated inside the spline's range (strictly between its ends)."""
        lo, hi = SPLINE_RANGE
        x = torch.log(r.clamp_min(1e-300))
        sp = nn.functional.softplus
        return lo + sp(x - lo) - sp(x - hi)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return bounded_beta(_bspline(self.spline_argument(r), GAIN * self.coef.to(r), *SPLINE_RANGE))


class ConstantLearned(LearnedAnisotropy):
    """beta = bounded(s), a constant."""

    family = "constant"

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.zeros(()))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r * 0.0 + bounded_beta(GAIN * self.s.to(r))

    def describe(self, length_scale: float) -> dict[str, float]:
        return {"beta0": float(bounded_beta(GAIN * self.s.detach()))}


class CuddefordLearned(LearnedAnisotropy):
    """beta = (b0 + r^2/r_a^2) / (1 + r^2/r_a^2); ``om`` fixes b0 = 0."""

    def __init__(self, family: str = "cuddeford") -> None:
        super().__init__()
        self.family = family
        self.log_ra = nn.Parameter(torch.tensor(math.log(10.0) / GAIN))
        if family == "cuddeford":
            self.s0 = nn.Parameter(torch.zeros(()))
        else:
            self.register_parameter("s0", None)

    def b0(self) -> torch.Tensor:
        return torch.zeros(()) if self.s0 is None else bounded_beta(GAIN * self.s0)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x2 = (r * torch.exp(-GAIN * self.log_ra.to(r))) ** 2
        return (self.b0().to(r) + x2) / (1.0 + x2)

    def describe(self, length_scale: float) -> dict[str, float]:
        out = {"ra_kpc": float(torch.exp(GAIN * self.log_ra.detach())) * length_scale}
        if self.s0 is not None:
            out["b0"] = float(self.b0().detach())
        return out


class BaesLearned(LearnedAnisotropy):
    """beta = b0 + (binf - b0) / (1 + (r_a/r)^eta) (Baes & van Hese 2007)."""

    family = "baes"

    def __init__(self) -> None:
        super().__init__()
        self.s0 = nn.Parameter(torch.zeros(()))
        self.sinf = nn.Parameter(torch.zeros(()))
        self.log_ra = nn.Parameter(torch.zeros(()))
        lo, hi = _ETA_RANGE
        self.e = nn.Parameter(torch.tensor(math.log((2.0 - lo) / (hi - 2.0)) / GAIN))  # eta = 2 at the start

    def eta(self) -> torch.Tensor:
        lo, hi = _ETA_RANGE
        return lo + (hi - lo) * torch.sigmoid(GAIN * self.e)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        b0, binf = bounded_beta(GAIN * self.s0.to(r)), bounded_beta(GAIN * self.sinf.to(r))
        y = torch.exp(self.eta().to(r) * (torch.log(r.clamp_min(1e-300)) - GAIN * self.log_ra.to(r)))
        return b0 + (binf - b0) * y / (1.0 + y)

    def describe(self, length_scale: float) -> dict[str, float]:
        return {"b0": float(bounded_beta(GAIN * self.s0.detach())), "binf": float(bounded_beta(GAIN * self.sinf.detach())),
                "ra_kpc": float(torch.exp(GAIN * self.log_ra.detach())) * length_scale, "eta": float(self.eta().detach())}


def learned_anisotropy(family: str) -> LearnedAnisotropy:
    """The learned module of an inferred anisotropy family (every one starts at or near isotropy).

    >>> learned_anisotropy("om").describe(0.25)
    {'ra_kpc': 2.5}
    """
    if family == "free":
        return FreeBeta()
    if family == "constant":
        return ConstantLearned()
    if family in ("om", "cuddeford"):
        return CuddefordLearned(family)
    if family == "baes":
        return BaesLearned()
    raise ValueError(f"no learned anisotropy for the family {family!r}")
