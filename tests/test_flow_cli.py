"""``dsphnf fit`` end to end: a short smoke fit writing every output, and every error path."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import find_reference
from dsphnf.cli import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    """300 stars of the Gaia Challenge NonPlumCuspIso mock as CSV (x, y, vz) and positions-only."""
    gaia = find_reference("gaia_challenge", "NonPlumCuspIso", "gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0.dat")
    d = np.loadtxt(gaia)[:300]
    folder = tmp_path_factory.mktemp("stars")
    full, pos = folder / "stars.csv", folder / "positions.csv"
    np.savetxt(full, d[:, [0, 1, 5]], delimiter=",", header="x,y,vz", comments="")
    np.savetxt(pos, d[:, [0, 1]], delimiter=",", header="x,y", comments="")
    return full, pos


def _header(path: Path) -> list[str]:
    with open(path) as fh:
        return next(csv.reader(fh))


def test_smoke_fit_writes_all_outputs(stars, tmp_path, capsys):
    out = tmp_path / "fit"
    rc = main(["fit", str(stars[0]), "-o", str(out), "--steps", "30", "--ensemble", "2", "--distance", "76",
               "--no-progress", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    assert _header(out / "profile.csv") == ["r", "nu", "sigma_r", "beta", "M", "M_lo", "M_hi", "rho", "rho_lo",
                                           "rho_hi", "rho_lo95", "rho_hi95", "beta_lo", "beta_hi", "beta_lo95",
                                           "beta_hi95", "sigma_r_lo", "sigma_r_hi", "sigma_t", "sigma_t_lo",
                                           "sigma_t_hi"]
    prof = np.loadtxt(out / "profile.csv", delimiter=",", skiprows=1)
    assert prof.shape == (40, 21) and np.all(np.isfinite(prof[:, :5]))
    r = prof[:, 0]
    R = np.hypot(*np.loadtxt(stars[0], delimiter=",", skiprows=1)[:, :2].T)
    assert r[0] == pytest.approx(np.percentile(R, 2), rel=0.2) and r[-1] == pytest.approx(np.percentile(R, 98), rel=0.2)
    assert np.all(prof[:, 3] == 0.0)  # isotropic imposed
    assert np.all(prof[:, 5] <= prof[:, 4] + 1e-9 * abs(prof[:, 4])) and np.all(prof[:, 4] <= prof[:, 6] * (1 + 1e-9))
    s = json.loads((out / "summary.json").read_text())
    for key in ("method", "source", "n_stars", "settings", "timings_s", "diagnostics", "jfactor", "versions"):
        assert key in s, key
    assert s["machine"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # fits differ by CPU
    assert s["method"] == "flow" and s["settings"]["anisotropy"] == "isotropic"
    assert s["n_stars"] == 300 and s["settings"]["ensemble"] == 2 and s["settings"]["seed"] == 0
    assert all(k in s["timings_s"] for k in ("train_s", "readout_s", "total_s"))
    d = s["diagnostics"]
    assert [m["steps"] for m in d["members"]] == [30, 30] and np.isfinite(d["final_train_loss"])
    assert d["final_val_loss"] is None  # no validation stars by default
    jf = s["jfactor"]
    assert jf["distance_kpc"] == 76.0 and jf["theta_deg"] == 0.5 and jf["n_used"] + jf["n_left_out"] == 2
    member_j = [m["log10_J"] for m in d["members"] if m["log10_J"] is not None]
    assert len(member_j) == jf["n_used"]
    assert s["settings"]["centre"] == jf["centre"] == "all-stars"  # the default with a given anisotropy
    if member_j:  # around the all-star flow's J (tests/test_flow_centre.py), the members' spread
        assert jf["log10_J_lo95"] <= jf["log10_J_lo"] <= jf["log10_J"] <= jf["log10_J_hi"] <= jf["log10_J_hi95"]
    assert not any(k.startswith("log10_J") for k in s)  # the J-factor lives in its block only
    for png in ("profiles.png", "data_vs_model.png", "loss.png"):
        assert (out / png).stat().st_size > 1000
    assert len(list((out / "flows").glob("flow_*.pt"))) == 2
    assert not Path(str(out) + ".checkpoints").exists()
    printed = capsys.readouterr().out
    assert "wrote" in printed and "2 flow(s) (30, 30 steps; velocity family elliptical)" in printed and "log10 J(0.5 deg)" in printed
    assert f"from {jf['n_used']} of 2 flow(s)" in printed and "bands: 68 % and 95 %" in printed
    bands = np.genfromtxt(out / "profile_bands.csv", delimiter=",", names=True)
    assert np.all(bands["n_used"] <= 2) and list(bands["n_used"]) == d["readout"]["n_used"]
    scales = [m["scales"] for m in d["members"]]
    assert scales[0]["L"] != scales[1]["L"] and scales[0]["V"] != scales[1]["V"]  # each its own resample


def test_fit_without_ensemble_trains_eight_flows():
    from dsphnf.cli import build_parser

    assert build_parser().parse_args(["fit", "stars.csv", "-o", "out"]).ensemble == 8


def test_a_single_flow_writes_nan_bands_and_says_so(stars, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["fit", str(stars[0]), "-o", str(out), "--steps", "3", "--ensemble", "1", "--no-progress",
                 "--no-plots"]) == 0
    bands = np.genfromtxt(out / "profile_bands.csv", delimiter=",", names=True)
    for key in ("rho", "M", "nu", "sigma_r"):
        assert np.all(np.isfinite(bands[key])) and bands[key][0] > 0
        for suffix in ("_lo", "_hi", "_lo95", "_hi95"):
            assert np.all(np.isnan(bands[key + suffix])), key + suffix
    assert np.all(bands["n_used"] == 1)
    assert "bands: none (one flow; the band columns are NaN" in capsys.readouterr().out


def test_too_few_physical_flows_stop_the_fit_in_one_line(stars, tmp_path, capsys, monkeypatch):
    """Both flows' read-out made unphysical (rho < 0) at the inner radii: fewer than half survive, exit 2."""
    from dsphnf.flows import member

    real = member.flow_profiles

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        out["rho"] = out["rho"].copy()
        out["rho"][:3] *= -1.0
        return out

    monkeypatch.setattr(member, "flow_profiles", broken)
    out = tmp_path / "broken"
    rc = main(["fit", str(stars[0]), "-o", str(out), "--steps", "2", "--ensemble", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "unphysical" in err and "2 of 2 flow(s)" in err and "fewer than half survive" in err
    assert list(tmp_path.iterdir()) == []  # neither OUT nor OUT.checkpoints


def test_positions_only_catalogue_fits_nu(stars, tmp_path):
    out = tmp_path / "pos"
    assert main(["fit", str(stars[1]), "-o", str(out), "--steps", "20", "--ensemble", "1", "--no-progress",
                 "--no-plots"]) == 0
    assert _header(out / "profile.csv") == ["r", "nu", "nu_lo", "nu_hi", "nu_lo95", "nu_hi95"]
    prof = np.loadtxt(out / "profile.csv", delimiter=",", skiprows=1)
    assert np.all(prof[:, 1] > 0) and np.all(np.diff(prof[:, 1]) < 0)  # a declining stellar density


def test_saved_flows_reload(stars, tmp_path):
    from dsphnf.flows import load_flows

    out = tmp_path / "pos2"
    assert main(["fit", str(stars[1]), "-o", str(out), "--steps", "5", "--ensemble", "1", "--no-progress",
                 "--no-plots"]) == 0
    flows, scales = load_flows(out)
    assert len(flows) == 1 and scales["L"] > 0
    r = torch.tensor([0.5, 1.0], dtype=torch.float64)
    assert torch.all(torch.isfinite(flows[0].double().log_nu(r)))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--anisotropy", "sideways"], "anisotropy"),
        (["--anisotropy", "constant:1.5"], "B < 1"),
        (["--steps", "0"], "--steps"),
        (["--ensemble", "0"], "--ensemble"),
        (["--inner", "hollow"], "--inner"),
        (["--distance", "-3"], "--distance"),
        (["--val-fraction", "0.95"], "--val-fraction"),
        (["--device", "tpu"], "device"),
        (["--velocity", "spherical"], "--velocity"),
        (["--velocity", "separable"], "use the anisotropy 'free', not 'isotropic'"),
        (["--velocity", "angular"], "use the anisotropy 'free'"),
        (["--velocity", "mixed"], "use the anisotropy 'free'"),
        (["--velocity", "mixed", "--anisotropy", "free", "--ensemble", "3"], "multiple of 2"),
        (["--distance-err", "5"], "--distance-err needs --distance"),
        (["--distance", "76", "--distance-err", "-1"], "--distance-err"),
        (["--membership", "guess"], "--membership"),
        (["--batch", "1"], "--batch"),
    ],
)
def test_bad_options_are_one_line_errors(stars, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    rc = main(["fit", str(stars[0]), "-o", str(out), "--no-progress"] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("dsphnf: error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_minibatches_train_by_adam_and_report_the_objective_on_all_stars(stars, tmp_path, capsys):
    """--batch 100 of 300 stars: Adam alone on random batches, members one by one (not as a batch), and each
    member's objective on all its stars in the summary; a fit on all stars has no such entry."""
    out = tmp_path / "mini"
    rc = main(["fit", str(stars[0]), "-o", str(out), "--steps", "6", "--ensemble", "2", "--batch", "100",
               "--no-progress", "--no-plots", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    d = json.loads((out / "summary.json").read_text())["diagnostics"]
    assert d["grid"]["not_batched"].startswith("only the deterministic exact objective")
    for m in d["members"]:
        c = m["convergence"]
        assert c["optimiser"] == "adam" and not c["deterministic_objective"] and m["steps"] == 6
        assert np.isfinite(c["full_objective"]) and c["objective"] is None
    rc = main(["fit", str(stars[0]), "-o", str(tmp_path / "all"), "--steps", "3", "--ensemble", "1",
               "--no-progress", "--no-plots", "--threads", "1"])
    assert rc == 0
    c = json.loads((tmp_path / "all" / "summary.json").read_text())["diagnostics"]["members"][0]["convergence"]
    assert c["full_objective"] is None  # every step saw every star


def test_cuda_without_gpu_is_an_error(stars, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    rc = main(["fit", str(stars[0]), "-o", str(tmp_path / "c"), "--device", "cuda"])
    assert rc == 2 and "CUDA" in capsys.readouterr().err


def test_missing_catalogue_is_an_error(tmp_path, capsys):
    rc = main(["fit", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("dsphnf: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_too_few_stars_is_an_error(tmp_path, capsys):
    p = tmp_path / "few.csv"
    np.savetxt(p, np.random.default_rng(0).normal(size=(10, 3)), delimiter=",", header="x,y,vz", comments="")
    assert main(["fit", str(p), "-o", str(tmp_path / "o"), "--steps", "5"]) == 2
    assert "at least" in capsys.readouterr().err


def test_distance_error_and_foreground_mixture_reach_the_summary(stars, tmp_path, capsys):
    """--distance-err draws one distance per member; --membership mixture learns a foreground fraction per member."""
    out = tmp_path / "sys"
    rc = main(["fit", str(stars[0]), "-o", str(out), "--steps", "4", "--ensemble", "2", "--distance", "76",
               "--distance-err", "6", "--membership", "mixture", "--no-progress", "--no-plots", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["distance_err_kpc"] == 6.0 and s["settings"]["foreground"] is not None
    d = s["diagnostics"]["distance"]["member_distances_kpc"]
    assert len(d) == 2 and len(set(d)) == 2 and all(38.0 <= x for x in d)  # own, distinct, clipped at D / 2
    f = s["diagnostics"]["foreground"]["member_fractions"]
    assert len(f) == 2 and all(0.0 <= x < 1.0 for x in f)


def test_nu_mean_reaches_the_training_and_the_summary(stars, tmp_path, capsys):
    """--nu-mean zhao: the setting in summary.json and every member's fitted Zhao shape (r_s in kpc, of the order
    of the tracer's scale); a misspelt value is one line, exit 2, nothing written."""
    out = tmp_path / "zhao"
    rc = main(["fit", str(stars[0]), "-o", str(out), "--steps", "3", "--ensemble", "2", "--nu-mean", "zhao",
               "--no-progress", "--no-plots", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["train"]["nu_mean"] == "zhao"
    for m in s["diagnostics"]["members"]:
        assert set(m["nu_mean"]) == {"gamma", "beta", "alpha", "r_s"} and 0.05 < m["nu_mean"]["r_s"] < 5.0
    rc = main(["fit", str(stars[0]), "-o", str(tmp_path / "bad"), "--nu-mean", "plummer", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--nu-mean" in err and len(err.splitlines()) == 1 and not (tmp_path / "bad").exists()
