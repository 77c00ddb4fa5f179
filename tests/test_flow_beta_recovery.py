"""Recovery of beta by a flow with the anisotropy inferred, on a 1e4-star mock (loose bounds, few steps).

The accurate measurement (1000-star files, 400 steps, against beta fixed
isotropic and the untrained start) is ``benchmarks/bench_beta.py`` and
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import numpy as np
import pytest

from dsphnf import draw_mock
from dsphnf.flows import FitOptions, TrainConfig, fit_flow

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("float64_one_thread")]


def test_osipkov_merritt_radius_is_recovered_from_a_large_mock():
    """om inferred on 1e4 stars of an om:0.3 mock (start r_a = 10 L ~ 2.6 kpc, isotropic inside the data)."""
    mock = draw_mock(n=10_000, seed=3, halo="burkert:4e8,1", tracer="plummer:0.25", anisotropy="om:0.3")
    r_half = float(np.median(np.hypot(mock.catalog.x, mock.catalog.y)))
    res = fit_flow(mock.catalog, "om", seed=0, progress=False,
                   options=FitOptions(r_grid=[0.5 * r_half, r_half, 2 * r_half], threads=1),
                   train_config=TrainConfig(steps=250, batch=2000))
    ra = res.summary["diagnostics"]["members"][0]["anisotropy"]["ra_kpc"]
    assert 0.3 / 1.6 < ra < 0.3 * 1.6
    truth = mock.truth
    beta_true = np.interp(np.log([0.5 * r_half, r_half, 2 * r_half]), np.log(truth["r"]), truth["beta"])
    assert np.all(np.abs(res.profile["beta"] - beta_true) < 0.2)
