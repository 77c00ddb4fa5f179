"""Training: a brief fit recovers a known tracer; resume reproduces; the NaN guard rolls back."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import parse_anisotropy
from dsphnf.catalog import Catalog
from dsphnf.errors import FitError
from dsphnf.flows import FitOptions, SphericalFlow, TrainConfig, Trainer, fit_flow
from dsphnf.flows.kde import bandwidths
from dsphnf.flows.stars import StarData


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def zhao_251_positions(n: int, r_star: float, seed: int) -> np.ndarray:
    """Stars of nu ∝ x^-1 (1 + x^2)^-2 (Zhao (2, 5, 1)): M(<r) fraction = x^2 / (1 + x^2)."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(0, 1, n)
    r = r_star * np.sqrt(m / (1 - m))
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True) * r[:, None]


def test_brief_positions_only_fit_recovers_a_cuspy_tracer():
    r_star = 0.25
    xyz = zhao_251_positions(2000, r_star, seed=1)
    cat = Catalog(xyz[:, 0], xyz[:, 1], source="zhao251")
    res = fit_flow(cat, steps=200, seed=0, progress=False,
                   options=FitOptions(r_grid=np.array([0.3, 0.5, 1.0, 2.0, 3.0]) * r_star, threads=1))
    assert not res.kinematic and list(res.table()) == ["r", "nu", "nu_lo", "nu_hi", "nu_lo95", "nu_hi95"]
    x = res.profile["r"] / r_star
    truth = 1 / (2 * np.pi * r_star**3) / x / (1 + x**2) ** 2
    err = np.log10(res.profile["nu"] / truth)
    assert np.max(np.abs(err)) < 0.15, err
    # the local slope is recovered too where stars are plentiful (truth -1 - 4 x^2 / (1 + x^2))
    slope_true = -1 - 4 * x**2 / (1 + x**2)
    assert np.max(np.abs(res.profile["dlnnu_dlnr"] - slope_true)[1:]) < 0.4
    # the deterministic positional objective is trained by Adam then L-BFGS, and summary.json says how it ended
    conv = json.loads(json.dumps(res.summary["diagnostics"]["members"][0]["convergence"]))
    assert conv["optimiser"] == "adam+lbfgs" and conv["stop_reason"] in ("converged", "stalled", "max_steps")
    assert conv["adam_steps"] == 100 and conv["adam_steps"] + conv["lbfgs_steps"] == res.summary["diagnostics"]["members"][0]["steps"]
    assert conv["grad_norm"] > 0 and conv["relative_change"] is not None


# ---------------------------------------------------------------------------- trainer mechanics
def _toy_data(seed=0, n=200):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 1.0, 0.9])
    h = bandwidths(x.numpy())
    return StarData(x[:160], h), StarData(x[160:], h)


def _trainer(path, steps=60, seed=3, **cfg):
    torch.manual_seed(0)
    flow = SphericalFlow(n_steps=2, width=16)
    train, val = _toy_data()
    conf = TrainConfig(steps=steps, n_model=256, val_n_model=512, val_every=10, checkpoint_every=20,
                       min_steps=steps, **cfg)
    return Trainer(flow, train, val, conf, seed=seed, checkpoint=path, progress=False)


def test_resume_after_interruption_reproduces_the_uninterrupted_run(tmp_path):
    full = _trainer(tmp_path / "full.pt")
    full.run()

    class Stop(Exception):
        pass

    def interrupt(tr):
        if tr.step == 47:
            raise Stop

    first = _trainer(tmp_path / "cut.pt")
    with pytest.raises(Stop):
        first.run(callback=interrupt)
    assert torch.load(tmp_path / "cut.pt", weights_only=False)["step"] == 40
    second = _trainer(tmp_path / "cut.pt")
    second.run(resume=True)
    assert second.step == full.step == 60
    for k, v in full.flow.state_dict().items():
        assert torch.equal(v, second.flow.state_dict()[k]), k
    assert full.history["loss"] == second.history["loss"]
    assert full.history["val_loss"] == second.history["val_loss"]
    # a finished checkpoint resumes to the same flow without training
    third = _trainer(tmp_path / "cut.pt")
    third.run(resume=True, callback=lambda tr: pytest.fail("trained again"))
    for k, v in full.flow.state_dict().items():
        assert torch.equal(v, third.flow.state_dict()[k])
    # and a checkpoint of other settings is refused
    with pytest.raises(FitError, match="different"):
        _trainer(tmp_path / "cut.pt", seed=4).run(resume=True)


def _inject(monkeypatch, when, kind="loss"):
    orig = Trainer.compute_loss

    def patched(self):
        loss = orig(self)
        if when(self):
            if kind == "loss":
                return loss * float("nan")
            p = next(self.flow.parameters())
            return loss + torch.sqrt(p.flatten()[0] - p.flatten()[0].detach())  # finite loss, infinite gradient
        return loss

    monkeypatch.setattr(Trainer, "compute_loss", patched)


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_nan_guard_rolls_back_and_halves_the_learning_rate(monkeypatch, tmp_path, kind):
    seen = set()

    def once(tr):
        if tr.step == 25 and 25 not in seen:
            seen.add(25)
            return True
        return False

    _inject(monkeypatch, once, kind)
    tr = _trainer(tmp_path / "nan.pt")
    tr.run()
    ev = tr.history["events"]
    assert len(ev) == 1 and ev[0]["event"] == "rollback" and ev[0]["step"] == 20  # last validation snapshot
    assert tr.lr_scale == 0.5 and tr.step == 60
    assert all(torch.isfinite(p).all() for p in tr.flow.parameters())
    assert tr.lr_at(30) == pytest.approx(0.5 * _trainer(None).lr_at(30))


def test_nan_guard_gives_up_with_fit_error(monkeypatch, tmp_path):
    _inject(monkeypatch, lambda tr: tr.step >= 25)
    tr = _trainer(tmp_path / "nan.pt")
    with pytest.raises(FitError, match="diverged"):
        tr.run()
    assert tr.failures == tr.cfg.max_failures + 1


def test_fit_flow_writes_nothing_when_training_diverges(monkeypatch, tmp_path):
    _inject(monkeypatch, lambda tr: tr.step >= 5)
    rng = np.random.default_rng(0)
    cat = Catalog(rng.normal(size=100), rng.normal(size=100), rng.normal(size=100) * 10, source="toy")
    out = tmp_path / "out"
    with pytest.raises(FitError):
        res = fit_flow(cat, steps=40, progress=False)
        res.save(out)
    assert not out.exists()


def test_cosine_schedule():
    tr = _trainer(None, steps=100, lr=1e-2, lr_final=0.1)
    assert tr.lr_at(0) == pytest.approx(1e-2)
    assert tr.lr_at(50) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))
    assert tr.lr_at(100) == pytest.approx(1e-3)
    assert math.isfinite(tr.lr_at(1000))


@pytest.mark.parametrize("loss, anisotropy", [("abel", "free"), ("kde", "isotropic"), ("abel", "isotropic")])
def test_objective_dispatch_matches_its_parts(loss, anisotropy):
    """flow_loss picks the documented terms: the exact likelihood for every kinematic flow, or the KDE."""
    from dsphnf.flows.kde import smeared_kde_loss
    from dsphnf.flows.losvd import exact_nll
    from dsphnf.flows.objective import flow_loss, smearing_nodes

    torch.manual_seed(0)
    flow = SphericalFlow(anisotropy=parse_anisotropy(anisotropy), width=16).double()
    train, _ = _toy_data()
    data = StarData(train.obs.double(), train.h.numpy())
    cfg = TrainConfig(loss=loss)
    got = flow_loss(flow, data, cfg, torch.Generator().manual_seed(3), 256)
    g = torch.Generator().manual_seed(3)
    if loss == "abel":  # E_eps by Gauss-Hermite nodes, one node at a time
        x, w = smearing_nodes(cfg.n_gh)
        want = sum(wk * exact_nll(flow, data.R, data.obs[:, 2] + cfg.h_v * xk, torch.sqrt(cfg.h_v**2 + data.err2),
                                  data.weights) for xk, wk in zip(x, w))
    else:
        rows = data.smeared(g, cfg.n_smear)
        model, logw = flow.sample_projected_weighted(256, g, cfg.base_scale)
        want = smeared_kde_loss(data, model, rows=rows, log_w=logw)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-12)
