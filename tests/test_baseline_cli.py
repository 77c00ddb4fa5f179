"""`dsphnf baseline` end to end through the command line, and its one-line errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dsphnf.catalog import Catalog
from dsphnf.cli import main
from dsphnf.result import PROFILE_COLUMNS

COLUMNS = PROFILE_COLUMNS


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    from dsphnf.mocks import get_model, sample_stars

    xv = sample_stars(get_model("NonPlumCuspIso"), 300, seed=11, verr=2.0)
    path = tmp_path_factory.mktemp("cat") / "stars.csv"
    cat = Catalog.from_phase_space(xv, verr=2.0)
    cat.to_csv(path)
    return path


@pytest.fixture(scope="module")
def baseline_out(stars, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bl"
    rc = main(["baseline", str(stars), "-o", str(out), "--halo", "nfw", "--anisotropy", "constant",
               "--steps", "300", "--walkers", "24", "--seed", "2", "--distance", "76", "--no-progress"])
    assert rc == 0
    return out


def test_baseline_writes_all_outputs(baseline_out, capsys):
    for name in ("profile.csv", "profile_bands.csv", "summary.json", "chain.npz", "posterior.nc", "corner.png",
                 "profiles.png"):
        assert (baseline_out / name).is_file(), name
    with open(baseline_out / "profile.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == COLUMNS
    data = np.array(rows[1:], dtype=float)
    col = {k: data[:, i] for i, k in enumerate(COLUMNS)}
    assert np.all(np.diff(col["r"]) > 0)
    assert np.all(col["rho_lo95"] <= col["rho_lo"]) and np.all(col["rho_lo"] <= col["rho"])
    assert np.all(col["rho"] <= col["rho_hi"]) and np.all(col["rho_hi"] <= col["rho_hi95"])
    assert np.all(col["M_lo"] <= col["M"]) and np.all(col["M"] <= col["M_hi"]) and np.all(np.diff(col["M"]) > 0)
    assert np.all(col["beta"] < 1) and np.all(col["sigma_r"] > 0) and np.all(col["nu"] > 0)
    s = json.loads((baseline_out / "summary.json").read_text())
    assert s["method"] == "baseline" and s["n_stars"] == 300
    assert s["settings"]["halo"] == "nfw" and s["settings"]["fixed"]["gamma"] == 1.0
    assert s["settings"]["anisotropy"] == "constant" and s["timings_s"]["total_s"] > 0
    assert "beta_sym" in s["diagnostics"]["parameters"]
    sam = s["diagnostics"]["sampler"]
    assert 0 < sam["acceptance_fraction"] < 1 and sam["n_steps"] == 300 and sam["n_walkers"] == 24
    assert all(np.isfinite(v) and v > 0 for v in sam["ess"].values())
    j = s["jfactor"]
    assert j["log10_J_lo95"] <= j["log10_J_lo"] <= j["log10_J"] <= j["log10_J_hi"] <= j["log10_J_hi95"]
    assert 17.5 < j["log10_J"] < 20.5  # truth 19.05 at 76 kpc; 300 stars and a short chain
    assert j["n_used"] + j["n_left_out"] == 200
    ch = np.load(baseline_out / "chain.npz")
    assert ch["chain"].shape == (300, 24, len(ch["names"])) and ch["log_prob"].shape == (300, 24)
    assert list(ch["names"]) == list(s["diagnostics"]["parameters"])


def test_help_lists_the_anisotropy_grammar(capsys):
    assert main(["baseline", "--help"]) == 0
    out = capsys.readouterr().out
    for form in ("cuddeford:B0,RA", "baes:B0,BINF,RA,ETA", "constant | om | cuddeford | baes", "posterior.nc"):
        assert form in " ".join(out.split()), form


def test_baseline_profile_near_truth(baseline_out):
    """Even 300 stars put the true density inside the 95% band at r* (cusp halo, NFW fit)."""
    from dsphnf.compare import compare
    from dsphnf.mocks import get_model, truth_profiles

    r = np.geomspace(0.01, 3.0, 100)
    t = truth_profiles(get_model("NonPlumCuspIso"), r)
    rows = compare([baseline_out], {"r": r, "rho": t["rho"], "M": t["M"]}, [0.25])
    assert rows[0]["in95"] is True and abs(rows[0]["log10_err"]) < 0.3


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--anisotropy", "radial"], "bad anisotropy"),
        (["--anisotropy", "free"], "baseline does not support the inferred anisotropy 'free'"),
        (["--anisotropy", "baes:0,0.5,-1,2"], "RA > 0"),
        (["--walkers", "2"], "--walkers"),
        (["--steps", "3"], "--steps"),
        (["--distance", "-5"], "--distance"),
        (["--priors", "MISSING.json"], "cannot read priors"),
        (["--priors", "BAD.json"], "not valid JSON"),
        (["--priors", "UNKNOWN.toml"], "unknown parameter"),
    ],
)
def test_bad_inputs_one_line_exit_2(stars, tmp_path, capsys, extra, match):
    (tmp_path / "BAD.json").write_text("{oops")
    (tmp_path / "UNKNOWN.toml").write_text("rho_dm = [1, 2]\n")
    extra = [str(tmp_path / e) if e in ("MISSING.json", "BAD.json", "UNKNOWN.toml") else e for e in extra]
    out = tmp_path / "out"
    rc = main(["baseline", str(stars), "-o", str(out), "--no-progress"] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_bad_catalogues(tmp_path, capsys):
    nov = tmp_path / "novel.csv"
    nov.write_text("x,y\n0.1,0.2\n0.3,0.1\n")
    for path, match in ((tmp_path / "nope.csv", "no such file"), (nov, "vz")):
        rc = main(["baseline", str(path), "-o", str(tmp_path / "o"), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and match in err and len(err.splitlines()) == 1
        assert not (tmp_path / "o").exists()


def _option(command, name: str, option: str):
    import argparse

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices[name]
    (action,) = [a for a in sub._actions if option in a.option_strings]
    return action


def test_halo_choices_and_defaults_are_the_models():
    """The parsers and calibrate's settings spell the families and the default out (no baseline import at
    start-up); they must stay HALOS and DEFAULT_HALO, the default of every fit."""
    import inspect

    from dsphnf.baseline import HALOS, fit_baseline
    from dsphnf.baseline.fit import likelihood_for
    from dsphnf.baseline.model import DEFAULT_HALO, BaselineModel
    from dsphnf.calibrate.spec import BaselineSettings, ProfileSettings, calibration_spec
    from dsphnf.commands import baseline as baseline_command
    from dsphnf.commands import calibrate as calibrate_command

    halo = _option(baseline_command, "baseline", "--halo")
    assert list(halo.choices) == list(HALOS) and DEFAULT_HALO in HALOS
    assert halo.default == _option(calibrate_command, "calibrate", "--fit-halo").default == DEFAULT_HALO
    for f in (fit_baseline, likelihood_for, BaselineModel, calibration_spec):
        params = inspect.signature(f).parameters
        assert params["fit_halo" if f is calibration_spec else "halo"].default == DEFAULT_HALO, f
    assert BaselineSettings.__dataclass_fields__["halo"].default == DEFAULT_HALO
    assert ProfileSettings.__dataclass_fields__["halo"].default == DEFAULT_HALO


def test_zhao_alpha_samples_the_transition_sharpness(stars, tmp_path):
    out = tmp_path / "za"
    rc = main(["baseline", str(stars), "-o", str(out), "--halo", "zhao-alpha", "--steps", "200", "--walkers", "24",
               "--no-progress", "--no-plots"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["halo"] == "zhao-alpha" and "alpha_dm" not in s["settings"]["fixed"]
    post = s["diagnostics"]["parameters"]["alpha_dm"]
    assert 0.5 <= post["lo95"] <= post["median"] <= post["hi95"] <= 3.0
    assert s["settings"]["priors"]["alpha_dm"] == "U(0.5, 3)"
    assert "(0.25, 0.63, 1.59, 4 R_half)" in s["settings"]["priors"]["halo_measure"]  # alpha in the density measure


def test_losvd_choices_and_defaults_are_the_models():
    """As the halo families: every parser, signature and settings object spells LOSVD_SHAPES and DEFAULT_LOSVD."""
    import inspect

    from dsphnf.baseline import fit_baseline
    from dsphnf.baseline.fit import likelihood_for
    from dsphnf.baseline.losvd import DEFAULT_LOSVD, LOSVD_SHAPES
    from dsphnf.baseline.model import BaselineModel
    from dsphnf.calibrate.spec import BaselineSettings, ProfileSettings, calibration_spec
    from dsphnf.commands import baseline as baseline_command
    from dsphnf.commands import calibrate as calibrate_command

    losvd = _option(baseline_command, "baseline", "--losvd")
    assert list(losvd.choices) == list(LOSVD_SHAPES)
    assert losvd.default == _option(calibrate_command, "calibrate", "--losvd").default == DEFAULT_LOSVD
    for f in (fit_baseline, likelihood_for, BaselineModel, calibration_spec):
        assert inspect.signature(f).parameters["losvd"].default == DEFAULT_LOSVD, f
    for settings in (BaselineSettings, ProfileSettings):
        assert settings.__dataclass_fields__["losvd"].default == DEFAULT_LOSVD


@pytest.mark.parametrize("losvd, names, said", [("kurtosis", ["kurtosis"], [""]),
                                                 ("kurtosis-radial", ["kurtosis_inner", "kurtosis_outer"],
                                                  [" at R_half/4", " at 4 R_half"])])
def test_free_kurtosis_is_sampled_and_written(stars, tmp_path, capsys, losvd, names, said):
    """--losvd kurtosis samples the LOSVD's kurtosis in [3, 12] (kurtosis-radial: one at each node) and says so
    in summary.json and on screen."""
    out = tmp_path / "k"
    rc = main(["baseline", str(stars), "-o", str(out), "--halo", "nfw", "--losvd", losvd, "--steps", "200",
               "--walkers", "24", "--no-progress", "--no-plots"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    printed = capsys.readouterr().out
    assert s["settings"]["losvd"] == losvd
    for name, where in zip(names, said):
        assert s["settings"]["priors"][name] == "U(3, 12)"
        post = s["diagnostics"]["parameters"][name]
        assert 3.0 <= post["lo95"] <= post["median"] <= post["hi95"] <= 12.0
        assert f"line-of-sight velocity kurtosis{where} {post['median']:.2f}" in printed
    assert ("kurtosis_nodes" in s["settings"]["priors"]) == (losvd == "kurtosis-radial")
    assert "fits the tails" not in printed


def test_heavy_tails_are_pointed_out_where_significant(baseline_out, capsys):
    """The report suggests --losvd kurtosis when the stars' kurtosis about a Gaussian fit is 3 sigma above 3."""
    from dsphnf.commands.baseline import _report

    summary = json.loads((baseline_out / "summary.json").read_text())
    assert summary["settings"]["losvd"] == "gaussian" and summary["diagnostics"]["losvd"]["shape"] == "gaussian"
    n = summary["n_eff"]
    for kurtosis, said in ((3.0, False), (3.0 + 3.2 * np.sqrt(24 / n), True)):
        summary["diagnostics"]["losvd"]["kurtosis_about_map"] = kurtosis
        _report(summary, str(baseline_out))
        assert ("--losvd kurtosis fits the tails" in capsys.readouterr().out) == said


def test_broken_power_law_halo_end_to_end(stars, tmp_path, capsys):
    """``--halo broken``: the density at R_half and four slopes are sampled, the prior is described at the
    nodes, profiles and the J-factor go through the family's closed forms."""
    halo, slopes = "broken", ("gamma_1", "gamma_2", "gamma_3", "gamma_4")
    out = tmp_path / halo
    rc = main(["baseline", str(stars), "-o", str(out), "--halo", halo, "--steps", "200", "--walkers", "24",
               "--distance", "76", "--no-progress", "--no-plots"])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    priors = s["settings"]["priors"]
    assert s["settings"]["halo"] == halo and "log10_rs" not in priors and "alpha_dm" not in priors
    assert [priors[k] for k in slopes] == ["U(0, 2)"] + ["U(0, 3)"] * 3
    nodes = [float(x) for x in priors["halo_measure"].removeprefix("flat in ln rho at r = ")[:-4].split(", ")]
    np.testing.assert_allclose(np.array(nodes) / nodes[2], [0.25, 0.5, 1, 2, 4], rtol=2e-2)
    for k in slopes:
        post = s["diagnostics"]["parameters"][k]
        assert 0.0 <= post["lo95"] <= post["median"] <= post["hi95"] <= 3.0
    rows = np.genfromtxt(out / "profile_bands.csv", delimiter=",", names=True)
    assert np.all(np.diff(rows["M"]) > 0) and np.all(np.diff(rows["rho"]) < 0)
    assert np.all(rows["rho_lo95"] <= rows["rho"]) and np.all(rows["rho"] <= rows["rho_hi95"])
    j = s["jfactor"]
    assert j["log10_J_lo95"] <= j["log10_J"] <= j["log10_J_hi95"] and 17.5 < j["log10_J"] < 20.5  # truth 19.05
