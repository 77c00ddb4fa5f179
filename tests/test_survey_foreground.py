"""The foreground mixture of the baseline likelihood recovers a known contamination fraction."""
from __future__ import annotations

import numpy as np
import pytest

from dsphnf.baseline import fit_baseline
from dsphnf.baseline.likelihood import BaselineLikelihood
from dsphnf.baseline.mixture import Foreground, MixtureLikelihood
from dsphnf.baseline.model import BaselineModel
from dsphnf.catalog import Catalog
from dsphnf.mocks import draw_mock

N_MEMBERS, N_FG, FG_MEAN, FG_SIGMA = 400, 100, 30.0, 60.0


def _contaminated(seed: int = 3) -> tuple[Catalog, np.ndarray]:
    """A mock dwarf plus foreground stars uniform on the sky (same radial window) with v ~ N(30, 60^2) km/s."""
    cat = draw_mock("PlumCuspIso", n=N_MEMBERS, seed=seed, verr=2.0).catalog
    rng = np.random.default_rng(seed)
    R_lo, R_hi = cat.R.min(), cat.R.max()
    R = np.sqrt(rng.uniform(R_lo**2, R_hi**2, N_FG))  # uniform in area
    phi = rng.uniform(0, 2 * np.pi, N_FG)
    v = rng.normal(FG_MEAN, FG_SIGMA, N_FG)
    is_fg = np.r_[np.zeros(cat.n, bool), np.ones(N_FG, bool)]
    mixed = Catalog(np.r_[cat.x, R * np.cos(phi)], np.r_[cat.y, R * np.sin(phi)], np.r_[cat.vz, v],
                    np.full(cat.n + N_FG, 2.0), source="mock + foreground")
    return mixed, is_fg


def test_mixture_recovers_the_contamination_fraction() -> None:
    cat, is_fg = _contaminated()
    fg = Foreground(FG_MEAN, FG_SIGMA)  # the fraction is free
    res = fit_baseline(cat, "isotropic", "nfw", max_steps=400, nwalkers=24, seed=1, progress=False, n_draws=100,
                       foreground=fg)
    post = res.summary["diagnostics"]["parameters"]["f_fg"]
    truth = N_FG / cat.n
    half = 0.5 * (post["hi"] - post["lo"])
    assert 0.005 < half < 0.06
    assert abs(post["median"] - truth) < 3 * half, (post, truth)
    # the members' probabilities separate the two populations
    like = res.artefacts.likelihood
    p = like.member_probability(res.artefacts.sampler.theta_map[None, :])[0]
    assert np.mean(p[~is_fg]) > 0.9 and np.mean(p[is_fg]) < 0.5


def test_without_a_mixture_the_contamination_inflates_the_dispersion() -> None:
    """The likelihood without foreground prefers a hotter halo: the mixture is what removes the bias."""
    cat, is_fg = _contaminated()
    model = BaselineModel("nfw")
    plain = BaselineLikelihood(model, cat.R, cat.vz, cat.vz_err)
    mix = MixtureLikelihood(model, cat.R, cat.vz, cat.vz_err, foreground=Foreground(FG_MEAN, FG_SIGMA, 0.2))
    x = model.initial_guess(0.25, 10.0)
    i = model.names.index("log10_rho0")
    rho = np.linspace(x[i] - 1.0, x[i] + 1.5, 41)
    theta = np.repeat(x[None, :], rho.size, axis=0)
    theta[:, i] = rho
    best_plain, best_mix = rho[np.argmax(plain.log_likelihood(theta))], rho[np.argmax(mix.log_likelihood(theta))]
    assert best_plain > best_mix + 0.1


def test_zero_fraction_is_the_plain_likelihood() -> None:
    cat, _ = _contaminated()
    model = BaselineModel("nfw")
    x = model.initial_guess(0.25, 10.0)[None, :]
    plain = BaselineLikelihood(model, cat.R, cat.vz, cat.vz_err).log_likelihood(x)
    mix = MixtureLikelihood(model, cat.R, cat.vz, cat.vz_err, foreground=Foreground(0.0, 50.0, 0.0))
    assert mix.log_likelihood(x) == pytest.approx(plain, rel=1e-12)
