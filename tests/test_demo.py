"""`dsphnf demo`: the mock agrees with its exact projections, and the flow recovers rho(r) against the truth."""
from __future__ import annotations

import re

import numpy as np
import pytest

from dsphnf.catalog import read_catalog
from dsphnf.cli import main

RADII = [0.1, 0.15, 0.25, 0.5, 1.0]  # kpc, the demo's table


def run_demo(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["demo", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return rc, out, err


def read(path):
    return np.genfromtxt(path, delimiter=",", names=True)


def chi2_lines(out: str) -> dict[str, tuple[float, int, float]]:
    pattern = (r"^(Sigma\(R\)|sigma_los\(R\))\s+chi2 = ([\d.]+) for (\d+) annuli "
               r"against the exact projection \(p = ([\d.]+)\)$")
    return {m[0]: (float(m[1]), int(m[2]), float(m[3])) for m in re.findall(pattern, out, flags=re.M)}


def loginterp(r, x, y):
    return np.exp(np.interp(np.log(r), np.log(x), np.log(y)))


def test_demo_mock_agrees_with_its_exact_projections(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    rc, out, _ = run_demo(capsys, "-o", out_dir, "--n", 400, "--seed", 3, "--bins", 5, "--steps", 0)
    assert rc == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["binned.csv", "profiles.png", "stars.csv", "truth.csv"]
    assert (out_dir / "profiles.png").read_bytes()[:4] == b"\x89PNG"
    assert read_catalog(out_dir / "stars.csv").n == 400
    b = read(out_dir / "binned.csv")
    assert b["n"].sum() == 400
    # the mock agrees with its exact projections, annulus by annulus
    pull_sigma = (b["Sigma"] - b["Sigma_true"]) / b["Sigma_err"]
    pull_los = (b["sigma_los"] - b["sigma_los_true"]) / b["sigma_los_err"]
    assert np.all(np.abs(pull_sigma) < 3.5) and np.all(np.abs(pull_los) < 3.5)
    # the annulus-averaged truth integrates to the number of stars
    area = np.pi * (b["R_hi"] ** 2 - b["R_lo"] ** 2)
    assert np.sum(b["Sigma_true"] * area) == pytest.approx(400 * 0.9999, rel=2e-3)
    # the printed chi^2 are those of the written table, and not improbable (5 dof: chi2 > 20 has p < 0.002)
    lines = chi2_lines(out)
    assert set(lines) == {"Sigma(R)", "sigma_los(R)"}
    for (c, k, p), pull in ((lines["Sigma(R)"], pull_sigma), (lines["sigma_los(R)"], pull_los)):
        assert k == 5 and c == pytest.approx(np.sum(pull**2), abs=0.06) and c < 20 and p > 0.002
    assert re.search(r"^R_half\s+[\d.]+ kpc", out, flags=re.M)


def test_demo_fits_the_flow_and_recovers_rho(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    rc, out, _ = run_demo(capsys, "-o", out_dir, "--n", 300, "--seed", 1, "--bins", 5, "--steps", 25,
                          "--ensemble", 2)
    assert rc == 0
    names = {p.name for p in out_dir.iterdir()}
    assert {"stars.csv", "truth.csv", "binned.csv", "sky.png", "profile.csv", "summary.json", "profiles.png"} <= names
    assert len(chi2_lines(out)) == 2
    prof, truth = read(out_dir / "profile.csv"), read(out_dir / "truth.csv")
    assert prof.dtype.names[:4] == ("r", "nu", "sigma_r", "beta")
    assert np.all(np.isfinite(prof["rho"])) and np.all(prof["rho"] > 0)
    # the written rho(r) against the written truth: within a factor 2 from 0.05 to 1 kpc (R_half / 4 to
    # 5 R_half; inside that, few stars constrain the cusp after 25 steps), and 0.2 dex rms at the table
    # radii (this fit: ~0.1 dex; a unit or G mistake is >= 0.3 dex)
    inside = (truth["r"] >= max(prof["r"][0], 0.05)) & (truth["r"] <= min(prof["r"][-1], 1.0))
    err = np.log10(loginterp(truth["r"][inside], prof["r"], prof["rho"]) / truth["rho"][inside])
    assert inside.sum() > 30 and np.max(np.abs(err)) < 0.3
    at = np.log10(loginterp(RADII, prof["r"], prof["rho"]) / loginterp(RADII, truth["r"], truth["rho"]))
    assert np.sqrt(np.mean(at**2)) < 0.2
    # the printed table shows these numbers
    rows = re.findall(r"^flow\s+([\d.]+)\s+([\d.e+-]+) \[.*\]\s+([\d.e+-]+)\s+([+-][\d.]+)", out, flags=re.M)
    assert [float(r[0]) for r in rows] == RADII
    np.testing.assert_allclose([float(r[3]) for r in rows], at, atol=2e-3)
    np.testing.assert_allclose([float(r[2]) for r in rows], loginterp(RADII, truth["r"], truth["rho"]), rtol=1e-3)
    # two flows have bands, and the demo prints how often they hold the truth
    assert np.all(prof["rho_lo95"] < prof["rho"]) and np.all(prof["rho"] < prof["rho_hi95"])
    lo, hi = loginterp(RADII, prof["r"], prof["rho_lo"]), loginterp(RADII, prof["r"], prof["rho_hi"])
    true = loginterp(RADII, truth["r"], truth["rho"])
    inside = np.sum((lo <= true) & (true <= hi))
    assert re.search(rf"^flow: truth inside 68% band at {inside}/5 radii, inside 95% at \d/5", out, flags=re.M)
    assert "flow fit: 2 flow(s) of 25 steps and one on all stars" in out and "bands: 68 % and 95 % Student-t" in out
    assert "value and bands centred on the flow trained on all stars" in out  # the default centre


def test_demo_with_one_flow_prints_no_coverage(capsys, tmp_path):
    """One flow has no band, and the demo says so instead of printing a coverage of zero-width bands."""
    rc, out, _ = run_demo(capsys, "-o", tmp_path / "one", "--n", 100, "--bins", 5, "--steps", 3, "--ensemble", 1)
    assert rc == 0
    assert re.search(r"^flow: no bands \(a single fit: .*\); rms log10 error [\d.]+$", out, flags=re.M)
    assert not re.search(r"truth inside", out)


def test_demo_bad_input_leaves_nothing(capsys, tmp_path):
    rc, _, err = run_demo(capsys, "-o", tmp_path / "d", "--n", 5)
    assert rc == 2 and err.strip().splitlines() == ["dsphnf: error: --n must be at least 20 stars for the demo, got 5"]
    assert list(tmp_path.iterdir()) == []
    rc, _, err = run_demo(capsys, "-o", tmp_path / "d", "--n", 100, "--bins", 11)
    assert rc == 2 and "--bins must be between 2 and n/10 = 10" in err and list(tmp_path.iterdir()) == []
