"""fit_baseline returns the shared Result: its schema, the saved folder, posterior.nc and corner.png."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from dsphnf.baseline import BaselineArtefacts, fit_baseline
from dsphnf.catalog import Catalog
from dsphnf.errors import AnisotropyError, FitError
from dsphnf.result import PROFILE_COLUMNS, Result, band_columns, load_result

STEPS, WALKERS = 60, 16


@pytest.fixture(scope="module")
def catalog():
    from dsphnf.mocks import draw_mock

    cat = draw_mock("PlumCoreOm", n=250, seed=4, verr=2.0).catalog
    cat.x[0], cat.y[0] = 0.0, 0.0  # a star at the centre has no projected radius: counted, left out
    return cat


@pytest.fixture(scope="module")
def fitted(catalog, tmp_path_factory):
    res = fit_baseline(catalog, "cuddeford", "nfw", max_steps=STEPS, nwalkers=WALKERS, seed=3, distance=76.0,
                       progress=False, check_every=30, n_draws=200)
    out = res.save(tmp_path_factory.mktemp("bl") / "out")
    return res, out


def test_result_schema(fitted, catalog):
    res, _ = fitted
    assert isinstance(res, Result) and res.method == "baseline" and res.kinematic
    assert isinstance(res.artefacts, BaselineArtefacts)
    s = res.summary
    assert s["method"] == "baseline" and s["source"] == catalog.source
    assert s["n_stars"] == catalog.n - 1 and s["diagnostics"]["data"]["n_stars_left_out"] == 1
    assert s["settings"]["anisotropy"] == "cuddeford" and s["settings"]["halo"] == "nfw"
    assert s["settings"]["fixed"]["gamma"] == 1.0 and s["settings"]["distance_kpc"] == 76.0
    # the default halo prior is flat in ln rho at R_half/4 and 4 R_half (nfw: one free shape parameter)
    assert s["settings"]["priors"]["halo_measure"].endswith("kpc (0.25, 4 R_half)")
    t = s["timings_s"]
    assert t["total_s"] >= t["sampler_s"] > 0
    sam = s["diagnostics"]["sampler"]
    # 8 free parameters: emcee needs 2 ndim + 2 = 18 walkers, more than asked for
    assert sam["n_steps"] == STEPS and sam["n_walkers"] == s["settings"]["nwalkers"] == 18
    assert 0 < sam["acceptance_fraction"] < 1
    assert list(s["diagnostics"]["parameters"]) == res.artefacts.sampler.names
    assert {"b0_sym", "log10_ra"} <= set(s["diagnostics"]["parameters"])
    j = s["jfactor"]
    assert j["n_used"] + j["n_left_out"] == 200 and j["distance_kpc"] == 76.0 and j["theta_deg"] == 0.5
    assert j["log10_J_lo95"] <= j["log10_J_lo"] <= j["log10_J"] <= j["log10_J_hi"] <= j["log10_J_hi95"]


def test_profile_bands_are_ordered(fitted):
    res, _ = fitted
    p = res.profile
    assert list(res.table()) == PROFILE_COLUMNS
    assert np.all(np.diff(p["r"]) > 0) and len(p["r"]) == 64
    for key in ("nu", "sigma_r", "beta", "M", "rho"):
        assert set(band_columns(key)) <= set(p), key
        lo95, lo, hi, hi95 = (p[key + s] for s in ("_lo95", "_lo", "_hi", "_hi95"))
        assert np.all(lo95 <= lo) and np.all(lo <= p[key]) and np.all(p[key] <= hi) and np.all(hi <= hi95), key
    assert np.all(p["beta_hi95"] < 1) and np.all(p["nu"] > 0) and np.all(np.diff(p["M"]) > 0)
    # Cuddeford: beta rises outwards towards 1 beyond r_a, and the band is not degenerate
    assert p["beta"][-1] > p["beta"][0] and np.all(p["beta_hi95"] > p["beta_lo95"])


def test_save_load_round_trip(fitted):
    res, out = fitted
    back = load_result(out)
    assert back.method == "baseline" and back.summary["settings"] == res.summary["settings"]
    assert set(back.profile) == set(res.profile)
    for k, v in res.profile.items():
        np.testing.assert_allclose(back.profile[k], v, rtol=1e-7, err_msg=k)
    for name in ("profile.csv", "profile_bands.csv", "summary.json", "chain.npz", "posterior.nc", "corner.png",
                 "profiles.png"):
        assert (out / name).is_file(), name


def test_posterior_netcdf_matches_chain(fitted):
    """posterior.nc is ArviZ InferenceData: walkers as chains, post-burn-in draws, burn-in as warm-up."""
    _, out = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    idata = az.from_netcdf(out / "posterior.nc")
    ch = np.load(out / "chain.npz")
    chain, burn, names = ch["chain"], int(ch["burn"]), [str(n) for n in ch["names"]]
    post = idata.posterior
    assert list(post.data_vars) == names
    assert post.sizes["chain"] == chain.shape[1] and post.sizes["draw"] == chain.shape[0] - burn
    assert idata.warmup_posterior.sizes["draw"] == burn
    for i, n in enumerate(names):
        np.testing.assert_array_equal(post[n].values, chain[burn:, :, i].T)
    np.testing.assert_array_equal(idata.sample_stats["lp"].values, ch["log_prob"][burn:].T)
    ess = az.ess(idata)
    assert all(float(ess[n]) > 0 for n in names)


def test_corner_png_is_an_image(fitted):
    _, out = fitted
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "corner.png")
    assert img.ndim == 3 and min(img.shape[:2]) > 500 and img[..., :3].std() > 0.01


def test_save_without_plots(fitted, tmp_path):
    res, _ = fitted
    out = res.save(tmp_path / "np", plots=False)
    assert (out / "posterior.nc").is_file() and not (out / "corner.png").exists()


@pytest.mark.parametrize("kwargs,error,match", [
    ({"anisotropy": "free"}, AnisotropyError, "does not support the inferred anisotropy 'free'"),
    ({"max_steps": 5}, FitError, "--steps"),
    ({"nwalkers": 2}, FitError, "--walkers"),
    ({"distance": 0.0}, FitError, "--distance"),
    ({"halo": "burkert"}, FitError, "unknown halo"),
])
def test_bad_settings_one_line(catalog, kwargs, error, match):
    with pytest.raises(error, match=match) as exc:
        fit_baseline(catalog, **kwargs)
    assert "\n" not in str(exc.value)


def test_too_few_stars_or_no_velocities():
    few = Catalog(np.linspace(0.1, 1, 12), np.zeros(12), np.zeros(12), source="few.csv")
    with pytest.raises(FitError, match="few.csv: only 12 stars"):
        fit_baseline(few)
    with pytest.raises(FitError, match="velocities"):
        fit_baseline(Catalog(np.linspace(0.1, 1, 30), np.zeros(30), source="pos.csv"))
