"""``dsphnf survey``: a two-galaxy fast survey end to end (with resume), one-line errors, the literature pulls."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from dsphnf.cli import main
from dsphnf.galaxies import GALAXIES
from dsphnf.survey import LITERATURE, SurveyOptions, published, pull, read_table, survey, survey_spec
from dsphnf.survey.quantities import baseline_draws

from conftest import find_reference

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"fast": True, "max_steps": 60, "nwalkers": 24, "n_draws": 60}


@pytest.fixture(scope="module")
def two_galaxies(tmp_path_factory):
    """Draco and Leo II, fast baseline fits; the survey is then run again on the same folder."""
    find_reference("walker_dwarfs")
    out = tmp_path_factory.mktemp("survey") / "out"
    spec = survey_spec(["draco", "Leo II"], **QUICK)
    first = survey(spec, out, progress=False, plots=True)
    again = survey(spec, out, progress=False, plots=False)
    return spec, first, again, out


def test_survey_writes_the_table_with_units(two_galaxies) -> None:
    spec, first, _, out = two_galaxies
    assert {p.name for p in out.iterdir()} >= {"survey.ecsv", "survey.csv", "literature.csv", "literature.png",
                                               "summary.json", "tasks"}
    table = read_table(out)
    assert list(table["galaxy"]) == ["draco", "leo2"] and list(table["method"]) == ["baseline", "baseline"]
    assert str(table["rho150"].unit) == "solMass / kpc3" and str(table["distance_kpc"].unit) == "kpc"
    assert str(table["log10_J05"].unit) == "dex(GeV2 / cm5)"
    for row in first.rows:
        assert row["rho150_lo"] < row["rho150"] < row["rho150_hi"]
        assert row["log10_J05_lo"] < row["log10_J05"] < row["log10_J05_hi"]
        assert row["M_half_lo"] < row["M_half"] < row["M_half_hi"]
        assert np.isnan(row["beta_half"])  # isotropic: not measured
        assert 1e7 < row["rho150"] < 1e10 and -3 < row["slope150"] < 0
        assert 16 < row["log10_J05"] < 21 and row["n_members"] > 100 and row["wall_s"] > 0
    leo2 = first.rows[1]
    assert leo2["j_beyond_data"] and leo2["theta_max_deg"] < 0.5 and np.isfinite(leo2["log10_Jmax"])
    draco = first.rows[0]
    assert not draco["j_beyond_data"] and np.isnan(draco["log10_Jmax"])
    header = (out / "survey.csv").read_text().splitlines()[0].split(",")
    assert header == list(table.colnames)


def test_survey_resumes_from_its_tasks(two_galaxies) -> None:
    _, first, again, _ = two_galaxies
    assert again.grid.computed == () and set(again.grid.resumed) == {"draco_baseline", "leo2_baseline"}
    assert [r["rho150"] for r in again.rows] == [r["rho150"] for r in first.rows]


def test_survey_sits_beside_the_literature(two_galaxies) -> None:
    """Draco's fast fit lands within 2 sigma of Read et al. and Pace & Strigari (the chapter-7 numbers)."""
    _, _, _, out = two_galaxies
    lines = (out / "literature.csv").read_text().splitlines()
    assert lines[0].startswith("galaxy,method,quantity,ours")
    draco = [ln.split(",") for ln in lines[1:] if ln.startswith("draco")]
    assert {d[9] for d in draco} == {"ReadWalkerSteger2019", "PaceStrigari2019", "GeringerSameth2015"}
    assert all(abs(float(d[10])) < 2 for d in draco)


def test_cli_two_galaxies_resume(tmp_path, capsys) -> None:
    find_reference("walker_dwarfs")
    args = ["survey", "draco", "leo2", "-o", str(tmp_path / "o"), "--fast", "--max-steps", "40",
            "--no-progress", "--no-plots"]
    assert main(args) == 0
    assert "2 fit(s) computed, 0 resumed" in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 fit(s) computed, 2 resumed" in out and "leo2" in out and "(J beyond data)" in out


@pytest.mark.parametrize("argv, message", [
    (["survey", "Andromeda"], "unknown galaxy 'Andromeda'"),
    (["survey", "draco", "--method", "mcmc"], "unknown --method 'mcmc'"),
    (["survey", "draco", "--radius", "oval"], "unknown --radius 'oval'"),
    (["survey", "draco", "--anisotropy", "free"], "free"),
    (["survey", "draco", "--method", "both", "--distance", "sometimes"], "unknown --distance 'sometimes'"),
    (["survey", "draco", "--tracer", "kinematic"], "unknown --tracer 'kinematic'"),
    (["survey", "draco", "--method", "both", "--tracer", "photometric"], "--tracer photometric is for the baseline"),
    (["survey", "draco", "--halo", "burkert"], "unknown --halo 'burkert'"),
    (["survey", "draco", "--method", "flow", "--halo", "zhao"], "--halo is the baseline's halo family"),
    (["survey", "draco", "--losvd", "student"], "unknown --losvd 'student'"),
    (["survey", "draco", "--method", "flow", "--losvd", "kurtosis"], "--losvd is the baseline's velocity"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message) -> None:
    find_reference("walker_dwarfs")
    out = tmp_path / "o"
    assert main(argv + ["-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_missing_catalogue_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch) -> None:
    """A reference-data folder with Draco's file only: asking for Leo I names the missing file."""
    draco = find_reference("walker_dwarfs", "dra_spec.dat")
    (tmp_path / "data" / "walker_dwarfs").mkdir(parents=True)
    (tmp_path / "data" / "walker_dwarfs" / "dra_spec.dat").symlink_to(draco)
    monkeypatch.setenv("DSPHNF_DATA", str(tmp_path / "data"))
    out = tmp_path / "o"
    assert main(["survey", "draco", "leo1", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Leo I: catalogue" in err and "leo1_spec.dat not found" in err
    assert not out.exists()


def test_distance_per_draw_is_the_jeans_homology(two_galaxies) -> None:
    """With a distance s D per draw, M(<R_half) scales by s and rho(150 pc) by s^-2 at the scaled radius."""
    from dsphnf.baseline import fit_baseline

    cat = GALAXIES["draco"].read()
    res = fit_baseline(cat, max_steps=40, nwalkers=24, seed=0, progress=False, n_draws=20)
    g = GALAXIES["draco"]
    fixed = baseline_draws(res, g.half_light_kpc, g.distance_kpc, g.distance_err_kpc, False, 50, 1)
    drawn = baseline_draws(res, g.half_light_kpc, g.distance_kpc, g.distance_err_kpc, True, 50, 1)
    s = drawn["s"]
    assert np.std(s) == pytest.approx(g.distance_err_kpc / g.distance_kpc, rel=0.4)
    assert np.allclose(drawn["M_half"], fixed["M_half"] * s)
    assert np.std(np.log(drawn["M_half"])) > np.std(np.log(fixed["M_half"]))


def test_pull_and_sources() -> None:
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), flags=re.M))
    assert {p.source for v in LITERATURE.values() for p in v} <= keys
    assert set(LITERATURE) == set(GALAXIES)
    lit = published("draco", "rho150")[0]
    assert lit.value == 2.4e8 and lit.source == "ReadWalkerSteger2019"
    # equal to the published value: pull 0; one combined sigma above: pull 1
    assert pull({"rho150": 2.4e8, "rho150_lo": 2.0e8, "rho150_hi": 2.8e8}, lit) == 0.0
    row = {"log10_J05": 18.83 + 0.5, "log10_J05_lo": 18.83 + 0.5 - 0.16, "log10_J05_hi": 19.5}
    assert pull(row, published("draco", "log10_J05")[0]) == pytest.approx(0.5 / np.hypot(0.16, 0.12))


def test_options_refuse_unknown_switches() -> None:
    with pytest.raises(ValueError, match="unknown --membership 'both'"):
        SurveyOptions(membership="both")


def test_flow_quantities_from_profile_and_members() -> None:
    """A power-law profile rho = 1e8 (r / 0.15 kpc)^-1.3: the flow read-out gives rho(150 pc) and the slope."""
    from types import SimpleNamespace

    from dsphnf.result import Result
    from dsphnf.survey.quantities import flow_quantities

    r = np.geomspace(0.01, 2.0, 80)
    prof = {"r": r, "rho": 1e8 * (r / 0.15) ** -1.3, "rho_lo": 0.8e8 * (r / 0.15) ** -1.3,
            "rho_hi": 1.2e8 * (r / 0.15) ** -1.3, "M": 1e7 * r, "M_lo": 0.9e7 * r, "M_hi": 1.1e7 * r,
            "beta": np.zeros_like(r)}
    members = [{"r": r, "rho": 1e8 * (r / 0.15) ** s} for s in (-1.1, -1.3, -1.5)]
    # Student-t bootstrap band of three slopes: mean -1.3, sd 0.2, half-width t_{2}(0.8413) 0.2 sqrt(1 + 1/3)
    half = stats.t.ppf(0.5 + 0.6827 / 2, 2) * 0.2 * np.sqrt(4.0 / 3.0)
    res = Result("flow", prof, {"method": "flow", "settings": {"anisotropy": "isotropic"},
                                "jfactor": {"log10_J": 18.5, "log10_J_lo": 18.3, "log10_J_hi": 18.7, "n_left_out": 0}},
                 SimpleNamespace(members=members))
    q = flow_quantities(res, 0.2, isotropic=True, distance=76.0, theta_max_deg=1.0)
    assert q["rho150"] == pytest.approx(1e8, rel=1e-6) and q["rho150_lo"] == pytest.approx(0.8e8, rel=1e-6)
    assert q["slope150"] == pytest.approx(-1.3, abs=1e-3)
    assert q["slope150_lo"] == pytest.approx(-1.3 - half, abs=1e-3) and q["slope150_hi"] == pytest.approx(-1.3 + half,
                                                                                                      abs=1e-3)
    single = flow_quantities(Result("flow", prof, res.summary, SimpleNamespace(members=members[:1])), 0.2, True,
                             76.0, 1.0)
    assert single["slope150"] == pytest.approx(-1.1, abs=1e-3) and np.isnan(single["slope150_lo"])  # no band from one
    assert q["M_half"] == pytest.approx(2e6, rel=1e-6) and np.isnan(q["beta_half"])
    assert q["log10_J05"] == 18.5 and np.isnan(q["log10_Jmax"])  # the stars reach beyond 0.5 deg: no J within


def test_flow_j_within_the_stars_largest_angle_comes_from_the_members() -> None:
    """Stars ending at 0.2 deg: the flow's log10_Jmax is the members' J band within 0.2 deg, below J(0.5 deg)."""
    from types import SimpleNamespace

    from dsphnf.flows.member_j import ensemble_j_band
    from dsphnf.result import Result
    from dsphnf.survey.quantities import flow_quantities

    r = np.geomspace(0.01, 0.6, 60)
    members = [{"r": r, "rho": 1e8 * (r / 0.15) ** s} for s in (-1.1, -1.3, -1.5)]
    prof = {"r": r, "rho": members[1]["rho"], "M": 1e7 * r}
    j05, _ = ensemble_j_band(members, 76.0, 0.5)
    res = Result("flow", prof, {"method": "flow", "settings": {"anisotropy": "isotropic"}, "jfactor": j05},
                 SimpleNamespace(members=members))
    q = flow_quantities(res, 0.2, isotropic=True, distance=76.0, theta_max_deg=0.2)
    jmax, _ = ensemble_j_band(members, 76.0, 0.2)
    assert q["log10_Jmax"] == pytest.approx(jmax["log10_J"], abs=1e-12)
    assert q["log10_Jmax_lo"] < q["log10_Jmax"] < q["log10_Jmax_hi"] and q["log10_Jmax"] < q["log10_J05"]


def test_photometric_tracer_is_a_plummer_of_the_half_light_radius() -> None:
    """The fixed stellar Zhao (gamma* = 0, beta* = 5, alpha* = 2) projects to a Sigma(R) whose half-number
    radius is r* = R_half (Plummer: N(<R) = R^2 / (R^2 + a^2)), by numerical Abel projection."""
    from dsphnf.baseline.projector import zhao_log_density
    from dsphnf.projection import surface_density
    from dsphnf.survey.run import photometric_tracer_priors

    half = GALAXIES["leo1"].half_light_kpc
    p = photometric_tracer_priors(half)
    one = lambda v: np.array([v])  # noqa: E731
    nu = lambda r: np.exp(zhao_log_density(np.atleast_1d(r), one(10 ** p["log10_rstar"].a), one(2.0),  # noqa: E731
                                           one(p["beta_star"].a), one(p["gamma_star"].a))[0])
    R = np.geomspace(1e-4, 200.0, 4000) * half
    n_inside = integrate.cumulative_trapezoid(2 * np.pi * R * surface_density(R, nu), R, initial=0.0)
    assert np.interp(0.5 * n_inside[-1], n_inside, R) == pytest.approx(half, rel=2e-3)


def test_halo_family_reaches_the_baseline_and_the_settings(two_galaxies) -> None:
    """The default is the baseline's (zhao-alpha: alpha_dm sampled); --halo zhao fixes alpha_dm = 1 in the fit
    and is recorded in the survey's settings, so that a folder of one family is never resumed for the other."""
    from dsphnf.baseline.model import DEFAULT_HALO
    from dsphnf.survey.run import _fit

    default = two_galaxies[0]
    assert default.describe()["fits"]["baseline"]["halo"] == DEFAULT_HALO
    g = GALAXIES["leo2"]
    gnfw = survey_spec(["leo2"], halo="zhao", **QUICK)
    assert gnfw.describe()["fits"]["baseline"]["halo"] == "zhao" and gnfw.fits != default.fits
    res = _fit(gnfw.fits[0], g.read(), g, gnfw.options, 0)
    assert res.summary["settings"]["halo"] == "zhao" and "alpha_dm" not in res.artefacts.sampler.names


def test_losvd_reaches_the_baseline_and_its_diagnostics(two_galaxies) -> None:
    """--losvd kurtosis samples the kurtosis in the survey's baseline fits and the row's diagnostics carry it;
    the default fit carries the stars' kurtosis about its best fit."""
    from dsphnf.survey.run import _fit, baseline_losvd

    g = GALAXIES["leo2"]
    heavy = survey_spec(["leo2"], losvd="kurtosis", **QUICK)
    assert heavy.describe()["fits"]["baseline"]["losvd"] == "kurtosis" and heavy.fits != two_galaxies[0].fits
    res = _fit(heavy.fits[0], g.read(), g, heavy.options, 0)
    got = baseline_losvd(res)
    assert res.summary["settings"]["losvd"] == "kurtosis" and "kurtosis" in res.artefacts.sampler.names
    assert got["shape"] == "kurtosis" and 3.0 <= got["kurtosis_lo"] <= got["kurtosis"] <= got["kurtosis_hi"] <= 12.0
    assert got["kurtosis_about_map"] > 1.0


def test_photometric_tracer_keeps_the_stellar_profile_fixed_in_the_baseline(two_galaxies) -> None:
    """A short baseline survey of Leo II with --tracer photometric samples only the halo: r*, gamma*, beta*
    are the Plummer of the table's half-light radius in the fit's settings."""
    from dsphnf.survey.run import _fit

    g = GALAXIES["leo2"]
    spec = survey_spec(["leo2"], options=SurveyOptions(tracer="photometric"), **QUICK)
    res = _fit(spec.fits[0], g.read(), g, spec.options, 0)
    priors = res.summary["settings"]["priors"]
    assert priors["log10_rstar"] == f"fixed {np.log10(g.half_light_kpc):g}"
    assert priors["gamma_star"] == "fixed 0" and priors["beta_star"] == "fixed 5"
