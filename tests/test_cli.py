"""The command line: dsphnf mock / info / demo, errors as one line with exit status 2."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsphnf import mocks
from dsphnf.catalog import read_catalog
from dsphnf.cli import COMMANDS, main

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DRACO = DATA / "walker_dwarfs" / "dra_spec.dat"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


# ---------------------------------------------------------------- help
def test_help_mentions_units(capsys):
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0 and "kpc" in out and "km/s" in out
    for name in ("demo", "mock", "info"):
        assert name in COMMANDS
        rc, out, _ = run_cli(capsys, name, "--help")
        assert rc == 0 and "kpc" in out and "km/s" in out, name
    rc, out, _ = run_cli(capsys, "mock", "--help")
    assert "Msun/kpc^3" in out and "NonPlumCuspIso" in out


def test_usage_error_is_one_line(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "mock", "NonPlumCuspIso", "-n", "many", "-o", tmp_path / "s.csv")
    assert_one_line_error(rc, err, "invalid int value")
    assert not (tmp_path / "s.csv").exists()


# ---------------------------------------------------------------- mock
def test_mock_round_trip_and_truth(capsys, tmp_path):
    stars, truth = tmp_path / "s.csv", tmp_path / "t.csv"
    rc, out, _ = run_cli(capsys, "mock", "nonplumcuspiso", "-n", 300, "--seed", 5, "-o", stars,
                         "--truth", truth, "--verr", 2.5)
    assert rc == 0 and "300 stars" in out
    assert stars.read_text().splitlines()[0] == "x,y,vz,vz_err"
    cat = read_catalog(stars)
    xv = mocks.sample_stars("NonPlumCuspIso", 300, seed=5, verr=2.5)
    np.testing.assert_allclose(cat.x, xv[:, 0], rtol=1e-9)
    np.testing.assert_allclose(cat.y, xv[:, 1], rtol=1e-9)
    np.testing.assert_allclose(cat.vz, xv[:, 5], rtol=1e-9, atol=1e-8)
    assert np.all(cat.vz_err == 2.5)

    t = np.genfromtxt(truth, delimiter=",", names=True)
    assert t.dtype.names == ("r", "nu", "sigma_r", "beta", "M", "rho")
    model = mocks.get_model("NonPlumCuspIso")
    assert len(t) == 200
    np.testing.assert_allclose([t["r"][0], t["r"][-1]], [0.01 * model.r_star, 10 * model.r_star], rtol=1e-6)
    # the columns are the named quantities: NFW mass and density, the Zhao tracer, isotropy
    np.testing.assert_allclose(t["M"], model.halo.mass(t["r"]), rtol=1e-6)
    np.testing.assert_allclose(t["rho"], model.halo.density(t["r"]), rtol=1e-6)
    np.testing.assert_allclose(t["nu"], model.tracer.density(t["r"]), rtol=1e-6)
    assert np.all(t["beta"] == 0) and np.all((t["sigma_r"] > 3) & (t["sigma_r"] < 20))


def test_mock_without_verr_has_no_error_column(capsys, tmp_path):
    rc, _, _ = run_cli(capsys, "mock", "PlumCoreOm", "-n", 50, "-o", tmp_path / "s.csv")
    assert rc == 0 and (tmp_path / "s.csv").read_text().splitlines()[0] == "x,y,vz"


@pytest.mark.parametrize(
    "args, words",
    [
        (["NoSuchModel", "-n", "10"], ["unknown model 'NoSuchModel'", "NonPlumCuspIso"]),
        (["NonPlumCuspIso", "-n", "0"], ["-n must be at least 1"]),
        (["NonPlumCuspIso", "-n", "10", "--verr", "-1"], ["--verr", "non-negative"]),
    ],
)
def test_mock_bad_input(capsys, tmp_path, args, words):
    rc, _, err = run_cli(capsys, "mock", *args, "-o", tmp_path / "s.csv", "--truth", tmp_path / "t.csv")
    assert_one_line_error(rc, err, *words)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- info
def _number(pattern: str, text: str) -> list[float]:
    m = re.search(pattern, text)
    assert m, text
    return [float(g) for g in m.groups()]


def test_info_recovers_known_dispersion_with_errors(capsys, tmp_path):
    rng = np.random.default_rng(11)
    n, sigma = 3000, 8.0
    err = rng.uniform(1.0, 10.0, n)
    R = 0.3 * np.sqrt(rng.uniform(0, 1, n))  # uniform disc of radius 0.3 kpc: median R = 0.3/sqrt(2)
    phi = rng.uniform(0, 2 * np.pi, n)
    vz = rng.normal(0.0, sigma, n) + rng.normal(0.0, err)
    path = tmp_path / "s.csv"
    path.write_text("x,y,vz,vz_err\n" + "".join(f"{a:.17g},{b:.17g},{c:.17g},{d:.17g}\n" for a, b, c, d in
                                                zip(R * np.cos(phi), R * np.sin(phi), vz, err)))
    rc, out, _ = run_cli(capsys, "info", path)
    assert rc == 0
    assert _number(r"stars\s+(\d+)", out) == [n]
    (rhalf,) = _number(r"R_half\s+([\d.]+) kpc", out)
    assert rhalf == pytest.approx(0.3 / np.sqrt(2), rel=0.03)
    s, ds = _number(r"sigma_los\s+([\d.]+) \+- ([\d.]+) km/s", out)
    assert abs(s - sigma) < 3 * ds and 0.1 < ds < 0.3
    assert np.std(vz) > sigma + 1.5  # the errors matter: naive dispersion is far off
    m, dm = _number(r"mean vz\s+(-?[\d.]+) \+- ([\d.]+) km/s", out)
    assert abs(m) < 3 * dm


@pytest.mark.parametrize(
    "text, words",
    [
        ("x,y,vz\n" + "0.1,0.2,nan\n", ["row 1, column 'vz'", "not finite"]),
        ("x,q,vz\n1,2,3\n", ["missing column y", "found: 'x', 'q', 'vz'"]),
        ("x,y,vz\n" + "".join(f"{0.01 * i},{0.02 * i},{300 + i % 7}\n" for i in range(40)),
         ["systemic velocity was not removed"]),
        ("x,y,vz\n" + "".join(f"{0.01 * i},{0.02 * i},{i % 7 - 3}\n" for i in range(5)), ["only 5 stars"]),
    ],
)
def test_info_bad_catalogue(capsys, tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    rc, out, err = run_cli(capsys, "info", path)
    assert_one_line_error(rc, err, "bad.csv", *words)
    assert out == ""


def test_info_positions_only(capsys, tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "pos.csv"
    path.write_text("X,Y\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in rng.normal(0, 0.2, (30, 2))))
    rc, out, _ = run_cli(capsys, "info", path)
    assert rc == 0 and "positions only" in out and "sigma_los" not in out


def test_info_walker_draco(capsys):
    if not DRACO.exists():
        pytest.skip("reference data absent")
    rc, _, err = run_cli(capsys, "info", DRACO)
    assert_one_line_error(rc, err, "dra_spec.dat", "distance")
    rc, out, _ = run_cli(capsys, "info", DRACO, "--distance", 76)
    assert rc == 0
    (vsys,) = _number(r"systemic velocity (-?[\d.]+) km/s", out)
    assert -295 < vsys < -289  # Draco: v_sys ~ -291 km/s
    s, ds = _number(r"sigma_los\s+([\d.]+) \+- ([\d.]+) km/s", out)
    assert 8.5 < s < 10.0 and ds < 0.5  # Draco: sigma_los ~ 9.1 km/s


# ---------------------------------------------------------------- demo
def test_demo_writes_consistent_outputs(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    rc, out, _ = run_cli(capsys, "demo", "-o", out_dir, "--n", 400, "--seed", 3, "--bins", 5, "--steps", 0)
    assert rc == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["binned.csv", "profiles.png", "stars.csv", "truth.csv"]
    assert (out_dir / "profiles.png").read_bytes()[:4] == b"\x89PNG"
    assert read_catalog(out_dir / "stars.csv").n == 400
    b = np.genfromtxt(out_dir / "binned.csv", delimiter=",", names=True)
    assert b["n"].sum() == 400
    # the mock agrees with its exact projections, annulus by annulus
    pull_sigma = (b["Sigma"] - b["Sigma_true"]) / b["Sigma_err"]
    pull_los = (b["sigma_los"] - b["sigma_los_true"]) / b["sigma_los_err"]
    assert np.all(np.abs(pull_sigma) < 3.5) and np.all(np.abs(pull_los) < 3.5)
    assert np.sum(pull_sigma**2) < 20 and np.sum(pull_los**2) < 20  # chi2, 5 dof: p < 0.002 fails
    # the annulus-averaged truth integrates to the number of stars
    area = np.pi * (b["R_hi"] ** 2 - b["R_lo"] ** 2)
    assert np.sum(b["Sigma_true"] * area) == pytest.approx(400 * 0.9999, rel=2e-3)
    assert "chi2" in out and "R_half" in out


def test_demo_fits_the_flow_and_reports_against_truth(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    rc, out, _ = run_cli(capsys, "demo", "-o", out_dir, "--n", 300, "--seed", 1, "--bins", 5, "--steps", 25)
    assert rc == 0
    names = {p.name for p in out_dir.iterdir()}
    assert {"stars.csv", "truth.csv", "sky.png", "profile.csv", "summary.json", "profiles.png"} <= names
    prof = np.genfromtxt(out_dir / "profile.csv", delimiter=",", names=True)
    assert prof.dtype.names[:4] == ("r", "nu", "sigma_r", "beta")
    assert np.all(np.isfinite(prof["nu"])) and np.all(prof["nu"] > 0)
    assert "log10 err" in out and "rho_true" in out


def test_demo_bad_input_leaves_nothing(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "demo", "-o", tmp_path / "d", "--n", 5)
    assert_one_line_error(rc, err, "--n must be at least 20")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- entry point
def test_console_entry_point_end_to_end(tmp_path):
    script = Path(sys.executable).parent / "dsphnf"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "dsphnf.cli"]
    env_run = lambda *a: subprocess.run(cmd + [str(x) for x in a], capture_output=True, text=True, timeout=120)
    ok = env_run("mock", "PlumCuspIso", "-n", 40, "-o", tmp_path / "s.csv")
    assert ok.returncode == 0, ok.stderr
    info = env_run("info", tmp_path / "s.csv")
    assert info.returncode == 0 and "stars            40" in info.stdout
    bad = env_run("info", tmp_path / "nothing.csv")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [f"dsphnf: error: {tmp_path / 'nothing.csv'}: no such file"]
