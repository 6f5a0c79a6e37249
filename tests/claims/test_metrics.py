"""Metrics: hand-built timelines, and the demo's summary against `collect`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from claims.consortium import Consortium
from claims.demo import DemoOptions, run_demo
from claims.metrics import collect, percentile
from claims.settings import Settings
from claims.states import ClaimState
from claims.store import Claim, Member, Store

S = ClaimState
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'claims.db'}")
    with store.session() as session:
        for insurer in ("ins-a", "ins-b"):
            session.add(Member(id=insurer, kind="insurer", name=insurer, did="x"))
    return store


def _claim(
    store: Store, claim_id: str, insurer: str, path: list[tuple[ClaimState, int]]
) -> None:
    """A claim submitted at T0 that takes `path`: (state, seconds after T0)."""
    with store.session() as session:
        claim = Claim(
            id=claim_id,
            insurer_id=insurer,
            state=S.SUBMITTED.value,
            claimant_did="did:key:z",
            challenge="c",
            submission="{}",
            submission_hash="h",
            submitted_at=T0,
            updated_at=T0,
        )
        session.add(claim)
        for state, seconds in path:
            store.move(session, claim, state, at=T0 + timedelta(seconds=seconds))


def _straight(seconds: int) -> list[tuple[ClaimState, int]]:
    return [
        (S.VERIFIED, 1),
        (S.SCORED, 2),
        (S.ADJUDICATED, 3),
        (S.APPROVED, 3),
        (S.SETTLED, seconds),
    ]


def test_hand_built_timelines(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _claim(store, "a1", "ins-a", _straight(10))
    _claim(store, "a2", "ins-a", _straight(20))
    _claim(
        store,
        "a3",
        "ins-a",
        [(S.VERIFIED, 1), (S.SCORED, 2), (S.ADJUDICATED, 3), (S.IN_REVIEW, 3)]
        + [(S.APPROVED, 50), (S.SETTLED, 60)],
    )
    _claim(
        store,
        "a4",
        "ins-a",
        [(S.VERIFIED, 1), (S.SCORED, 2), (S.ADJUDICATED, 3), (S.DENIED, 3)],
    )
    _claim(store, "b1", "ins-b", [(S.REJECTED, 1)])
    _claim(
        store,
        "b2",
        "ins-b",
        [(S.VERIFIED, 1), (S.SCORED, 2), (S.ADJUDICATED, 3), (S.IN_REVIEW, 40)],
    )
    _claim(
        store,
        "b3",
        "ins-b",
        [(S.VERIFIED, 1), (S.SCORED, 2), (S.ADJUDICATED, 3), (S.IN_REVIEW, 80)],
    )

    overall, per = collect(store, now=T0 + timedelta(seconds=100))

    a, b = per
    assert (a.insurer, b.insurer) == ("ins-a", "ins-b")
    # ins-a: turnarounds 10, 20, 60 s; 2 of 4 adjudicated went straight
    # through; 1 of 4 denied; nothing in review.
    assert (a.claims, a.settled, a.denied, a.adjudicated) == (4, 3, 1, 4)
    assert a.turnaround_p50_s == 20.0
    assert a.turnaround_p95_s == 56.0  # 20 + 0.9 * (60 - 20)
    assert (a.straight_through, a.straight_through_rate) == (2, 0.5)
    assert a.denial_rate == 0.25
    assert a.review_backlog_oldest_s is None
    # ins-b: a rejection is no denial; two in review since 40 s and 80 s.
    assert (b.rejected, b.in_review, b.adjudicated, b.denial_rate) == (1, 2, 2, 0.0)
    assert b.straight_through_rate == 0.0
    assert (b.review_backlog_oldest_s, b.review_backlog_median_s) == (60.0, 40.0)
    # Overall.
    assert (overall.claims, overall.adjudicated, overall.straight_through) == (
        7,
        6,
        2,
    )
    assert overall.straight_through_rate == round(2 / 6, 4)
    assert overall.review_backlog_oldest_s == 60.0
    assert overall.states == {
        "denied": 1,
        "in_review": 2,
        "rejected": 1,
        "settled": 3,
    }


def test_empty_store_has_no_rates(tmp_path: Path) -> None:
    overall, per = collect(_store(tmp_path), now=T0)
    assert per == []
    assert (overall.claims, overall.straight_through_rate, overall.denial_rate) == (
        0,
        None,
        None,
    )


def test_percentile_is_inclusive() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5


def test_demo_summary_matches_metrics(tmp_path: Path) -> None:
    summary = run_demo(
        DemoOptions(out=tmp_path / "out", workspace=tmp_path / "ws", prefect=False)
    )
    consortium = Consortium(Settings.load(tmp_path / "ws"))
    overall, per = collect(consortium.store, consortium.clock())

    for key in ("claims", "settled", "denied", "in_review", "rejected", "pending"):
        assert getattr(overall, key) == summary[key], key
    assert overall.states == summary["states"]
    assert overall.turnaround_p50_s == pytest.approx(summary["turnaround_p50_s"])
    assert overall.turnaround_p95_s == pytest.approx(summary["turnaround_p95_s"])
    assert [m.insurer for m in per] == summary["insurers"]
    assert sum(m.claims for m in per) == summary["claims"]
