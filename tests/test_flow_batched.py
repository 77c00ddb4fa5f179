"""Batched ensemble members: the member axis reproduces separate members; the optimisers stay per member."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import OsipkovMerritt
from dsphnf.errors import FitError
from dsphnf.flows import fit_flow
from dsphnf.flows.batched import BatchedFlow, member_batch
from dsphnf.flows.batched_train import BatchedTrainer
from dsphnf.flows.kde import bandwidths
from dsphnf.flows.member import MemberSettings, MemberStars, _star_data, member_data, new_flow
from dsphnf.flows.objective import flow_loss
from dsphnf.flows.optimise import LBFGS, CachedObjective, relative_change
from dsphnf.flows.optimise_members import MemberLBFGS, MemberObjective, MemberParams
from dsphnf.flows.prior import SmoothnessPrior
from dsphnf.flows.settings import FlowConfig
from dsphnf.flows.standardise import raw_stars, scales_of
from dsphnf.flows.train_config import TrainConfig
from dsphnf.mocks import draw_mock


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _stars(n: int, kinematic: bool = True) -> MemberStars:
    cat = draw_mock("PlumCuspIso", n=n, seed=2).catalog
    raw = raw_stars(cat)
    if not kinematic:
        raw = {**raw, "vz": None, "verr": None}
    return MemberStars(raw, scales_of(raw), kinematic, np.logspace(-1, 0, 4))


def _settings(K: int, inner: str = "cuspy", **train) -> MemberSettings:
    return MemberSettings(OsipkovMerritt(0.4), inner, K, 5, FlowConfig(n_steps=2, velocity="elliptical"),
                          TrainConfig(**train), 0.0, 1.0, torch.float64, "cpu", 1)


def _members(stars: MemberStars, st: MemberSettings):
    """Every member built as train_member builds it, its weights perturbed (a non-trivial flow)."""
    flows, trs, stds, scs = [], [], [], []
    for k in range(st.ensemble):
        tr, _, sc, std = member_data(stars, st, k)
        torch.manual_seed(st.seed * 1009 + k)
        flow = new_flow(stars, st, sc["L"])
        with torch.no_grad():
            for p in flow.parameters():
                p.add_(0.1 * torch.randn_like(p))
        flows.append(flow), trs.append(tr), stds.append(std), scs.append(sc)
    return flows, trs, stds, scs


def _single_loss(flow, stars, st, tr, std):
    """Loss and flat gradient of one member alone, as the single trainer computes them."""
    h = bandwidths(std["obs"][tr], std["w"][tr], 1.0)
    data = _star_data(std, st, tr, h)
    prior = SmoothnessPrior.of(st.train, data.R, data.weights)
    flow.zero_grad()
    loss = flow_loss(flow, data, st.train, None, 0, prior=prior)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in flow.named_parameters()}


def _batched_loss(flows, trs, stds, scs, st):
    b = BatchedFlow(flows)
    mb = member_batch(trs, stds, scs, 1.0, st.train, torch.float64, torch.device("cpu"))
    loss = flow_loss(b, mb.data, st.train, None, 0, prior=mb.prior)
    loss.sum().backward()
    return b, loss.detach()


def _member_grad(b: BatchedFlow, k: int, name: str) -> torch.Tensor:
    if name == "c_raw":
        return b.c_raw.grad[k]
    module, attr = name.rsplit(".", 1)
    g = getattr(b.get_submodule(module), attr).grad
    return g[k].T if attr == "weight" else g[k, 0]


@pytest.mark.parametrize("K, kinematic, nu_mean", [(1, True, "none"), (3, True, "none"), (2, False, "none"),
                                                    (3, True, "zhao")])
def test_batched_members_give_each_members_own_loss_and_gradient(K, kinematic, nu_mean):
    """K = 1: the single flow's loss and gradient; K = 3: three members on their own bootstrap resamples,
    standardised by their own scales; positions only too; with the prior's Zhao mean of ln nu (one fit per
    member, on its resample as rows with duplicates or as multiplicity weights). float64, to 1e-10."""
    stars, st = _stars(150, kinematic), _settings(K, nu_mean=nu_mean)
    flows, trs, stds, scs = _members(stars, st)
    assert K == 1 or len({sc["L"] for sc in scs}) == K  # the members' units differ
    single = [_single_loss(f, stars, st, tr, std) for f, tr, std in zip(flows, trs, stds)]
    b, loss = _batched_loss(flows, trs, stds, scs, st)
    assert loss.shape == (K,)
    for k, (lk, grads) in enumerate(single):
        assert abs(float(loss[k]) - lk) < 1e-10 * abs(lk)
        for name, g in grads.items():
            scale = max(float(g.abs().max()), 1e-12)
            assert float((_member_grad(b, k, name) - g).abs().max()) < 1e-10 * scale, name
    assert len({round(float(x), 6) for x in loss}) == K  # different resamples, different losses


def test_weights_back_out_of_the_batch_are_the_members_weights():
    stars, st = _stars(60), _settings(2)
    flows, *_ = _members(stars, st)
    b = BatchedFlow(flows)
    fresh = new_flow(stars, st, 1.0)
    b.write_member(1, fresh)
    for (n, p), q in zip(flows[1].named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), n


# ---------------------------------------------------------------------------- optimisers
def _quadratics(K: int = 3, P: int = 4):
    """K independent quadratics of very different conditioning, their optima and a stacked parameter."""
    gen = torch.Generator().manual_seed(0)
    cond = torch.tensor([1.0, 30.0, 1000.0][:K], dtype=torch.float64)
    a = torch.logspace(0, 1, P, dtype=torch.float64) * cond.unsqueeze(-1) ** torch.linspace(0, 1, P,
                                                                                           dtype=torch.float64)
    c = torch.randn(K, P, generator=gen, dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(K, P, dtype=torch.float64))
    return a, c, w


def _run(opt, params, obj, K, frozen_at, trace, iters=300):
    for it in range(iters):
        rows = [k for k in range(K) if k not in frozen_at]
        if not rows:
            break
        for k, (value, moved) in opt.step(params, obj, rows).items():
            trace[k].append(value)
            rel = relative_change(trace[k], 3)
            if not moved or (rel is not None and rel < 1e-14):
                frozen_at[k] = (it, params.flat()[k].clone(), obj.evals[k])


def test_member_lbfgs_takes_every_member_to_its_own_optimum_and_freezes_it():
    a, c, w = _quadratics()
    K = 3
    params = MemberParams([w])
    obj = MemberObjective(params, lambda rows: 0.5 * (a[rows] * (w[rows] - c[rows]) ** 2).sum(dim=1))
    opt = MemberLBFGS(K, max_step=0.5)
    f, g, _ = obj(list(range(K)))
    for k in range(K):
        opt.start(k, float(f[k]), g[k], -math.inf)
    frozen_at, trace = {}, [[float(x)] for x in f]
    _run(opt, params, obj, K, frozen_at, trace)
    assert sorted(frozen_at) == [0, 1, 2]
    for k, (it, x, evals) in frozen_at.items():
        assert torch.allclose(x, c[k], atol=1e-6)  # its own optimum
        assert torch.equal(w.detach()[k], x)  # frozen: untouched after it stopped
        assert obj.evals[k] == evals  # and no longer evaluated
    assert len({it for it, _, _ in frozen_at.values()}) > 1  # conditioning decides when each stops
    # each member's iterates are those of the single L-BFGS on its quadratic alone
    for k in range(K):
        v = torch.nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
        one = CachedObjective([v], lambda: 0.5 * (a[k] * (v - c[k]) ** 2).sum())
        single = LBFGS([v], max_step=0.5)
        vals = [float(one())] + [single.step(one)[0] for _ in range(len(trace[k]) - 1)]
        assert np.allclose(vals, trace[k], rtol=1e-12, atol=1e-300)


def _count_host_reads(monkeypatch) -> dict:
    """Count the reads of tensor values into Python (tolist, item, float) from now on."""
    count = {"reads": 0}
    for name in ("tolist", "item", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            count["reads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return count


@pytest.mark.parametrize("K", [2, 8])
def test_member_lbfgs_reads_the_device_a_fixed_number_of_times_per_iteration(K, monkeypatch):
    """One iteration of K members reads values into Python once for the directions, twice per trial step
    (losses and flags) and once for the curvature checks, whatever K: on a GPU each read waits for the
    device (the iteration used to read four scalars per member)."""
    gen = torch.Generator().manual_seed(K)
    a = 1.0 + 100.0 * torch.rand(K, 5, generator=gen, dtype=torch.float64)
    c = torch.randn(K, 5, generator=gen, dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(K, 5, dtype=torch.float64))
    params = MemberParams([w])
    trials = []

    def loss(rows):
        trials.append(len(rows))
        return 0.5 * (a[rows] * (w[rows] - c[rows]) ** 2).sum(dim=1)

    obj = MemberObjective(params, loss)
    opt = MemberLBFGS(K, max_step=0.5)
    f, g, _ = obj(list(range(K)))
    for k in range(K):
        opt.start(k, float(f[k]), g[k], -math.inf)
    trials.clear()
    count = _count_host_reads(monkeypatch)
    for _ in range(5):
        opt.step(params, obj, list(range(K)))
    monkeypatch.undo()
    assert count["reads"] <= 2 * 5 + 2 * len(trials)
    assert all(it == 5 for it in opt.iterations)  # every member moved at every iteration


def test_a_nan_in_one_member_leaves_the_others_untouched():
    K = 3
    runs = []
    for poison in (False, True):
        a, c, w = _quadratics()
        params = MemberParams([w])

        def loss(rows, w=w, a=a, c=c, poison=poison):
            f = 0.5 * (a[rows] * (w[rows] - c[rows]) ** 2).sum(dim=1)
            if poison and 1 in rows:  # member 1's objective breaks away from the start
                bad = torch.full_like(f, math.nan)
                f = torch.where((torch.tensor(rows) == 1) & (w[rows].detach().abs().sum(1) > 0), bad, f)
            return f

        obj = MemberObjective(params, loss)
        opt = MemberLBFGS(K, max_step=0.5)
        f, g, _ = obj(list(range(K)))
        for k in range(K):
            opt.start(k, float(f[k]), g[k], -math.inf)
        frozen_at, trace = {}, [[float(x)] for x in f]
        _run(opt, params, obj, K, frozen_at, trace, iters=40)
        runs.append((trace, w.detach().clone(), opt.rejected))
    (clean, w0, _), (dirty, w1, rejected) = runs
    for k in (0, 2):
        assert clean[k] == dirty[k] and torch.equal(w0[k], w1[k])
    assert rejected[1] == 30 and rejected[0] == rejected[2] == 0
    assert torch.equal(w1[1], torch.zeros_like(w1[1]))  # stayed at its last finite point


def test_a_nan_in_one_member_rolls_back_that_member_alone(monkeypatch):
    """Trainer level: a NaN loss of member 1 at its third step rolls member 1 back (logged, lr halved);
    member 0 trains exactly as without it."""
    stars, st = _stars(80), _settings(2, steps=8, adam_steps=5)
    results = []
    for poison in (False, True):
        flows, trs, stds, scs = _members(stars, st)
        mb = member_batch(trs, stds, scs, 1.0, st.train, torch.float64, torch.device("cpu"))
        tr = BatchedTrainer(BatchedFlow(flows), mb, st.train)
        calls = {"n": 0}
        real = tr._loss

        def loss(rows, real=real, calls=calls, poison=poison):
            out = real(rows)
            calls["n"] += 1
            if poison and calls["n"] == 3 and 1 in rows:
                out = torch.where(torch.tensor(rows) == 1, torch.full_like(out, math.nan), out)
            return out

        tr.objective.compute = loss
        tr.run()
        results.append(tr)
    clean, dirty = results
    assert dirty.history[1]["events"] and dirty.history[1]["events"][0]["why"] == "non-finite loss"
    assert dirty.lr_scale == [1.0, 0.5] and not dirty.history[0]["events"]
    assert np.allclose(clean.history[0]["loss"], dirty.history[0]["loss"], rtol=1e-12)
    assert torch.allclose(clean.params.flat()[0], dirty.params.flat()[0], rtol=1e-9, atol=1e-12)
    assert dirty.step == [8, 8] and all(math.isfinite(x) for x in dirty.history[1]["loss"])


# ---------------------------------------------------------------------------- fit_flow
@pytest.fixture(scope="module")
def cat():
    return draw_mock("PlumCuspIso", n=60, seed=1).catalog


def test_fit_trains_an_ensemble_as_one_batch_with_the_members_accounted(cat, tmp_path):
    ck = tmp_path / "ck"
    res = fit_flow(cat, ensemble=3, steps=4, seed=2, progress=False, checkpoint_dir=ck)
    grid = res.summary["diagnostics"]["grid"]
    assert grid["batched"] and grid["threads"] in (1, 2) and (grid["n_tasks"], grid["n_computed"]) == (3, 3)
    members = res.summary["diagnostics"]["members"]
    assert [m["member"] for m in members] == [0, 1, 2]
    assert all(m["convergence"]["batched"] and m["steps"] == 4 for m in members)
    one_by_one = fit_flow(cat, ensemble=3, steps=4, seed=2, progress=False, batched=False)
    assert not one_by_one.summary["diagnostics"]["grid"]["batched"]
    for key in ("nu", "rho", "sigma_r"):
        assert np.allclose(res.profile[key], one_by_one.profile[key], rtol=1e-8, equal_nan=True), key
    again = fit_flow(cat, ensemble=3, steps=4, seed=2, progress=False, checkpoint_dir=ck, resume=True)
    assert (again.summary["diagnostics"]["grid"]["n_resumed"], again.summary["diagnostics"]["grid"]["n_computed"]) \
        == (3, 0)
    assert np.array_equal(again.profile["rho"], res.profile["rho"], equal_nan=True)


def test_cuda_graphs_are_ignored_on_the_cpu(cat):
    """``TrainConfig(cuda_graphs=True)`` changes nothing on the CPU (tests/test_device.py checks the GPU)."""
    from dsphnf.flows import TrainConfig

    kw = dict(ensemble=2, steps=3, seed=2, progress=False, batched=True)
    plain = fit_flow(cat, train_config=TrainConfig(steps=3, cuda_graphs=False), **kw)
    graphs = fit_flow(cat, train_config=TrainConfig(steps=3, cuda_graphs=True), **kw)
    assert "cuda_graphs" not in graphs.summary["diagnostics"]["grid"]
    assert np.array_equal(plain.profile["rho"], graphs.profile["rho"], equal_nan=True)


@pytest.mark.parametrize("device, graphs, why", [("cpu", True, "a single flow"), ("cuda", False, "a single flow"),
                                                  ("cuda", True, None)])
def test_a_single_flow_trains_as_a_batch_of_one_where_graphs_replay(device, graphs, why):
    """On a CUDA device with graphs a single flow takes the batched trainer (the only one that replays graphs)."""
    from dsphnf.anisotropy import anisotropy_from
    from dsphnf.flows import FitOptions
    from dsphnf.flows.fit_setup import FitSetup, batched_reason, executor_setting

    setup = FitSetup(anisotropy_from("isotropic"), "free", 1, 0, torch.device(device), FitOptions(),
                     FlowConfig(velocity="elliptical"), TrainConfig(cuda_graphs=graphs), None, False, False,
                     executor_setting("local", None, None, "cpu"))
    assert batched_reason(setup, kinematic=True) == why


def test_settings_the_batch_cannot_train_fall_back_or_are_refused(cat):
    with pytest.raises(FitError, match="batched=True is not possible here: held-out"):
        from dsphnf.flows import FitOptions

        fit_flow(cat, ensemble=2, steps=2, progress=False, batched=True, options=FitOptions(val_fraction=0.2))
    res = fit_flow(cat, "free", ensemble=2, steps=2, progress=False)
    grid = res.summary["diagnostics"]["grid"]
    assert not grid["batched"] and "learned anisotropy" in grid["not_batched"]


@pytest.mark.parametrize("nu_mean", ["none", "zhao"])
def test_a_subset_of_members_trains_as_in_the_full_batch(nu_mean):
    """Resuming trains only the missing members: member 2 alone is member 2 of the whole batch
    (the L-BFGS phase evaluates subsets of members: the prior's per-member Zhao means follow)."""
    from dsphnf.flows.batched_train import train_members_batched

    stars, st = _stars(60), _settings(3, steps=4, adam_steps=2, nu_mean=nu_mean)
    full, rec = train_members_batched(stars, st, threads=1)
    (alone,), _ = train_members_batched(stars, st, members=[2], threads=1)
    assert rec["batched"] and alone.member == 2 and alone.scales == full[2].scales
    assert np.allclose(alone.profile["rho"], full[2].profile["rho"], rtol=1e-8, equal_nan=True)
    assert not np.allclose(full[1].profile["rho"], full[2].profile["rho"], rtol=1e-3)


def test_each_members_fitted_mean_is_in_its_diagnostics_batched_or_not():
    """With TrainConfig(nu_mean="zhao") every member records the Zhao shape its prior was centred on
    (r_s in kpc), the same whether the members train as one batch or one by one; without it, None."""
    from dsphnf.flows.batched_train import train_members_batched
    from dsphnf.flows.member import train_member

    stars, st = _stars(60), _settings(2, steps=2, adam_steps=2, nu_mean="zhao")
    batched, _ = train_members_batched(stars, st, threads=1)
    for m in batched:
        alone = train_member(m.member, stars=stars, settings=st)
        got, want = m.info["nu_mean"], alone.info["nu_mean"]
        assert set(got) == {"gamma", "beta", "alpha", "r_s"} and 3.2 < got["beta"] <= 12.0
        assert got == pytest.approx(want, rel=1e-9)
    assert batched[0].info["nu_mean"] != batched[1].info["nu_mean"]  # each member's own resample
    plain, _ = train_members_batched(stars, _settings(2, steps=2, adam_steps=2), threads=1)
    assert plain[0].info["nu_mean"] is None
