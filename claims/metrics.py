"""Claims metrics from the store's state changes: speed, flow and outcome.

Every state change is a `ClaimEvent` with its time, so the measures below
are read from the store alone, per insurer and for the whole consortium:

* counts per state, and `claims` in all;
* turnaround: `settled_at - submitted_at` of each settled claim, p50 and p95
  in seconds (inclusive percentiles, as `statistics.quantiles` computes
  them with `method="inclusive"`; `claims demo` uses the same method);
* straight-through rate: of the claims that were adjudicated, the share
  that reached `settled` without passing through `in_review`;
* review backlog: how many claims are in review, and the age in seconds of
  the oldest and the median one, counted from when each entered review;
* denial rate: of the claims that were adjudicated, the share now `denied`
  (on the plan's rules or on review). Claims rejected before adjudication
  (credential, presentation, duplicate submission) are not denials: they
  appear under `rejected` only.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from claims.states import ClaimState
from claims.store import Claim, ClaimEvent, Store

__all__ = ["Metrics", "collect", "percentile"]

S = ClaimState


def percentile(values: list[float], q: int) -> float:
    """The `q`-th inclusive percentile of `values` (0.0 when there are none)."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


@dataclass
class Metrics:
    """The measures of one insurer, or of all (`insurer` is then `None`)."""

    insurer: str | None
    claims: int = 0
    states: dict[str, int] = field(default_factory=dict)
    adjudicated: int = 0
    """Claims that reached adjudication (the base of the two rates)."""
    settled: int = 0
    denied: int = 0
    in_review: int = 0
    rejected: int = 0
    pending: int = 0
    turnaround_p50_s: float = 0.0
    turnaround_p95_s: float = 0.0
    straight_through: int = 0
    straight_through_rate: float | None = None
    denial_rate: float | None = None
    review_backlog_oldest_s: float | None = None
    review_backlog_median_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tally:
    states: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    turnaround: list[float] = field(default_factory=list)
    adjudicated: int = 0
    straight_through: int = 0
    backlog: list[float] = field(default_factory=list)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _finish(insurer: str | None, tally: _Tally) -> Metrics:
    states = dict(sorted(tally.states.items()))
    backlog = tally.backlog
    return Metrics(
        insurer=insurer,
        claims=sum(states.values()),
        states=states,
        adjudicated=tally.adjudicated,
        settled=states.get(S.SETTLED.value, 0),
        denied=states.get(S.DENIED.value, 0),
        in_review=states.get(S.IN_REVIEW.value, 0),
        rejected=states.get(S.REJECTED.value, 0),
        pending=states.get(S.PENDING.value, 0),
        turnaround_p50_s=round(percentile(tally.turnaround, 50), 4),
        turnaround_p95_s=round(percentile(tally.turnaround, 95), 4),
        straight_through=tally.straight_through,
        straight_through_rate=_rate(tally.straight_through, tally.adjudicated),
        denial_rate=_rate(states.get(S.DENIED.value, 0), tally.adjudicated),
        review_backlog_oldest_s=round(max(backlog), 4) if backlog else None,
        review_backlog_median_s=(
            round(statistics.median(backlog), 4) if backlog else None
        ),
    )


def collect(store: Store, now: datetime) -> tuple[Metrics, list[Metrics]]:
    """The measures of the whole store and of each insurer, as of `now`.

    Returns `(overall, per insurer sorted by id)`. Reads two tables once
    each; nothing is written.
    """
    with Session(store.engine) as session:
        # Only the columns needed: the submission JSON stays in the database.
        claims = list(
            session.connection().execute(
                sa.select(
                    col(Claim.id),
                    col(Claim.insurer_id),
                    col(Claim.state),
                    col(Claim.submitted_at),
                    col(Claim.settled_at),
                )
            )
        )
        events = list(
            session.exec(
                select(ClaimEvent.claim_id, ClaimEvent.state, ClaimEvent.at).order_by(
                    col(ClaimEvent.at), col(ClaimEvent.id)
                )
            )
        )
    seen: dict[str, set[str]] = defaultdict(set)
    entered_review: dict[str, datetime] = {}
    for claim_id, state, at in events:
        seen[claim_id].add(state)
        if state == S.IN_REVIEW.value:
            entered_review[claim_id] = at

    overall = _Tally()
    per: dict[str, _Tally] = defaultdict(_Tally)
    for claim_id, insurer_id, state, submitted_at, settled_at in claims:
        for tally in (overall, per[insurer_id]):
            tally.states[state] += 1
            history = seen[claim_id]
            if S.ADJUDICATED.value in history:
                tally.adjudicated += 1
                if state == S.SETTLED.value and S.IN_REVIEW.value not in history:
                    tally.straight_through += 1
            if settled_at is not None:
                tally.turnaround.append((settled_at - submitted_at).total_seconds())
            if state == S.IN_REVIEW.value:
                since = entered_review.get(claim_id, submitted_at)
                tally.backlog.append((now - since).total_seconds())
    return _finish(None, overall), [
        _finish(insurer, per[insurer]) for insurer in sorted(per)
    ]
