"""Bands centred on an all-star flow (``FitOptions(centre="all-stars")``): the value is the read-out of one
flow trained on all stars, the bands are value -+ t_{K-1}(q) s with s the bootstrap members' spread.

It is the default (``centre="auto"``) for stars with velocities and a given anisotropy, members trained
from scratch or warm-started; the members' mean (``centre="members"``) otherwise. Whether such bands are
calibrated is a benchmark over realisations (``dsphnf calibrate --centre all-stars``, benchmarks/RESULTS.md), not
a test.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from dsphnf.catalog import Catalog
from dsphnf.cli import main
from dsphnf.errors import FitError
from dsphnf.flows import FitOptions, fit_flow
from dsphnf.mocks import draw_mock

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS, K = 20, 3


@pytest.fixture(scope="module")
def cat():
    return draw_mock("PlumCuspIso", n=120, seed=7).catalog


def _fit(cat, ensemble=K, **options):
    return fit_flow(cat, ensemble=ensemble, steps=STEPS, seed=4, distance=76.0, progress=False,
                    options=FitOptions(**options))


@pytest.fixture(scope="module")
def centred(cat):
    return _fit(cat, centre="all-stars")


def test_the_value_is_the_single_flow_of_the_same_seed(cat, centred):
    single = _fit(cat, ensemble=1)
    for key in ("nu", "sigma_r", "M", "rho"):
        assert centred.profile[key].tobytes() == single.profile[key].tobytes(), key
    assert centred.summary["jfactor"]["log10_J"] == single.summary["jfactor"]["log10_J"]
    assert centred.summary["jfactor"]["centre"] == "all-stars"
    assert centred.summary["diagnostics"]["centre"]["n_radii_from_members"] == 0
    assert centred.summary["settings"]["centre"] == "all-stars"


def test_the_bands_are_t_times_the_members_spread_around_it(centred):
    """Brute force: the members' standard deviation of ln rho, Student-t with K - 1 dof, no sqrt(1 + 1/K)."""
    members = np.log([m["rho"] for m in centred.artefacts.members])
    s = members.std(axis=0, ddof=1)
    for suffix, q in (("_hi", 0.6827), ("_hi95", 0.95)):
        want = np.log(centred.profile["rho"]) + stats.t.ppf(0.5 + q / 2, K - 1) * s
        np.testing.assert_allclose(np.log(centred.profile["rho" + suffix]), want, rtol=0, atol=1e-12)
    lo, hi = np.log(centred.profile["rho_lo"]), np.log(centred.profile["rho_hi"])
    np.testing.assert_allclose(hi - np.log(centred.profile["rho"]), np.log(centred.profile["rho"]) - lo, atol=1e-12)


def test_it_is_the_default_with_a_given_anisotropy(cat, centred):
    auto = _fit(cat)
    assert auto.summary["settings"]["centre"] == "all-stars"
    for key in ("rho", "rho_lo", "rho_hi95", "M"):
        assert auto.profile[key].tobytes() == centred.profile[key].tobytes(), key


def test_the_default_centres_on_the_members_with_a_learned_anisotropy_or_no_velocities(cat):
    learned = fit_flow(cat, "om", ensemble=2, steps=2, progress=False)
    assert learned.summary["settings"]["centre"] == "members" and "centre" not in learned.summary["diagnostics"]
    sky = Catalog(cat.x, cat.y)
    positions = fit_flow(sky, ensemble=2, steps=2, progress=False)
    assert positions.summary["settings"]["centre"] == "members" and "from_members" not in positions.profile


def test_the_members_are_those_of_the_members_centre_and_only_the_centre_moves(cat, centred):
    plain = _fit(cat, centre="members")
    for a, b in zip(centred.artefacts.members, plain.artefacts.members):
        assert a["rho"].tobytes() == b["rho"].tobytes()
    # the members' centre's bands are sqrt(1 + 1/K) wider around the members' mean
    width = lambda p: np.log(p["rho_hi"] / p["rho_lo"])
    np.testing.assert_allclose(width(plain.profile), width(centred.profile) * np.sqrt(1 + 1 / K), rtol=1e-10)
    assert "centre" not in plain.summary["diagnostics"] and "from_members" not in plain.profile
    assert plain.summary["settings"]["centre"] == "members" and "centre" not in plain.summary["jfactor"]


def test_a_warm_start_centres_on_its_own_all_star_flow_by_default_without_a_second(cat):
    res = _fit(cat, warm_start=2)
    assert res.summary["settings"]["centre"] == "all-stars" and res.summary["jfactor"]["centre"] == "all-stars"
    grid = res.summary["diagnostics"]["grid"]
    assert grid["warm_start"]["steps"] == 2 and grid["anchor"]["info"]["steps"] == STEPS
    assert res.profile["rho"].tobytes() == _fit(cat, ensemble=1).profile["rho"].tobytes()


def test_a_single_flow_ignores_the_centre_and_a_bad_one_is_one_line(cat):
    one = _fit(cat, ensemble=1, centre="all-stars")
    assert one.summary["settings"]["centre"] is None and np.isnan(one.profile["rho_lo"]).all()
    with pytest.raises(FitError, match="^centre must be one of auto, members, all-stars, got 'middle'$"):
        _fit(cat, centre="middle")


def test_a_learned_anisotropy_is_refused_in_one_line(cat):
    with pytest.raises(FitError, match=r"^centre='all-stars' needs a given anisotropy: with a learned one \(om\)"):
        fit_flow(cat, "om", ensemble=2, steps=2, progress=False, options=FitOptions(centre="all-stars"))


def test_the_command_line_writes_and_says_it(cat, tmp_path, capsys):
    stars = tmp_path / "stars.csv"
    np.savetxt(stars, np.c_[cat.x, cat.y, cat.vz], delimiter=",", header="x,y,vz", comments="")
    out = tmp_path / "fit"
    rc = main(["fit", str(stars), "-o", str(out), "--ensemble", "2", "--steps", "3", "--no-progress",
               "--no-plots"])  # the default centre, with the default (given, isotropic) anisotropy
    text = capsys.readouterr().out
    assert rc == 0 and "value and bands centred on the flow trained on all stars" in text
    assert json.loads((out / "summary.json").read_text())["settings"]["centre"] == "all-stars"
    assert "from_members" in (out / "profile_bands.csv").read_text().splitlines()[0]
    assert main(["fit", str(stars), "-o", str(tmp_path / "bad"), "--centre", "middle"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
