"""emcee driver on a known target, and the priors file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dsphnf.baseline import ANISOTROPY_PARAMETERS, BaselineModel, read_priors
from dsphnf.baseline.sampler import autocorr_time, run_emcee
from dsphnf.anisotropy import parse_anisotropy
from dsphnf.errors import AnisotropyError, FitError

COV = np.array([[1.0, 0.8], [0.8, 1.0]]) * np.array([[1.0, 2.0], [2.0, 4.0]])  # sd 1 and 2, correlation 0.8
MEAN = np.array([1.0, -2.0])
PREC = np.linalg.inv(COV)


def gauss(theta: np.ndarray) -> np.ndarray:
    d = np.atleast_2d(theta) - MEAN
    return -0.5 * np.einsum("bi,ij,bj->b", d, PREC, d)


def test_emcee_on_correlated_gaussian():
    # run to 400 tau (not the default 50) so that the band widths below are known to ~1 %
    res = run_emcee(gauss, np.array([3.0, 3.0]), ["a", "b"], np.array([1.0, 1.0]), nwalkers=16,
                    max_steps=20000, check_every=200, tau_factor=400.0, seed=4, progress=False)
    assert 0.1 < res.acceptance < 0.9
    assert np.all(np.isfinite(res.tau)) and np.all(res.tau > 0.5)
    assert res.converged
    assert np.all(res.ess > 500)
    s = res.samples
    err = np.sqrt(np.diag(COV) / res.ess)  # Monte Carlo error of the mean
    assert np.all(np.abs(s.mean(0) - MEAN) < 5 * err)
    np.testing.assert_allclose(np.cov(s.T), COV, rtol=0.15, atol=0.1)
    np.testing.assert_allclose(res.theta_map, MEAN, atol=1e-2)
    # the bands, as the baseline reports them (percentiles of the samples): half-widths 1 and 1.96 sd, to 4x
    # their Monte Carlo error (for a normal: 0.96 / sqrt(ESS) and 1.87 / sqrt(ESS) in units of sd; the chain's
    # rounding, and so its draws, differ between CPUs, so a tolerance of ~2 errors fails on some of them)
    sd = np.sqrt(np.diag(COV))
    q = np.percentile(s, [2.5, 16.0, 84.0, 97.5], axis=0)
    ess = res.ess.min()
    np.testing.assert_allclose(0.5 * (q[2] - q[1]) / sd, 1.0, atol=4 * 0.96 / np.sqrt(ess))
    np.testing.assert_allclose(0.5 * (q[3] - q[0]) / sd, 1.96, atol=4 * 1.87 / np.sqrt(ess))
    assert 4 * 0.96 / np.sqrt(ess) < 0.06  # the run is long enough for the check to mean something
    # seeded: the same seed gives the same chain
    res2 = run_emcee(gauss, np.array([3.0, 3.0]), ["a", "b"], np.array([1.0, 1.0]), nwalkers=16,
                     max_steps=200, check_every=200, seed=4, progress=False)
    np.testing.assert_array_equal(res2.chain, res.chain[:200])


def banana(theta: np.ndarray, s1: float = 2.0, b: float = 0.5) -> np.ndarray:
    """x1 ~ N(0, s1^2) and x2 | x1 ~ N(b (x1^2 - s1^2), 1): a curved ridge like the halo's r_s-gamma-rho0 one."""
    t = np.atleast_2d(theta)
    return -0.5 * (t[:, 0] / s1) ** 2 - 0.5 * (t[:, 1] - b * (t[:, 0] ** 2 - s1**2)) ** 2


def test_emcee_explores_a_curved_ridge():
    """From the MAP's Gaussian ball the walkers reach the arms of a banana: exact marginal percentiles.

    A chain stuck near the optimum (the overconfidence hypothesis for the
    baseline's bands) would give too narrow x1 percentiles and too small a
    spread of x2 (percentiles from 10^7 exact draws).
    """
    res = run_emcee(banana, np.array([0.5, 0.0]), ["x1", "x2"], np.array([0.5, 0.5]), nwalkers=32,
                    max_steps=20000, check_every=250, seed=7, progress=False)
    assert res.converged
    s = res.samples
    q = np.percentile(s[:, 0], [2.5, 16.0, 84.0, 97.5])
    np.testing.assert_allclose(q, [-3.92, -2.0, 2.0, 3.92], atol=0.3)
    np.testing.assert_allclose(np.percentile(s[:, 1], [16.0, 50.0, 84.0]), [-2.26, -0.78, 2.14], atol=0.3)


def test_short_chain_reports_tau_without_error():
    """A chain too short for a reliable tau still gives a number (no AutocorrError), not converged."""
    res = run_emcee(gauss, np.array([0.0, 0.0]), ["a", "b"], np.array([1.0, 1.0]), nwalkers=8,
                    max_steps=30, check_every=30, seed=0, progress=False)
    assert not res.converged
    assert res.chain.shape == (30, 8, 2)
    assert np.all(np.isfinite(res.tau)) and np.all(np.isfinite(res.ess))
    assert np.all(np.isfinite(autocorr_time(res.chain[:5])))


def test_priors_file_json_and_toml(tmp_path):
    pj = tmp_path / "p.json"
    pj.write_text(json.dumps({"gamma_star": 1.0, "log10_rs": [-1, 1], "gamma": {"normal": [1.0, 0.5]}}))
    pt = tmp_path / "p.toml"
    pt.write_text("gamma_star = 1.0\nlog10_rs = [-1, 1]\ngamma = {normal = [1.0, 0.5]}\n")
    for path in (pj, pt):
        pri = read_priors(path)
        m = BaselineModel("zhao", parse_anisotropy("isotropic"), pri)
        assert "gamma_star" not in m.names and m.fixed["gamma_star"] == 1.0
        assert m.priors["log10_rs"].describe() == "U(-1, 1)"
        i = m.names.index("gamma")
        x = m.initial_guess(0.2, 10.0)
        x[i] = 2.0  # normal prior: 2 sd from the mean -> log prior -2 relative to the mean
        lp2 = m.log_prior(x)[0]
        x[i] = 1.0
        assert m.log_prior(x)[0] - lp2 == pytest.approx(2.0)


@pytest.mark.parametrize(
    "text,suffix,match",
    [
        ("{not json", ".json", "not valid JSON"),
        ("a = = 1", ".toml", "not valid TOML"),
        ('{"log10_rho": [1, 2]}', ".json", "unknown parameter"),
        ('{"gamma": [2, 1]}', ".json", "lo < hi"),
        ('{"gamma": {"normal": [1, -1]}}', ".json", "sd > 0"),
        ('{"gamma": [1, 2, 3]}', ".json", "bad prior"),
        ('{"gamma": "one"}', ".json", "bad prior"),
        ("[1, 2]", ".json", "table of parameter names"),
    ],
)
def test_bad_priors_file(tmp_path, text, suffix, match):
    p = tmp_path / f"priors{suffix}"
    p.write_text(text)
    with pytest.raises(FitError, match=match) as exc:
        read_priors(p)
    assert "\n" not in str(exc.value)


def test_model_options_and_conflicts():
    assert BaselineModel("nfw", parse_anisotropy("isotropic")).fixed["gamma"] == 1.0
    assert BaselineModel("cored", parse_anisotropy("isotropic")).fixed["gamma"] == 0.0
    assert "beta_sym" in BaselineModel("zhao", parse_anisotropy("constant")).names
    assert "log10_ra" in BaselineModel("zhao", parse_anisotropy("om")).names
    m = BaselineModel("zhao", parse_anisotropy("constant"))
    x = m.initial_guess(0.2, 10.0)
    x[m.names.index("beta_sym")] = 1.0 / 3.0  # beta = 2 b / (1 + b) = 0.5
    assert m.unpack(x)["beta0"][0] == pytest.approx(0.5)
    given = BaselineModel("zhao", parse_anisotropy("om:0.3"))
    assert "ra" not in given.unpack(given.initial_guess(0.2, 10)) and given.anisotropy.ra == 0.3
    from dsphnf.baseline.priors import Prior

    with pytest.raises(FitError, match="conflicts"):
        BaselineModel("nfw", parse_anisotropy("isotropic"), {"gamma": Prior("uniform", 0, 1)})
    with pytest.raises(FitError, match="does not apply"):
        BaselineModel("zhao", parse_anisotropy("isotropic"), {"log10_ra": Prior("uniform", 0, 1)})
    with pytest.raises(FitError, match="does not apply"):
        BaselineModel("zhao", parse_anisotropy("cuddeford:0.1,0.5"), {"b0_sym": Prior("uniform", 0, 1)})
    with pytest.raises(AnisotropyError, match="bad anisotropy"):
        parse_anisotropy("radial")
    with pytest.raises(AnisotropyError, match="baseline does not support the inferred anisotropy 'free'") as exc:
        BaselineModel("zhao", parse_anisotropy("free"))
    assert "cuddeford or baes" in str(exc.value)
    with pytest.raises(FitError, match="unknown halo"):
        BaselineModel("burkert", parse_anisotropy("isotropic"))


def test_inferred_cuddeford_and_baes_parameters():
    """The new families sample symmetrised anisotropies, log10 r_a and eta, with their default priors."""
    cud = BaselineModel("nfw", parse_anisotropy("cuddeford"))
    assert [n for n in cud.names if n in ANISOTROPY_PARAMETERS["baes"]] == ["b0_sym", "log10_ra"]
    baes = BaselineModel("zhao", parse_anisotropy("baes"))
    assert [n for n in baes.names if n in ANISOTROPY_PARAMETERS["baes"]] == ["b0_sym", "binf_sym", "log10_ra", "eta"]
    assert baes.describe()["eta"] == "U(1, 3)" and baes.describe()["binf_sym"] == "U(-1, 1)"
    x = baes.initial_guess(0.2, 10.0)
    assert np.isfinite(baes.log_prior(x)[0])
    x[baes.names.index("b0_sym")] = -0.5   # b0 = 2 b / (1 + b) = -2
    x[baes.names.index("binf_sym")] = 0.5  # binf = 2/3
    x[baes.names.index("log10_ra")] = -0.5
    x[baes.names.index("eta")] = 1.5
    p = baes.unpack(np.array([x, np.where(np.arange(x.size) == baes.names.index("binf_sym"), -1.0, x)]))
    assert p["b0"][0] == pytest.approx(-2.0) and p["binf"][0] == pytest.approx(2.0 / 3.0)
    assert p["ra"][0] == pytest.approx(10**-0.5) and p["eta"][0] == 1.5
    assert p["valid"].tolist() == [True, False]  # binf_sym = -1 is beta = -infinity
    x[baes.names.index("eta")] = 3.5
    assert baes.log_prior(x)[0] == -np.inf
