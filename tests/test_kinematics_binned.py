"""The one binned estimator (dsphnf.binned) on a Plummer sample with known Sigma(R) and sigma_los(R)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from dsphnf.binned import annulus_edges, binned_profiles, chi2
from dsphnf.catalog import Catalog
from dsphnf.flows.plots import binned_sky

A = 0.25  # Plummer scale [kpc]
SIGMA0 = 10.0  # central sigma_los [km/s]


def plummer_fraction(R):
    """Fraction of a Plummer sphere's stars projected inside R."""
    return R**2 / (A**2 + R**2)


def sigma_los(R):
    """sigma_los(R) of an isotropic self-consistent Plummer sphere, up to its central value [km/s]."""
    return SIGMA0 * (1.0 + R**2 / A**2) ** -0.25


def annulus_sigma_los(lo, hi):
    """sqrt(<Sigma sigma_los^2> / <Sigma>) over an annulus (what the estimator measures)."""
    sig = lambda R: R * (1.0 + R**2 / A**2) ** -2
    num = integrate.quad(lambda R: sig(R) * sigma_los(R) ** 2, lo, hi)[0]
    return np.sqrt(num / integrate.quad(sig, lo, hi)[0])


@pytest.fixture(scope="module")
def plummer():
    rng = np.random.default_rng(2024)
    n = 20000
    u = rng.uniform(0, 1, n)
    R = A * np.sqrt(u / (1 - u))  # inverts plummer_fraction
    phi = rng.uniform(0, 2 * np.pi, n)
    err = rng.uniform(1.0, 4.0, n)
    vz = rng.normal(0.0, sigma_los(R)) + rng.normal(0.0, err)
    return Catalog(R * np.cos(phi), R * np.sin(phi), vz, err)


def test_sigma_and_sigma_los_match_the_plummer_truth(plummer):
    b = binned_profiles(plummer, n_bins=8, n_boot=30, seed=1)
    n = plummer.n
    assert b["n"].tolist() == [n // 8] * 8  # equal-number annuli
    area = np.pi * (b["R_hi"] ** 2 - b["R_lo"] ** 2)
    np.testing.assert_allclose(b["Sigma"] * area, b["n"])
    np.testing.assert_allclose(b["Sigma_err"] * area, np.sqrt(b["n"]))  # Poisson
    true_sigma = n * (plummer_fraction(b["R_hi"]) - plummer_fraction(b["R_lo"])) / area
    c = chi2(b["Sigma"], b["Sigma_err"], true_sigma)
    assert c.n == 8 and c.p > 1e-3
    assert np.all(np.abs(b["Sigma"] / true_sigma - 1) < 4 * b["Sigma_err"] / b["Sigma"])
    # sigma_los: errors removed (the naive spread is larger), bootstrap errors ~ sigma / sqrt(2 n)
    true_los = np.array([annulus_sigma_los(lo, hi) for lo, hi in zip(b["R_lo"], b["R_hi"])])
    pulls = (b["sigma_los"] - true_los) / b["sigma_los_err"]
    assert np.all(np.abs(pulls) < 4) and chi2(b["sigma_los"], b["sigma_los_err"], true_los).p > 1e-3
    gauss = b["sigma_los"] / np.sqrt(2 * b["n"])
    assert np.all((b["sigma_los_err"] > 0.6 * gauss) & (b["sigma_los_err"] < 2.5 * gauss))
    # the sigma_los(R) decline of a Plummer sphere is recovered, not a flat profile
    assert b["sigma_los"][0] > 1.4 * b["sigma_los"][-1]


def test_weights_normalisation_edges_and_the_flow_figure_use_the_same_estimator(plummer):
    rng = np.random.default_rng(5)
    w = rng.uniform(0.2, 1.0, plummer.n)
    cat = Catalog(plummer.x, plummer.y, plummer.vz, plummer.vz_err, w)
    b = binned_profiles(cat, n_bins=5, n_boot=0)
    area = np.pi * (b["R_hi"] ** 2 - b["R_lo"] ** 2)
    assert np.sum(b["Sigma"] * area) == pytest.approx(w.sum())
    np.testing.assert_allclose(b["Sigma_err"], [np.sqrt(np.sum(w[(cat.R >= lo) & (cat.R < hi)] ** 2)) / a
                                                for lo, hi, a in zip(b["R_lo"], b["R_hi"], area)], rtol=1e-3)
    frac = binned_profiles(cat, n_bins=5, n_boot=0, normalise=True)
    np.testing.assert_allclose(frac["Sigma"] * w.sum(), b["Sigma"])
    # given edges: stars outside fall in no annulus
    inner = binned_profiles(cat, edges=[0.1, 0.2, 0.4], n_boot=0)
    expected = [np.count_nonzero((cat.R >= lo) & (cat.R < hi)) for lo, hi in [(0.1, 0.2), (0.2, 0.4)]]
    assert inner["n"].tolist() == expected and sum(expected) < cat.n
    # flows.plots.binned_sky is this estimator, as fractions of the stars, with its edges
    sky = binned_sky(cat.x, cat.y, cat.vz, w, cat.vz_err, n_bins=5)
    for k in ("R", "Sigma", "Sigma_err", "sigma_los"):
        np.testing.assert_array_equal(sky[k], frac[k])
    np.testing.assert_array_equal(sky["edges"], annulus_edges(cat.R, 5))


def test_positions_only_and_sparse_annuli():
    rng = np.random.default_rng(0)
    cat = Catalog(rng.normal(0, 0.2, 40), rng.normal(0, 0.2, 40))
    b = binned_profiles(cat, n_bins=4)
    assert "sigma_los" not in b and b["n"].sum() == 40
    v = Catalog(cat.x, cat.y, rng.normal(0, 5, 40))
    sparse = binned_profiles(v, edges=[0.0, 1e-3, 1.0], n_boot=10)
    assert sparse["n"][0] == 0 and np.isnan(sparse["R"][0]) and np.isnan(sparse["sigma_los"][0])
    assert np.isfinite(sparse["sigma_los"][1])
