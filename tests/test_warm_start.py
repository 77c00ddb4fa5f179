"""Warm-started members (``FitOptions.warm_start``, a k-step bootstrap): one flow on all stars, then every
bootstrap member starts from its weights and takes at most N L-BFGS iterations on its own resample.

Whether the bands of such ensembles are calibrated is a benchmark over realisations
(``dsphnf calibrate --warm-start N``, benchmarks/RESULTS.md), not a test.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dsphnf.cli import main
from dsphnf.errors import FitError
from dsphnf.flows import FitOptions, TrainConfig, fit_flow
from dsphnf.flows.member import member_data, start_flow
from dsphnf.mocks import draw_mock

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS, WARM = 40, 3


@pytest.fixture(scope="module")
def cat():
    return draw_mock("PlumCuspIso", n=80, seed=5, verr=2.0).catalog


def _fit(cat, **kw):
    kw.setdefault("ensemble", 3)
    return fit_flow(cat, steps=STEPS, seed=3, progress=False, options=FitOptions(warm_start=WARM), **kw)


@pytest.fixture(scope="module")
def warm(cat):
    return _fit(cat, batched=False)


@pytest.fixture(scope="module")
def single(cat):
    return fit_flow(cat, ensemble=1, steps=STEPS, seed=3, progress=False)


def test_the_anchor_is_the_single_flow_of_the_same_seed(warm, single):
    anchor = warm.summary["diagnostics"]["grid"]["anchor"]["info"]
    assert anchor["final_train_loss"] == single.summary["diagnostics"]["members"][0]["final_train_loss"]
    assert anchor["steps"] == STEPS


def test_members_take_at_most_n_lbfgs_steps_and_no_adam(warm):
    assert warm.summary["settings"]["warm_start"] == WARM
    for m in warm.summary["diagnostics"]["members"]:
        c = m["convergence"]
        assert m["steps"] <= WARM and c["adam_steps"] == 0 and c["lbfgs_steps"] == m["steps"]


def test_a_member_starts_from_the_anchor_weights_in_its_own_units(cat, warm):
    """start_flow loads the anchor's weights bit for bit and keeps the member's own length unit L_k."""
    from dsphnf.flows import fit as fit_mod

    state = {k: v.detach().numpy().copy() for k, v in warm.artefacts.flows[0].state_dict().items()}
    setup = _setup(cat)
    settings, stars = fit_mod.member_settings(setup, start=state), fit_mod._prepare(cat, setup)
    _, _, scales, _ = member_data(stars, settings, 1)
    flow = start_flow(stars, settings, scales["L"])
    assert all(np.array_equal(v.detach().numpy(), state[k]) for k, v in flow.state_dict().items())
    assert flow.length_scale == scales["L"] != stars.scales["L"]


def _setup(cat):
    from dsphnf.anisotropy import anisotropy_from
    from dsphnf.flows.fit_setup import FitSetup, executor_setting, train_config_for
    from dsphnf.flows.settings import FlowConfig

    return FitSetup(anisotropy_from("isotropic"), "free", 3, 3, torch.device("cpu"), FitOptions(warm_start=WARM),
                    FlowConfig(velocity="elliptical"), train_config_for(STEPS, None), None, False, False,
                    executor_setting("local", None, None, "cpu"))


def test_warm_members_stay_near_the_anchor_where_fresh_ones_are_far(cat, warm, single):
    """After N steps the warm members' rho lies closer to the all-star flow's than fresh members' (the same
    resamples, the same N L-BFGS steps from the untrained start): median |dlog10 rho| over the grid, mean over
    the members (80 stars: the resamples alone move a member by a few hundredths of a dex)."""
    cold = fit_flow(cat, ensemble=3, steps=WARM, seed=3, progress=False, batched=False,
                    train_config=TrainConfig(adam_steps=0))
    ref = np.log10(single.profile["rho"])
    dist = lambda res: [np.nanmedian(np.abs(np.log10(m["rho"]) - ref)) for m in res.artefacts.members]  # noqa: E731
    assert np.mean(dist(warm)) < 0.7 * np.mean(dist(cold)), (dist(warm), dist(cold))


def test_batched_warm_members_equal_one_by_one(cat, warm):
    batched = _fit(cat, batched=True)
    assert batched.summary["diagnostics"]["grid"]["batched"] is True
    np.testing.assert_allclose(batched.profile["rho"], warm.profile["rho"], rtol=1e-8)


def test_a_resumed_warm_fit_reuses_its_anchor_and_members(cat, warm, tmp_path):
    first = _fit(cat, batched=False, checkpoint_dir=tmp_path)
    again = _fit(cat, batched=False, checkpoint_dir=tmp_path, resume=True)
    grid = again.summary["diagnostics"]["grid"]
    assert grid["anchor"]["resumed"] == 1 and grid["n_resumed"] == 3
    assert first.profile["rho"].tobytes() == again.profile["rho"].tobytes() == warm.profile["rho"].tobytes()


def test_a_warm_start_without_lbfgs_is_refused_in_one_line(cat):
    with pytest.raises(FitError, match="warm_start needs the deterministic exact objective and L-BFGS"):
        _fit(cat, train_config=TrainConfig(optimiser="adam"))
    with pytest.raises(FitError, match="warm_start must be an integer of at least 0"):
        fit_flow(cat, ensemble=2, steps=2, progress=False, options=FitOptions(warm_start=-1))


@pytest.mark.parametrize("anisotropy", ["free", "om"])
def test_a_warm_start_with_a_learned_anisotropy_is_refused_in_one_line(cat, tmp_path, capsys, anisotropy):
    """Its members would stay on the anchor's beta (their bands under-cover): refused before anything is written."""
    with pytest.raises(FitError, match=f"warm_start needs a given anisotropy: with a learned one \\({anisotropy}\\)"):
        _fit(cat, anisotropy=anisotropy)
    path, out = tmp_path / "stars.csv", tmp_path / "out"
    cat.to_csv(path)
    argv = ["fit", str(path), "-o", str(out), "--anisotropy", anisotropy, "--warm-start", "5", "--no-progress"]
    assert main(argv) == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train the members from scratch" in err[0]


def test_a_warm_start_fits_the_stars_alone_whatever_the_anisotropy_says(cat):
    """Without velocities there is no beta to learn, so a learned anisotropy does not block the warm start."""
    from dsphnf.catalog import Catalog

    positions = Catalog(x=cat.x, y=cat.y)
    res = fit_flow(positions, anisotropy="free", ensemble=2, steps=6, seed=3, progress=False,
                   options=FitOptions(warm_start=2))
    assert res.summary["diagnostics"]["grid"]["warm_start"]["steps"] == 2


def test_cli_warm_start(cat, tmp_path, capsys):
    path = tmp_path / "stars.csv"
    cat.to_csv(path)
    assert main(["fit", str(path), "-o", str(tmp_path / "bad"), "--warm-start", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--warm-start must be at least 0" in err[0]
    out = tmp_path / "out"
    assert main(["fit", str(path), "-o", str(out), "--ensemble", "2", "--steps", "4", "--warm-start", "2",
                 "--no-progress", "--no-plots"]) == 0
    assert "every flow started from one flow trained on all stars (4 steps" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["warm_start"] == 2
    assert summary["diagnostics"]["grid"]["warm_start"]["steps"] == 2
