"""General mocks: halo/tracer grammars, multi-population tracers, draw_mock and ``dsphnf mock --halo``."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate, stats

from dsphnf.anisotropy import ConstantBeta, Isotropic, OsipkovMerritt
from dsphnf.catalog import read_catalog
from dsphnf.cli import main
from dsphnf.errors import DsphnfError
from dsphnf.halos import Burkert, Einasto
from dsphnf.jeans import nu_sigma_r2
from dsphnf.jfactor import log10_j_factor
from dsphnf.mocks import draw_mock
from dsphnf.profiles import Zhao
from dsphnf.projection import surface_density, surface_density_and_sigma_los2
from dsphnf.specs import halo_spec, parse_halo, parse_tracer, tracer_spec
from dsphnf.tracers import MixtureAnisotropy, TracerMixture

MIX = dict(halo="burkert:1e8,2", tracer="0.3*plummer:0.15+0.7*zhao:0.6,2,5,0.5", anisotropy="isotropic;om:0.9")


# ---------------------------------------------------------------- grammars
def test_halo_grammar_builds_the_named_densities():
    r = np.geomspace(1e-3, 10, 7)
    nfw = parse_halo("nfw:1e7,0.5")
    np.testing.assert_allclose(nfw.density(r), 1e7 / ((r / 0.5) * (1 + r / 0.5) ** 2))
    z = parse_halo("zhao:1e7,0.5,2,4,0.5")
    x = r / 0.5
    np.testing.assert_allclose(z.density(r), 1e7 * x**-0.5 * (1 + x**2) ** ((0.5 - 4) / 2))
    b = parse_halo("burkert:1e8,2")
    np.testing.assert_allclose(b.density(r), 1e8 / ((1 + r / 2) * (1 + (r / 2) ** 2)))
    e = parse_halo("EINASTO: 2e7, 1, 0.17")
    np.testing.assert_allclose(e.density(r), 2e7 * np.exp(-(2 / 0.17) * (r**0.17 - 1)))
    for h in (nfw, z, b, e):
        assert parse_halo(halo_spec(h)) == h


@pytest.mark.parametrize("halo", [Burkert(1e8, 2.0), Einasto(2e7, 1.0, 0.17), Zhao(1e8, 1.5, 2.0, 4.0, 0.5)])
def test_halo_masses_are_exact(halo):
    """Closed-form M(<r) against quadrature of 4 pi r^2 rho, at radii where series and closed forms meet."""
    for r in (1e-6, 0.05, 0.1 * halo.rs, 0.2, 3.0, 50.0):
        f = lambda lx: 4 * np.pi * np.exp(3 * lx) * float(halo.density(np.exp(lx)))  # noqa: E731
        quad = integrate.quad(f, np.log(r) - 50, np.log(r), limit=400, epsabs=0, epsrel=1e-12)[0]
        assert float(halo.mass(r)) == pytest.approx(quad, rel=1e-9), r


def test_tracer_grammar_and_weights():
    w, comps = parse_tracer("0.3*plummer:0.15+0.7*zhao:0.6,2,5,0.5")
    assert w == (0.3, 0.7) and comps[0].rs == 0.15 and comps[1].gamma == 0.5
    assert all(c.total_mass() == pytest.approx(1.0) for c in comps)
    assert parse_tracer(tracer_spec(w, comps)) == (w, comps)
    assert parse_tracer("plummer:0.3")[0] == (1.0,)


@pytest.mark.parametrize("spec, words", [
    ("nfw:1e7", ["bad halo 'nfw:1e7'", "nfw takes 2 numbers", "burkert:RHO0,RS"]),
    ("hernquist:1,1", ["bad halo", "einasto:RHO_S,R_S,ALPHA"]),
    ("nfw:-1,1", ["must be > 0"]),
    ("zhao:1e7,1,1,3,2", ["GAMMA < 2"]),
    ("einasto:1e7,1,x", ["einasto takes 3 numbers"]),
])
def test_bad_halo_is_one_line(spec, words):
    with pytest.raises(DsphnfError) as exc:
        parse_halo(spec)
    assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words)


@pytest.mark.parametrize("spec, words", [
    ("plummer", ["bad tracer", "plummer:A"]),
    ("0.3*plummer:0.1+0.6*plummer:1", ["add up to 0.9, not 1"]),
    ("x*plummer:0.1", ["weight 'x' is not a number"]),
    ("zhao:0.3,2,3,0", ["BETA > 3"]),
    ("plummer:0", ["scale radius must be > 0"]),
])
def test_bad_tracer_is_one_line(spec, words):
    with pytest.raises(DsphnfError) as exc:
        parse_tracer(spec)
    assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words)


# ---------------------------------------------------------------- multi-population tracers
@pytest.fixture(scope="module")
def mixture_mock():
    return draw_mock(n=100_000, seed=2, **MIX)


def test_population_fractions_and_each_sigma(mixture_mock):
    cat, truth, model = mixture_mock
    pop = cat.meta["population"]
    assert set(np.unique(pop)) == {0, 1}
    for k, w in enumerate(model.weights):
        frac = np.mean(pop == k)
        assert abs(frac - w) < 4 * np.sqrt(w * (1 - w) / cat.n), (k, frac)
        # each population's projected radii follow its own Sigma(R)
        comp = model.components[k]
        grid = np.geomspace(1e-4 * comp.rs, 1e4 * comp.rs, 2000)
        cdf = integrate.cumulative_trapezoid(2 * np.pi * grid**2 * surface_density(grid, comp.density),
                                             np.log(grid), initial=0.0)
        assert stats.kstest(cat.R[pop == k], lambda q: np.interp(q, grid, cdf)).pvalue > 0.01, k
    # populations differ: the extended one is twice as wide or more
    assert np.median(cat.R[pop == 1]) > 2 * np.median(cat.R[pop == 0])


def test_mixture_projection_is_exact(mixture_mock):
    """(model.tracer, model.halo.mass, model.anisotropy) project to the mixture's sigma_los(R)."""
    cat, truth, model = mixture_mock
    grid = np.geomspace(1e-3, 30.0, 240)
    sig, s2 = surface_density_and_sigma_los2(grid, model.tracer, model.halo.mass, model.anisotropy)
    # against the sum of the populations' own projections
    parts = [surface_density_and_sigma_los2(grid, c.density, model.halo.mass, a)
             for c, a in zip(model.components, model.anisotropies)]
    s_sum = sum(w * p[0] for w, p in zip(model.weights, parts))
    p_sum = sum(w * p[0] * p[1] for w, p in zip(model.weights, parts))
    np.testing.assert_allclose(sig, s_sum, rtol=1e-6)
    np.testing.assert_allclose(s2, p_sum / s_sum, rtol=5e-3)
    cdf = integrate.cumulative_trapezoid(2 * np.pi * grid**2 * sig, np.log(grid), initial=0.0)
    edges = np.interp(np.linspace(0.05, 0.95, 7), cdf, grid)
    idx = np.digitize(cat.R, edges) - 1
    for k in range(len(edges) - 1):
        sel = (grid >= edges[k]) & (grid < edges[k + 1])
        w = grid[sel] ** 2 * sig[sel]
        t = integrate.trapezoid(w * s2[sel], grid[sel]) / integrate.trapezoid(w, grid[sel])
        assert np.sqrt(np.mean(cat.vz[idx == k] ** 2) / t) == pytest.approx(1.0, abs=0.03), k


def test_mixture_truth_combines_dispersions_not_betas(mixture_mock):
    _, truth, model = mixture_mock
    r = truth["r"]
    assert r[0] == pytest.approx(0.01 * 0.15) and r[-1] == pytest.approx(10 * 0.6)
    np.testing.assert_allclose(truth["nu"], truth["nu_0"] + truth["nu_1"], rtol=1e-12)
    np.testing.assert_allclose(truth["beta_0"], 0.0)
    np.testing.assert_allclose(truth["beta_1"], OsipkovMerritt(0.9).beta(r))
    p = [w * nu_sigma_r2(r, c.density, model.halo.mass, a)
         for w, c, a in zip(model.weights, model.components, model.anisotropies)]
    beta = (p[1] * truth["beta_1"]) / (p[0] + p[1])
    np.testing.assert_allclose(truth["beta"], beta, atol=1e-10)
    np.testing.assert_allclose(truth["sigma_t"] ** 2, (1 - truth["beta"]) * truth["sigma_r"] ** 2, rtol=1e-10)
    # the tabulated mixture beta(r) agrees with the truth table
    assert isinstance(model.anisotropy, MixtureAnisotropy) and model.anisotropy.spec() == "isotropic;om:0.9"
    np.testing.assert_allclose(model.anisotropy.beta(r), truth["beta"], atol=2e-3)
    assert isinstance(model.tracer, TracerMixture)


# ---------------------------------------------------------------- draw_mock
def test_draw_mock_python_api():
    cat, truth, model = draw_mock(halo="einasto:2e7,1,0.17", tracer="zhao:0.3,2,5,1", anisotropy=ConstantBeta(0.25),
                                  n=500, seed=3, verr=2.0, distance=80.0)
    assert cat.n == 500 and np.all(cat.vz_err == 2.0) and np.all(cat.meta["population"] == 0)
    assert set(truth) == {"r", "nu", "sigma_r", "sigma_t", "beta", "M", "rho"}
    np.testing.assert_allclose(truth["beta"], 0.25)
    np.testing.assert_allclose(truth["rho"], Einasto(2e7, 1, 0.17).density(truth["r"]))
    j = cat.meta["jfactor"]
    assert j["log10_J"] == pytest.approx(log10_j_factor(model.halo.density, 80.0, 0.5)) and j["theta_deg"] == 0.5
    again = draw_mock(halo=model.halo, tracer=model.tracer, anisotropy="constant:0.25", n=500, seed=3, verr=2.0)
    np.testing.assert_array_equal(cat.vz, again.catalog.vz)
    named = draw_mock("PlumCuspIso", n=20, seed=1)  # unchanged named path
    assert named.model.name == "PlumCuspIso" and "sigma_t" not in named.truth


@pytest.mark.parametrize("kwargs, words", [
    (dict(halo="nfw:1e7,1"), ["needs both halo and tracer"]),
    (dict(model="PlumCuspIso", halo="nfw:1e7,1", tracer="plummer:1"), ["not both"]),
    (dict(halo="nfw:6.4e7,1", tracer="plummer:0.25"), ["negative"]),
    (dict(halo="nfw:6.4e7,1", tracer="plummer:0.25", anisotropy="free"), ["does not support the inferred"]),
    (dict(halo="nfw:6.4e7,1", tracer="plummer:0.25", anisotropy="isotropic;om:1"), ["2 anisotropies for 1"]),
])
def test_draw_mock_refusals(kwargs, words):
    with pytest.raises(DsphnfError) as exc:
        draw_mock(n=10, **kwargs)
    assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words), str(exc.value)


# ---------------------------------------------------------------- CLI
def _cli(capsys, *args):
    rc = main(["mock", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_general_mock_writes_population_truth_and_jfactor(capsys, tmp_path):
    stars, truth = tmp_path / "s.csv", tmp_path / "t.csv"
    rc, out, err = _cli(capsys, "--halo", MIX["halo"], "--tracer", MIX["tracer"], "--anisotropy", MIX["anisotropy"],
                        "-n", 400, "--seed", 7, "-o", stars, "--truth", truth, "--distance", 76)
    assert rc == 0, err
    assert stars.read_text().splitlines()[0] == "x,y,vz,population"
    cat = read_catalog(stars)
    ref = draw_mock(n=400, seed=7, **MIX).catalog
    np.testing.assert_allclose(cat.vz, ref.vz, rtol=1e-9, atol=1e-8)
    pop = np.genfromtxt(stars, delimiter=",", names=True)["population"]
    np.testing.assert_array_equal(pop, ref.meta["population"])
    t = np.genfromtxt(truth, delimiter=",", names=True)
    assert t.dtype.names == ("r", "nu", "sigma_r", "sigma_t", "beta", "M", "rho", "nu_0", "beta_0", "nu_1", "beta_1")
    j = json.loads((tmp_path / "t.json").read_text())
    assert j["distance_kpc"] == 76 and 15 < j["log10_J"] < 22 and "log10 J(0.5 deg)" in out


@pytest.mark.parametrize("args, words", [
    (["--halo", "nfw:6.4e7,1", "--tracer", "plummer:0.25"], ["negative"]),
    (["--halo", "burkert:4e8,1", "--tracer", "plummer:0.25", "--anisotropy", "om:0.05"], ["at least about"]),
    (["--halo", "nfw:6.4e7,1", "--tracer", "zhao:0.25,2,5,0.4", "--anisotropy", "constant:0.3"],
     ["cusp-slope limit gamma*/2 = 0.2"]),
    (["--halo", "burkert:4e8,1", "--tracer", "plummer:0.25", "--anisotropy", "cuddeford:0.1,1"], ["cusp-slope"]),
    (["--halo", "burkert:4e8,1", "--tracer", "plummer:0.25", "--anisotropy", "constant:-2"], ["limit -1"]),
    (["--halo", "burkert:4e8,1", "--tracer", "plummer:0.25", "--anisotropy", "baes:0,0.5,1,2"], ["does not support"]),
    (["--halo", "burkert:4e8,1", "--tracer", "plummer:0.25", "--anisotropy", "om:x"], ["bad anisotropy"]),
    (["--halo", "nfw:6.4e7", "--tracer", "plummer:0.25"], ["bad halo"]),
    (["--halo", "nfw:6.4e7,1", "--tracer", "0.5*plummer:0.25"], ["add up to 0.5"]),
    (["--halo", "nfw:6.4e7,1"], ["both --halo and --tracer"]),
    ([], ["give a MODEL"]),
    (["PlumCoreOm", "--tracer", "plummer:1"], ["not both"]),
    (["--halo", "burkert:4e8,1", "--tracer", "plummer:0.25", "--distance", "-3"], ["--distance"]),
])
def test_cli_refusals_are_one_line_and_write_nothing(capsys, tmp_path, args, words):
    rc, _, err = _cli(capsys, *args, "-n", 10, "-o", tmp_path / "s.csv", "--truth", tmp_path / "t.csv")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("dsphnf: error:"), err
    assert all(w in err for w in words), err
    assert list(tmp_path.iterdir()) == []


def test_named_models_unchanged(capsys, tmp_path):
    rc, out, _ = _cli(capsys, "PlumCoreOm", "-n", 50, "-o", tmp_path / "s.csv", "--truth", tmp_path / "t.csv")
    assert rc == 0 and (tmp_path / "s.csv").read_text().splitlines()[0] == "x,y,vz"
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "r,nu,sigma_r,beta,M,rho"
    assert not (tmp_path / "t.json").exists()
    assert isinstance(draw_mock("PlumCoreOm", 10).model.anisotropy, OsipkovMerritt)
    assert isinstance(draw_mock("PlumCoreIso", 10).model.anisotropy, Isotropic)
