"""`dsphnf compare` and dsphnf.compare: error/coverage table and overlay figure."""
from __future__ import annotations

import numpy as np
import pytest

from dsphnf.cli import main
from dsphnf.compare import compare_profiles, format_table, parse_radii, read_profile
from dsphnf.errors import DsphnfError
from dsphnf.outputs import write_csv

COLUMNS = "r,nu,sigma_r,beta,M,M_lo,M_hi,rho,rho_lo,rho_hi,rho_lo95,rho_hi95".split(",")
R = np.geomspace(0.05, 2.0, 40)
RHO = 1e8 * R**-1 * (1 + R) ** -2  # NFW, r_s = 1 kpc
MASS = 4 * np.pi * 1e8 * (np.log(1 + R) - R / (1 + R))


def _profile(folder, factor=1.0, width=1.2, width95=1.5):
    folder.mkdir()
    rho = RHO * factor
    write_csv(folder / "profile.csv", {
        "r": R, "nu": np.exp(-R), "sigma_r": np.full_like(R, 10.0), "beta": np.zeros_like(R),
        "M": MASS * factor, "M_lo": MASS * factor / width, "M_hi": MASS * factor * width,
        "rho": rho, "rho_lo": rho / width, "rho_hi": rho * width, "rho_lo95": rho / width95,
        "rho_hi95": rho * width95})
    return folder


@pytest.fixture()
def runs(tmp_path):
    good = _profile(tmp_path / "good", factor=1.1)          # +0.041 dex, inside 68% (x1.2)
    off = _profile(tmp_path / "off", factor=1.4)            # +0.146 dex: outside 68%, inside 95% (x1.5)
    truth = tmp_path / "truth.csv"
    write_csv(truth, {"r": R, "nu": np.exp(-R), "sigma_r": np.full_like(R, 10.0), "beta": np.zeros_like(R),
                      "M": MASS, "rho": RHO})
    return good, off, truth


def test_table_errors_and_coverage(runs):
    good, off, truth = runs
    rows = compare_profiles([good, off], truth, [0.1, 0.5, 1.0, 5.0])
    assert len(rows) == 8
    g = [r for r in rows if r["run"] == "good"]
    o = [r for r in rows if r["run"] == "off"]
    for r in g[:3]:
        assert r["log10_err"] == pytest.approx(np.log10(1.1), abs=1e-6)
        assert r["in68"] is True and r["in95"] is True
        assert r["rho_true"] == pytest.approx(1e8 * r["r"] ** -1 * (1 + r["r"]) ** -2, rel=1e-3)
    for r in o[:3]:
        assert r["log10_err"] == pytest.approx(np.log10(1.4), abs=1e-6)
        assert r["in68"] is False and r["in95"] is True
    assert g[3]["in68"] is None and np.isnan(g[3]["rho"])  # 5 kpc is outside the profile grid
    text = format_table(rows)
    assert "good: truth inside 68% band at 3/3 radii, inside 95% at 3/3" in text
    assert "off: truth inside 68% band at 0/3 radii, inside 95% at 3/3" in text


def test_cli_compare_writes_figure(runs, tmp_path, capsys):
    good, off, truth = runs
    fig = tmp_path / "cmp.png"
    rc = main(["compare", str(good), str(off), "--truth", str(truth), "--radii", "0.1,0.25", "-o", str(fig)])
    out = capsys.readouterr().out
    assert rc == 0 and fig.is_file() and fig.stat().st_size > 1000
    assert "+0.041" in out and "+0.146" in out
    rc = main(["compare", str(good), "-o", str(tmp_path / "solo.png")])  # no truth: bands only
    assert rc == 0 and "rho_true" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "case,match",
    [
        ("missing_folder", "no such output folder"),
        ("no_profile", "no profile.csv"),
        ("bad_truth", "lacks column"),
        ("bad_radii", "bad --radii"),
        ("negative_radii", "bad --radii"),
        ("bad_suffix", ".png, .pdf or .svg"),
    ],
)
def test_cli_compare_bad_inputs(runs, tmp_path, capsys, case, match):
    good, off, truth = runs
    (tmp_path / "empty").mkdir()
    bad_truth = tmp_path / "bt.csv"
    bad_truth.write_text("r,density\n0.1,1\n0.2,2\n")
    fig = tmp_path / "fig.png"
    args = {"missing_folder": [str(tmp_path / "nope")], "no_profile": [str(tmp_path / "empty")],
            "bad_truth": [str(good), "--truth", str(bad_truth)], "bad_radii": [str(good), "--radii", "0.1,abc"],
            "negative_radii": [str(good), "--radii", "-1"]}.get(case, [str(good)])
    if case == "bad_suffix":
        fig = tmp_path / "fig.txt"
    rc = main(["compare", *args, "-o", str(fig)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1
    assert not fig.exists()


def test_api_helpers(runs, tmp_path):
    good, _, _ = runs
    np.testing.assert_allclose(parse_radii("0.1, 1"), [0.1, 1.0])
    with pytest.raises(DsphnfError):
        parse_radii("")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "profile.csv").write_text("r,rho\n0.1,1\n0.2,2\n")
    with pytest.raises(DsphnfError, match="lacks column"):
        read_profile(bad)
    assert set(read_profile(good)) >= set(COLUMNS)
