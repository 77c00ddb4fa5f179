"""Ensemble bands: Student-t bootstrap intervals and their coverage."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dsphnf.flows.ensemble import band_profiles, bootstrap_indices
from dsphnf.flows.student_t import t_interval


def test_t_interval_of_known_values():
    v = np.array([1.0, 2.0, 3.0, 4.0])
    b = t_interval(v)
    half = stats.t.ppf(0.975, 3) * np.std(v, ddof=1) * np.sqrt(1 + 1 / 4)
    assert b["_lo95"] == pytest.approx(2.5 - half) and b["_hi95"] == pytest.approx(2.5 + half)
    assert b["_lo"] < 2.5 - np.std(v, ddof=1) * np.sqrt(1.25)  # t with 3 dof: wider than a normal 68 % band
    assert b["_hi"] - 2.5 == pytest.approx(stats.t.ppf(0.5 + 0.6827 / 2, 3) * np.std(v, ddof=1) * np.sqrt(1.25))


def test_bands_cover_the_truth_at_their_nominal_rate_with_eight_members():
    """An estimate scatters around the truth, its K = 8 bootstrap members around the estimate
    (both N(., 1)): the t bands cover the truth in 68 % / 95 % of trials, the percentile
    band of eight members (the old bands) only in ~78 % for its nominal 95 %."""
    rng = np.random.default_rng(0)
    trials, K = 20000, 8
    est = rng.normal(0.0, 1.0, trials)
    members = est[:, None] + rng.normal(0.0, 1.0, (trials, K))
    b = t_interval(members, axis=1)
    cov68 = np.mean((b["_lo"] <= 0) & (b["_hi"] >= 0))
    cov95 = np.mean((b["_lo95"] <= 0) & (b["_hi95"] >= 0))
    assert cov68 == pytest.approx(0.6827, abs=0.015)
    assert cov95 == pytest.approx(0.95, abs=0.01)
    lo, hi = np.percentile(members, [2.5, 97.5], axis=1)
    assert np.mean((lo <= 0) & (hi >= 0)) < 0.82


def test_band_profiles_are_the_mean_in_log_space_of_the_physical_members_only():
    """The value is the centre of the t bands (one estimator); a member with rho <= 0 at a radius
    is left out there for every quantity, and counted in n_used."""
    r = np.array([0.1, 1.0])
    rho = [np.array([1e8, 1e7]), np.array([2e8, 2e7]), np.array([4e8, -1e7])]
    members = [{"r": r, "rho": x, "beta": np.array([0.1, -0.2 + 0.1 * i])} for i, x in enumerate(rho)]
    p = band_profiles(members, ["rho", "beta"])
    assert p["rho"][0] == pytest.approx(2e8)  # geometric mean of 1, 2, 4 (x 1e8)
    assert p["rho"][1] == pytest.approx(np.sqrt(2) * 1e7)  # the negative member is left out
    lo, hi = p["rho_lo95"][0], p["rho_hi95"][0]
    assert lo > 0 and np.sqrt(lo * hi) == pytest.approx(p["rho"][0])  # the value is the centre of its band
    assert p["beta"][1] == pytest.approx(-0.15) and p["beta_lo"][1] < -0.15 < p["beta_hi"][1]  # members 0, 1
    np.testing.assert_array_equal(p["n_used"], [3, 2])
    skewed = band_profiles([{"r": r[:1], "rho": np.array([x])} for x in (1.0, 1.0, 8.0)], ["rho"])
    assert skewed["rho"][0] == pytest.approx(2.0)  # exp(mean ln), not the median member (1.0)


def test_single_flow_has_no_band():
    """One flow says nothing about its own scatter: its band columns are NaN, not zero-width."""
    r = np.array([0.1, 1.0])
    p = band_profiles([{"r": r, "rho": np.array([3e8, 2e7])}], ["rho"])
    np.testing.assert_allclose(p["rho"], [3e8, 2e7])
    for suffix in ("_lo", "_hi", "_lo95", "_hi95"):
        assert np.all(np.isnan(p["rho" + suffix]))


def test_bootstrap_indices_are_reproducible_resamples():
    a = bootstrap_indices(100, 0, 1, 8)
    assert np.array_equal(a, bootstrap_indices(100, 0, 1, 8))
    assert not np.array_equal(a, bootstrap_indices(100, 0, 2, 8))
    assert len(np.unique(a)) < 100 and a.min() >= 0 and a.max() < 100
    assert np.array_equal(bootstrap_indices(50, 3, 0, 1), np.arange(50))


def test_j_band_of_an_ensemble_counts_members_without_a_density_as_left_out():
    from dsphnf.flows.member_j import ensemble_j_band, member_log10_j

    r = np.geomspace(0.01, 1.0, 60)
    good = [{"r": r, "rho": a * 1e8 / (r * (1 + r) ** 2)} for a in (0.5, 1.0, 2.0)]
    bad = [{"r": r, "rho": np.where(r < 0.1, -1.0, 1e8)}, {"r": r, "rho": np.full_like(r, np.nan)}, {"r": r}]
    band, each = ensemble_j_band(good + bad, 76.0)
    assert each[3:] == [None, None, None] and band["n_used"] == 3 and band["n_left_out"] == 3
    j = [member_log10_j(m, 76.0) for m in good]
    assert j[2] - j[1] == pytest.approx(2 * np.log10(2.0))  # J scales as rho^2
    assert band["log10_J"] == pytest.approx(np.mean(j))  # the centre of the t band
    t = t_interval(np.array(j))
    assert band["log10_J_lo95"] == pytest.approx(float(t["_lo95"])) and band["distance_kpc"] == 76.0
    none, _ = ensemble_j_band(bad, 76.0)
    assert none["n_used"] == 0 and np.isnan(none["log10_J"])


def _member(rho, M=None):
    r = np.array([0.05, 0.1, 0.5, 1.0, 2.0])
    rho = np.asarray(rho, dtype=float)
    return {"r": r, "nu": np.ones(5), "sigma_r": np.ones(5), "beta": np.zeros(5),
            "M": np.ones(5) if M is None else np.asarray(M, dtype=float), "rho": rho}


def test_members_are_counted_per_radius_where_their_readout_is_unphysical():
    from dsphnf.flows.ensemble import readout_accounting

    good = _member([5.0, 4.0, 3.0, 2.0, 1.0])
    neg_rho = _member([5.0, -4.0, 3.0, 2.0, 1.0])          # M falls at 0.1 kpc
    neg_m = _member([5.0, 4.0, 3.0, 2.0, 1.0], M=[-1.0, 1, 1, 1, 1])
    nan = _member([5.0, 4.0, 3.0, 2.0, np.nan])
    acc = readout_accounting([good, neg_rho, neg_m, nan], (0.1, 1.0))
    assert acc["n_used"] == [3, 3, 4, 4, 3] and acc["n_members"] == 4
    assert acc["members_unphysical_somewhere"] == [1, 2, 3]
    assert acc["fewest_used"] == 3 and acc["fewest_used_at_r_kpc"] == 0.1  # 0.05 and 2 kpc lie outside the data
    p = band_profiles([good, neg_rho, neg_m, nan], ["rho", "M"])
    np.testing.assert_array_equal(p["n_used"], acc["n_used"])
    assert p["rho"][1] == pytest.approx(4.0) and p["M"][0] == pytest.approx(1.0)  # the failing members left out


def test_fewer_than_half_surviving_inside_the_data_stops_the_fit():
    from dsphnf.errors import FitError
    from dsphnf.flows.ensemble import check_survival, readout_accounting

    good, bad = _member([5.0, 4.0, 3.0, 2.0, 1.0]), _member([5.0, 4.0, -3.0, 2.0, 1.0])
    check_survival(readout_accounting([good, good, bad, bad], (0.1, 1.0)))  # half survive: fine
    with pytest.raises(FitError, match=r"for 3 of 4 flow\(s\) at r = 0.5 kpc.*fewer than half survive"):
        check_survival(readout_accounting([good, bad, bad, bad], (0.1, 1.0)))
    outside = _member([-5.0, 4.0, 3.0, 2.0, 1.0])  # unphysical only at 0.05 kpc, inside no data
    check_survival(readout_accounting([outside, outside, good], (0.1, 1.0)))
    with pytest.raises(FitError, match="1 of 1 flow"):
        check_survival(readout_accounting([bad], (0.1, 1.0)))  # a single flow must be physical
