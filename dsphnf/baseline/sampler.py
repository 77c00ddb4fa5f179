"""emcee sampling with MAP initialisation and autocorrelation-based stopping.

:func:`find_map` maximises a (batched) log-posterior with Nelder-Mead and
estimates a Gaussian approximation from a finite-difference Hessian;
:func:`run_emcee` starts the walkers from that Gaussian, samples in chunks,
monitors the integrated autocorrelation time tau (emcee's estimator, never
raising ``AutocorrError``) and stops once the chain is longer than
``tau_factor`` x tau (and tau has settled) or at ``max_steps``.
"""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import emcee
import numpy as np
from scipy import optimize
from tqdm import tqdm  # text bar; tqdm.auto warns in notebooks without ipywidgets

from ..errors import FitError

__all__ = ["SamplerResult", "find_map", "run_emcee", "autocorr_time"]

LogProb = Callable[[np.ndarray], np.ndarray]


@dataclass
class SamplerResult:
    """Output of :func:`run_emcee`.

    Attributes
    ----------
    chain : ndarray, shape (n_steps, n_walkers, ndim)
        Every position of every walker (burn-in included).
    log_prob : ndarray, shape (n_steps, n_walkers)
    names : list of str
    tau : ndarray, shape (ndim,)
        Integrated autocorrelation times [steps] of the post-burn-in chain.
    burn, thin : int
        Steps discarded at the start, and thinning used for :attr:`samples`.
    acceptance : float
        Mean acceptance fraction.
    ess : ndarray, shape (ndim,)
        Effective sample size, n_walkers (n_steps - burn) / tau.
    converged : bool
        Whether n_steps - burn > tau_factor max(tau) with tau settled.
    """

    chain: np.ndarray
    log_prob: np.ndarray
    names: list[str]
    tau: np.ndarray
    burn: int
    thin: int
    acceptance: float
    ess: np.ndarray
    converged: bool
    wall_s: float
    theta_map: np.ndarray
    history: list[dict] = field(default_factory=list)

    @property
    def samples(self) -> np.ndarray:
        """Post-burn-in, thinned samples, flattened to (n, ndim)."""
        return self.chain[self.burn :: self.thin].reshape(-1, self.chain.shape[-1])

    @property
    def samples_log_prob(self) -> np.ndarray:
        return self.log_prob[self.burn :: self.thin].reshape(-1)


def autocorr_time(chain: np.ndarray) -> np.ndarray:
    """emcee's integrated autocorrelation time of a (n_steps, n_walkers, ndim) chain.

    Never raises: a chain too short for a reliable estimate still returns
    emcee's (lower-bound) estimate, with the warning suppressed; where no
    estimate exists at all (a few steps, or a parameter that never moved) the
    chain length is returned as a conservative value.
    """
    chain = np.asarray(chain, dtype=float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            tau = np.asarray(emcee.autocorr.integrated_time(chain, c=5, tol=0, quiet=True), dtype=float)
        except (ValueError, FloatingPointError):
            tau = np.full(chain.shape[-1], np.nan)
    return np.where(np.isfinite(tau) & (tau > 0), tau, float(max(chain.shape[0], 1)))


def _scalar(log_prob: LogProb) -> Callable[[np.ndarray], float]:
    def f(x: np.ndarray) -> float:
        v = float(log_prob(np.asarray(x, dtype=float)[None, :])[0])
        return -v if np.isfinite(v) else 1e300
    return f


def find_map(log_prob: LogProb, x0: np.ndarray, scales: np.ndarray, n_restarts: int = 2,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Maximum a posteriori point and a Gaussian covariance around it.

    Parameters
    ----------
    log_prob : callable
        Batched log-posterior, (B, ndim) -> (B,).
    x0 : ndarray
        Start (must have a finite log-posterior).
    scales : ndarray
        Typical parameter scales (initial simplex size, Hessian steps).
    n_restarts : int
        Nelder-Mead restarts from the previous optimum (escapes stalls).

    Returns
    -------
    x_map, cov : ndarray
        The optimum and the inverse of the finite-difference Hessian of
        -log_prob (a diagonal fallback if that is not positive definite).
    """
    f = _scalar(log_prob)
    x0 = np.asarray(x0, dtype=float)
    if f(x0) >= 1e300:
        raise FitError("the starting point has zero posterior density; check the priors against the data")
    x, step = x0, np.asarray(scales, dtype=float)
    ndim = x.size
    for i in range(n_restarts + 1):
        simplex = np.vstack([x] + [x + step[j] * np.eye(ndim)[j] for j in range(ndim)])
        res = optimize.minimize(f, x, method="Nelder-Mead",
                                options={"initial_simplex": simplex, "maxfev": 4000 * ndim,
                                         "xatol": 1e-5, "fatol": 1e-6})
        x = res.x
        step = step * 0.3
    cov = _laplace_cov(log_prob, x, np.asarray(scales) * 1e-2)
    return x, cov


def _laplace_cov(log_prob: LogProb, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Inverse finite-difference Hessian of -log_prob at ``x`` (steps ``h``), batched."""
    n = x.size
    E = np.eye(n) * h
    pts = [x]
    for i in range(n):
        pts += [x + E[i], x - E[i]]
    for i in range(n):
        for j in range(i + 1, n):
            pts += [x + E[i] + E[j], x - E[i] - E[j]]
    with np.errstate(invalid="ignore"):
        vals = -log_prob(np.array(pts))
    vals = np.where(np.isfinite(vals), vals, np.nan)
    f0, k = vals[0], 1
    H = np.zeros((n, n))
    fp, fm = np.empty(n), np.empty(n)
    for i in range(n):
        fp[i], fm[i] = vals[k], vals[k + 1]
        k += 2
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for i in range(n):
        for j in range(i + 1, n):
            fpp, fmm = vals[k], vals[k + 1]
            k += 2
            H[i, j] = H[j, i] = (fpp + fmm - fp[i] - fm[i] - fp[j] - fm[j] + 2 * f0) / (2 * h[i] * h[j])
    if np.all(np.isfinite(H)):
        try:
            cov = np.linalg.inv(H)
            np.linalg.cholesky(cov)
            return cov
        except np.linalg.LinAlgError:
            pass
    d = np.diag(H) if np.all(np.isfinite(np.diag(H))) else np.full(n, np.nan)
    d = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), (10 * h) ** 2)
    return np.diag(d)


def _init_walkers(log_prob: LogProb, x: np.ndarray, cov: np.ndarray, nwalkers: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Walkers drawn from N(x, cov), redrawn (then shrunk) until all have finite log_prob."""
    out = np.empty((nwalkers, x.size))
    have = 0
    shrink = 1.0
    for _ in range(60):
        cand = rng.multivariate_normal(x, cov * shrink, size=nwalkers)
        ok = np.isfinite(log_prob(cand))
        take = cand[ok][: nwalkers - have]
        out[have : have + len(take)] = take
        have += len(take)
        if have == nwalkers:
            return out
        shrink *= 0.5
    raise FitError("cannot place the emcee walkers inside the prior around the optimum")


def run_emcee(log_prob: LogProb, x0: np.ndarray, names: list[str], scales: np.ndarray, *,
              nwalkers: int = 32, max_steps: int = 20000, check_every: int = 250,
              tau_factor: float = 50.0, tau_rtol: float = 0.05, seed: int = 0,
              progress: bool | None = None, map_restarts: int = 2) -> SamplerResult:
    """MAP initialisation plus emcee until tau-based convergence or ``max_steps``.

    Parameters
    ----------
    log_prob : callable
        Batched log-posterior, (B, ndim) -> (B,); -inf outside the prior.
    x0 : ndarray
        Starting guess for the optimiser.
    names : list of str
        Parameter names (for messages and outputs).
    scales : ndarray
        Typical parameter scales.
    nwalkers : int
        Number of walkers (raised to 2 ndim + 2 if smaller).
    max_steps : int
        Upper limit on steps per walker.
    check_every : int
        Steps between autocorrelation checks.
    tau_factor, tau_rtol : float
        Converged when (steps - burn) > tau_factor max(tau) and max(tau)
        changed by less than tau_rtol since the last check.
    seed : int
        Seeds the initial ball and emcee's random state.
    progress : bool or None
        tqdm bar (None: only when stderr is a terminal).

    Returns
    -------
    SamplerResult
    """
    t0 = time.perf_counter()
    ndim = len(names)
    nwalkers = max(int(nwalkers), 2 * ndim + 2)
    nwalkers += nwalkers % 2
    if max_steps < 10:
        raise FitError(f"--steps must be at least 10, got {max_steps}")
    rng = np.random.default_rng(seed)
    if progress is None:
        progress = sys.stderr.isatty()
    x_map, cov = find_map(log_prob, x0, scales, n_restarts=map_restarts)
    p0 = _init_walkers(log_prob, x_map, cov, nwalkers, rng)
    moves = [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]
    sampler = emcee.EnsembleSampler(nwalkers, ndim, log_prob, vectorize=True, moves=moves)
    sampler.random_state = np.random.RandomState(seed).get_state()
    state = p0
    history: list[dict] = []
    tau_old = np.inf
    converged = False
    bar = tqdm(total=max_steps, desc="emcee", unit="step", disable=not progress, leave=False)
    try:
        n = 0
        while n < max_steps:
            k = min(check_every, max_steps - n)
            state = sampler.run_mcmc(state, k, progress=False)
            n += k
            bar.update(k)
            chain = sampler.get_chain()
            burn = n // 4
            tau = autocorr_time(chain[burn:])
            tmax = float(np.max(tau))
            history.append({"steps": n, "tau_max": tmax})
            bar.set_postfix(tau=f"{tmax:.0f}", need=f"{tau_factor * tmax:.0f}")
            if np.isfinite(tmax) and (n - burn) > tau_factor * tmax and abs(tmax - tau_old) < tau_rtol * tmax:
                converged = True
                break
            tau_old = tmax
    finally:
        bar.close()
    chain = sampler.get_chain()
    logp = sampler.get_log_prob()
    n = chain.shape[0]
    tau = autocorr_time(chain[n // 4 :])
    burn = int(min(n // 2, max(n // 4, 3 * np.max(tau)))) if np.all(np.isfinite(tau)) else n // 2
    tau = autocorr_time(chain[burn:])
    thin = max(1, int(0.5 * np.min(tau))) if np.all(np.isfinite(tau)) else 1
    ess = nwalkers * (n - burn) / tau
    return SamplerResult(chain=chain, log_prob=logp, names=list(names), tau=tau, burn=burn, thin=thin,
                         acceptance=float(np.mean(sampler.acceptance_fraction)), ess=ess,
                         converged=converged, wall_s=time.perf_counter() - t0, theta_map=x_map,
                         history=history)
