"""Training to the optimum of a deterministic objective: Gauss-Hermite smearing, L-BFGS, stop rule, resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import parse_anisotropy
from dsphnf.flows import SphericalFlow, TrainConfig, Trainer
from dsphnf.flows.kde import bandwidths
from dsphnf.flows.objective import flow_loss, is_deterministic, smearing_nodes
from dsphnf.flows.prior import SmoothnessPrior
from dsphnf.flows.stars import StarData

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stars(n=200, seed=0, d=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.9][:d], dtype=torch.float64)
    return StarData(x, bandwidths(x.numpy()))


def _bent_flow(seed=0, **kw):
    """A flow away from its start (random last layers), in float64."""
    torch.manual_seed(seed)
    flow = SphericalFlow(width=16, n_steps=2, **kw).double()
    with torch.no_grad():
        for field in (flow.pos_field, flow.vel_field):
            if field is not None:
                field.mlp.net[-1].weight.normal_(0.0, 0.2)
    return flow


def test_the_exact_objective_is_deterministic_bit_for_bit():
    flow, data = _bent_flow(), _stars()
    prior = SmoothnessPrior.for_stars(data.R, data.weights, 1.0)
    cfg = TrainConfig()
    assert is_deterministic(flow, data, cfg)
    values, grads = [], []
    for seed in (1, 2):  # the generator must not matter
        flow.zero_grad()
        loss = flow_loss(flow, data, cfg, torch.Generator().manual_seed(seed), 256, prior=prior)
        loss.backward()
        values.append(loss.detach())
        grads.append(torch.cat([p.grad.reshape(-1) for p in flow.parameters()]))
    assert torch.equal(values[0], values[1]) and torch.equal(grads[0], grads[1])
    # the former loss (one fresh draw per star, n_gh = 0) is not: the test can fail
    old = TrainConfig(n_gh=0)
    a, b = (float(flow_loss(flow, data, old, torch.Generator().manual_seed(s), 256).detach()) for s in (1, 2))
    assert abs(a - b) > 1e-4
    # KDE terms and a batch of stars draw random numbers: not deterministic
    assert not is_deterministic(flow, data, TrainConfig(loss="kde"))
    assert not is_deterministic(flow, data, TrainConfig(batch=50))
    # a learned beta goes through the same exact loss: deterministic too
    assert is_deterministic(_bent_flow(anisotropy=parse_anisotropy("free")), data, cfg)


def test_gauss_hermite_smearing_converges_to_the_expectation():
    """E_eps[-ln p(v + h eps)]: 3 nodes agree with 40 to 1e-4 nats per star; no smearing is far off."""
    flow, data = _bent_flow(1), _stars(seed=1)
    loss = {n: float(flow_loss(flow, data, TrainConfig(n_gh=n), None, 0).detach()) for n in (1, 3, 40)}
    assert abs(loss[3] - loss[40]) < 1e-4
    assert abs(loss[1] - loss[40]) > 10 * abs(loss[3] - loss[40])  # one node at eps = 0: the unsmeared data
    x, w = smearing_nodes(3)
    assert np.allclose([w.sum(), (w * x).sum(), (w * x**2).sum(), (w * x**4).sum()], [1, 0, 1, 3])


def _plummer_sky(n=300, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.uniform(0, 1, n)
    r = 1.0 / np.sqrt(m ** (-2 / 3) - 1)
    d = rng.normal(size=(n, 3))
    xy = (d / np.linalg.norm(d, axis=1, keepdims=True) * r[:, None])[:, :2]
    return StarData(torch.as_tensor(xy / np.median(np.hypot(*xy.T))), bandwidths(xy))


def test_lbfgs_stop_rule_fires_and_is_recorded():
    torch.manual_seed(0)
    flow = SphericalFlow(kinematic=False, width=16, n_steps=2).double()
    data = _plummer_sky()
    cfg = TrainConfig(steps=300, adam_steps=20, tol=1e-6, window=5)
    tr = Trainer(flow, data, None, cfg, seed=0, progress=False)
    tr.run()
    c = tr.convergence()
    assert c["optimiser"] == "adam+lbfgs" and c["stop_reason"] == "converged", c
    assert c["adam_steps"] == 20 and 5 <= c["lbfgs_steps"] and tr.step < cfg.steps
    assert 0 <= c["relative_change"] < 1e-6 and c["objective_change"] >= 0
    assert c["objective_evals"] >= c["lbfgs_steps"]
    # the flow returned is the last iterate, and its objective is the one recorded (no averaging)
    assert float(flow_loss(flow, data, cfg, None, 0, prior=tr._prior).detach()) == c["objective"]
    assert tr.trace[-1] < tr.trace[0] and all(b <= a for a, b in zip(tr.trace, tr.trace[1:]))  # monotone descent
    # near the optimum: the gradient is small against the one where L-BFGS started
    assert c["grad_norm"] < 0.1 and c["grad_norm"] == pytest.approx(tr.grad_norm)


def _trainer(path, steps=24, **cfg):
    torch.manual_seed(0)
    flow = SphericalFlow(n_steps=2, width=16).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.9], dtype=torch.float64)
    h = bandwidths(x.numpy())
    conf = TrainConfig(steps=steps, adam_steps=8, tol=0.0, val_every=8, checkpoint_every=8, **cfg)
    return Trainer(flow, StarData(x[:160], h), StarData(x[160:], h), conf, seed=3, checkpoint=path, progress=False)


def test_resume_inside_the_lbfgs_phase_reproduces_the_uninterrupted_run(tmp_path):
    full = _trainer(tmp_path / "full.pt")
    full.run()
    assert full.stop_reason == "max_steps" and full.convergence()["lbfgs_steps"] == 16

    class Stop(Exception):
        pass

    def interrupt(tr):
        if tr.step == 19:
            raise Stop

    first = _trainer(tmp_path / "cut.pt")
    with pytest.raises(Stop):
        first.run(callback=interrupt)
    ck = torch.load(tmp_path / "cut.pt", weights_only=False)
    assert ck["step"] == 16 and ck["lbfgs"] is not None
    second = _trainer(tmp_path / "cut.pt")
    second.run(resume=True)
    for k, v in full.flow.state_dict().items():
        assert torch.equal(v, second.flow.state_dict()[k]), k
    assert full.history["loss"] == second.history["loss"] and full.trace == second.trace
    assert full.history["val_loss"] == second.history["val_loss"]


@pytest.mark.parametrize("where", ["trial", "iterate"])
def test_nan_in_the_lbfgs_phase(monkeypatch, tmp_path, where):
    """A non-finite trial point is rejected by the line search; a non-finite iterate rolls back."""
    orig, seen = Trainer.compute_loss, []
    when = 19 if where == "trial" else 8  # step 8: the objective where L-BFGS starts (after 8 Adam steps)

    def patched(self):
        loss = orig(self)
        if self.step == when and not seen:
            seen.append(1)
            return loss * float("nan")
        return loss

    monkeypatch.setattr(Trainer, "compute_loss", patched)
    tr = _trainer(tmp_path / "nan.pt")
    tr.run()
    ev, c = tr.history["events"], tr.convergence()
    if where == "trial":
        assert ev == [] and c["rejected_trials"] == 1 and tr.lr_scale == 1.0
    else:
        assert len(ev) == 1 and ev[0]["step"] == 8 and ev[0]["why"] == "non-finite loss"
        assert tr.lr_scale == 0.5 and tr.lbfgs.lr == 0.5 and c["rejected_trials"] == 0
    assert tr.step == 24 and c["lbfgs_steps"] == 16 and all(torch.isfinite(p).all() for p in tr.flow.parameters())


def test_lbfgs_rejects_a_drop_below_its_floor():
    """A trial far below where L-BFGS started is a numerical breakdown: rejected, counted, never accepted."""
    from dsphnf.flows.optimise import LBFGS, CachedObjective

    w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    cliff = lambda: (w - 1.0).pow(2).sum() - 1e6 * torch.relu(w - 1.9).sum()  # noqa: E731  (a "breakdown" beyond 1.9)
    f = CachedObjective([w], cliff)
    w.data.fill_(0.0)
    opt = LBFGS([w], max_step=5.0)
    opt.state["floor"] = float(f()) - 1.5  # 1 - 1.5: the true minimum (0 at w = 1) lies above it
    for _ in range(20):
        opt.step(f)
    assert float(w.detach()) == pytest.approx(1.0, abs=1e-6) and opt.state["rejected"] >= 1


def test_minibatched_training_reports_the_objective_on_every_star():
    """With batch < n the trainer's full_objective is the penalised loss of all training stars at the
    returned flow (the same number as flow_loss without batches); without batches there is none."""
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(500, 3, generator=g, dtype=torch.float64)
    data = StarData(obs, [1.0, 1.0, 1.0], torch.ones(500, dtype=torch.float64))
    torch.manual_seed(0)
    tr = Trainer(SphericalFlow(kinematic=True).double(), data, None, TrainConfig(steps=3, batch=100))
    tr.run()
    c = tr.convergence()
    with torch.no_grad():
        full = float(flow_loss(tr.flow, data, TrainConfig(steps=3), None, 0, prior=tr._prior))
    assert c["optimiser"] == "adam" and c["full_objective"] == full
    assert abs(full - tr.history["loss"][-1]) > 1e-6  # a batch's loss is not the full one
    whole = Trainer(SphericalFlow(kinematic=True).double(), data, None, TrainConfig(steps=2))
    whole.run()
    assert whole.convergence()["full_objective"] is None
