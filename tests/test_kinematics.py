"""The shared weighted statistics (dsphnf.kinematics) against hand computations and known samples."""
from __future__ import annotations

import numpy as np
import pytest

from dsphnf.kinematics import (half_number_radius, kish_size, ml_dispersion, weighted_mean, weighted_mean_std,
                               weighted_median)


def test_weighted_median_by_hand():
    v = np.array([1.0, 2.0, 3.0, 4.0])
    assert weighted_median(v) == 2.0  # lower median: cumulative weight 2/4 reaches half at 2
    assert weighted_median(v[::-1]) == 2.0  # order does not matter
    assert weighted_median(np.array([5.0, 1.0, 3.0])) == 3.0
    # integer weights = repeated values: 1,1,1,2,3,4,4 -> median 2
    assert weighted_median(v, np.array([3.0, 1.0, 1.0, 2.0])) == 2.0
    # a heavy star decides: weights 1, 1, 5 -> its value
    assert weighted_median(np.array([0.1, 0.2, 0.9]), np.array([1.0, 1.0, 5.0])) == 0.9
    # zero weights never decide
    assert weighted_median(np.array([0.0, 1.0, 2.0, 3.0, 100.0]), np.array([1, 1, 0, 1, 0.0])) == 1.0
    # the result is one of the values, and it halves the weight
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=501), rng.uniform(0.1, 1.0, 501)
    m = weighted_median(x, w)
    assert m in x and np.sum(w[x < m]) < 0.5 * w.sum() <= np.sum(w[x <= m])


def test_half_number_radius_is_weighted_median_of_R():
    x, y = np.array([3.0, 0.0, 1.0, 0.0]), np.array([4.0, 2.0, 0.0, 0.5])  # R = 5, 2, 1, 0.5
    assert half_number_radius(x, y) == 1.0
    assert half_number_radius(x, y, np.array([1.0, 1.0, 0.0, 0.0])) == 2.0
    # the flow's standardisation uses exactly this radius as its length unit
    from dsphnf.catalog import Catalog
    from dsphnf.flows.standardise import standardise

    rng = np.random.default_rng(3)
    cat = Catalog(rng.normal(0, 0.2, 200), rng.normal(0, 0.2, 200), rng.normal(0, 9, 200),
                  p_member=rng.uniform(0.1, 1.0, 200))
    _, scales = standardise(cat)
    assert scales["L"] == half_number_radius(cat.x, cat.y, cat.weights) == cat.summary()["R_half"]
    assert (scales["v_sys"], scales["V"]) == weighted_mean_std(cat.vz, cat.weights)


def test_weighted_mean_std_and_kish_by_hand():
    assert weighted_mean([1.0, 2.0, 4.0], [1.0, 1.0, 2.0]) == 2.75
    assert weighted_mean([1.0, 2.0, 6.0]) == 3.0
    m, s = weighted_mean_std(np.array([-1.0, 1.0, 3.0]), np.array([1.0, 2.0, 1.0]))
    assert m == 1.0 and s == pytest.approx(np.sqrt((4 + 0 + 4) / 4))
    m, s = weighted_mean_std(np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]))
    assert (m, s) == (5.0, 2.0)  # the textbook population standard deviation
    # integer weights equal repetition
    v = np.array([1.0, 3.0, 8.0])
    assert weighted_mean_std(v, np.array([2.0, 1.0, 3.0])) == pytest.approx(
        weighted_mean_std(np.repeat(v, [2, 1, 3])))
    assert kish_size(np.ones(7)) == 7.0
    assert kish_size(np.array([1.0, 1.0, 0.5, 0.5])) == pytest.approx(9 / 2.5)


def test_ml_dispersion_without_errors_is_the_weighted_std():
    rng = np.random.default_rng(1)
    v, w = rng.normal(2.0, 6.0, 300), rng.uniform(0.2, 1.0, 300)
    mu, smu, s, ss = ml_dispersion(v, None, w)
    assert (mu, s) == weighted_mean_std(v, w)
    assert smu == pytest.approx(s / np.sqrt(w.sum())) and ss == pytest.approx(s / np.sqrt(2 * w.sum()))


def test_ml_dispersion_recovers_sigma_with_heteroscedastic_errors():
    rng = np.random.default_rng(42)
    n, sigma, mu = 4000, 7.0, 1.5
    err = rng.uniform(1.0, 12.0, n)
    v = rng.normal(mu, sigma, n) + rng.normal(0, err)
    m, sm, s, ss = ml_dispersion(v, err)
    assert abs(s - sigma) < 3 * ss and 0.05 < ss < 0.3
    assert abs(m - mu) < 3 * sm
    assert np.std(v) > sigma + 2  # the naive dispersion is badly inflated
    m0, _, s0, ss0 = ml_dispersion(v)
    assert m0 == pytest.approx(v.mean()) and s0 == pytest.approx(v.std(), rel=1e-6)
    assert ss0 == pytest.approx(v.std() / np.sqrt(2 * n), rel=1e-3)


def test_ml_dispersion_error_bars_are_calibrated():
    rng = np.random.default_rng(7)
    pulls = []
    for _ in range(200):
        err = rng.uniform(1.0, 6.0, 300)
        v = rng.normal(0, 5.0, 300) + rng.normal(0, err)
        _, _, s, ss = ml_dispersion(v, err)
        pulls.append((s - 5.0) / ss)
    assert abs(np.mean(pulls)) < 0.25 and 0.8 < np.std(pulls) < 1.2
