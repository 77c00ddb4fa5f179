"""Running a fit's members: one task per member or one per batch, locally or on Ray, with the member store.

:func:`train_grid` trains the members of a :class:`~dsphnf.flows.fit_setup.FitSetup`
as :func:`dsphnf.executor.run_grid` tasks: batched with a member axis
(:func:`~dsphnf.flows.batched_train.train_members_batched`, tasks ``members_a-b`` on
Ray) where :func:`~dsphnf.flows.fit_setup.batched_reason` allows it, otherwise one task
``member_k`` per member (:class:`~dsphnf.flows.member.MemberRunner`). With
``checkpoint_dir`` every finished member is kept in its folder :data:`MEMBER_STORE`
(:mod:`dsphnf.taskstore`), so that ``resume=True`` trains only the missing ones.
Used by :func:`~dsphnf.flows.fit.fit_flow`.
"""
from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

from ..errors import FitError
from ..executor import TASK_THREADS, GridRun, TaskError, run_grid
from ..taskstore import TaskStore, task_fingerprint
from .batched_train import train_members_batched
from .fit_setup import FitSetup, batched_reason, member_batches
from .member import MemberRunner, MemberSettings, MemberStars, TrainedMember

__all__ = ["MEMBER_STORE", "train_grid", "BatchRunner"]

#: Folder inside ``checkpoint_dir`` that keeps the finished members (:mod:`dsphnf.taskstore`).
MEMBER_STORE = "members"


def _member_store(setup: FitSetup, settings: MemberSettings) -> tuple[Path | None, str | None]:
    """Folder that keeps finished members (None without checkpoints) and why there is none."""
    if setup.checkpoints is None:
        return None, None
    try:
        pickle.dumps(settings)
    except Exception as exc:  # a lambda beta(r): the store could not recognise the task
        return None, (f"finished members are not kept: the settings cannot be pickled "
                      f"({type(exc).__name__}; a callable beta(r) must be a top-level function)")
    return setup.checkpoints / MEMBER_STORE, None


def train_grid(setup: FitSetup, stars: MemberStars,
               settings: MemberSettings) -> tuple[list[TrainedMember], dict[str, Any]]:
    """Train the members (locally or on Ray); also the grid's record.

    In batches where :func:`~dsphnf.flows.fit_setup.batched_reason` allows it,
    otherwise as a grid of tasks ``member_k``. One bar counts the members; a
    single member on the local executor shows its own bar over the training
    steps instead. Per-step checkpoints are
    written by the local executor only; on Ray an interrupted fit resumes
    from its finished members.
    """
    if batched_reason(setup, stars.kinematic) is None:
        return _train_batched(setup, stars, settings)
    spec = setup.executor
    local = spec.kind == "local"
    own_bar = setup.progress and local and setup.ensemble == 1
    runner = MemberRunner(setup.checkpoints if local else None, own_bar)
    store, skipped = _member_store(setup, settings)
    tasks = {f"member_{k}": {"k": k} for k in range(setup.ensemble)}
    grid = _member_grid(runner, tasks, setup, {"stars": stars, "settings": settings}, store,
                        setup.progress and not own_bar, "members")
    record = {**grid.summary(), "store": None if store is None else str(store), "batched": False}
    if skipped:
        record["store_skipped"] = skipped
    if setup.ensemble > 1 and setup.batched is None:
        record["not_batched"] = batched_reason(setup, stars.kinematic)
    return list(grid.results.values()), record


def _member_grid(runner, tasks: dict, setup: FitSetup, common: dict, store: Path | None, progress: bool,
                 desc: str) -> GridRun:
    """:func:`~dsphnf.executor.run_grid` of members' tasks; a diverged member's FitError comes back as
    itself (it names the flow), with where the finished members are kept."""
    try:
        return run_grid(runner, tasks, executor=setup.executor, common=common, store=store, progress=progress,
                        desc=desc)
    except TaskError as exc:
        if isinstance(exc.__cause__, FitError):
            kept = f"; the finished members are kept in {store}, resume=True continues" if store else ""
            raise FitError(f"{exc.__cause__}{kept}") from exc
        raise


def _train_batched(setup: FitSetup, stars: MemberStars,
                   settings: MemberSettings) -> tuple[list[TrainedMember], dict[str, Any]]:
    """The members in batches (:func:`~dsphnf.flows.fit_setup.member_batches`); also the record.

    Each batch is one :func:`~dsphnf.flows.batched_train.train_members_batched`:
    one after another on the local executor, as tasks of
    :func:`dsphnf.executor.run_grid` on Ray. With ``checkpoint_dir`` the
    finished members are kept in its member store (under the task name
    ``train_member_batched``), and ``resume=True`` trains only the members
    not there; there are no per-step checkpoints.
    """
    t0 = time.perf_counter()
    store, skipped = _member_store(setup, settings)
    box = None if store is None else TaskStore(store)
    common = {"stars": stars, "settings": settings}
    prints = {k: task_fingerprint(_BatchTask, {"k": k}, common) for k in range(setup.ensemble)} if box else {}
    done: dict[int, TrainedMember] = {}
    for k in range(setup.ensemble):
        found, value = box.load(f"member_{k}", prints[k]) if box else (False, None)
        if found:
            done[k] = value
    resumed = sorted(done)
    missing = [k for k in range(setup.ensemble) if k not in done]
    batches = member_batches(setup, missing)
    keep = (lambda m: box.save(f"member_{m.member}", prints[m.member], m)) if box else (lambda m: None)
    if setup.executor.kind == "local":
        threads = None if setup.options.threads in ("auto", None) else int(setup.options.threads)
        records, workers = [], 1
        for batch in batches:
            trained, rec = train_members_batched(stars, settings, batch, setup.progress, threads)
            records.append(rec)
            for m in trained:
                done[m.member] = m
                keep(m)
    else:
        records, workers = _batches_on_ray(setup, batches, common, store, done, keep)
    record = {**setup.executor.spec(), "workers_used": workers, "n_tasks": setup.ensemble, "n_resumed": len(resumed),
              "n_computed": len(missing), "wall_s": time.perf_counter() - t0,
              "store": None if store is None else str(store), "batched": True, **_batch_record(batches, records)}
    if skipped:
        record["store_skipped"] = skipped
    return [done[k] for k in range(setup.ensemble)], record


def _batches_on_ray(setup: FitSetup, batches: list[list[int]], common: dict, store: Path | None,
                    done: dict[int, TrainedMember], keep) -> tuple[list[dict], int]:
    """The batches as tasks ``members_a-b`` of one grid on Ray; their records and the workers used.

    The grid keeps each finished batch in the member store too (so that an
    interrupted grid resumes from it); its members are then kept one by one.
    """
    tasks = {f"members_{b[0]}-{b[-1]}": {"members": b} for b in batches}
    grid = _member_grid(BatchRunner(), tasks, setup, common, store, setup.progress, "member batches")
    records = []
    for trained, rec in grid.results.values():
        records.append(rec)
        for m in trained:
            done[m.member] = m
            keep(m)
    return records, grid.workers


def _batch_record(batches: list[list[int]], records: list[dict]) -> dict[str, Any]:
    """One record of the batches: the first batch's settings (threads, probe, graphs); per batch its members,
    rows per member and training wall time [s]."""
    per_batch = ("rows_per_member", "train_wall_s")
    first = {k: v for k, v in (records[0] if records else {}).items() if k not in per_batch}
    return {**first, "batches": batches, **{k: [r[k] for r in records] for k in per_batch}}


class BatchRunner:
    """:func:`~dsphnf.flows.batched_train.train_members_batched` of one batch as a grid task (Ray).

    At :data:`~dsphnf.executor.TASK_THREADS` thread(s), without a bar (the grid has one);
    returns the batch's members and its record.
    """

    def __init__(self) -> None:
        self.__qualname__ = "train_members_batched"  # the task's identity in the store (as MemberRunner's)

    def __call__(self, members: list[int], *, stars: MemberStars,
                 settings: MemberSettings) -> tuple[list[TrainedMember], dict[str, Any]]:
        return train_members_batched(stars, settings, members, False, TASK_THREADS)


class _BatchTask:
    """The identity of a batched member in the member store (its fingerprint's name only)."""

    __qualname__ = "train_member_batched"
