"""Smoothness and positivity prior on the flow's nu(r), sigma_r(r) and Jeans read-out (penalised max. likelihood).

Why: the Jeans read-out rho(r) = d/dr[-r sigma_r^2 (dln nu/dln r + dln sigma_r^2/dln r
+ 2 beta) / G] / (4 pi r^2) differentiates the fitted profiles twice. With 1000
stars the likelihood barely distinguishes a smooth profile from one with small
wiggles (the whole difference between the untrained Plummer start and the
truth is ~0.02 nats per star on the benchmark mock), so an unpenalised flexible
flow, trained on a bootstrap resample with its duplicated stars, grows wiggles
in ln nu that the read-out turns into rho off by tenths of a dex, or negative
(benchmarks/RESULTS.md). Early stopping on a held-out 20 % cannot tell these
states apart either.

The prior is a Gaussian process-like roughness penalty on the third
logarithmic derivative, integrated over the data's range of radii:

    P = [Int (d^3 (ln nu - ln nu_Z) / d ln r^3)^2 d ln r + Int (d^3 ln sigma_r^2 / d ln r^3)^2 d ln r] / (2 tau^2),

added to the total negative log-likelihood (i.e. P / N_eff per star). It
leaves power laws almost free (what is quadratic in ln r costs nothing), while a
wiggle of amplitude A and wavelength lambda in ln r costs A^2 (2 pi/lambda)^6 lambda / (4 tau^2)
per wavelength: ~40/tau^2 nats for a 5 % wiggle over a factor e in radius. The true
nu and sigma_r of the Gaia Challenge benchmark mock cost ~2.4/tau^2 nats in all.
ln nu_Z is 0 by default (``TrainConfig.nu_mean="none"``). Measured from ln
nu itself, a tracer's turnover (a Plummer slope goes from 0 to -5 within a
decade) is charged, and where the stars are few the penalty pulls it apart
and makes a core cuspy: +0.04 dex at R_half/4 over 50 mocks of a Plummer
tracer. With ``nu_mean="zhao"`` ln nu_Z is a Zhao profile fitted to the same
stars' projected radii before training (:mod:`~dsphnf.flows.nu_mean`): the
core is unbiased, but rho's scatter in the centre grows, so it is not the
default (benchmarks/RESULTS.md). ln sigma_r^2 has no mean; whether the same
pull is what makes sigma_r 0.02-0.04 dex high inside R_half/4 on a radial
Osipkov-Merritt mock (beta given) is not established.

A second, one-sided term forbids *holes*, radii where the stellar density
rises outwards:

    P_hole = Int max(0, d ln nu/d ln r)^2 d ln r / (2 tau_hole^2),  tau_hole = 0.1,

so a hole with slope +1 over a factor e in radius costs 50 nats. A tracer with
an isotropic distribution function f(E) >= 0 in a potential that grows outwards
has a density that falls outwards, as the observed dSphs do, yet the
projected likelihood hardly sees a hole in nu at the innermost radii (a
star's line of sight passes mostly through larger r): without this term,
flows trained for 400 steps on 1000 sky positions grew inner holes of slope
+1.1-1.2 at the 2nd percentile of R (book chapter 4), which the third-derivative
term alone does not penalise (a parabola in ln r costs nothing).

A third, one-sided term makes the Jeans read-out physical by construction:
with g = G M/(r sigma_r^2) = -(d ln nu/d ln r + d ln sigma_r^2/d ln r + 2 beta),
q = (d(G M)/d ln r)/(r sigma_r^2) = 4 pi G r^2 rho/sigma_r^2 = g (1 + d ln sigma_r^2/d ln r) + dg/d ln r
(the relation :mod:`~dsphnf.flows.moments` reads M and rho out with) and
s = -(4 pi G r^2/sigma_r^2) d rho/d ln r = q (2 - d ln sigma_r^2/d ln r) - dq/d ln r,
the four conditions (:func:`density_conditions`)

    g >= 0 (M >= 0),   q >= 0 (rho >= 0),   3 g - q >= 0 (d ln M/d ln r <= 3),   s >= 0 (rho falls outwards)

cost

    P_pos = Int [max(0, -g)^2 + max(0, -q)^2 + max(0, q - 3 g)^2 + max(0, -s)^2] d ln r / (2 tau_pos^2),  tau_pos = 0.01,

zero for a read-out whose density is positive and does not rise outwards,
as that of every halo in use (NFW, Zhao with gamma >= 0, Burkert, Einasto,
a core), and 50 nats for a violation of 0.1 over a factor e in radius, as a
hole of slope +1 does. The third condition, q/g = d ln M/d ln r = 3 rho/rho_mean
<= 3, says the local density does not exceed the mean density inside r; it
follows from the fourth, but it also reaches inside the innermost star
(M(lo) is all the mass below the data). Without the first two, bootstrap
members grew radii with rho < 0 that the read-out had to leave out
(:mod:`~dsphnf.flows.ensemble`). With only those two, fits of cored mocks
(PlumCoreIso, 1000 stars) came to rest on the wall rho = 0 at ~0.07 kpc,
just outside the innermost star, with rho rising outwards to 0.3 kpc and
0.5-0.9 dex too low at 0.1 kpc: the likelihood pays for a sigma_r that
falls inwards (a noise feature of ~10 stars) with a density hole that
rho >= 0 does not forbid (benchmarks/RESULTS.md). The terms are computed on
the speed table from nu, sigma_r and the flow's beta(r), given or learned
(the separable family's beta from its own table); positions-only flows have
no speed table and no such term. Every read-out is still checked and counted
(:mod:`~dsphnf.flows.ensemble`).

Derivatives are divided differences on the flow's own tables
(:func:`~dsphnf.flows.surface.radial_table` for nu, 321 nodes;
:func:`~dsphnf.flows.losvd.velocity_table` for sigma_r, 41 nodes), so the prior
costs no extra solver pass. Units: standardised (radii in L); the penalty is
dimensionless (nats).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .nu_mean import ZhaoMean, fit_zhao_mean
from .angular import family_table_moments
from .separable import is_table_family

__all__ = ["HOLE_TAU", "POSITIVITY_TAU", "MASS_SLOPE_MAX", "SmoothnessPrior", "log_derivative", "roughness",
           "hole_penalty", "sigma_r2_table", "jeans_positivity", "density_conditions", "positivity_penalty",
           "smoothness_penalty"]

#: scale of the one-sided prior against a density rising outwards (d ln nu/d ln r > 0)
HOLE_TAU = 0.1
#: scale of the one-sided prior against M < 0, rho < 0 and rho rising outwards in the Jeans read-out (dimensionless)
POSITIVITY_TAU = 0.01
#: largest d ln M/d ln r = 4 pi r^3 rho/M of the read-out: 3, the mean density inside r does not rise outwards
MASS_SLOPE_MAX = 3.0


def log_derivative(x: torch.Tensor, f: torch.Tensor, order: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(x', d^order f/dx^order at x') from divided differences on increasing nodes ``x``.

    The k-th derivative is k! f[x_i, ..., x_{i+k}] (Newton's divided
    difference), placed at the mean of its k + 1 nodes; ``len(x) - order``
    values. Exact for polynomials of degree ``order``, on uneven nodes too.
    Along the last axis (leading member axes are kept).
    """
    d = f
    for j in range(1, order + 1):
        d = (d[..., 1:] - d[..., :-1]) / (x[..., j:] - x[..., :-j]).clamp_min(1e-12)
    centre = torch.stack([x[..., i: x.shape[-1] - order + i] for i in range(order + 1)]).mean(dim=0)
    return centre, d * math.factorial(order)


def _integral_inside(x: torch.Tensor, f2: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Trapezoid integral of ``f2`` on the increasing nodes ``x`` over [lo, hi].

    Each segment between neighbouring nodes counts with the length of its
    overlap with [lo, hi], so that the integral changes continuously as the
    nodes (the flow's mapped radii) move across lo or hi; dropping the nodes
    outside instead made the training objective jump there (1.6e-4 nats per
    star on a 160-star toy fit, as much as it changed over the whole line
    search), which stalled L-BFGS. Along the last axis; with a member axis
    ``lo`` and ``hi`` may be tensors (K, 1), one range per member.

    >>> x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    >>> float(_integral_inside(x, torch.ones(4), 0.5, 2.25))
    1.75
    """
    a, b = x[..., :-1].clamp(lo, hi), x[..., 1:].clamp(lo, hi)
    return (0.5 * (f2[..., 1:] + f2[..., :-1]) * (b - a)).sum(dim=-1)


def roughness(lnr: torch.Tensor, f: torch.Tensor, lo: float, hi: float, order: int = 3) -> torch.Tensor:
    """Int_lo^hi (d^order f / d ln r^order)^2 d ln r (trapezoid on the nodes inside [lo, hi] in ln r)."""
    x, d = log_derivative(lnr, f, order)
    return _integral_inside(x, d * d, lo, hi)


def hole_penalty(lnr: torch.Tensor, lnnu: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Int_lo^hi max(0, d ln nu/d ln r)^2 d ln r (trapezoid on the nodes inside [lo, hi] in ln r)."""
    x, d = log_derivative(lnr, lnnu, 1)
    return _integral_inside(x, torch.relu(d) ** 2, lo, hi)


def sigma_r2_table(vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """ln sigma_r^2 (up to a constant) on the speed-table nodes.

    Before the anisotropy layer the velocities are isotropic, and the layer does
    not touch v_r, so sigma_r^2 = <S^2>/3 over the base speeds (quadrature
    weights of :func:`~dsphnf.flows.losvd.velocity_table`); for the separable
    family's table, <A^2>/3 (:func:`~dsphnf.flows.angular.family_table_moments`; the angular one's <S^2 mu^2>).
    """
    if is_table_family(vtable):  # the separable family: <A^2>/3; the angular one: <S^2 mu^2>
        return family_table_moments(vtable)[0]
    _, lns, lw = vtable
    return torch.logsumexp(2.0 * lns + lw, dim=-1)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of (xp, fp) at x (xp increasing; held at the end values outside; last axis)."""
    i = torch.searchsorted(xp.detach().contiguous(), x.detach().contiguous()).clamp(1, xp.shape[-1] - 1)
    x0, x1, f0, f1 = xp.gather(-1, i - 1), xp.gather(-1, i), fp.gather(-1, i - 1), fp.gather(-1, i)
    t = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return f0 + t * (f1 - f0)


def _central(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """df/dx at the interior nodes of ``x`` (central divided differences; exact for linear f)."""
    return (f[..., 2:] - f[..., :-2]) / (x[..., 2:] - x[..., :-2]).clamp_min(1e-12)


def jeans_positivity(
    table: tuple[torch.Tensor, torch.Tensor],
    vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    beta: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ln r, g, q) of the Jeans read-out on the speed-table nodes (all but the two outermost at each end).

    g = G M/(r sigma_r^2) = -(d ln nu/d ln r + d ln sigma_r^2/d ln r + 2 beta) and
    q = (d(G M)/d ln r)/(r sigma_r^2) = 4 pi G r^2 rho/sigma_r^2 = g (1 + d ln sigma_r^2/d ln r) + dg/d ln r,
    both dimensionless: M >= 0 where g >= 0, M(r) non-decreasing (rho >= 0) where q >= 0.

    Parameters
    ----------
    table : (ln r, ln nu)
        :func:`~dsphnf.flows.surface.radial_table` (its first divided differences,
        interpolated to the speed-table nodes, give d ln nu/d ln r).
    vtable : speed table
        :func:`~dsphnf.flows.losvd.velocity_table` (sigma_r^2 by :func:`sigma_r2_table`).
    beta : callable or None
        beta(r) at standardised radii r (the flow's ``beta``); None: isotropic.
    """
    x = vtable[0]
    ls2 = sigma_r2_table(vtable)
    c1, d1 = log_derivative(table[0], table[1], 1)
    dlnnu = _interp(x, c1, d1)[..., 1:-1]
    dls2 = _central(x, ls2)
    xi = x[..., 1:-1]
    b = torch.zeros_like(xi) if beta is None else beta(torch.exp(xi))
    g = -(dlnnu + dls2 + 2.0 * b)
    q = g[..., 1:-1] * (1.0 + dls2[..., 1:-1]) + _central(xi, g)
    return xi[..., 1:-1], g[..., 1:-1], q


def density_conditions(
    table: tuple[torch.Tensor, torch.Tensor],
    vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    beta: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln r, c): the read-out's four conditions c = (g, q, 3 g - q, s), each >= 0 for a physical density.

    g and q are those of :func:`jeans_positivity` (M >= 0, rho >= 0),
    3 g - q >= 0 says d ln M/d ln r <= 3 (:data:`MASS_SLOPE_MAX`: the mean
    density inside r does not rise outwards) and
    s = -(4 pi G r^2/sigma_r^2) d rho/d ln r = q (2 - d ln sigma_r^2/d ln r) - dq/d ln r >= 0
    that rho does not rise outwards. On the speed-table nodes but the three
    outermost at each end; ``c`` has a leading axis of 4 (before any member axis:
    (4, m) or (4, K, m)).

    >>> lnr = torch.linspace(-5.0, 5.0, 201, dtype=torch.float64)
    >>> x = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
    >>> speeds = (x, torch.zeros(61, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    >>> _, c = density_conditions((lnr, -2.0 * lnr), speeds)   # nu ~ r^-2, flat sigma_r: rho ~ r^-2
    >>> [round(float(v), 6) for v in c[:, 30]]                  # g = q = 2, 3 g - q = 4, s = 4
    [2.0, 2.0, 4.0, 4.0]
    """
    x, g, q = jeans_positivity(table, vtable, beta)
    dls2 = _central(vtable[0], sigma_r2_table(vtable))[..., 2:-2]  # at the nodes of q
    s = q[..., 1:-1] * (2.0 - dls2) - _central(x, q)
    g, q = g[..., 1:-1], q[..., 1:-1]
    return x[..., 1:-1], torch.stack([g, q, MASS_SLOPE_MAX * g - q, s])


def positivity_penalty(
    table: tuple[torch.Tensor, torch.Tensor],
    vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    lo: float,
    hi: float,
    beta: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Int_lo^hi sum_c max(0, -c)^2 d ln r over the four :func:`density_conditions` (zero for a physical read-out).

    >>> lnr = torch.linspace(-5.0, 5.0, 201, dtype=torch.float64)
    >>> x = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
    >>> rising = (lnr, 0.5 * lnr)                          # nu ~ r^0.5, flat sigma_r: M < 0 and falling
    >>> speeds = (x, torch.zeros(61, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    >>> round(float(positivity_penalty(rising, speeds, -1.0, 1.0)), 6)   # g = q = -0.5, 3 g - q = s = -1: 2.5 x 2
    5.0
    """
    x, c = density_conditions(table, vtable, beta)
    return _integral_inside(x, (torch.relu(-c) ** 2).sum(dim=0), lo, hi)


def smoothness_penalty(
    table: tuple[torch.Tensor, torch.Tensor],
    vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    log_range: tuple[float, float],
    tau: float,
    hole_tau: float = HOLE_TAU,
    beta: Callable[[torch.Tensor], torch.Tensor] | None = None,
    positivity_tau: float | None = POSITIVITY_TAU,
    nu_mean: ZhaoMean | None = None,
) -> torch.Tensor:
    """The prior's -ln p (nats, up to a constant): roughness / (2 tau^2) plus the hole and positivity terms.

    Parameters
    ----------
    table : (ln r, ln nu)
        :func:`~dsphnf.flows.surface.radial_table`.
    vtable : speed table or None
        :func:`~dsphnf.flows.losvd.velocity_table` (None: positions only, no
        sigma_r roughness and no positivity term).
    log_range : (float, float)
        ln r limits [ln L] over which the terms are integrated (the data's radii).
    tau : float
        Prior scale of the third logarithmic derivative.
    hole_tau : float
        Scale of the one-sided term against d ln nu/d ln r > 0.
    beta : callable or None
        The flow's beta(r) at standardised radii (None: isotropic), for the positivity term.
    positivity_tau : float or None
        Scale of the one-sided term against M < 0, rho < 0 and a density rising outwards (None: off).
    nu_mean : ZhaoMean or None
        Mean function of ln nu (:mod:`~dsphnf.flows.nu_mean`): the roughness is that of ln nu - ln nu_Z
        (None: of ln nu itself).
    """
    lo, hi = log_range
    lnnu = table[1] if nu_mean is None else table[1] - nu_mean.log_nu(table[0])
    p = roughness(table[0], lnnu, lo, hi)
    if vtable is not None:
        p = p + roughness(vtable[0], sigma_r2_table(vtable), lo, hi)
    p = p / (2.0 * tau * tau) + hole_penalty(table[0], table[1], lo, hi) / (2.0 * hole_tau**2)
    if vtable is not None and positivity_tau is not None:
        p = p + positivity_penalty(table, vtable, lo, hi, beta) / (2.0 * positivity_tau**2)
    return p


@dataclass(frozen=True)
class SmoothnessPrior:
    """The smoothness prior of one training set, as the training loss adds it.

    Attributes
    ----------
    log_range : (float, float)
        ln r limits [ln L] over which the roughness is integrated: the training
        stars' smallest (at least 1e-3 L) and largest projected radius.
    tau : float
        Scale of the third logarithmic derivatives (``TrainConfig.smooth_tau``).
    n_eff : float
        Weighted number of training stars; the penalty is divided by it to
        give nats per star, like the likelihood.
    hole_tau : float
        Scale of the one-sided term against a density rising outwards.
    positivity_tau : float or None
        Scale of the one-sided term against M < 0 and rho < 0 (None: off).
    nu_mean : ZhaoMean or None
        The mean function of ln nu (None: the roughness of ln nu itself).

    Examples
    --------
    >>> prior = SmoothnessPrior.for_stars(torch.tensor([0.5, 1.0, 2.0]), torch.ones(3), tau=1.0)
    >>> [round(x, 3) for x in prior.log_range], prior.n_eff, prior.hole_tau
    ([-0.693, 0.693], 3.0, 0.1)
    """

    log_range: tuple[float, float]
    tau: float
    n_eff: float
    hole_tau: float = HOLE_TAU
    positivity_tau: float | None = POSITIVITY_TAU
    nu_mean: ZhaoMean | None = None

    @classmethod
    def for_stars(cls, R: torch.Tensor, weights: torch.Tensor, tau: float, nu_mean: str = "none") -> "SmoothnessPrior":
        """The prior over the range of the projected radii ``R`` [L] of stars with ``weights``.

        With a member axis (``R``, ``weights`` (K, n)) the range is one per
        member, as tensors (K, 1), and ``n_eff`` a tensor (K,): the penalty
        is then (K,) (stars of weight zero must repeat a star of the member).
        ``nu_mean="zhao"`` fits the mean of ln nu to the same stars
        (:func:`~dsphnf.flows.nu_mean.fit_zhao_mean`, one per member).
        """
        R = R.detach()
        mean = fit_zhao_mean(R, weights) if nu_mean == "zhao" else None
        if R.dim() == 1:
            log_range = (math.log(max(float(R.min()), 1e-3)), math.log(float(R.max())))
            return cls(log_range, float(tau), float(weights.sum()), nu_mean=mean)
        lo = torch.log(R.amin(dim=-1, keepdim=True).clamp_min(1e-3))
        return cls((lo, torch.log(R.amax(dim=-1, keepdim=True))), float(tau), weights.detach().sum(dim=-1),
                   nu_mean=mean)

    @classmethod
    def of(cls, config, R: torch.Tensor, weights: torch.Tensor) -> "SmoothnessPrior | None":
        """The prior a :class:`~dsphnf.flows.train_config.TrainConfig` asks for (None when ``smooth_tau`` is None)."""
        if config is None or config.smooth_tau is None:
            return None
        return cls.for_stars(R, weights, config.smooth_tau, config.nu_mean)

    def per_star(
        self,
        table: tuple[torch.Tensor, torch.Tensor],
        vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
        beta: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """:func:`smoothness_penalty` on the flow's tables (and its ``beta``) divided by ``n_eff`` [nats per star]."""
        return smoothness_penalty(table, vtable, self.log_range, self.tau, self.hole_tau, beta,
                                  self.positivity_tau, self.nu_mean) / self.n_eff
