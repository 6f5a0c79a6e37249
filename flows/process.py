"""The Prefect flow that takes a batch of submitted claims to settlement.

One task per step, each over the whole batch (never one task per claim): the
orchestration cost is a handful of task runs per batch, however large it is.
Tasks retry on transient faults only (a locked or unreachable database, a
party that did not answer); a fault in the data is a claim's state, not a
task failure. Each step is idempotent (see `flows.steps`), so a retry or a
rerun after a crash never repeats work that was done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from prefect import flow, task
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.settings import Settings
from claims.states import ClaimState
from claims.store import Claim
from flows import steps
from mpc_lite.errors import PartyUnavailable

__all__ = ["process_claims", "run_steps"]

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, PartyUnavailable, ConnectionError, TimeoutError)


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
    def run(workspace: str, ids: list[str]) -> tuple[list[str], float]:
        return _timed(fn, _consortium(workspace), ids)

    return run


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
        return list(session.exec(query.order_by(Claim.submitted_at, Claim.id)))


def _drive(
    batch: list[str], call: Callable[[str, list[str]], tuple[list[str], float]]
) -> dict[str, Any]:
    """Run the steps in order; time each from outside and from inside its task.

    `timings` is the wall time of each step as the flow saw it; `work` is the
    time the step's own code took. Their difference is orchestration.
    """
    timings: dict[str, float] = {}
    work: dict[str, float] = {}
    counts: dict[str, int] = {"batch": len(batch)}
    ids = batch
    for name in STEPS:
        start = time.perf_counter()
        moved, work[name] = call(name, ids)
        timings[name] = time.perf_counter() - start
        counts[name] = len(moved)
        ids = moved if name in NARROWING else batch
    return {"timings": timings, "work": work, "counts": counts}


@flow(name="process-claims", log_prints=False)
def process_claims(workspace: str, insurer_id: str | None = None) -> dict[str, Any]:
    """Take every submitted claim (of one insurer, or all) through all steps.

    Returns, per step, its wall time, its own work time, and how many claims
    it moved on (see `_drive`).
    """
    batch = submitted_ids(_consortium(workspace), insurer_id)
    return _drive(batch, lambda name, ids: TASKS[name](workspace, ids))


def run_steps(consortium: Consortium, insurer_id: str | None = None) -> dict[str, Any]:
    """The same steps without Prefect: for tests and for timing the steps alone."""
    batch = submitted_ids(consortium, insurer_id)
    return _drive(batch, lambda name, ids: _timed(STEPS[name], consortium, ids))
