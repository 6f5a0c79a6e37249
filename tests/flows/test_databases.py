"""The store, the ledger and the flow on SQLite and on PostgreSQL alike.

Every test here runs once per database (`database_url` in conftest.py); the
PostgreSQL runs are skipped, with the reason, when no server is given.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import sqlalchemy as sa
from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.demo import DemoOptions, example_bundles, run_demo
from claims.errors import IllegalTransition
from claims.settings import Settings
from claims.states import ClaimState
from claims.store import (
    CheckEpoch,
    Claim,
    ClaimEvent,
    EpochClaim,
    Member,
    Settlement,
    Store,
    utcnow,
)
from flows import steps
from ledger import merkle
from ledger.log import TransparencyLog
from ledger.note import NoteSigner

S = ClaimState


def _claim(store: Store, claim_id: str, minute: int = 0) -> None:
    with store.session() as session:
        if session.get(Member, "ins") is None:
            session.add(Member(id="ins", kind="insurer", name="Ins", did="did:x"))
    with store.session() as session:
        at = utcnow() + timedelta(minutes=minute)
        session.add(
            Claim(
                id=claim_id,
                insurer_id="ins",
                state=S.SUBMITTED.value,
                claimant_did="did:claimant",
                challenge=f"nonce-{claim_id}",
                submission="{}",
                submission_hash="0" * 64,
                submitted_at=at,
                updated_at=at,
            )
        )


def test_a_claim_moves_and_its_events_are_kept(database_url: str) -> None:
    store = Store(database_url)
    _claim(store, "c1")
    with store.writer() as session:
        claim = store.get_claim(session, "c1")
        store.move(session, claim, S.VERIFIED)
        store.move(session, claim, S.SCORED, "a reason")
    with Session(store.engine) as session:
        events = [event.state for event in store.events(session, "c1")]
        assert store.get_claim(session, "c1").reason == "a reason"
    assert events == ["verified", "scored"]
    with store.writer() as session:
        claim = store.get_claim(session, "c1")
        with pytest.raises(IllegalTransition, match="from scored to settled"):
            store.move(session, claim, S.SETTLED)
    store.engine.dispose()


def test_a_step_loads_its_batch_by_id_and_only_the_claims_in_its_state(
    database_url: str,
) -> None:
    store = Store(database_url)
    for number in range(5):
        _claim(store, f"c{number}", minute=-number)
    with store.writer() as session:
        store.move(session, store.get_claim(session, "c2"), S.VERIFIED)
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    with store.writer() as session:
        loaded = steps._load(session, ["c0", "c1", "c2", "c4", "absent"], S.SUBMITTED)
    sa.event.remove(store.engine, "before_cursor_execute", seen)
    assert [claim.id for claim in loaded] == ["c4", "c1", "c0"]
    if store.is_sqlite:
        # Regression: `id IN (...) AND state = ?` made SQLite walk the index
        # on state, every claim in that state per chunk (flows.steps._load).
        ((select_claims, parameters),) = [s for s in statements if "FROM claim" in s[0]]
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {select_claims}", parameters
            ).all()
        assert "ix_claim_state" not in str(plan)
        assert "sqlite_autoindex_claim_1" in str(plan)
    store.engine.dispose()


def test_a_failed_writer_transaction_stores_nothing(database_url: str) -> None:
    store = Store(database_url)
    _claim(store, "c1")
    with pytest.raises(RuntimeError, match="boom"), store.writer() as session:
        store.move(session, store.get_claim(session, "c1"), S.VERIFIED)
        raise RuntimeError("boom")
    with Session(store.engine) as session:
        assert store.get_claim(session, "c1").state == "submitted"
        assert store.events(session, "c1") == []
    store.engine.dispose()


def test_events_are_seen_in_their_session_and_dropped_with_a_rollback(
    database_url: str,
) -> None:
    store = Store(database_url)
    _claim(store, "c1")
    _claim(store, "c2", minute=1)
    with Session(store.engine) as session:
        store.move(session, store.get_claim(session, "c1"), S.VERIFIED)
        # A query in the same session sees the event (autoflush writes it).
        assert [e.state for e in store.events(session, "c1")] == ["verified"]
        session.rollback()
        store.move(session, store.get_claim(session, "c2"), S.REJECTED, "why")
        session.rollback()
        store.move(session, store.get_claim(session, "c2"), S.VERIFIED)
        session.commit()
    with Session(store.engine) as session:
        assert store.events(session, "c1") == []
        assert [(e.state, e.reason) for e in store.events(session, "c2")] == [
            ("verified", None)
        ]
        assert store.get_claim(session, "c1").state == "submitted"
    store.engine.dispose()


def test_leases_are_disjoint_and_lapse(database_url: str) -> None:
    store = Store(database_url)
    for n in range(5):
        _claim(store, f"c{n}", minute=n)
    until = utcnow() + timedelta(minutes=5)
    states = (S.SUBMITTED,)
    first = store.lease("w1", 3, states=states, until=until)
    second = store.lease("w2", 3, states=states, until=until)
    assert first == ["c0", "c1", "c2"]
    assert second == ["c3", "c4"]
    assert store.lease("w3", 3, states=states, until=until) == []

    # Released claims, and claims whose lease lapsed, can be taken again.
    store.release("w1", ["c0", "c1"])
    store.release("w1", ["c3"])  # not w1's: stays with w2
    assert store.lease("w3", 5, states=states, until=until) == ["c0", "c1"]
    later = Store(database_url, clock=lambda: utcnow() + timedelta(minutes=10))
    taken = later.lease("w4", 5, states=states, until=until + timedelta(hours=1))
    assert taken == ["c0", "c1", "c2", "c3", "c4"]
    store.engine.dispose()
    later.engine.dispose()


def test_the_ledger_appends_proves_and_verifies(database_url: str) -> None:
    store = Store(database_url)
    signer = NoteSigner.generate("test.example/log")
    log = TransparencyLog(store.engine, "test.example/log", signer)
    records = [{"type": "t", "n": n} for n in range(37)]
    indexes = log.append(records, [f"k{n}" for n in range(37)])
    assert indexes == list(range(37))
    assert log.append(records[:3], ["k0", "k1", "k2"]) == [0, 1, 2]
    assert log.size() == 37
    root = log.root()
    for index in (0, 17, 36):
        data = rfc8785.dumps(records[index])
        merkle.verify_inclusion(
            merkle.leaf_hash(data), index, 37, log.inclusion_proof(index), root
        )
    log.checkpoint()
    log.append([{"type": "t", "n": 99}], ["k99"])
    log.checkpoint()
    assert len(log.consistency_proof(37, 38)) > 0
    log.verify()
    store.engine.dispose()


def test_the_flow_takes_every_claim_to_a_final_state_in_batches(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's consortium, in batches of 5: duplicates across batches too."""
    if not database_url.startswith("sqlite"):
        # On SQLite the demo keeps its store in its own workspace.
        monkeypatch.setenv("CLAIMS_DATABASE_URL", database_url)
    monkeypatch.setattr("flows.process.BATCH_SIZE", 5)
    summary = run_demo(
        DemoOptions(
            fhir=example_bundles(),
            out=tmp_path / "out",
            workspace=tmp_path / "ws",
            prefect=False,
        )
    )
    assert summary["duplicates_caught"] == summary["duplicates_injected"] == 5
    assert summary["distinct_treatments_flagged"] == 0
    assert summary["hostile_rejected_as_expected"] == 4
    assert summary["settled"] > 0
    assert set(summary["states"]) <= {"settled", "denied", "in_review", "rejected"}
    consortium = Consortium(Settings.load(tmp_path / "ws"))
    consortium.ledger.verify()
    with Session(consortium.store.engine) as session:
        settled = session.exec(select(Settlement.claim_id)).all()
        events = session.exec(select(ClaimEvent.claim_id, ClaimEvent.state)).all()
        leased = session.exec(select(Claim.id).where(Claim.lease_owner != None)).all()  # noqa: E711
        # The run's joint-check epoch went with it.
        epochs = session.exec(select(CheckEpoch.id)).all()
        epoch_rows = session.exec(select(EpochClaim.claim_id)).all()
    assert epochs == [] and epoch_rows == []
    assert len(settled) == summary["settled"]
    assert max(Counter(events).values()) == 1
    assert leased == []
    consortium.store.engine.dispose()
