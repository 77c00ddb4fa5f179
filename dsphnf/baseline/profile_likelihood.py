"""Profile likelihood of the dark-matter density or enclosed mass at one radius: the baseline's bands with no prior.

For a radius r [kpc] and a value y of log10 q(r), q the density rho(r)
[Msun/kpc^3] or the enclosed mass M(<r) [Msun] (:data:`PROFILE_QUANTITIES`),

    2 Delta(y) = 2 [ max_theta ln L(theta) - max_{theta : log10 q(r; theta) = y} ln L(theta) ],

maximised over every parameter of the baseline (stars, halo, anisotropy,
v_sys) inside its prior box (rho0 excepted: it is eliminated), with the prior's density ignored. For a regular
likelihood 2 Delta at the true y follows chi^2 with one degree of freedom
(Wilks), so {y : 2 Delta(y) <= 1} is a 68 % interval and <= 3.84 a 95 % one,
without a prior and without a sampler. Beside the posterior band it separates
what the stars say (the likelihood) from what the prior and the marginalisation
add; over many mocks (``benchmarks/profile_coverage.py``) it shows whether the
likelihood itself is calibrated at this number of stars.

The constraint is exact: both quantities are proportional to the halo's
normalisation, so log10 rho0 is eliminated, log10 rho0 = y - log10
[q(r) / rho0], and the constrained maximum runs over the other parameters.
Maxima are found by L-BFGS-B inside the boxes, with central-difference
gradients evaluated as one batch of the likelihood, from several starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import optimize, stats

from ..errors import FitError
from ..kinematics import ml_dispersion, weighted_median
from ..result import band_columns
from .halo_family import halo_log10_density, halo_mass, normalisation
from .likelihood import BaselineLikelihood
from .model import ANISOTROPY_NAMES

__all__ = ["PROFILE_QUANTITIES", "ProfileLikelihood", "maximise", "profile_bands", "profile_refusal"]

#: The quantities a profile likelihood is offered for: the density rho(r) [Msun/kpc^3] and the enclosed mass
#: M(<r) [Msun], both proportional to the halo's normalisation.
PROFILE_QUANTITIES = ("rho", "M")


def profile_refusal(halo: str) -> str | None:
    """Why the profile likelihood is not offered for halo family ``halo``, or None where it is.

    The ``broken`` family's likelihood maximum zig-zags between the edges of its
    slopes' boxes (a slope at 0 or its top beside one far from it), where
    Wilks' theorem does not hold: over 20 mocks of each of seven models its
    68 % intervals held the truth 32-69 % of the time pooled, their pull spreads
    reaching 1.8-3.8 on every model (benchmarks/RESULTS.md).

    Examples
    --------
    >>> profile_refusal("zhao-alpha") is None, profile_refusal("broken")[:40]
    (True, 'the profile likelihood is not offered wi')
    """
    if halo == "broken":
        return (f"the profile likelihood is not offered with the {halo} halo family (its maximum sits on the edges "
                "of the slopes' boxes, where its intervals are too narrow); use the posterior's bands")
    return None

LogF = Callable[[np.ndarray], np.ndarray]

#: Where in its box each free anisotropy parameter is put for the extra starts (:meth:`ProfileLikelihood.branches`).
BRANCH_POINTS = (0.25, 0.75)
#: How often :meth:`ProfileLikelihood.interval` searches again after its maximum moved, and by how much [nats]
#: ln L must rise to count as a move.
MAX_RESTARTS, RESTART_NATS = 3, 0.01


def maximise(log_f: LogF, starts: Sequence[np.ndarray], bounds: Sequence[tuple[float | None, float | None]],
             step: float = 1e-5) -> tuple[np.ndarray, float]:
    """Maximum of a batched function inside boxes, the best of L-BFGS-B runs from ``starts``.

    Parameters
    ----------
    log_f : callable
        (B, n) -> (B,), -inf where not allowed.
    starts : sequence of ndarray
        Starting points (n,); each is moved just inside the boxes.
    bounds : sequence of (lo, hi)
        Box per parameter (None: open).
    step : float
        Step of the gradient's differences (central, one-sided on a bound).

    Returns
    -------
    x, value : ndarray, float
        The best point and log_f there (-inf if no start had a finite value).

    Examples
    --------
    >>> f = lambda x: -((x[:, 0] - 1.0) ** 2 + 3.0 * (x[:, 1] + 0.5) ** 2)
    >>> x, v = maximise(f, [np.zeros(2)], [(None, None), (0.0, 2.0)])
    >>> [round(float(t), 4) + 0.0 for t in x], round(v, 4)
    ([1.0, 0.0], -0.75)
    """
    n = len(bounds)
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds], dtype=float)
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds], dtype=float)
    margin = np.where(np.isfinite(hi - lo), 1e-6 * (hi - lo), 0.0)

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        # differences inside the box: one-sided on a bound, where L-BFGS-B puts a parameter whose best value is
        # its edge (a kurtosis of 3) and where log_f may be -inf just outside
        up, down = np.minimum(x + step, hi), np.maximum(x - step, lo)
        v = log_f(np.vstack([x, x + np.diag(up - x), x + np.diag(down - x)]))
        if not np.all(np.isfinite(v)):  # a large finite value, so that L-BFGS-B's line search backtracks
            return (1e30 if not np.isfinite(v[0]) else -float(v[0])), np.zeros(n)
        return -float(v[0]), -(v[1:n + 1] - v[n + 1:]) / (up - down)

    best_x, best_v = np.asarray(starts[0], dtype=float), -math.inf
    for x0 in starts:
        x0 = np.clip(np.asarray(x0, dtype=float), lo + margin + step, hi - margin - step)
        if not np.isfinite(log_f(x0[None, :])[0]):
            continue
        res = optimize.minimize(negative, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                                options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-7})
        if -res.fun > best_v:
            best_x, best_v = res.x, -float(res.fun)
    return best_x, best_v


@dataclass
class ProfileLikelihood:
    """2 Delta of log10 rho(r) or log10 M(<r) for one baseline likelihood and one radius.

    Parameters
    ----------
    likelihood : BaselineLikelihood
        The fit's likelihood (``result.artefacts.likelihood``), or one built on a catalogue.
    r : float
        Radius [kpc].
    quantity : str
        ``"rho"`` (the density at r) or ``"M"`` (the mass inside r), :data:`PROFILE_QUANTITIES`.
    starts : sequence of ndarray, optional
        Extra starting points (e.g. the posterior's best sample) for the free
        maximum; the model's data-based initial guess is always one. Each
        constrained maximum starts from the nearest one solved before.
    path_dex : float
        Largest step [dex] in log10 q(r) between constrained maxima: each
        starts from the last one solved (see :meth:`_walk_to`).
    maximum : (ndarray, float), optional
        The free maximum and ln L there when already found (by a profile of
        another quantity on the same likelihood): not searched again.

    Notes
    -----
    With a fitted anisotropy the likelihood can have two ridges (for
    ``om``: a radial branch with r_a near R_half and a nearly isotropic one
    with r_a at the box's edge). Every maximum is therefore also started with
    the anisotropy parameters moved across their boxes
    (:meth:`branches`), so that a constrained maximum on the other ridge is
    not missed (on ten PlumCoreOm mocks without these starts, the default start
    missed the higher free maximum once and the walk a higher constrained
    maximum once; benchmarks/calibration_baseline.md, section 5). The free
    maximum is also started with the halo's inner slope ``gamma`` at 1/4 and
    3/4 of its box, a cusp and a core (on a PlumCoreIso mock with a free LOSVD
    kurtosis the default start alone once stopped in the cusped basin, 3.3
    nats low, when the gradient's differences still stepped outside the box);
    and where a constrained search still finds a higher point, the interval is
    searched again from it (:meth:`interval`).

    Examples
    --------
    >>> from dsphnf.mocks import draw_mock
    >>> from dsphnf.baseline import BaselineModel, BaselineLikelihood
    >>> from dsphnf.anisotropy import parse_anisotropy
    >>> cat = draw_mock("NonPlumCuspIso", n=300, seed=3).catalog
    >>> like = BaselineLikelihood(BaselineModel("nfw", parse_anisotropy("isotropic")), cat.R, cat.vz)
    >>> prof = ProfileLikelihood(like, r=0.2)
    >>> y, lo, hi = prof.interval(0.68)
    >>> bool(lo < y < hi), [round(float(prof.statistic(v)), 1) for v in (lo, y, hi)]  # 2 Delta = 1 at the ends
    (True, [1.0, 0.0, 1.0])
    """

    likelihood: BaselineLikelihood
    r: float
    quantity: str = "rho"
    starts: Sequence[np.ndarray] = ()
    path_dex: float = 0.1
    maximum: tuple[np.ndarray, float] | None = None
    _best: tuple[np.ndarray, float] | None = field(default=None, init=False, repr=False)
    _warm: dict[float, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        model = self.likelihood.model
        if profile_refusal(model.halo):
            raise FitError(profile_refusal(model.halo))
        if self.quantity not in PROFILE_QUANTITIES:
            raise FitError(f"unknown profile quantity {self.quantity!r}: use one of {', '.join(PROFILE_QUANTITIES)}")
        if normalisation(model.halo) not in model.names:
            raise FitError(f"the profile likelihood of {self.quantity} needs a free {normalisation(model.halo)}")
        if not (math.isfinite(self.r) and self.r > 0):
            raise FitError(f"the radius must be > 0 kpc, got {self.r}")
        self.k = model.names.index(normalisation(model.halo))
        self.bounds = [(p.a, p.b) if p.kind == "uniform" else (None, None)
                       for p in (model.priors[n] for n in model.names)]
        boxed = [i for i in range(len(model.names)) if None not in self.bounds[i]]
        self._aniso = [i for i in boxed if model.names[i] in ANISOTROPY_NAMES]
        self._slope = [i for i in boxed if model.names[i] == "gamma"]  # the halo's inner slope: cusp or core
        if self.maximum is not None:
            self._remember_best((np.asarray(self.maximum[0], dtype=float), float(self.maximum[1])))

    def branches(self, theta: np.ndarray, which: list[int] | None = None) -> list[np.ndarray]:
        """``theta`` and copies with the parameters ``which`` (default: every free anisotropy parameter) at the
        :data:`BRANCH_POINTS` of their boxes.

        Only ``theta`` when there are none.
        """
        which = self._aniso if which is None else which
        out = [np.asarray(theta, dtype=float)]
        for q in BRANCH_POINTS if which else ():
            t = out[0].copy()
            for i in which:
                lo, hi = self.bounds[i]
                t[i] = lo + q * (hi - lo)
            out.append(t)
        return out

    def log10_value(self, theta: np.ndarray) -> np.ndarray:
        """log10 rho(r) [Msun/kpc^3] or log10 M(<r) [Msun] for parameters ``theta`` (B, ndim) -> (B,)."""
        return _log10_quantity(self.likelihood, theta, self.r, self.quantity)

    def _remember_best(self, best: tuple[np.ndarray, float]) -> None:
        """Keep the free maximum and seed the walk of constrained maxima with it."""
        self._best = best
        x = best[0]
        self._warm[float(self.log10_value(x[None, :])[0])] = np.delete(x, self.k)

    def best(self) -> tuple[np.ndarray, float]:
        """The free maximum: parameters and ln L there."""
        if self._best is None:
            like = self.likelihood
            mean, _, sigma, _ = ml_dispersion(like.v, np.sqrt(like.e2), like.w)  # the start fit_baseline uses
            guess = like.model.initial_guess(weighted_median(like.R, like.w), max(sigma, 1.0), mean)
            starts = [*self.branches(guess), *self.branches(guess, self._slope)[1:], *self.starts]
            best = maximise(like.log_likelihood, starts, self.bounds)
            if not math.isfinite(best[1]):
                raise FitError("no starting point has a finite likelihood")
            self._remember_best(best)
        return self._best

    def _constrained(self, y: float) -> tuple[np.ndarray, float]:
        """max ln L with log10 q(r) = y: the maximising parameters and the value."""
        k = self.k

        def log_f(rest: np.ndarray) -> np.ndarray:  # rho0 is eliminated, so its box does not apply
            theta = np.insert(np.atleast_2d(rest), k, 0.0, axis=1)
            theta[:, k] = y - self.log10_value(theta)  # log10 rho0 that puts log10 q(r) at y
            return self.likelihood.log_likelihood(theta)

        self.best()  # seeds the walk with the free maximum
        near = self._walk_to(y)
        warm = np.insert(self._warm[near], k, 0.0)  # the nearest solved maximum (the free one to begin with)
        starts = [np.delete(t, k) for t in self.branches(warm)]
        rest, value = maximise(log_f, starts, self.bounds[:k] + self.bounds[k + 1:])
        if math.isfinite(value):
            self._warm[y] = rest
        theta = np.insert(rest, k, 0.0)
        theta[k] = y - self.log10_value(theta[None, :])[0]
        return theta, value

    def _walk_to(self, y: float) -> float:
        """Solve the constrained maxima on a path of <= :attr:`path_dex` steps towards ``y``; the nearest solved y.

        Each search then starts close to its answer and follows the ridge of
        the likelihood from the free optimum, rather than jumping across it
        (where a local optimum, e.g. with gamma on its edge, could catch it).
        """
        near = min(self._warm, key=lambda v: abs(v - y))
        n = math.ceil(abs(y - near) / self.path_dex - 1e-9)
        for t in np.linspace(near, y, n + 1)[1:-1]:
            self._constrained(float(t))
            near = float(t)
        return near

    def statistic(self, y: float) -> float:
        """2 Delta at log10 q(r) = ``y`` [log10 Msun/kpc^3 or log10 Msun] (>= 0; inf where no allowed parameters
        give y)."""
        theta, value = self._constrained(float(y))
        if value > self.best()[1]:  # the constrained search found a higher point: restart the free one there
            self._best = maximise(self.likelihood.log_likelihood, [theta, self.best()[0]], self.bounds)
        return max(0.0, 2.0 * (self.best()[1] - value)) if math.isfinite(value) else math.inf

    def interval(self, level: float = 0.68, max_dex: float = 3.0,
                 first_step: tuple[float, float] = (0.02, 0.02)) -> tuple[float, float, float]:
        """The maximum-likelihood log10 q(r) and the ``level`` interval {y : 2 Delta(y) <= chi^2_1 quantile}.

        An end that is not reached within ``max_dex`` of the maximum is
        returned as -inf / +inf: the data bound q only on one side there. Each end is bracketed by steps of
        ``first_step`` [dex] (below, above the maximum) doubling outwards, then found to 1e-3 dex. Where a
        constrained search finds a point higher than the free maximum by more than ``RESTART_NATS``, both ends
        are searched again from the new maximum (at most ``MAX_RESTARTS`` times, then FitError): ends bracketed
        from a missed maximum outside the interval collapse onto it.
        """
        if not 0 < level < 1:
            raise FitError(f"level must be in (0, 1), got {level}")
        q = float(stats.chi2.ppf(level, 1))
        for _ in range(MAX_RESTARTS + 1):  # again from the new maximum while a constrained search finds a higher one
            value = self.best()[1]
            y0 = float(self.log10_value(self.best()[0][None, :])[0])
            ends = [self._end(y0, sign, d, q, max_dex) for sign, d in zip((-1.0, 1.0), first_step)]
            if self.best()[1] <= value + RESTART_NATS:
                return y0, ends[0], ends[1]
        raise FitError(f"the likelihood's maximum kept moving while the interval at r = {self.r:.3g} kpc was searched")

    def _end(self, y0: float, sign: float, d: float, q: float, max_dex: float) -> float:
        """The end of {y : 2 Delta(y) <= q} below (``sign`` -1) or above (+1) ``y0``, first step ``d`` [dex]."""
        inner = 0.0
        while d <= max_dex and self.statistic(y0 + sign * d) < q:
            inner, d = d, 2.0 * d
        if d > max_dex:
            return sign * math.inf
        f = lambda t: self.statistic(y0 + sign * t) - q  # noqa: E731
        return y0 + sign * _crossing(f, inner, d, xtol=1e-3)


def _crossing(f: Callable[[float], float], a: float, b: float, xtol: float) -> float:
    """Where ``f`` crosses zero between ``a`` (f < 0 when bracketed) and ``b`` (f >= 0), to ``xtol``.

    Brent's method; if the ends no longer have opposite signs when it looks
    again (a constrained search found a higher maximum meanwhile, which
    raises the whole statistic, or started from another warm point), bisection
    on the same bracket, which keeps [a, b] and needs no sign at ``a``.

    >>> round(_crossing(lambda t: t - 0.3, 0.0, 1.0, 1e-6), 4)
    0.3
    >>> first = iter([0.1])  # on Brent's look f(a) > 0: the bracket no longer holds
    >>> round(_crossing(lambda t: next(first, -0.3) if t == 0.0 else t - 0.3, 0.0, 1.0, 1e-6), 4)
    0.3
    """
    try:
        return optimize.brentq(f, a, b, xtol=xtol)
    except ValueError:  # f(a) and f(b) of the same sign on this look
        while b - a > xtol:
            mid = 0.5 * (a + b)
            a, b = (mid, b) if f(mid) < 0 else (a, mid)
        return 0.5 * (a + b)


def profile_bands(likelihood: BaselineLikelihood, radii: Sequence[float], starts: Sequence[np.ndarray] = (),
                  max_dex: float = 3.0, quantities: Sequence[str] = ("rho",)) -> dict[str, np.ndarray]:
    """rho(r) and M(<r) at the likelihood's maximum with 68 % and 95 % profile-likelihood intervals.

    Parameters
    ----------
    likelihood : BaselineLikelihood
    radii : sequence of float
        Radii [kpc].
    starts : sequence of ndarray, optional
        Extra starting points (see :class:`ProfileLikelihood`).
    max_dex : float
        How far [dex] an interval end is searched for (beyond: 0 or inf).
    quantities : sequence of str
        Which of :data:`PROFILE_QUANTITIES` get intervals; each costs about
        as much as the other (the free maximum at a radius is searched once).

    Returns
    -------
    dict
        ``r`` [kpc], ``rho`` [Msun/kpc^3] and ``M`` [Msun] of the
        maximum-likelihood halo, and for each of ``quantities`` its band
        columns of :func:`dsphnf.result.band_columns` (``_lo``, ``_hi``,
        ``_lo95``, ``_hi95``).

    Examples
    --------
    >>> from dsphnf.mocks import draw_mock
    >>> from dsphnf.baseline import BaselineModel, BaselineLikelihood
    >>> from dsphnf.anisotropy import parse_anisotropy
    >>> cat = draw_mock("NonPlumCuspIso", n=300, seed=3).catalog
    >>> like = BaselineLikelihood(BaselineModel("nfw", parse_anisotropy("isotropic")), cat.R, cat.vz)
    >>> b = profile_bands(like, [0.1, 0.3], quantities=("rho", "M"))
    >>> all(bool(np.all(b[q + "_lo95"] < b[q + "_lo"]) and np.all(b[q + "_lo"] < b[q])
    ...         and np.all(b[q] < b[q + "_hi"])) for q in ("rho", "M"))
    True
    """
    unknown = [q for q in quantities if q not in PROFILE_QUANTITIES]
    if unknown or not quantities:
        raise FitError(f"profile quantities must be some of {', '.join(PROFILE_QUANTITIES)}, got {list(quantities)}")
    radii = np.asarray(radii, dtype=float)
    out: dict[str, np.ndarray] = {"r": radii}
    best: list[np.ndarray] = []
    for i, r in enumerate(radii):
        maximum = None
        for q in quantities:
            prof = ProfileLikelihood(likelihood, float(r), q, starts=[*starts, *best], maximum=maximum)
            for key, v in zip(band_columns(q), _intervals(prof, max_dex)):
                out.setdefault(key, np.full(radii.size, np.nan))[i] = 10.0 ** v
            maximum = prof.best()
        best = [maximum[0]]
        for q in PROFILE_QUANTITIES:  # the maximum-likelihood halo's value where q has no interval
            if q not in quantities:
                value = _log10_quantity(likelihood, best[0], float(r), q)[0]
                out.setdefault(q, np.full(radii.size, np.nan))[i] = 10.0**value
    return out


def _log10_quantity(likelihood: BaselineLikelihood, theta: np.ndarray, r: float, quantity: str) -> np.ndarray:
    """log10 rho(r) [Msun/kpc^3] (``quantity`` "rho") or log10 M(<r) [Msun] ("M") of parameters (B, ndim) -> (B,)."""
    p = likelihood.model.unpack(np.atleast_2d(theta))
    if quantity == "M":
        return np.log10(halo_mass(p, np.array([r]))[:, 0])
    return halo_log10_density(p, np.array([r]))[:, 0]


def _intervals(prof: ProfileLikelihood, max_dex: float) -> tuple[float, float, float, float, float]:
    """log10 q at the maximum, its 68 % interval's ends and its 95 % interval's ends."""
    y, lo, hi = prof.interval(0.68, max_dex)
    steps = tuple(1.8 * d if math.isfinite(d) and d > 0 else 0.02 for d in (y - lo, hi - y))
    y, lo95, hi95 = prof.interval(0.95, max_dex, first_step=steps)  # 2 sigma is ~2x 1 sigma out
    return y, lo, hi, lo95, hi95
