"""The survey's flow path end to end on a real catalogue: a tiny flow survey of Leo II through the command line."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dsphnf.cli import main
from dsphnf.survey import read_table

from conftest import find_reference

#: Banded columns every flow row must fill (beta_half only when beta is inferred; log10_Jmax only when the
#: stars end inside 0.5 deg, as Leo II's do).
BANDED = ("rho150", "slope150", "M_half", "log10_J05", "log10_Jmax")


def _no_probe(*args, **kwargs):
    raise AssertionError("a survey's flow fit must not probe thread counts: its rows would depend on the load")


@pytest.fixture(scope="module")
def leo2_flow(tmp_path_factory):
    """``dsphnf survey leo2 --method flow --anisotropy free`` with two flows of a few steps (fast mode)."""
    find_reference("walker_dwarfs", "leo2_spec.dat")
    mp = pytest.MonkeyPatch()
    mp.setenv("DSPHNF_FAST", "1")
    mp.setattr("dsphnf.flows.batched_train.choose_threads", _no_probe)
    out = tmp_path_factory.mktemp("survey_flow") / "out"
    try:
        code = main(["survey", "leo2", "-o", str(out), "--method", "flow", "--anisotropy", "free",
                     "--ensemble", "2", "--steps", "6", "--no-progress", "--no-plots"])
    finally:
        mp.undo()
    return code, out


def test_flow_row_is_finite_with_bands(leo2_flow) -> None:
    code, out = leo2_flow
    assert code == 0
    row = read_table(out)[0]
    assert (row["galaxy"], row["method"], row["anisotropy"]) == ("leo2", "flow", "free")
    for key in (*BANDED, "beta_half"):
        v, lo, hi = float(row[key]), float(row[key + "_lo"]), float(row[key + "_hi"])
        assert np.isfinite([v, lo, hi]).all(), key
        assert lo <= v <= hi, key
    assert 1e6 < row["rho150"] < 1e11 and 1e4 < row["M_half"] < 1e9 and 14 < row["log10_J05"] < 22
    assert row["n_stars"] == 190 and row["j_beyond_data"] and row["theta_max_deg"] < 0.5
    assert row["log10_Jmax"] < row["log10_J05"]  # J within the stars' largest angle, less than J(0.5 deg)
    assert "2 flows x at most 6 steps" in row["fit_note"]
    assert not row["converged"]  # six steps cannot meet the stop rule, and the table must say so


def test_flow_pulls_are_written(leo2_flow) -> None:
    _, out = leo2_flow
    with open(out / "literature.csv") as fh:
        rows = list(csv.DictReader(fh))
    sources = {r["source"] for r in rows}
    assert sources == {"ReadWalkerSteger2019", "PaceStrigari2019", "GeringerSameth2015"}
    assert all(r["method"] == "flow" and np.isfinite(float(r["pull"])) for r in rows)
    diag = json.loads((out / "summary.json").read_text())["diagnostics"]["leo2_flow"]
    assert diag["converged"] is False and len(diag["steps"]) == 2 and sum(diag["stop_reasons"].values()) == 2
    # the flow's grid ends at the 98th percentile of R (0.81 kpc, 0.20 deg at 233 kpc); J continues each
    # member's density beyond it with its fitted outer slope, no shallower than r^-2
    assert 0.15 < diag["j_edge_deg"] < 0.25
    assert len(diag["j_outer_slope"]) == 2 and all(np.isfinite(diag["j_outer_slope"]))
    assert diag["threads"] == 1  # the grid's one thread per task, not the probe's load-dependent choice


def test_a_failed_fit_is_a_row_not_an_abort(tmp_path, monkeypatch, capsys) -> None:
    """A FitError in one galaxy (as Carina's flow read-out gave) leaves a NaN row saying why; the rest goes on."""
    import dsphnf.survey.run as run
    from dsphnf.errors import FitError

    find_reference("walker_dwarfs")
    real = run._fit

    def fail_on_draco(fit, catalog, galaxy, options, seed):
        if galaxy.key == "draco":
            raise FitError("the Jeans read-out is unphysical for 4 of 4 flow(s)")
        return real(fit, catalog, galaxy, options, seed)

    monkeypatch.setattr(run, "_fit", fail_on_draco)
    monkeypatch.setenv("DSPHNF_FAST", "1")
    monkeypatch.setattr("dsphnf.flows.batched_train.choose_threads", _no_probe)  # Leo II's two flows: one batch
    args = ["survey", "draco", "leo2", "-o", str(tmp_path / "o"), "--method", "flow", "--ensemble", "2", "--steps",
            "3", "--no-progress", "--no-plots"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 of 2 fit(s) failed" in out and "FAILED: the Jeans read-out is unphysical" in out
    table = read_table(tmp_path / "o")
    draco, leo2 = table[0], table[1]
    assert str(draco["fit_note"]).startswith("failed: the Jeans read-out") and not draco["converged"]
    assert np.isnan(draco["rho150"]) and np.isnan(draco["log10_J05_hi"]) and draco["n_stars"] > 0
    assert np.isfinite(leo2["rho150"])
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["diagnostics"]["leo2_flow"]["threads"] == 1
    assert main(args) == 0  # stored like a finished fit: the same command resumes both
    assert "0 fit(s) computed, 2 resumed" in capsys.readouterr().out


def test_flow_with_a_distance_per_member_and_a_foreground_mixture(tmp_path, monkeypatch) -> None:
    """``--distance per-draw --membership mixture`` with the flow: each flow's own distance and learned fraction."""
    find_reference("walker_dwarfs", "leo2_spec.dat")
    monkeypatch.setenv("DSPHNF_FAST", "1")
    out = tmp_path / "o"
    assert main(["survey", "leo2", "-o", str(out), "--method", "flow", "--distance", "per-draw", "--membership",
                 "mixture", "--ensemble", "2", "--steps", "3", "--no-progress", "--no-plots"]) == 0
    row = read_table(out)[0]
    diag = json.loads((out / "summary.json").read_text())["diagnostics"]["leo2_flow"]
    D, err = row["distance_kpc"], row["distance_err_kpc"]
    d = np.array(diag["member_distances_kpc"])
    assert d.shape == (2,) and np.all(d > 0.5 * D) and np.all(np.abs(d - D) < 5 * err) and d[0] != d[1]
    f = np.array(diag["foreground_fractions"])
    assert np.all((f > 0) & (f < 1)) and row["f_fg"] == pytest.approx(f.mean())
    assert row["n_members"] == pytest.approx((1 - row["f_fg"]) * row["n_stars"])
    assert np.isfinite([row["rho150"], row["M_half"], row["log10_J05"]]).all()


def test_the_task_store_keeps_the_members_profiles_and_j_follows_from_them(leo2_flow) -> None:
    """A flow row in OUT/tasks keeps each member's r, rho (and M, beta): J(0.5 deg) recomputed from them is the
    row's, each member continued outwards of its grid (no shallower than r^-2) and not truncated there."""
    import pickle

    from dsphnf.flows.member_j import ensemble_j_band
    from dsphnf.jfactor import j_factor_tabulated

    _, out = leo2_flow
    (task,) = (out / "tasks").glob("*.pkl")
    row = pickle.loads(task.read_bytes())["result"]
    members = row["member_profiles"]
    assert len(members) == 2 and all({"r", "rho", "M", "beta"} <= set(m) for m in members)
    members = [{k: np.asarray(v) for k, v in m.items()} for m in members]
    band, each = ensemble_j_band(members, row["distance_kpc"], 0.5)
    assert band["log10_J"] == pytest.approx(row["log10_J05"], abs=1e-12)
    cut = [np.log10(j_factor_tabulated(m["r"], m["rho"], row["distance_kpc"], outer_gamma_min=None)) for m in members]
    assert all(c < j for c, j in zip(cut, each))  # the grid ends at 0.20 deg: truncated, J would be lower
