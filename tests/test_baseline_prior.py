"""The baseline's default halo measure: flat in the log density at data radii (closed form, Jacobian, overrides)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dsphnf.anisotropy import parse_anisotropy
from dsphnf.baseline import BaselineModel, Prior, read_priors
from dsphnf.baseline.halo_measure import MEASURE_RADII, log_density_derivatives, log_halo_measure
from dsphnf.baseline.projector import zhao_log_density
from dsphnf.errors import FitError

R_HALF = 0.19  # kpc, as NonPlumCuspIso's
LN10 = np.log(10.0)


def _params(log10_rs: np.ndarray, gamma: np.ndarray, alpha: float = 1.0, beta: float = 3.0) -> dict:
    n = np.size(log10_rs)
    return {"rs": 10.0 ** np.atleast_1d(np.asarray(log10_rs, float)), "gamma": np.atleast_1d(np.asarray(gamma, float)),
            "alpha_dm": np.full(n, alpha), "beta_dm": np.full(n, beta)}


def _log_density_differences(log10_rs: np.ndarray, gamma: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """ln rho(r_{j+1}) - ln rho(r_j) of the gNFW halo, (B, len(radii) - 1)."""
    p = _params(log10_rs, gamma)
    return np.diff(zhao_log_density(radii, p["rs"], p["alpha_dm"], p["beta_dm"], p["gamma"]), axis=1)


@pytest.mark.parametrize("alpha,beta", [(1.0, 3.0), (2.0, 4.0), (0.5, 3.5)])
def test_derivatives_match_finite_differences(alpha, beta):
    rng = np.random.default_rng(1)
    lrs, g = rng.uniform(-1.5, 1.5, 50), rng.uniform(0.0, 2.0, 50)
    r = np.geomspace(0.01, 5.0, 7)
    p = _params(lrs, g, alpha, beta)
    d_rs, d_g, d_a = log_density_derivatives(r, p["rs"], p["gamma"], p["alpha_dm"], p["beta_dm"])
    h = 1e-6
    f = lambda rs, gg, a=p["alpha_dm"]: zhao_log_density(r, rs, a, p["beta_dm"], gg)  # noqa: E731
    num_rs = (f(p["rs"] * np.exp(h), g) - f(p["rs"] * np.exp(-h), g)) / (2 * h)
    num_g = (f(p["rs"], g + h) - f(p["rs"], g - h)) / (2 * h)
    num_a = (f(p["rs"], g, p["alpha_dm"] + h) - f(p["rs"], g, p["alpha_dm"] - h)) / (2 * h)
    np.testing.assert_allclose(d_rs, num_rs, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(d_g, num_g, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(d_a, num_a, rtol=1e-6, atol=1e-7)


def _brute_force_log_jacobian(lrs: float, gamma: float, alpha: float, free: tuple[str, ...]) -> float:
    """ln |det| of the log-density differences' Jacobian in (ln r_s, gamma, alpha), by central differences."""
    radii = R_HALF * np.array(MEASURE_RADII[len(free)])

    def differences(x: dict) -> np.ndarray:
        p = _params(np.log10(x["rs"]), x["gamma"], x["alpha_dm"])
        return np.diff(zhao_log_density(radii, p["rs"], p["alpha_dm"], p["beta_dm"], p["gamma"]), axis=1)[0]

    x0 = {"rs": 10.0**lrs, "gamma": gamma, "alpha_dm": alpha}
    h, cols = 1e-6, []
    for name in free:
        up, down = dict(x0), dict(x0)
        if name == "log10_rs":
            up["rs"], down["rs"] = x0["rs"] * np.exp(h), x0["rs"] * np.exp(-h)
        else:
            up[name], down[name] = x0[name] + h, x0[name] - h
        cols.append((differences(up) - differences(down)) / (2 * h))
    return float(np.log(abs(np.linalg.det(np.column_stack(cols)))))


@pytest.mark.parametrize("free", [("log10_rs", "gamma", "alpha_dm"), ("log10_rs", "alpha_dm")])
def test_measure_with_a_free_alpha_is_the_brute_force_jacobian(free):
    """--halo zhao-alpha (gamma and alpha free: four radii), and alpha free with gamma fixed (three radii)."""
    rng = np.random.default_rng(5)
    for lrs, g, a in zip(rng.uniform(-1.5, 1.5, 12), rng.uniform(0.0, 2.0, 12), rng.uniform(0.5, 3.0, 12)):
        g = g if "gamma" in free else 0.0
        got = log_halo_measure(_params(lrs, g, a), free, R_HALF)[0]
        assert got == pytest.approx(_brute_force_log_jacobian(lrs, g, a, free), abs=1e-3)  # det to 0.1 %
    # no prior weight where nothing inside the stars changes: a scale radius far beyond them
    near = log_halo_measure(_params(-0.5, 0.5, 1.5), free, R_HALF)
    far = log_halo_measure(_params(1.5, 0.5, 1.5), free, R_HALF)
    assert near[0] - far[0] > 5.0


def _image_area(radii: np.ndarray, n: int = 4000) -> float:
    """Area of the image of the prior box (log10 r_s in [-1.5, 1.5], gamma in [0, 2]) in (Delta_1, Delta_2)."""
    t = np.linspace(0.0, 1.0, n)
    edges = [(-1.5 + 3 * t, 0 * t), (1.5 + 0 * t, 2 * t), (1.5 - 3 * t, 2 + 0 * t), (-1.5 + 0 * t, 2 - 2 * t)]
    pts = np.concatenate([_log_density_differences(a, b, radii) for a, b in edges])
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # shoelace


def test_measure_is_the_jacobian_its_integral_is_the_image_area():
    """Int |det| d ln r_s d gamma over the box equals the area of the box's image in log-density space."""
    lrs, g = np.linspace(-1.5, 1.5, 601), np.linspace(0.0, 2.0, 401)
    L, G = np.meshgrid(lrs, g)
    m = np.exp(log_halo_measure(_params(L.ravel(), G.ravel()), ("log10_rs", "gamma"), R_HALF)).reshape(L.shape)
    integral = np.trapezoid(np.trapezoid(m, lrs, axis=1), g) * LN10  # d ln r_s = ln 10 d log10 r_s
    area = _image_area(R_HALF * np.array(MEASURE_RADII[2]))
    assert integral == pytest.approx(area, rel=2e-3)
    # the measure has one sign (the map is one-to-one) and vanishes far beyond the stars
    assert np.all(m > 0)
    assert m[:, -1].max() < 0.1 * m.max() and m[:, 0].max() < 0.1 * m.max()


def test_prior_draws_are_flat_in_the_log_density_differences():
    """Box draws weighted by the measure fill their image in (Delta_1, Delta_2) uniformly; unweighted ones do not."""
    rng = np.random.default_rng(3)
    n = 400_000
    lrs, g = rng.uniform(-1.5, 1.5, n), rng.uniform(0.0, 2.0, n)
    w = np.exp(log_halo_measure(_params(lrs, g), ("log10_rs", "gamma"), R_HALF))
    d = _log_density_differences(lrs, g, R_HALF * np.array(MEASURE_RADII[2]))
    u = np.c_[d[:, 0] + d[:, 1], d[:, 1] - d[:, 0]]  # rotated: the image is a band along the diagonal
    bins = [np.linspace(u[:, k].min(), u[:, k].max(), 9) for k in (0, 1)]
    counts, *_ = np.histogram2d(u[:, 0], u[:, 1], bins)
    weighted, *_ = np.histogram2d(u[:, 0], u[:, 1], bins, weights=w)
    occupied = np.pad(counts > 0, 1)
    inner = np.ones_like(counts, dtype=bool)  # bins whose eight neighbours all hold draws: inside the image
    for i in (0, 1, 2):
        for j in (0, 1, 2):
            inner &= occupied[i : i + 8, j : j + 8]
    assert inner.sum() >= 8
    cv = lambda h: np.std(h[inner]) / np.mean(h[inner])  # noqa: E731
    assert cv(weighted) < 0.08   # flat: Monte Carlo noise only
    assert cv(counts) > 0.25  # the old prior, flat in the parameters, is not flat there


def test_one_free_shape_parameter_nfw():
    """--halo nfw: the measure is d Delta / d ln r_s over (R_half/4, 4 R_half); flat in Delta."""
    lrs = np.linspace(-1.5, 1.5, 3001)
    m = np.exp(log_halo_measure(_params(lrs, np.ones_like(lrs)), ("log10_rs",), R_HALF))
    D = _log_density_differences(lrs, np.ones_like(lrs), R_HALF * np.array(MEASURE_RADII[1]))[:, 0]
    np.testing.assert_allclose(np.trapezoid(m, lrs) * LN10, abs(D[-1] - D[0]), rtol=1e-4)
    assert np.all(log_halo_measure(_params(lrs, np.ones_like(lrs)), (), R_HALF) == 0.0)


def test_model_uses_measure_by_default_and_flat_on_request(tmp_path):
    iso = parse_anisotropy("isotropic")
    m = BaselineModel("zhao", iso, r_half=R_HALF)
    assert m.halo_measure == "density" and m.measure_on == ("log10_rs", "gamma")
    assert m.describe()["halo_measure"].startswith("flat in ln rho at r = 0.0475, 0.19, 0.76 kpc")
    x = m.initial_guess(R_HALF, 10.0)
    i = m.names.index("log10_rs")
    near, far = x.copy(), x.copy()
    far[i] = 1.4  # 25 kpc, far beyond the stars
    lp = m.log_prior(np.array([near, far]))
    p = m.unpack(np.array([near, far]))
    np.testing.assert_allclose(lp, log_halo_measure(p, ("log10_rs", "gamma"), R_HALF))
    assert lp[0] - lp[1] > 1.0
    # a user box still bounds the parameter, and the measure multiplies it
    (tmp_path / "p.toml").write_text("log10_rs = [-1, 1]\n")
    user = BaselineModel("zhao", iso, read_priors(tmp_path / "p.toml"), r_half=R_HALF)
    assert user.log_prior(far)[0] == -np.inf and user.log_prior(near)[0] == pytest.approx(lp[0])
    # halo_measure = "flat" restores priors flat in the parameters
    (tmp_path / "f.json").write_text(json.dumps({"halo_measure": "flat", "gamma": [0, 1.5]}))
    flat = BaselineModel("zhao", iso, read_priors(tmp_path / "f.json"), r_half=R_HALF)
    assert flat.halo_measure == "flat" and flat.describe()["halo_measure"] == "flat in the parameters"
    np.testing.assert_array_equal(flat.log_prior(np.array([near, far])), [0.0, 0.0])
    nfw = BaselineModel("nfw", iso, r_half=R_HALF)
    assert nfw.measure_on == ("log10_rs",) and "0.25, 4 R_half" in nfw.describe()["halo_measure"]
    assert nfw.fixed["gamma"] == 1.0 and nfw.fixed["alpha_dm"] == 1.0  # NFW: both slopes' shape fixed
    assert m.fixed["alpha_dm"] == 1.0 and BaselineModel("cored", iso).fixed == {**nfw.fixed, "gamma": 0.0}
    free = BaselineModel("zhao-alpha", iso, r_half=R_HALF)  # the transition sharpness free too: four radii
    assert free.measure_on == ("log10_rs", "gamma", "alpha_dm") and "alpha_dm" in free.names
    assert free.describe()["halo_measure"].startswith("flat in ln rho at r = 0.0475, 0.12, 0.302, 0.76 kpc")
    assert free.describe()["alpha_dm"] == Prior("uniform", 0.5, 3.0).describe()
    assert BaselineModel("zhao", iso).halo_measure == "flat"  # no r_half: no data radii to place it


def test_a_prior_on_what_the_halo_fixes_is_one_line(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"alpha_dm": [0.5, 2.0]}))
    for halo in ("zhao", "nfw"):
        with pytest.raises(FitError, match=f"conflicts with --halo {halo} ") as exc:
            BaselineModel(halo, parse_anisotropy("isotropic"), read_priors(p), r_half=R_HALF)
        assert "\n" not in str(exc.value) and "alpha_dm = 1" in str(exc.value)
    assert BaselineModel("zhao-alpha", parse_anisotropy("isotropic"), read_priors(p)).priors["alpha_dm"].b == 2.0


def test_bad_halo_measure_is_one_line(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('halo_measure = "jeffreys"\n')
    with pytest.raises(FitError, match="halo_measure must be one of") as exc:
        read_priors(p)
    assert "\n" not in str(exc.value)
    with pytest.raises(FitError, match="r_half must be > 0"):
        BaselineModel("zhao", parse_anisotropy("isotropic"), r_half=-1.0)
