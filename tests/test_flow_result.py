"""fit_flow returns the shared Result: common summary schema, J band, artefacts, save/load round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import AnisotropyError, OsipkovMerritt
from dsphnf.catalog import Catalog
from dsphnf.errors import FitError
from dsphnf.flows import FitOptions, FlowArtefacts, fit_flow, load_flows
from dsphnf.mocks import draw_mock
from dsphnf.result import NU_COLUMNS, PROFILE_COLUMNS, Result, load_result

pytestmark = pytest.mark.usefixtures("one_torch_thread")

J_KEYS = {"log10_J", "log10_J_lo", "log10_J_hi", "log10_J_lo95", "log10_J_hi95", "n_used", "n_left_out",
          "distance_kpc", "theta_deg"}


@pytest.fixture(scope="module")
def tiny():
    """60 stars of a mock with velocity errors, two flows of 3 steps each, at 76 kpc."""
    cat = draw_mock("PlumCuspIso", n=60, seed=2, verr=2.0).catalog
    return cat, fit_flow(cat, OsipkovMerritt(0.5), ensemble=2, steps=3, seed=1, distance=76.0, progress=False)


def test_tiny_fit_returns_a_result_in_the_common_schema(tiny):
    cat, res = tiny
    assert isinstance(res, Result) and res.method == "flow" and res.kinematic
    s = res.summary
    assert {"method", "source", "n_stars", "settings", "timings_s", "diagnostics", "jfactor"} <= set(s)
    assert s["method"] == "flow" and s["n_stars"] == 60 and s["source"] == str(cat.source)
    assert s["settings"]["anisotropy"] == "om:0.5" and s["settings"]["distance_kpc"] == 76.0
    assert s["settings"]["executor"] == "local" and s["diagnostics"]["grid"]["n_computed"] == 2
    assert s["timings_s"]["total_s"] >= s["timings_s"]["train_s"] > 0
    assert not any(k.startswith("log10_J") for k in s)
    d = s["diagnostics"]
    assert [m["member"] for m in d["members"]] == [0, 1] and all(m["steps"] == 3 for m in d["members"])
    assert d["final_train_loss"] == pytest.approx(np.mean([m["final_train_loss"] for m in d["members"]]))
    # the J band: the j_band schema, every member either used or counted as left out
    jf = s["jfactor"]
    assert set(jf) == J_KEYS | {"centre"} and jf["n_used"] + jf["n_left_out"] == 2
    assert jf["centre"] == s["settings"]["centre"] == "all-stars"  # the default with a given anisotropy
    each = [m["log10_J"] for m in d["members"]]
    rho_ok = [bool(np.all(np.isfinite(m["rho"])) and np.all(m["rho"] > 0)) for m in res.artefacts.members]
    assert [j is not None for j in each] == rho_ok
    if jf["n_used"] == 2:  # around the all-star flow's J (tests/test_flow_centre.py), with the members' spread
        assert jf["log10_J_lo95"] <= jf["log10_J_lo"] <= jf["log10_J"] <= jf["log10_J_hi"] <= jf["log10_J_hi95"]
    # the artefacts
    art = res.artefacts
    assert isinstance(art, FlowArtefacts)
    assert len(art.flows) == len(art.members) == len(art.history) == 2
    assert art.scales["L"] > 0 and set(art.data) == {"x", "y", "w", "vz", "verr"}
    assert np.allclose(art.members[0]["r"], res.profile["r"])


def test_save_and_load_result_reproduce_the_profile_and_the_flows(tiny, tmp_path):
    _, res = tiny
    folder = res.save(tmp_path / "out", plots=False)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["flows", "profile.csv", "profile_bands.csv", "summary.json"]
    back = load_result(folder)
    assert back.method == "flow" and back.summary["jfactor"]["n_used"] == res.summary["jfactor"]["n_used"]
    assert list(back.table()) == PROFILE_COLUMNS
    for col, values in res.profile.items():
        np.testing.assert_allclose(back.profile[col], values, rtol=1e-7, equal_nan=True, err_msg=col)  # %.8g
    flows, scales = load_flows(folder)
    assert len(flows) == 2 and scales == res.artefacts.scales
    r = torch.tensor([0.3, 1.0, 3.0], dtype=torch.float64)
    for saved, orig in zip(flows, res.artefacts.flows):
        assert saved.spec()["anisotropy"] == "om:0.5"
        assert torch.allclose(saved.double().log_nu(r), orig.double().log_nu(r))


def test_positions_only_fit_has_nu_and_no_j_factor():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(2, 40)) * 0.3
    res = fit_flow(Catalog(xy[0], xy[1], source="sky"), steps=2, distance=76.0, progress=False,
                   options=FitOptions(n_grid=6))
    assert list(res.table()) == NU_COLUMNS and len(res.profile["r"]) == 6
    assert "jfactor" not in res.summary and res.summary["settings"]["distance_kpc"] == 76.0
    assert res.summary["diagnostics"]["kinematic"] is False


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"anisotropy": "om:-1"}, AnisotropyError, "om"),  # a malformed anisotropy (every inferred family is a flow form)
        ({"inner": "hollow"}, FitError, "inner"),
        ({"ensemble": 0}, FitError, "ensemble"),
        ({"steps": 0}, FitError, "steps"),
        ({"options": FitOptions(val_fraction=0.95)}, FitError, "val_fraction"),
    ],
)
def test_bad_settings_are_refused_before_training(kwargs, error, message):
    cat = draw_mock("PlumCuspIso", n=30, seed=0).catalog
    with pytest.raises(error, match=message) as info:
        fit_flow(cat, progress=False, **kwargs)
    assert len(str(info.value).splitlines()) == 1


def test_too_few_stars_are_refused():
    cat = draw_mock("PlumCuspIso", n=10, seed=0).catalog
    with pytest.raises(FitError, match="at least 20"):
        fit_flow(cat, steps=2, progress=False)
