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


@pytest.mark.parametrize("truth, family", [(-0.5, "constant")])
def test_constant_beta_is_recovered_from_a_large_mock(truth, family):
    mock = draw_mock(n=10_000, seed=3, halo="nfw:6.4e7,1", tracer="plummer:0.25", anisotropy=f"constant:{truth}")
    r_half = float(np.median(np.hypot(mock.catalog.x, mock.catalog.y)))
    res = fit_flow(mock.catalog, family, seed=0, progress=False,
                   options=FitOptions(r_grid=[0.5 * r_half, r_half, 2 * r_half], threads=1),
                   train_config=TrainConfig(steps=150, batch=2000, lr=2e-2))
    learned = res.summary["diagnostics"]["members"][0]["anisotropy"]["beta0"]
    # the start is isotropic (beta = 0): the flow must have moved most of the way to the truth
    assert learned == pytest.approx(truth, abs=0.25)
    assert np.allclose(res.profile["beta"], learned)
