"""Where a grid of independent tasks runs: in this process, or on Ray.

Ensemble members of a flow fit, realisations of a calibration and galaxies of
a survey are independent tasks. :func:`run_grid` runs such a grid of
*tasks*, each a call ``func(**common, **kwargs)`` of a picklable top-level
function named by a *key*, with one of two executors:

``local`` (the default; needs no Ray)
    the tasks run one after the other in this process, in the order given.
``ray``
    the tasks run on `Ray <https://docs.ray.io>`_, the existing distributed
    engine (``pip install "dsphnf[ray]"``): a local Ray instance started for
    the grid (``workers`` CPUs, default all), or the cluster at
    ``ray_address`` (see :func:`executor_from`). A task whose worker dies
    (killed, out of memory, lost node) is retried by Ray up to
    ``max_retries`` times; a task that raises a Python exception is not
    retried.

Both executors give identical results for the same seeds: every task gets
its seeds in its own arguments, and runs with torch at :data:`TASK_THREADS`
intra-op thread (in Ray workers and, temporarily, in this process), so the
floating-point summation order is the same. One thread also keeps Ray from
oversubscribing the CPU: each Ray task holds one CPU, and torch's default of
one thread per core in every worker made small-tensor steps up to 20x
slower on a shared 2-core machine (benchmarks/RESULTS.md). Tasks must not
rely on other process-wide state of the caller (torch's default dtype,
numpy's global random state): Ray workers are fresh processes.

With a ``store`` folder every result is written to disk as it arrives
(:mod:`dsphnf.taskstore`), and the same call run again, after a crash, a
Ctrl-C or a failed task, loads the finished results instead of recomputing
them. One progress bar counts the tasks of the whole grid across workers.

On a cluster: run ``ray start --head`` on one node (it prints the address,
``HOST:6379``) and ``ray start --address HOST:6379`` on the others, each in
a Python environment with the same dsphnf installed (``pip install
"dsphnf[ray]"``), then give ``ray_address="HOST:6379"`` (``--ray-address``;
``"auto"`` on a node of the cluster). The grid uses one worker per CPU of
the cluster (``ray status`` lists them), at most ``workers``; results come
back to this process, which alone writes the store. Worker output goes to
Ray's logs (``/tmp/ray/session_latest/logs``), not to this terminal.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from tqdm import tqdm  # text bar (terminals only by default); tqdm.auto warns in notebooks without ipywidgets

from .errors import DsphnfError
from .taskstore import TaskStore, check_key, task_fingerprint

__all__ = [
    "ExecutorSpec", "ExecutorError", "TaskError", "GridRun", "KINDS", "TASK_THREADS",
    "executor_from", "add_executor_arguments", "executor_from_args", "run_grid",
]

#: The executors.
KINDS: tuple[str, ...] = ("local", "ray")
#: torch intra-op threads inside every task (both executors): identical results, no oversubscription.
TASK_THREADS = 1


class ExecutorError(DsphnfError, ValueError):
    """Bad executor settings (unknown kind, an address without Ray, Ray not installed)."""


class TaskError(DsphnfError):
    """A task of a grid failed (raised, or its worker died more than ``max_retries`` times).

    ``key`` names the task; ``__cause__`` is the original exception where there is one.
    """

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ExecutorSpec:
    """Parsed executor settings; build with :func:`executor_from`.

    Attributes
    ----------
    kind : {"local", "ray"}
        Where the tasks run.
    ray_address : str or None
        Address of a running Ray cluster (``"auto"``, ``"HOST:6379"``,
        ``"ray://HOST:10001"``); None starts a local Ray instance.
    workers : int or None
        Most tasks running at once (Ray only); for a local Ray instance also
        its number of CPUs. None: every CPU of the instance or cluster (as
        counted when the grid starts).
    """

    kind: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    workers: int | None = None

    def spec(self) -> dict[str, Any]:
        """The settings as JSON-ready dict (``executor``, ``ray_address``, ``workers``)."""
        return {"executor": self.kind, "ray_address": self.ray_address, "workers": self.workers}


_NAMES = {
    False: {"executor": "executor", "ray": "executor='ray'", "ray_address": "ray_address", "workers": "workers"},
    True: {"executor": "--executor", "ray": "--executor ray", "ray_address": "--ray-address", "workers": "--workers"},
}


def executor_from(executor: ExecutorSpec | str | None = "local", ray_address: str | None = None,
                  workers: int | None = None, *, cli: bool = False) -> ExecutorSpec:
    """Parse executor settings once, at the boundary, into an :class:`ExecutorSpec`.

    Parameters
    ----------
    executor : ExecutorSpec, {"local", "ray"} or None
        None means ``"local"``; an :class:`ExecutorSpec` is returned as is.
    ray_address : str or None
        Address of a running Ray cluster; only with ``executor="ray"``.
    workers : int or None
        Most tasks at once (>= 1); only with ``executor="ray"``.
    cli : bool
        Name the command-line flags (``--ray-address``) in error messages.

    Raises
    ------
    ExecutorError
        One-line message on bad settings, or when Ray is asked for but not installed.

    Examples
    --------
    >>> executor_from("local")
    ExecutorSpec(kind='local', ray_address=None, workers=None)
    >>> executor_from("local", ray_address="auto")
    Traceback (most recent call last):
    ...
    dsphnf.executor.ExecutorError: ray_address needs executor='ray'
    """
    n = _NAMES[bool(cli)]
    if isinstance(executor, ExecutorSpec):
        if ray_address is not None or workers is not None:
            raise ExecutorError(f"give {n['ray_address']} and {n['workers']} in the ExecutorSpec, not beside it")
        return executor
    kind = "local" if executor is None else str(executor).strip().lower()
    if kind not in KINDS:
        raise ExecutorError(f"unknown {n['executor']} {executor!r}: use local or ray")
    if ray_address is not None:
        if kind != "ray":
            raise ExecutorError(f"{n['ray_address']} needs {n['ray']}")
        if not str(ray_address).strip():
            raise ExecutorError(f"empty {n['ray_address']}: give 'auto', HOST:PORT or ray://HOST:PORT")
    if workers is not None:
        if isinstance(workers, bool) or int(workers) != workers or int(workers) < 1:
            raise ExecutorError(f"{n['workers']} must be an integer of at least 1, got {workers!r}")
        if kind != "ray":
            raise ExecutorError(f"{n['workers']} needs {n['ray']} (local runs one task at a time)")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise ExecutorError(f"{n['ray']} needs the optional extra: pip install 'dsphnf[ray]'")
    return ExecutorSpec(kind, None if ray_address is None else str(ray_address).strip(),
                        None if workers is None else int(workers))


def add_executor_arguments(parser: argparse.ArgumentParser, what: str = "tasks") -> None:
    """Add ``--executor``, ``--ray-address`` and ``--workers`` to a subcommand's parser."""
    g = parser.add_argument_group("scale-out", f"where the {what} run (see README: Scale-out on Ray)")
    g.add_argument("--executor", default="local", metavar="KIND",
                   help=f"local (one after the other, no Ray) | ray (the {what} in parallel on Ray) (default local)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to use (auto | HOST:6379 | ray://HOST:10001); default: start a local Ray instance")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --executor ray: at most N tasks at once (default: every CPU of the Ray instance)")


def executor_from_args(args: argparse.Namespace) -> ExecutorSpec:
    """The :class:`ExecutorSpec` of parsed command-line arguments (errors name the flags)."""
    return executor_from(args.executor, args.ray_address, args.workers, cli=True)


@dataclass(frozen=True)
class GridRun:
    """Outcome of :func:`run_grid`.

    Attributes
    ----------
    results : dict
        Result of every task, by key, in the order the tasks were given.
    executor : ExecutorSpec
        The settings the grid ran with.
    workers : int
        Tasks that could run at once (1 for local).
    resumed, computed : tuple of str
        Keys loaded from the store, and keys run now.
    wall_s : float
        Wall time of the grid [s], Ray start-up included.
    """

    results: dict[str, Any]
    executor: ExecutorSpec
    workers: int
    resumed: tuple[str, ...]
    computed: tuple[str, ...]
    wall_s: float

    def summary(self) -> dict[str, Any]:
        """JSON-ready record for ``summary.json`` (settings, workers, counts, wall time [s])."""
        return {**self.executor.spec(), "workers_used": self.workers, "n_tasks": len(self.results),
                "n_resumed": len(self.resumed), "n_computed": len(self.computed), "wall_s": self.wall_s}


def _call_task(func: Callable, kwargs: Mapping[str, Any], common: Mapping[str, Any] | None) -> Any:
    """Run one task with torch at :data:`TASK_THREADS` thread(s) (restored afterwards)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(TASK_THREADS)
    try:
        return func(**(common or {}), **kwargs)
    finally:
        torch.set_num_threads(old)


def _failure(key: str, what: str, store: TaskStore | None, n_done: int) -> TaskError:
    kept = f"; {n_done} finished result(s) kept in {store.folder}, the same call resumes" if store else ""
    return TaskError(f"task {key!r} {what}{kept}", key)


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _stored(box: TaskStore | None, prints: Mapping[str, str]) -> dict[str, Any]:
    """Results of the tasks already in the store, by key (in task order)."""
    results: dict[str, Any] = {}
    for key, fingerprint in prints.items():
        found, value = box.load(key, fingerprint)
        if found:
            results[key] = value
    return results


def run_grid(func: Callable[..., Any], tasks: Mapping[str, Mapping[str, Any]], *,
             executor: ExecutorSpec | None = None, common: Mapping[str, Any] | None = None,
             store: str | os.PathLike | None = None, progress: bool | None = None,
             desc: str = "tasks", max_retries: int = 3) -> GridRun:
    """Run ``func(**common, **tasks[key])`` for every key, locally or on Ray.

    Parameters
    ----------
    func : callable
        Top-level (importable, picklable) function; a task's seeds belong in its arguments.
    tasks : mapping of str to mapping
        Keyword arguments of every task, by key (a file name: letters, digits, ``._-``).
    executor : ExecutorSpec or None
        From :func:`executor_from`; None runs locally.
    common : mapping or None
        Keyword arguments shared by all tasks (e.g. the catalogue); sent to
        the Ray object store once, not once per task.
    store : path or None
        Folder for finished results (:class:`~dsphnf.taskstore.TaskStore`);
        keys already there are loaded, not recomputed.
    progress : bool or None
        One tqdm bar for the grid (None: only when stderr is a terminal).
    desc : str
        Label of the bar (e.g. ``"members"``, ``"galaxies"``).
    max_retries : int
        Ray only: reruns of a task whose worker died (not of one that raised).

    Returns
    -------
    GridRun

    Raises
    ------
    TaskError
        When a task fails (one line naming the key): no further task starts;
        on Ray the tasks already running finish first. Every finished result
        stays in ``store``, and the same call resumes from there.

    Examples
    --------
    >>> run = run_grid(pow, {"a": {"base": 2, "exp": 3}, "b": {"base": 3, "exp": 2}}, progress=False)
    >>> run.results, run.computed
    ({'a': 8, 'b': 9}, ('a', 'b'))
    """
    t0 = time.perf_counter()
    spec = executor or ExecutorSpec()
    common = dict(common or {})
    for key, kwargs in tasks.items():
        check_key(key)
        clash = set(common) & set(kwargs)
        if clash:
            raise ExecutorError(f"task {key!r}: argument(s) {sorted(clash)} given both per task and in common")
    box = None if store is None else TaskStore(store)
    prints = {k: task_fingerprint(func, kw, common) for k, kw in tasks.items()} if box else {}
    results = _stored(box, prints)
    resumed = tuple(results)
    pending = {k: kw for k, kw in tasks.items() if k not in results}
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = tqdm(total=len(tasks), initial=len(resumed), desc=desc, unit="task", disable=not show, leave=False)

    def finished(key: str, value: Any) -> None:
        if box is not None:
            box.save(key, prints[key], value)
        results[key] = value
        bar.update(1)

    try:
        if spec.kind == "ray" and pending:
            workers = _run_ray(func, pending, common, spec, finished, bar, lambda: len(results), box, max_retries)
        else:
            workers = 1
            bar.set_postfix_str("local", refresh=False)
            for key, kwargs in pending.items():  # in order, in this process: no pool of our own
                try:
                    value = _call_task(func, kwargs, common)
                except Exception as exc:
                    raise _failure(key, f"failed: {_cause(exc)}", box, len(results)) from exc
                finished(key, value)
    finally:
        bar.close()
    ordered = {k: results[k] for k in tasks}
    return GridRun(ordered, spec, workers, resumed, tuple(pending), time.perf_counter() - t0)


def _connect(spec: ExecutorSpec) -> bool:
    """Connect to Ray (an already connected session is used as is); True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if spec.ray_address:
            _check_reachable(spec.ray_address)
            ray.init(address=spec.ray_address, **quiet)
        else:  # "local": a new instance even if RAY_ADDRESS is set (that is what --ray-address is for)
            ray.init(address="local", num_cpus=spec.workers or os.cpu_count() or 1, **quiet)
    except ExecutorError:
        raise
    except Exception as exc:
        where = f"the Ray cluster at {spec.ray_address}" if spec.ray_address else "a local Ray instance"
        raise ExecutorError(f"cannot start or reach {where}: {_cause(exc)}") from exc
    return True


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a HOST:PORT (or ray://HOST:PORT) nobody listens on at once; Ray itself waits for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other spellings: Ray's own checks
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ExecutorError(f"no Ray cluster at {address} ({exc.strerror or type(exc).__name__}): "
                            f"start one with 'ray start --head' or check the address") from exc


def _run_ray(func: Callable, pending: dict[str, Mapping[str, Any]], common: dict[str, Any],
             spec: ExecutorSpec, finished: Callable[[str, Any], None], bar: tqdm,
             n_done: Callable[[], int], box: TaskStore | None, max_retries: int) -> int:
    """Submit the pending tasks to Ray, at most ``workers`` at once; returns the workers used."""
    import ray
    from ray import exceptions as rex

    lost = tuple(getattr(rex, n) for n in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError",
                                           "LocalRayletDiedError") if hasattr(rex, n))
    started = _connect(spec)
    running: dict[Any, str] = {}  # object ref -> key of the tasks submitted and not yet collected
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = max(1, min(spec.workers or cpus, cpus, len(pending)))
        bar.set_postfix_str(f"ray, {workers} worker(s)", refresh=False)
        remote = ray.remote(num_cpus=1, max_retries=int(max_retries), retry_exceptions=False)(_call_task)
        common_ref = ray.put(common) if common else None
        queue = iter(pending.items())

        def submit() -> None:  # keep `workers` tasks in flight: a failure then waits for at most those
            for key, kwargs in queue:
                running[remote.remote(func, kwargs, common_ref)] = key
                if len(running) >= workers:
                    return

        submit()
        failed: list[tuple[str, Exception]] = []
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            key = running.pop(ref)
            try:
                value = ray.get(ref)
            except Exception as exc:  # RayTaskError: the task raised (not retried); `lost`: its worker died
                failed.append((key, exc))  # submit no more; store what is still running, then report
                continue
            finished(key, value)
            if not failed:
                submit()
        if failed:
            key, exc = failed[0]
            cause = exc.cause if isinstance(exc, rex.RayTaskError) and exc.cause is not None else exc
            what = (f"lost its worker {max_retries + 1} time(s) ({type(exc).__name__})" if isinstance(exc, lost)
                    else f"failed: {_cause(cause)}")
            more = f" ({len(failed) - 1} more task(s) failed)" if len(failed) > 1 else ""
            raise _failure(key, what + more, box, n_done()) from cause
        return workers
    finally:  # Ctrl-C: stop the rest; what finished is in the store already
        if started:
            ray.shutdown()
        else:
            for ref in running:
                ray.cancel(ref)
