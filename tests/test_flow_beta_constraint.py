"""Where the data constrain an inferred beta(r): the rule of ``beta_constraint`` on synthetic ensembles, and
``dsphnf fit`` writing and printing it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dsphnf.flows.beta_constraint import (BETA_MAX_Y_WIDTH, BETA_MIN_STARS, beta_constraint, beta_constraint_note,
                                          stars_near, symmetrised_width)
from dsphnf.flows.ensemble import band_profiles

R_GRID = np.geomspace(0.01, 3.0, 41)


def _ensemble(spread: np.ndarray, k: int = 6, centre: float = 0.3) -> list[dict]:
    """K members with beta = centre + spread(r) * z_k, z_k fixed offsets of mean 0 and standard deviation 1."""
    z = np.linspace(-1.0, 1.0, k) / (np.linspace(-1.0, 1.0, k).std(ddof=1) if k > 1 else 1.0)
    one = {"nu": np.ones_like(R_GRID), "sigma_r": np.ones_like(R_GRID), "M": np.ones_like(R_GRID),
           "rho": np.ones_like(R_GRID)}
    return [{"r": R_GRID, **one, "beta": centre + spread * zk} for zk in z]


def _stars(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Projected radii [kpc] log-uniform over 0.05-1 kpc."""
    return np.exp(np.random.default_rng(seed).uniform(np.log(0.05), np.log(1.0), n))


def test_band_widths_and_star_counts_decide_where_beta_is_constrained():
    """Known bands: tight (spread 0.02) inside 0.6 kpc, wide (0.6) outside; stars only in 0.05-1 kpc.

    Inside 0.1-0.5 kpc both criteria pass. Inside 0.025 kpc the band is tight but few stars are within a
    factor 2 (the case a bootstrap ensemble gets wrong: members stuck at their start agree); beyond
    0.6 kpc there are stars but the band is wide.
    """
    spread = np.where(R_GRID < 0.6, 0.02, 0.6)
    prof = band_profiles(_ensemble(spread), ["beta"])
    R = _stars()
    c = beta_constraint(prof, R)
    ok = np.array(c["constrained"])
    width = np.array([np.nan if w is None else w for w in c["y_width68"]])
    near = np.array(c["n_stars_near"])
    # the bands are what the members make them: t_{5}(0.84) * 0.02 * sqrt(7/6) ~ 0.022 in beta, x2 sides,
    # times dy/dbeta = 2 / (2 - 0.3)^2 = 0.69 -> ~0.03 in y; and > 0.5 where the spread is 0.6
    tight = spread < 0.1
    assert np.all(width[tight] < 0.05) and np.all(width[~tight] > 2 * BETA_MAX_Y_WIDTH)
    assert np.array_equal(ok, tight & (near >= BETA_MIN_STARS))
    assert not ok[R_GRID < 0.025].any()          # tight band, but < 100 stars within a factor 2
    assert ok[(R_GRID > 0.1) & (R_GRID < 0.5)].all()
    assert not ok[R_GRID > 0.6].any()              # stars, but a wide band
    (lo, hi), = c["ranges_kpc"]
    assert 0.025 < lo < 0.06 and 0.5 < hi < 0.6
    note = beta_constraint_note(c)
    assert note.startswith(f"beta is constrained only between {lo:.3g} and {hi:.3g} kpc")
    assert "(few stars at 0.01-0.0" in note and "; wide band at 0.625-" in note
    assert "; few stars, wide band at 1.96-3 kpc)" in note and "come from its prior" in note
    json.dumps(c)  # JSON-ready


def test_star_count_is_weighted_and_uses_a_factor_two_window():
    R = np.array([0.05, 0.1, 0.2, 0.21, 0.4])
    w = np.array([1.0, 0.5, 0.25, 1.0, 1.0])
    # r = 0.1: window [0.05, 0.2] holds 0.05, 0.1, 0.2 -> 1 + 0.5 + 0.25
    assert stars_near(np.array([0.1]), R, w)[0] == pytest.approx(1.75)
    assert stars_near(np.array([0.1]), R)[0] == 3


def test_one_flow_has_no_band_and_nothing_counts_as_constrained():
    prof = band_profiles(_ensemble(np.full(R_GRID.size, 0.01), k=1), ["beta"])
    c = beta_constraint(prof, _stars())
    assert not any(c["constrained"]) and c["ranges_kpc"] == []
    assert "not assessed" in beta_constraint_note(c)


def test_nowhere_and_everywhere():
    R = _stars()
    wide = beta_constraint(band_profiles(_ensemble(np.full(R_GRID.size, 0.8)), ["beta"]), R)
    assert beta_constraint_note(wide).startswith("beta is constrained nowhere")
    r = np.geomspace(0.1, 0.5, 5)
    prof = {"r": r, "beta_lo": np.zeros(5), "beta_hi": np.full(5, 0.1)}
    assert beta_constraint_note(beta_constraint(prof, R)).startswith("beta is constrained over the whole grid")


def test_a_central_beta_at_its_lower_bound_is_flagged_where_stars_are():
    """Members near beta = -2.8 (y = -0.58, within the margin of y = -0.6) outside 0.3 kpc, -0.5 inside:
    flagged at the radii with stars only, and said in the note; a beta of -2.3 (y = -0.535) is not."""
    from dsphnf.flows.beta import BETA_MIN

    centre = np.where(R_GRID > 0.3, -2.8, -0.5)
    c = beta_constraint(band_profiles(_ensemble(np.full(R_GRID.size, 0.01), centre=centre), ["beta"]), _stars())
    at = np.array(c["at_bound"])
    near = np.array(c["n_stars_near"]) >= BETA_MIN_STARS
    assert np.array_equal(at, (R_GRID > 0.3) & near) and at.any() and not at[R_GRID > 2.1].any()
    note = beta_constraint_note(c)
    assert f"beta sits at the lower bound of its parametrisation ({BETA_MIN:g})" in note
    assert "; at 0.3" in note or "; at 0.33" in note
    mild = beta_constraint(band_profiles(_ensemble(np.full(R_GRID.size, 0.01), centre=-2.3), ["beta"]), _stars())
    assert not any(mild["at_bound"]) and "lower bound" not in beta_constraint_note(mild)
    assert "lower bound" not in beta_constraint_note({**c, "at_bound": [False] * len(c["r_kpc"])})
    json.dumps(c)


def test_band_limits_beyond_beta_one_count_as_the_edge_of_y():
    # a Student-t band of beta can run past 1: its y limit is 1, not beta/(2 - beta) of it
    assert symmetrised_width(np.array([0.0]), np.array([1.5]))[0] == pytest.approx(1.0)
    assert symmetrised_width(np.array([-2.0]), np.array([0.5]))[0] == pytest.approx(1 / 3 + 0.5)


@pytest.mark.usefixtures("one_torch_thread")
def test_fit_with_an_inferred_beta_writes_and_prints_where_it_is_constrained(tmp_path, capsys):
    from dsphnf.cli import main
    from dsphnf.mocks import draw_mock

    cat = draw_mock("PlumCuspIso", n=150, seed=1).catalog
    path = tmp_path / "stars.csv"
    np.savetxt(path, np.c_[cat.x, cat.y, cat.vz], delimiter=",", header="x,y,vz", comments="")
    out = tmp_path / "fit"
    rc = main(["fit", str(path), "-o", str(out), "--anisotropy", "free", "--steps", "3", "--ensemble", "2",
               "--no-progress", "--no-plots", "--threads", "1"])
    printed = capsys.readouterr().out
    assert rc == 0
    c = json.loads((out / "summary.json").read_text())["diagnostics"]["beta_constrained"]
    assert len(c["constrained"]) == len(c["r_kpc"]) == 40
    assert beta_constraint_note(c) in printed
    assert "velocity family 1 elliptical + 1 separable" in printed  # --velocity auto: both families for a free beta
    # 150 stars: nowhere are >= 100 of them within a factor 2 of the innermost or outermost grid radius
    assert not c["constrained"][0] and not c["constrained"][-1]
    # a given beta is not inferred: no statement
    out2 = tmp_path / "fit_iso"
    assert main(["fit", str(path), "-o", str(out2), "--steps", "2", "--ensemble", "2", "--no-progress",
                 "--no-plots", "--threads", "1"]) == 0
    assert "beta_constrained" not in json.loads((out2 / "summary.json").read_text())["diagnostics"]
    assert "beta is constrained" not in capsys.readouterr().out
