"""The flow's systematics switches: a foreground mixture in its likelihood, a distance drawn per member."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsphnf.catalog import Catalog
from dsphnf.errors import FitError
from dsphnf.flows import fit_flow
from dsphnf.flows.cnf import random_flow
from dsphnf.flows.foreground import F_START, ForegroundTerm, foreground_term, log_window_fraction
from dsphnf.flows.objective import flow_loss, smearing_nodes
from dsphnf.flows.stars import StarData
from dsphnf.flows.surface import radial_table
from dsphnf.flows.train_config import TrainConfig
from dsphnf.foreground import Foreground
from dsphnf.mocks import draw_mock

N_MEMBERS, N_FG, FG_MEAN, FG_SIGMA = 300, 75, 30.0, 60.0


def _contaminated(seed: int = 3) -> Catalog:
    """A mock dwarf plus foreground stars uniform in area (same radial window) with v ~ N(30, 60^2) km/s."""
    cat = draw_mock("PlumCuspIso", n=N_MEMBERS, seed=seed, verr=2.0).catalog
    rng = np.random.default_rng(seed)
    R = np.sqrt(rng.uniform(cat.R.min() ** 2, cat.R.max() ** 2, N_FG))
    phi = rng.uniform(0, 2 * np.pi, N_FG)
    v = rng.normal(FG_MEAN, FG_SIGMA, N_FG)
    return Catalog(np.r_[cat.x, R * np.cos(phi)], np.r_[cat.y, R * np.sin(phi)], np.r_[cat.vz, v],
                   np.full(cat.n + N_FG, 2.0), source="mock + foreground")


def test_mixture_recovers_the_contamination_fraction() -> None:
    """Every flow's learned fraction moves from its start (0.1) to the true 0.2 (300 members + 75 field stars)."""
    cat = _contaminated()
    res = fit_flow(cat, steps=30, ensemble=2, seed=0, progress=False, foreground=Foreground(FG_MEAN, FG_SIGMA))
    fg = res.summary["diagnostics"]["foreground"]
    truth = N_FG / cat.n
    f = np.array(fg["member_fractions"])
    assert fg["learned"] and res.summary["settings"]["foreground"]["fraction"] is None
    assert np.all(np.abs(f - truth) < 0.05) and np.all(np.abs(f - truth) < 0.5 * abs(F_START - truth)), f
    assert fg["fraction_lo"] <= fg["fraction"] <= fg["fraction_hi"]


def test_one_by_one_members_learn_the_fraction_too() -> None:
    """The single trainer (batched=False) learns the same parameter as the batched one."""
    cat = _contaminated()
    res = fit_flow(cat, steps=30, ensemble=1, seed=0, progress=False, foreground=Foreground(FG_MEAN, FG_SIGMA),
                   batched=False)
    f = res.summary["diagnostics"]["foreground"]["member_fractions"][0]
    assert abs(f - N_FG / cat.n) < 0.05, f


def _stars(flow_seed: int = 2, n: int = 200) -> tuple[object, StarData]:
    rng = np.random.default_rng(flow_seed)
    obs = torch.as_tensor(np.c_[rng.normal(0, 1, (n, 2)), rng.normal(0, 1, n)], dtype=torch.float64)
    flow = random_flow(flow_seed, kinematic=True, inner="free")
    return flow, StarData(obs, [0.2, 0.2, 0.25], verr=torch.full((n,), 0.1, dtype=torch.float64))


@torch.no_grad()
def test_without_foreground_the_mixture_is_the_exact_loss_in_the_window() -> None:
    """f -> 0: the mixture's loss is the exact loss + ln P_win (the members' density renormalised to the window)."""
    flow, data = _stars()
    cfg = TrainConfig(n_gh=3)
    plain = float(flow_loss(flow, data, cfg, None, 0))
    data.fg = ForegroundTerm(torch.tensor(0.0, dtype=torch.float64), torch.tensor(9.0, dtype=torch.float64), 1e-300)
    mixed = float(flow_loss(flow, data, cfg, None, 0))
    table = radial_table(flow)
    lwin = float(log_window_fraction(flow, data.R.min(), data.R.max(), table))
    assert -3.0 < lwin < 0.0
    assert mixed == pytest.approx(plain + lwin, abs=1e-9)
    # the foreground term alone (f -> 1): uniform in area times the broad Gaussian, smeared by the kernel
    data.fg.fraction = 1.0 - 1e-15
    x, w = smearing_nodes(3)
    var = 9.0 + data.err2 + 0.25**2
    v = data.obs[:, 2:3] + 0.25 * torch.as_tensor(x)
    area = math.pi * (float(data.R.max()) ** 2 - float(data.R.min()) ** 2)
    expect = -((-0.5 * (torch.log(2 * math.pi * var)[:, None] + v**2 / var[:, None])) * torch.as_tensor(w)).sum(1)
    assert float(flow_loss(flow, data, cfg, None, 0)) == pytest.approx(float(expect.mean()) + math.log(area), rel=1e-9)


@torch.no_grad()
def test_the_window_is_the_catalogues_not_that_of_the_stars_in_the_loss() -> None:
    """A subset of the stars (a minibatch, a resample) keeps the catalogue's window: the same P_win and area."""
    flow, data = _stars()
    fg = foreground_term(Foreground(0.0, 3.0), {"v_sys": 0.0, "V": 1.0}, torch.float64, torch.device("cpu"),
                         data.obs.numpy())
    inner = torch.argsort(data.R)[: data.n // 2]  # the inner half: its own window would be far smaller
    sub = data.subset(inner)
    sub.fg, cfg, table = fg, TrainConfig(n_gh=3), radial_table(flow)
    fg.fraction = 1e-300  # members only: the loss is the exact one + ln P_win of the window
    plain = StarData(data.obs[inner], [0.2, 0.2, 0.25], verr=torch.full((len(inner),), 0.1, dtype=torch.float64))
    lwin_full = float(log_window_fraction(flow, data.R.min(), data.R.max(), table))
    lwin_sub = float(log_window_fraction(flow, sub.R.min(), sub.R.max(), table))
    assert lwin_sub < lwin_full - 0.1
    assert float(flow_loss(flow, sub, cfg, None, 0)) == pytest.approx(
        float(flow_loss(flow, plain, cfg, None, 0)) + lwin_full, abs=1e-9)


@torch.no_grad()
def test_the_window_fraction_is_one_over_the_whole_sky() -> None:
    """Sigma is normalised to one star over the sky: P_win -> 1 for a window far wider than the flow."""
    flow, _ = _stars()
    table = radial_table(flow)
    lo, hi = torch.tensor(1e-4, dtype=torch.float64), torch.tensor(1e3, dtype=torch.float64)
    assert float(log_window_fraction(flow, lo, hi, table)) == pytest.approx(0.0, abs=2e-3)


def test_distance_per_member_is_the_homology() -> None:
    """D_k drawn per flow: the same trained flows, rho(r) -> s^-2 rho(r / s), J at D_k, s = D_k / D."""
    cat = draw_mock("PlumCuspIso", n=150, seed=1).catalog
    kw = dict(steps=4, ensemble=2, seed=0, progress=False, distance=76.0)
    fixed, drawn = fit_flow(cat, **kw), fit_flow(cat, distance_err=6.0, **kw)
    d = drawn.summary["diagnostics"]["distance"]
    s = np.array(d["member_distances_kpc"]) / 76.0
    assert d["distance_err_kpc"] == 6.0 and np.all(s > 0.5) and np.ptp(s) > 0
    for k in range(2):
        a, b = fixed.artefacts.flows[k].state_dict(), drawn.artefacts.flows[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a)  # the standardised stars are the same
        pa, pb = fixed.artefacts.members[k], drawn.artefacts.members[k]
        r = pb["r"][10:-10]
        rho_a = np.exp(np.interp(np.log(r / s[k]), np.log(pa["r"]), np.log(pa["rho"])))
        np.testing.assert_allclose(pb["rho"][10:-10], rho_a / s[k] ** 2, rtol=0.02)
    each = [m["log10_J"] for m in drawn.summary["diagnostics"]["members"]]
    assert drawn.summary["jfactor"]["member_distances_kpc"] == d["member_distances_kpc"]
    assert each != [m["log10_J"] for m in fixed.summary["diagnostics"]["members"]]


@pytest.mark.parametrize("kwargs, message", [
    ({"distance_err": 5.0}, "distance_err needs a positive distance"),
    ({"distance": 76.0, "distance_err": -1.0}, "distance_err needs"),
    ({"foreground": Foreground(0.0, 50.0), "train_config": TrainConfig(loss="kde")}, "needs the exact loss"),
])
def test_bad_switches_are_one_line(kwargs, message) -> None:
    cat = draw_mock("PlumCuspIso", n=60, seed=0).catalog
    with pytest.raises(FitError, match=message):
        fit_flow(cat, steps=1, progress=False, **kwargs)


def test_a_foreground_needs_velocities() -> None:
    cat = draw_mock("PlumCuspIso", n=60, seed=0).catalog
    pos = Catalog(cat.x, cat.y, None)
    with pytest.raises(FitError, match="needs velocities"):
        fit_flow(pos, steps=1, progress=False, foreground=Foreground(0.0, 50.0))
