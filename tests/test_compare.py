"""`dsphnf compare` and dsphnf.compare: error/coverage table and overlay figure; plotting.plot_band."""
from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from dsphnf.cli import main
from dsphnf.compare import compare, format_table, parse_radii, read_run
from dsphnf.errors import DsphnfError
from dsphnf.outputs import write_csv
from dsphnf.plotting import plot_band
from dsphnf.result import Result, load_result

COLUMNS = "r,nu,sigma_r,beta,M,M_lo,M_hi,rho,rho_lo,rho_hi,rho_lo95,rho_hi95".split(",")
R = np.geomspace(0.05, 2.0, 40)
RHO = 1e8 * R**-1 * (1 + R) ** -2  # NFW, r_s = 1 kpc
MASS = 4 * np.pi * 1e8 * (np.log(1 + R) - R / (1 + R))
TRUTH = {"r": R, "nu": np.exp(-R), "sigma_r": np.full_like(R, 10.0), "beta": np.zeros_like(R), "M": MASS,
         "rho": RHO}


def _columns(factor=1.0, width=1.2, width95=1.5) -> dict[str, np.ndarray]:
    rho = RHO * factor
    return {"r": R, "nu": np.exp(-R), "sigma_r": np.full_like(R, 10.0), "beta": np.zeros_like(R),
            "M": MASS * factor, "M_lo": MASS * factor / width, "M_hi": MASS * factor * width,
            "rho": rho, "rho_lo": rho / width, "rho_hi": rho * width, "rho_lo95": rho / width95,
            "rho_hi95": rho * width95}


def _result(method="flow", **kw) -> Result:
    return Result(method, _columns(**kw), {"method": method, "n_stars": 100})


def _profile(folder, factor=1.0, width=1.2, width95=1.5, method="flow"):
    return _result(method, factor=factor, width=width, width95=width95).save(folder, plots=False)


@pytest.fixture()
def runs(tmp_path):
    good = _profile(tmp_path / "good", factor=1.1)          # +0.041 dex, inside 68% (x1.2)
    off = _profile(tmp_path / "off", factor=1.4, method="baseline")  # +0.146 dex: outside 68%, inside 95% (x1.5)
    truth = tmp_path / "truth.csv"
    write_csv(truth, TRUTH)
    return good, off, truth


def test_table_errors_and_coverage(runs):
    good, off, truth = runs
    rows = compare([good, off], truth, [0.1, 0.5, 1.0, 5.0])
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
        ("no_profile", "not a dsphnf result folder"),
        ("not_a_folder", "not a folder"),
        ("positions_only", "lacks rho, M"),
        ("bad_truth", "lacks column"),
        ("bad_radii", "bad --radii"),
        ("negative_radii", "bad --radii"),
        ("bad_suffix", ".png, .pdf or .svg"),
    ],
)
def test_cli_compare_bad_inputs(runs, tmp_path, capsys, case, match):
    good, off, truth = runs
    (tmp_path / "empty").mkdir()
    Result("flow", {"r": R, "nu": np.exp(-R)}, {"method": "flow"}).save(tmp_path / "nu_only", plots=False)
    bad_truth = tmp_path / "bt.csv"
    bad_truth.write_text("r,density\n0.1,1\n0.2,2\n")
    fig = tmp_path / "fig.png"
    args = {"missing_folder": [str(tmp_path / "nope")], "no_profile": [str(tmp_path / "empty")],
            "bad_truth": [str(good), "--truth", str(bad_truth)], "bad_radii": [str(good), "--radii", "0.1,abc"],
            "negative_radii": [str(good), "--radii", "-1"], "not_a_folder": [str(truth)],
            "positions_only": [str(tmp_path / "nu_only")]}.get(case, [str(good)])
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
    with pytest.raises(DsphnfError, match="not a dsphnf result folder"):
        read_run(bad)  # no summary.json
    (bad / "summary.json").write_text(json.dumps({"method": "baseline"}))
    with pytest.raises(DsphnfError, match="lacks M"):
        read_run(bad)
    assert set(read_run(good).profile) >= set(COLUMNS)


def test_both_methods_are_read_the_same_way(tmp_path):
    """A flow folder (profile_bands.csv) and a baseline folder (profile.csv only) give the same table."""
    flow = _result("flow", factor=1.1).save(tmp_path / "flow", plots=False)
    base = tmp_path / "base"
    base.mkdir()
    write_csv(base / "profile.csv", _columns(factor=1.1))
    (base / "summary.json").write_text(json.dumps({"method": "baseline", "n_stars": 100}))
    assert read_run(base).method == "baseline" and read_run(flow).method == "flow"
    rows = compare([flow, base], TRUTH, [0.1, 0.5])
    for a, b in zip(rows[:2], rows[2:]):
        assert {k: v for k, v in a.items() if k != "run"} == {k: v for k, v in b.items() if k != "run"}


def test_result_objects_and_dicts_in_the_python_api(runs, tmp_path):
    good, off, _ = runs
    result = _result(factor=1.1)
    from_objects = compare({"flow": result, "dict": _columns(factor=1.4)}, truth=TRUTH, radii=[0.25])
    from_folders = compare({"flow": good, "dict": off}, truth=TRUTH, radii=[0.25])
    for a, b in zip(from_objects, from_folders):  # the same up to the CSV's 8 digits
        assert a.keys() == b.keys() and a["in68"] == b["in68"] and a["in95"] == b["in95"]
        assert [a[k] for k in ("rho", "rho_lo", "rho_hi95", "M")] == pytest.approx(
            [b[k] for k in ("rho", "rho_lo", "rho_hi95", "M")], rel=1e-7)
    assert from_objects[0]["in68"] is True and from_objects[1]["in68"] is False
    assert from_objects[0]["log10_err"] == pytest.approx(np.log10(1.1), abs=1e-6)
    # a result loaded back is a Result too
    assert compare({"x": load_result(good)}, TRUTH, [0.25])[0]["rho"] == from_folders[0]["rho"]
    # a run without 95 % bands: coverage at 95 % is unknown (None), not "outside"
    no95 = {k: v for k, v in _columns(factor=1.1).items() if not k.endswith("95")}
    row = compare({"no95": no95}, TRUTH, [0.25])[0]
    assert row["in68"] is True and row["in95"] is None
    assert "inside 68% band at 1/1 radii, inside 95% at 0/0" in format_table([row])
    with pytest.raises(DsphnfError, match="lacks rho"):
        compare({"nu": {"r": R, "nu": np.exp(-R)}}, TRUTH)


# ---------------------------------------------------------------- plot_band
def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_band_draws_median_and_both_bands():
    ax = Figure().add_subplot()
    p = _columns()
    plot_band(ax, p, "rho", label="flow", color="C2", truth=TRUTH)
    assert sorted(_legend(ax)) == ["flow", "flow 68 %", "flow 95 %", "truth"]
    (median, truth), fills = ax.get_lines(), ax.collections
    np.testing.assert_array_equal(median.get_ydata(), p["rho"])
    np.testing.assert_array_equal(truth.get_ydata(), RHO)
    assert len(fills) == 2 and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # the shaded regions span the band columns: 95 % is wider than 68 %
    tops = sorted(float(np.max(f.get_paths()[0].vertices[:, 1])) for f in fills)
    assert tops == pytest.approx([p["rho_hi"].max(), p["rho_hi95"].max()])
    assert "M$_\\odot$ kpc$^{-3}$" in ax.get_ylabel() and ax.get_xlabel() == "r [kpc]"


def test_plot_band_skips_missing_or_nan_bands():
    p = _columns()
    p["rho_lo95"] = p["rho_hi95"] = np.full_like(R, np.nan)  # e.g. Result.table() without 95 % bands
    ax = plot_band(Figure().add_subplot(), p, "rho")
    assert _legend(ax) == ["median", "median 68 %"] and len(ax.collections) == 1
    p["rho_lo"] = p["rho_hi"] = p["rho"]  # zero width: one flow, no band
    ax = plot_band(Figure().add_subplot(), p, "rho")
    assert _legend(ax) == ["median"] and len(ax.collections) == 0
    ax = plot_band(Figure().add_subplot(), {"r": R, "M": MASS}, "M", bands=(68,))
    assert _legend(ax) == ["median"] and len(ax.collections) == 0 and "M$_\\odot$" in ax.get_ylabel()
    ax = plot_band(Figure().add_subplot(), _result(), "M", bands=(95,))  # a Result; M has no 95 % band
    assert _legend(ax) == ["median"]
    with pytest.raises(ValueError, match="bands"):
        plot_band(Figure().add_subplot(), p, "rho", bands=(90,))
