"""Grids of tasks locally and on Ray: same results, resume from disk, retried dead workers, one bar.

The Ray tests share one local Ray instance with 2 workers (start-up takes
seconds) and are skipped only when Ray is not installed (``pip install
"dsphnf[ray]"``).
"""
from __future__ import annotations

import argparse
import doctest
import os
import re
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from dsphnf import executor as ex
from dsphnf import taskstore
from dsphnf.errors import DsphnfError
from dsphnf.executor import ExecutorError, ExecutorSpec, TaskError, executor_from, run_grid
from dsphnf.taskstore import StoreError

# ---------------------------------------------------------------- task functions (run in Ray workers too)


def seeded_fit(seed: int, steps: int) -> dict:
    """A tiny seeded torch optimisation (float64, Adam): its numbers depend on every rounding."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    y = torch.sin(x).sum(1, keepdim=True)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    noise = np.random.default_rng(seed).normal(size=5)
    return {"losses": np.array(losses), "params": torch.cat([p.detach().flatten() for p in net.parameters()]).numpy(),
            "noise": noise, "pid": os.getpid(), "threads": torch.get_num_threads()}


def counted(key: str, value: float, marks: str) -> float:
    """Leave a marker file per call; raise while a file ``<key>.fail`` exists."""
    Path(marks, f"{key}.{uuid.uuid4().hex}").touch()
    if Path(marks, f"{key}.fail").exists():
        raise ValueError(f"bad value for {key}\nsecond line")
    return 2.0 * value


def dies_once(key: str, marks: str) -> str:
    """Kill the worker of task b on its first attempt (marker file) or, while ``b.always`` exists, on every one."""
    first = not Path(marks, f"{key}.started").exists()
    Path(marks, f"{key}.{uuid.uuid4().hex}").touch()
    if key == "b" and (first or Path(marks, "b.always").exists()):
        Path(marks, f"{key}.started").touch()
        os._exit(1)
    return key.upper()


def calls(marks: Path, key: str) -> int:
    return len([p for p in marks.glob(f"{key}.*") if p.suffix not in (".started", ".always", ".fail")])


def counted_tasks(marks: Path, keys: str = "abcd") -> dict:
    return {k: {"key": k, "value": float(i), "marks": str(marks)} for i, k in enumerate(keys)}


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("args, message", [
    (("pool",), "unknown executor 'pool': use local or ray"),
    (("local", "auto"), "ray_address needs executor='ray'"),
    (("ray", None, 0), "workers must be an integer of at least 1, got 0"),
    (("local", None, 2), "workers needs executor='ray' (local runs one task at a time)"),
    ((ExecutorSpec(), "auto"), "give ray_address and workers in the ExecutorSpec, not beside it"),
])
def test_bad_settings_are_one_line_errors(args, message) -> None:
    with pytest.raises(ExecutorError) as err:
        executor_from(*args)
    assert str(err.value) == message
    assert isinstance(err.value, DsphnfError)


def test_cli_flags_are_parsed_once_and_named_in_errors() -> None:
    parser = argparse.ArgumentParser()
    ex.add_executor_arguments(parser, "members")
    assert ex.executor_from_args(parser.parse_args([])) == ExecutorSpec("local")
    with pytest.raises(ExecutorError, match=r"^--ray-address needs --executor ray$"):
        ex.executor_from_args(parser.parse_args(["--ray-address", "auto"]))
    with pytest.raises(ExecutorError, match=r"^unknown --executor 'dask': use local or ray$"):
        ex.executor_from_args(parser.parse_args(["--executor", "dask"]))


def test_ray_without_the_extra_names_the_install_command(monkeypatch) -> None:
    real = ex.importlib.util.find_spec
    monkeypatch.setattr(ex.importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ExecutorError) as err:
        executor_from("ray", cli=True)
    assert str(err.value) == "--executor ray needs the optional extra: pip install 'dsphnf[ray]'"


def test_bad_keys_and_clashing_arguments_are_refused(tmp_path) -> None:
    with pytest.raises(StoreError, match="bad task key '../x'"):
        run_grid(counted, {"../x": {"key": "x", "value": 1.0}}, common={"marks": str(tmp_path)}, progress=False)
    with pytest.raises(ExecutorError, match=r"task 'a': argument\(s\) \['marks'\] given both per task and in common"):
        run_grid(counted, counted_tasks(tmp_path, "a"), common={"marks": str(tmp_path)}, progress=False)


def test_docstring_examples() -> None:
    for module in (ex, taskstore):
        assert doctest.testmod(module).failed == 0


# ---------------------------------------------------------------- local


def test_local_runs_every_task_in_order_in_this_process(tmp_path) -> None:
    run = run_grid(seeded_fit, {f"s{s}": {"seed": s, "steps": 3} for s in (2, 0, 1)}, progress=False)
    assert list(run.results) == ["s2", "s0", "s1"] and run.computed == ("s2", "s0", "s1")
    assert {r["pid"] for r in run.results.values()} == {os.getpid()}
    assert {r["threads"] for r in run.results.values()} == {ex.TASK_THREADS}
    assert not np.array_equal(run.results["s0"]["params"], run.results["s1"]["params"])  # seeds matter
    again = run_grid(seeded_fit, {"s0": {"seed": 0, "steps": 3}}, progress=False)
    assert np.array_equal(again.results["s0"]["params"], run.results["s0"]["params"])
    assert run.workers == 1 and run.summary()["n_computed"] == 3


def test_failed_task_is_reported_by_key_and_the_same_call_resumes(tmp_path) -> None:
    marks, store = tmp_path / "marks", tmp_path / "store"
    marks.mkdir()
    (marks / "c.fail").touch()
    tasks = counted_tasks(marks)
    with pytest.raises(TaskError) as err:
        run_grid(counted, tasks, store=store, progress=False)
    assert str(err.value) == (f"task 'c' failed: ValueError: bad value for c; "
                              f"2 finished result(s) kept in {store}, the same call resumes")
    assert err.value.key == "c" and isinstance(err.value.__cause__, ValueError)
    assert sorted(p.name for p in store.glob("*.pkl")) == ["a.pkl", "b.pkl"]
    # after the fix: a and b come from disk, only c and d run
    (marks / "c.fail").unlink()
    run = run_grid(counted, tasks, store=store, progress=False)
    assert run.resumed == ("a", "b") and run.computed == ("c", "d")
    assert [calls(marks, k) for k in "abcd"] == [1, 1, 2, 1]
    assert run.results == {"a": 0.0, "b": 2.0, "c": 4.0, "d": 6.0}
    assert run_grid(counted, tasks, store=store, progress=False).computed == ()
    assert [calls(marks, k) for k in "abcd"] == [1, 1, 2, 1]
    # a store never mixes in the result of a task with other arguments
    with pytest.raises(StoreError, match=r"a.pkl: holds the result of a different task .* under key 'a'"):
        run_grid(counted, {**tasks, "a": {**tasks["a"], "value": 5.0}}, store=store, progress=False)


class RecordingBar(ex.tqdm):
    """The executor's tqdm, remembering every bar made and its count when closed."""

    made: list = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.made.append(self)
        self.closed_at = None

    def close(self) -> None:
        self.closed_at = self.n
        super().close()


@pytest.fixture
def bars(monkeypatch):
    RecordingBar.made = []
    monkeypatch.setattr(ex, "tqdm", RecordingBar)
    return RecordingBar.made


def test_one_progress_bar_counts_every_task_of_the_grid(tmp_path, bars, capsys) -> None:
    tasks = counted_tasks(tmp_path)
    run_grid(counted, dict(list(tasks.items())[:2]), store=tmp_path / "s", progress=True, desc="galaxies")
    run_grid(counted, tasks, store=tmp_path / "s", progress=True, desc="galaxies")
    assert [(b.total, b.initial, b.closed_at) for b in bars] == [(2, 0, 2), (4, 2, 4)]  # resumed: starts at 2
    assert "galaxies:" in capsys.readouterr().err
    run_grid(counted, tasks, progress=False)
    assert capsys.readouterr().err == "" and bars[-1].disable


# ---------------------------------------------------------------- Ray (one local instance with 2 workers)


@pytest.fixture(scope="module")
def ray2():
    """A local Ray instance with 2 CPUs for this module; run_grid uses it and leaves it running."""
    ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'dsphnf[ray]' to run the Ray tests")
    import logging

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test file
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield executor_from("ray", workers=2)
    ray.shutdown()


def test_ray_gives_bit_identical_results_and_one_bar(ray2, bars) -> None:
    tasks = {f"m{s}": {"seed": s, "steps": 25} for s in range(4)}
    remote = run_grid(seeded_fit, tasks, executor=ray2, progress=True, desc="members")
    local = run_grid(seeded_fit, tasks, progress=False)
    assert list(remote.results) == list(tasks) and remote.workers == 2
    for key in tasks:
        for name in ("losses", "params", "noise"):
            assert remote.results[key][name].tobytes() == local.results[key][name].tobytes(), (key, name)
    pids = {r["pid"] for r in remote.results.values()}
    assert os.getpid() not in pids and len(pids) >= 1
    assert {r["threads"] for r in remote.results.values()} == {ex.TASK_THREADS}
    (bar,) = bars[:1]  # the Ray grid made one bar for all its tasks, across both workers
    assert (bar.total, bar.closed_at, bar.postfix) == (4, 4, "ray, 2 worker(s)")


def test_ray_retries_a_killed_worker_and_keeps_results(ray2, tmp_path) -> None:
    marks, store = tmp_path / "marks", tmp_path / "store"
    marks.mkdir()
    tasks = {k: {"key": k, "marks": str(marks)} for k in "abc"}
    run = run_grid(dies_once, tasks, executor=ray2, store=store, progress=False, max_retries=2)
    assert run.results == {"a": "A", "b": "B", "c": "C"}
    assert [calls(marks, k) for k in "abc"] == [1, 2, 1]  # b: killed once, retried once
    assert sorted(p.name for p in store.glob("*.pkl")) == ["a.pkl", "b.pkl", "c.pkl"]


def test_ray_reports_a_worker_lost_too_often_and_the_same_call_resumes(ray2, tmp_path) -> None:
    marks, store = tmp_path / "marks", tmp_path / "store"
    marks.mkdir()
    (marks / "b.always").touch()  # b's node keeps failing
    tasks = {k: {"key": k, "marks": str(marks)} for k in "abc"}
    with pytest.raises(TaskError) as err:
        run_grid(dies_once, tasks, executor=ray2, store=store, progress=False, max_retries=0)
    assert re.match(r"^task 'b' lost its worker 1 time\(s\) \(\w+\); \d finished result", str(err.value)), str(err.value)
    assert calls(marks, "b") == 1
    kept = {p.stem for p in store.glob("*.pkl")}
    assert "b" not in kept
    (marks / "b.always").unlink()
    run = run_grid(dies_once, tasks, executor=ray2, store=store, progress=False, max_retries=0)
    assert run.results == {"a": "A", "b": "B", "c": "C"}
    assert set(run.resumed) == kept and set(run.computed) == set("abc") - kept
    assert calls(marks, "b") == 2 and all(calls(marks, k) == 1 for k in kept)


def test_ray_does_not_retry_a_task_that_raises_and_stores_the_tasks_still_running(ray2, tmp_path) -> None:
    marks, store = tmp_path / "marks", tmp_path / "store"
    marks.mkdir()
    (marks / "c.fail").touch()
    with pytest.raises(TaskError) as err:
        run_grid(counted, counted_tasks(marks, "abcdef"), executor=ray2, store=store, progress=False, max_retries=3)
    assert re.match(rf"^task 'c' failed: ValueError: bad value for c; \d finished result\(s\) kept in {store}",
                    str(err.value)), str(err.value)
    assert isinstance(err.value.__cause__, ValueError), repr(err.value.__cause__)
    assert calls(marks, "c") == 1  # not retried
    started = {k for k in "abcdef" if calls(marks, k)}
    assert {p.stem for p in store.glob("*.pkl")} == started - {"c"}  # all that ran, bar c, are kept


def test_ray_address_connects_to_a_running_cluster_and_leaves_it_running(ray2) -> None:
    """A second driver (as ``dsphnf ... --executor ray --ray-address ADDR``) uses the cluster and only disconnects."""
    import subprocess

    import ray

    address = ray.get_runtime_context().gcs_address
    script = ("from dsphnf.executor import executor_from, run_grid\n"
              f"spec = executor_from('ray', {address!r}, 2, cli=True)\n"
              "run = run_grid(pow, {k: {'base': b, 'exp': 2} for k, b in zip('abc', (1, 2, 3))}, executor=spec)\n"
              "print(run.results, run.workers, run.summary()['ray_address'])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ex.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"{{'a': 1, 'b': 4, 'c': 9}} 2 {address}"
    assert ray.get(ray.remote(lambda b: b ** 5).remote(2)) == 32  # the cluster outlived the other driver


def test_an_address_without_a_cluster_is_a_one_line_error_at_once() -> None:
    """Ray itself would wait for minutes; the driver runs apart, as no Ray session may be connected."""
    import subprocess

    pytest.importorskip("ray", reason="Ray not installed: pip install 'dsphnf[ray]' to run the Ray tests")
    script = ("from dsphnf.executor import executor_from, run_grid\n"
              "try:\n"
              "    run_grid(pow, {'a': {'base': 2, 'exp': 2}}, executor=executor_from('ray', '127.0.0.1:1'))\n"
              "except Exception as exc:\n"
              "    print(type(exc).__name__, exc)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ex.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == ("ExecutorError no Ray cluster at 127.0.0.1:1 (Connection refused): "
                                  "start one with 'ray start --head' or check the address"), out.stdout + out.stderr[-1000:]
