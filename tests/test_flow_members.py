"""Ensemble members as a grid of tasks: Ray gives the local result bit for bit, an interrupted fit resumes.

The Ray tests share one local Ray instance with 2 workers for this module
(start-up takes seconds) and are skipped only when Ray is not installed
(``pip install "dsphnf[ray]"``). The local fits here train their members as
grid tasks (``batched=False``), the path whose results are bit for bit those
of Ray; batched members (equal to rounding) are tested in test_flow_batched.py.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from dsphnf.anisotropy import CallableBeta
from dsphnf.cli import main
from dsphnf.executor import ExecutorError, TaskError, executor_from
from dsphnf.flows import fit_flow
from dsphnf.flows import member as member_mod
from dsphnf.mocks import draw_mock
from dsphnf.taskstore import StoreError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN_MEMBER = member_mod.train_member


@pytest.fixture(scope="module")
def cat():
    """60 stars with velocity errors."""
    return draw_mock("PlumCuspIso", n=60, seed=4, verr=2.0).catalog


@pytest.fixture(scope="module")
def local(cat):
    """Two flows of 3 steps, one after the other in this process."""
    return fit_flow(cat, ensemble=2, steps=3, seed=7, distance=76.0, progress=False, batched=False)


def _same(a, b) -> None:
    """Two fits agree bit for bit: profiles, every member's profile and weights, the J band."""
    assert list(a.profile) == list(b.profile)
    for key in a.profile:
        assert a.profile[key].tobytes() == b.profile[key].tobytes(), key
    for ma, mb in zip(a.artefacts.members, b.artefacts.members, strict=True):
        assert all(ma[k].tobytes() == mb[k].tobytes() for k in ma)
    for fa, fb in zip(a.artefacts.flows, b.artefacts.flows, strict=True):
        sa, sb = fa.state_dict(), fb.state_dict()
        assert all(sa[k].numpy().tobytes() == sb[k].numpy().tobytes() for k in sa)
    assert a.summary.get("jfactor") == b.summary.get("jfactor")
    assert a.artefacts.history == b.artefacts.history


# ---------------------------------------------------------------- local: record, resume


def test_local_fit_records_its_grid(local):
    s = local.summary
    assert s["settings"]["executor"] == "local"
    grid = s["diagnostics"]["grid"]
    assert grid["executor"] == "local" and grid["workers_used"] == 1 and grid["store"] is None
    assert (grid["n_tasks"], grid["n_resumed"], grid["n_computed"]) == (2, 0, 2)
    assert s["timings_s"]["members_s"] == grid["wall_s"] > 0


def test_a_member_alone_is_the_member_of_the_fit(cat, local):
    """Member k depends on the seed and k only, so it can run anywhere, in any order."""
    one = member_mod.train_member(1, **_task_arguments(cat, local))
    assert one.member == 1 and one.history == local.artefacts.history[1]
    assert all(one.profile[k].tobytes() == local.artefacts.members[1][k].tobytes() for k in one.profile)


def test_every_member_standardises_by_its_own_resample(cat, local):
    """Bootstrap members compute L, V, v_sys from their own resample (they differ), the identity
    resample of a single flow gives the catalogue's scales, and every member reads out in its own units."""
    from dsphnf.flows.standardise import standardise

    common = _task_arguments(cat, local)
    stars, settings = common["stars"], common["settings"]
    _, full = standardise(cat)
    assert stars.scales == full
    each = [member_mod.member_data(stars, settings, k)[2] for k in range(2)]
    for key in ("L", "V", "v_sys"):
        assert each[0][key] != each[1][key] and each[0][key] != full[key], key
    assert [m.get("scales") for m in local.summary["diagnostics"]["members"]] == each
    assert local.artefacts.member_scales == each and local.artefacts.scales == full
    single = type(settings)(**{**settings.__dict__, "ensemble": 1})
    tr, va, scales, std = member_mod.member_data(stars, single, 0)
    assert scales == full and np.array_equal(np.sort(tr), np.arange(cat.n))
    tr, _, scales, std = member_mod.member_data(stars, settings, 1)
    R = np.hypot(std["obs"][tr, 0], std["obs"][tr, 1])
    assert np.median(R) == pytest.approx(1.0, abs=0.05)  # positions in the member's own L
    assert np.average(std["obs"][tr, 2]) == pytest.approx(0.0, abs=1e-12)  # its own v_sys removed
    assert np.std(std["obs"][tr, 2]) == pytest.approx(1.0, rel=1e-12)  # its own V


def _task_arguments(cat, res) -> dict:
    """The common task arguments fit_flow built for ``res`` (rebuilt through its private helpers)."""
    from dsphnf.flows import member_grid as grid_mod

    seen = {}
    real = grid_mod.run_grid

    def spy(func, tasks, *, common, **kw):
        seen.update(common)
        return real(func, tasks, common=common, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grid_mod, "run_grid", spy)
        fit_flow(cat, ensemble=2, steps=3, seed=res.summary["settings"]["seed"], progress=False, batched=False)
    return seen


def _counting(monkeypatch, calls: list[int], fail_at: int | None = None) -> None:
    """Count the members trained (by k); the member ``fail_at`` is interrupted before it trains."""
    def counted(k, **kw):
        calls.append(k)
        if k == fail_at:
            raise RuntimeError("worker interrupted")
        return TRAIN_MEMBER(k, **kw)

    monkeypatch.setattr(member_mod, "train_member", counted)


def test_an_interrupted_ensemble_resumes_with_its_finished_members(cat, tmp_path, monkeypatch):
    ck = tmp_path / "ck"
    calls: list[int] = []
    _counting(monkeypatch, calls, fail_at=2)
    with pytest.raises(TaskError, match=r"^task 'member_2' failed: RuntimeError: worker interrupted; 2 finished"):
        fit_flow(cat, ensemble=3, steps=3, seed=7, progress=False, checkpoint_dir=ck, batched=False)
    # the all-star flow (the default centre) trains first, as task 0 of its own grid, then the members
    assert calls == [0, 0, 1, 2] and sorted(p.name for p in (ck / "members").iterdir()) == ["member_0.pkl",
                                                                                             "member_1.pkl"]
    calls.clear()
    _counting(monkeypatch, calls)
    # resumed with another progress setting: runtime settings are not part of a member's identity
    res = fit_flow(cat, ensemble=3, steps=3, seed=7, progress=True, checkpoint_dir=ck, resume=True,
                   batched=False)
    assert calls == [2]  # only the unfinished member trains again; the all-star flow is kept too
    grid = res.summary["diagnostics"]["grid"]
    assert (grid["n_resumed"], grid["n_computed"], grid["store"]) == (2, 1, str(ck / "members"))
    assert grid["anchor"]["resumed"] == 1
    _same(res, fit_flow(cat, ensemble=3, steps=3, seed=7, progress=False, batched=False))  # as if never interrupted
    # without resume the stored members are cleared and every member trains again
    calls.clear()
    fit_flow(cat, ensemble=3, steps=3, seed=7, progress=False, checkpoint_dir=ck, batched=False)
    assert calls == [0, 1, 2]


def test_a_member_interrupted_mid_training_continues_from_its_checkpoint(cat, tmp_path, monkeypatch):
    """The local executor keeps every member's training state (member_k.pt); resume continues it."""
    from dsphnf.flows import TrainConfig, Trainer

    ck, conf = tmp_path / "ck", TrainConfig(steps=4, checkpoint_every=2)
    real_save = Trainer.save_checkpoint

    def save_then_stop(self):
        real_save(self)
        if self.step == 2:
            raise RuntimeError("power cut")

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_stop)
    with pytest.raises(TaskError, match="power cut"):
        fit_flow(cat, seed=3, progress=False, checkpoint_dir=ck, train_config=conf)
    monkeypatch.setattr(Trainer, "save_checkpoint", real_save)
    steps_run: list[int] = []
    monkeypatch.setattr(Trainer, "compute_loss", _counting_loss(Trainer.compute_loss, steps_run))
    res = fit_flow(cat, seed=3, progress=False, checkpoint_dir=ck, resume=True, train_config=conf)
    assert steps_run == [2, 3]  # steps 3 and 4 only
    _same(res, fit_flow(cat, seed=3, progress=False, train_config=conf))


def _counting_loss(real, steps: list[int]):
    def loss(self):
        steps.append(self.step)
        return real(self)
    return loss


def test_resuming_with_other_settings_is_refused(cat, tmp_path):
    ck = tmp_path / "ck"
    fit_flow(cat, ensemble=2, steps=2, seed=1, progress=False, checkpoint_dir=ck)
    with pytest.raises(StoreError, match="holds the result of a different task"):
        fit_flow(cat, ensemble=2, steps=2, seed=2, progress=False, checkpoint_dir=ck, resume=True)


def test_a_lambda_anisotropy_trains_without_a_member_store_and_says_so(cat, tmp_path):
    res = fit_flow(cat, CallableBeta(lambda r: 0.1 * r / (1 + r)), steps=2, progress=False, checkpoint_dir=tmp_path)
    grid = res.summary["diagnostics"]["grid"]
    assert grid["store"] is None and "cannot be pickled" in grid["store_skipped"]
    assert (tmp_path / "member_0.pt").exists()  # the per-step checkpoint is still written


def test_cuda_on_ray_is_refused_in_one_line(cat):
    pytest.importorskip("ray", reason="Ray not installed")
    with pytest.raises(ExecutorError, match=r"^device='cuda' with executor='ray' is not supported yet"):
        fit_flow(cat, steps=2, device="cuda", executor="ray")
    with pytest.raises(ExecutorError, match=r"^workers needs executor='ray'"):
        fit_flow(cat, steps=2, workers=2)


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def stars_csv(cat, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stars") / "stars.csv"
    np.savetxt(path, np.column_stack([cat.x, cat.y, cat.vz]), delimiter=",", header="x,y,vz", comments="")
    return path


@pytest.mark.parametrize("extra, message", [
    (["--executor", "pool"], "unknown --executor 'pool': use local or ray"),
    (["--ray-address", "auto"], "--ray-address needs --executor ray"),
    (["--workers", "2"], "--workers needs --executor ray (local runs one task at a time)"),
    (["--executor", "ray", "--workers", "0"], "--workers must be an integer of at least 1, got 0"),
    (["--executor", "ray", "--device", "cuda"], "--device cuda with --executor ray is not supported yet"),
    (["--members-per-batch", "0"], "--members-per-batch must be at least 1, got 0"),
])
def test_bad_executor_options_are_one_line_errors(stars_csv, tmp_path, capsys, extra, message):
    if "ray" in extra:
        pytest.importorskip("ray", reason="Ray not installed")
    out = tmp_path / "out"
    rc = main(["fit", str(stars_csv), "-o", str(out), "--steps", "2", "--no-progress"] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith(f"dsphnf: error: {message}")
    assert list(tmp_path.iterdir()) == []  # neither OUT nor OUT.checkpoints


# ---------------------------------------------------------------- Ray (one local instance with 2 workers)


@pytest.fixture(scope="module")
def ray2():
    """A local Ray instance with 2 CPUs for this module; fit_flow uses it and leaves it running."""
    ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'dsphnf[ray]' to run the Ray tests")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield executor_from("ray", workers=2)
    ray.shutdown()


def test_ray_gives_the_local_fit_bit_for_bit(ray2, cat, local):
    """Members one by one: Ray's tasks give the local fit's bytes."""
    res = fit_flow(cat, ensemble=2, steps=3, seed=7, distance=76.0, progress=False, executor=ray2, batched=False)
    _same(res, local)
    assert res.summary["settings"]["executor"] == "ray"
    grid = res.summary["diagnostics"]["grid"]
    assert (grid["executor"], grid["workers"], grid["workers_used"], grid["n_computed"]) == ("ray", 2, 2, 2)


def test_ray_trains_one_batch_per_worker_and_gives_the_same_batches_local_result(ray2, cat):
    """Batched members (the default): on 2 workers 4 members go as 2 batches of 2, side by side, and give
    bit for bit what the local executor gives for the same batches (one after the other)."""
    from dsphnf.flows import FitOptions

    kw = dict(ensemble=4, steps=3, seed=7, progress=False)
    remote = fit_flow(cat, executor=ray2, **kw)
    grid = remote.summary["diagnostics"]["grid"]
    assert grid["batched"] and grid["batches"] == [[0, 1], [2, 3]] and grid["workers_used"] == 2
    assert grid["threads"] == 1 and len(grid["train_wall_s"]) == 2
    here = fit_flow(cat, options=FitOptions(members_per_batch=2, threads=1), **kw)
    assert here.summary["diagnostics"]["grid"]["batches"] == [[0, 1], [2, 3]]
    _same(remote, here)


def test_warm_started_members_on_ray_give_the_same_batches_local_result(ray2, cat):
    """A warm start (the all-star flow as one Ray task, then the members' batches) gives the local fit's bytes."""
    from dsphnf.flows import FitOptions

    kw = dict(ensemble=4, steps=6, seed=7, progress=False)
    remote = fit_flow(cat, executor=ray2, options=FitOptions(warm_start=2), **kw)
    grid = remote.summary["diagnostics"]["grid"]
    assert grid["batches"] == [[0, 1], [2, 3]] and grid["warm_start"]["steps"] == 2
    here = fit_flow(cat, options=FitOptions(members_per_batch=2, threads=1, warm_start=2), **kw)
    _same(remote, here)


def test_batches_on_ray_are_kept_and_a_rerun_resumes_from_them(ray2, cat, tmp_path):
    """With a checkpoint folder every finished batch's members are kept; the same call with resume trains none."""
    kw = dict(ensemble=3, steps=2, seed=4, progress=False, executor=ray2, checkpoint_dir=tmp_path / "ck")
    first = fit_flow(cat, **kw)
    assert first.summary["diagnostics"]["grid"]["batches"] == [[0, 1], [2]]
    again = fit_flow(cat, resume=True, **kw)
    grid = again.summary["diagnostics"]["grid"]
    assert (grid["n_resumed"], grid["n_computed"], grid["batches"]) == (3, 0, [])
    _same(again, first)


def test_cli_on_ray_writes_the_grid_into_the_summary(ray2, stars_csv, tmp_path, capsys):
    out = tmp_path / "fit"
    rc = main(["fit", str(stars_csv), "-o", str(out), "--steps", "2", "--ensemble", "2", "--no-progress",
               "--no-plots", "--executor", "ray", "--workers", "2"])
    text = capsys.readouterr()
    assert rc == 0, text.err
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["executor"] == "ray" and s["diagnostics"]["grid"]["workers_used"] == 2
    assert "on Ray with 2 worker(s)" in text.out
    assert not Path(str(out) + ".checkpoints").exists()
