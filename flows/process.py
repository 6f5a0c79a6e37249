"""The Prefect flow that takes a batch of submitted claims to settlement.

One task per step, each over the whole batch (never one task per claim): the
orchestration cost is a handful of task runs per batch, however large it is.
Tasks retry on transient faults only (a locked or unreachable database, a
party that did not answer); a fault in the data is a claim's state, not a
task failure. Each step is idempotent (see `flows.steps`), so a retry or a
rerun after a crash never repeats work that was done.

Claims go through in batches of `BATCH_SIZE`, so memory stays flat however
long the queue is. Each batch is leased first (`claims.store.Store.lease`):
two flow runs, or two workers, processing the same queue at once take
disjoint batches, and a batch whose worker died is taken again once its
lease lapses, in the states that worker left it in. The joint check keeps
one incremental epoch per run (`flows.steps.JointCheckEpoch`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from typing import Any

from prefect import flow, task
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, col, select

from claims.consortium import Consortium
from claims.settings import Settings
from claims.states import ClaimState
from claims.store import Claim
from flows import steps
from mpc_lite.errors import PartyUnavailable

__all__ = ["BATCH_SIZE", "process_claims", "run_steps"]

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, PartyUnavailable, ConnectionError, TimeoutError)

BATCH_SIZE = 2000
"""Claims per leased batch: the most the flow holds in memory at once."""

LEASE = timedelta(minutes=15)
"""How long a worker holds a batch before another may take it over; far
longer than a batch takes (seconds), short enough to recover from a crash."""

IN_FLIGHT = (
    ClaimState.SUBMITTED,
    ClaimState.VERIFIED,
    ClaimState.SCORED,
    ClaimState.APPROVED,
    ClaimState.PARTIALLY_APPROVED,
)
"""States a batch is leased in: new claims and those a dead worker left."""

_EPOCHS: dict[str, steps.JointCheckEpoch] = {}
"""Joint-check epochs of the flow runs in this process, by run id."""


def _close_epoch(run_id: str) -> None:
    """Drop a finished run's epoch and delete the rows it kept.

    Runs in the flow's `finally`: when the database cannot be reached the
    rows stay (the next run deletes them a day on, `flows.epoch_store`) and
    the run's own outcome, or the error that ended it, is what the caller
    sees.
    """
    epoch = _EPOCHS.pop(run_id, None)
    if epoch is None:
        return
    try:
        epoch.close()
    except SQLAlchemyError as exc:
        logger.warning(
            "the joint-check epoch of run %s was left in the database (%s); "
            "a later run deletes it",
            run_id,
            type(exc).__name__,
        )


def _transient(_task: Any, _run: Any, state: Any) -> bool:
    """Retry a task only when it failed for a reason that may pass."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except Exception:  # noqa: BLE001 - anything else is not worth a retry
        return False
    return False


@lru_cache(maxsize=8)
def _consortium(workspace: str) -> Consortium:
    return Consortium(Settings.load(workspace))


def _timed(
    fn: Callable[[Consortium, list[str]], list[str]],
    consortium: Consortium,
    ids: list[str],
) -> tuple[list[str], float]:
    start = time.perf_counter()
    moved = fn(consortium, ids)
    return moved, time.perf_counter() - start


def _step(name: str, fn: Callable[[Consortium, list[str]], list[str]]) -> Any:
    @task(
        name=name,
        retries=3,
        retry_delay_seconds=[0.5, 2, 5],
        retry_condition_fn=_transient,
    )
    def run(workspace: str, ids: list[str], run_id: str) -> tuple[list[str], float]:
        consortium = _consortium(workspace)
        return _timed(_bind(fn, consortium, run_id), consortium, ids)

    return run


def _bind(
    fn: Callable[[Consortium, list[str]], list[str]],
    consortium: Consortium,
    run_id: str,
) -> Callable[[Consortium, list[str]], list[str]]:
    """The step, given its run's epoch when it is the joint check."""
    if fn is not steps.joint_check:
        return fn
    if run_id not in _EPOCHS:
        _EPOCHS[run_id] = steps.JointCheckEpoch(consortium)
    epoch = _EPOCHS[run_id]
    return lambda c, ids: steps.joint_check(c, ids, epoch)


STEPS: dict[str, Callable[[Consortium, list[str]], list[str]]] = {
    "intake": steps.intake,
    "verify": steps.verify,
    "joint_check": steps.joint_check,
    "adjudicate": steps.adjudicate,
    "settle": steps.settle,
}
TASKS = {name: _step(name.replace("_", "-"), fn) for name, fn in STEPS.items()}

# Steps whose output is the next step's input; after them, a step looks at
# the whole batch again (adjudicate moves claims to several states, and settle
# picks the approved ones among them).
NARROWING = frozenset({"intake", "verify", "joint_check"})


def submitted_ids(consortium: Consortium, insurer_id: str | None = None) -> list[str]:
    query = select(Claim.id).where(Claim.state == ClaimState.SUBMITTED.value)
    if insurer_id is not None:
        query = query.where(Claim.insurer_id == insurer_id)
    with Session(consortium.store.engine) as session:
        query = query.order_by(col(Claim.submitted_at), col(Claim.id))
        return list(session.exec(query))


def _drive_batch(
    batch: list[str],
    call: Callable[[str, list[str]], tuple[list[str], float]],
    report: dict[str, Any],
) -> None:
    """Run the steps in order over one batch; add times and counts to `report`.

    `timings` is the wall time of each step as the flow saw it; `work` is the
    time the step's own code took. Their difference is orchestration.
    """
    timings, work, counts = report["timings"], report["work"], report["counts"]
    counts["batch"] = counts.get("batch", 0) + len(batch)
    ids = batch
    for name in STEPS:
        start = time.perf_counter()
        moved, spent = call(name, ids)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        work[name] = work.get(name, 0.0) + spent
        counts[name] = counts.get(name, 0) + len(moved)
        ids = moved if name in NARROWING else batch


def worker_name() -> str:
    """This worker's lease owner name: host, process, and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _drive(
    consortium: Consortium,
    call: Callable[[str, list[str]], tuple[list[str], float]],
    insurer_id: str | None,
    batch_size: int | None,
) -> dict[str, Any]:
    """Lease batch after batch and run the steps over each until none is left."""
    size = batch_size or BATCH_SIZE
    owner = worker_name()
    report: dict[str, Any] = {"timings": {}, "work": {}, "counts": {}, "batches": 0}
    while True:
        until = consortium.clock() + LEASE
        batch = consortium.store.lease(
            owner, size, states=IN_FLIGHT, until=until, insurer_id=insurer_id
        )
        if not batch:
            break
        try:
            _drive_batch(batch, call, report)
        finally:
            consortium.store.release(owner, batch)
        report["batches"] += 1
        logger.debug("worker %s: batch %d done", owner, report["batches"])
    report["counts"].setdefault("batch", 0)
    return report


@flow(name="process-claims", log_prints=False)
def process_claims(
    workspace: str, insurer_id: str | None = None, batch_size: int | None = None
) -> dict[str, Any]:
    """Take every claim waiting in the queue (of one insurer, or all) to the end.

    Returns, per step, its wall time, its own work time, and how many claims
    it moved on, summed over the batches (see `_drive_batch`). `batch_size`
    omitted is `BATCH_SIZE`.
    """
    run_id = secrets.token_hex(8)
    try:
        return _drive(
            _consortium(workspace),
            lambda name, ids: TASKS[name](workspace, ids, run_id),
            insurer_id,
            batch_size,
        )
    finally:
        _close_epoch(run_id)


def run_steps(
    consortium: Consortium,
    insurer_id: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The same steps without Prefect: for tests and for timing the steps alone."""
    run_id = secrets.token_hex(8)

    def call(name: str, ids: list[str]) -> tuple[list[str], float]:
        return _timed(_bind(STEPS[name], consortium, run_id), consortium, ids)

    try:
        return _drive(consortium, call, insurer_id, batch_size)
    finally:
        _close_epoch(run_id)
