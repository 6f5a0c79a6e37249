"""A joint-check epoch kept in the database (`flows.epoch_store`), on both databases.

The rows must answer exactly as the in-memory forms in `mpc_lite` do, keep
each party and each epoch apart, and be gone when their epoch closes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from nacl.signing import SigningKey
from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.demo import DemoOptions, example_bundles, run_demo
from claims.settings import Settings
from claims.store import (
    CheckEpoch,
    Claim,
    EpochClaim,
    EpochClaimant,
    EpochTag,
    Store,
    utcnow,
)
from claims.synth import Shapes, populate
from flows import epoch_store, process, steps
from flows.epoch_store import SqlClaimantTags, SqlClaimIndex, SqlTagSet
from mpc_lite.aggregate import MemoryClaimantTags
from mpc_lite.fraud import ClaimInput, ScoringEpoch, _Features
from mpc_lite.psi import MemoryTagSet

TABLES = (CheckEpoch, EpochClaim, EpochClaimant, EpochTag)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    made = Store(database_url)
    yield made
    made.engine.dispose()


def _counts(store: Store) -> dict[str, int]:
    with Session(store.engine) as session:
        return {
            table.__tablename__: session.execute(  # type: ignore[attr-defined]
                sa.select(sa.func.count()).select_from(table)
            ).scalar_one()
            for table in TABLES
        }


def _claims(seed: int, count: int, prefix: str) -> list[ClaimInput]:
    """Claims of a few claimants over two years, some flagged."""
    rng = random.Random(seed)
    start = date(2023, 1, 1)
    return [
        ClaimInput(
            claim_id=f"{prefix}{i}",
            treatment=rng.randbytes(32),
            claimant=bytes([rng.randrange(6)]) * 32,
            hospital=f"did:web:h{rng.randrange(3)}",
            service_date=(start + timedelta(days=rng.randrange(730))).isoformat(),
            amount=Decimal(rng.randrange(100, 100_000)) / 100,
            fraud_flag=rng.random() < 0.2,
        )
        for i in range(count)
    ]


def test_the_tag_history_answers_like_a_set_per_party_and_epoch(
    store: Store,
) -> None:
    first, second = epoch_store.open_epoch(store), epoch_store.open_epoch(store)
    mine = SqlTagSet(store, first, "a")
    memory = MemoryTagSet()
    tags = [bytes([i]) * 32 for i in range(10)]
    for added in (tags[:4], tags[2:7] + tags[2:3]):  # repeats within and across
        mine.update(added)
        memory.update(added)
    asked = [tags[9], *tags, tags[3]]
    assert mine.contains(asked) == memory.contains(asked)
    assert len(mine) == len(memory) == 7
    # Another party and another epoch hold nothing of it.
    assert SqlTagSet(store, first, "b").contains(tags) == [False] * 10
    assert SqlTagSet(store, second, "a").contains(tags) == [False] * 10
    assert mine.contains([]) == []


def test_claimant_tags_answer_both_ways_like_the_memory_form(store: Store) -> None:
    epoch = epoch_store.open_epoch(store)
    stored, memory = SqlClaimantTags(store, epoch, "a"), MemoryClaimantTags()
    claimants = [bytes([i]) * 32 for i in range(5)]
    tags = [bytes([100 + i]) * 32 for i in range(5)]
    for kept in (stored, memory):
        kept.learn(claimants[:3], tags[:3])
        kept.learn(claimants[3:], tags[3:])
    assert stored.tags_of(claimants + [b"x" * 32]) == memory.tags_of(claimants)
    assert stored.owners_of(tags[::-1] + [b"y" * 32]) == memory.owners_of(tags)
    assert SqlClaimantTags(store, epoch, "b").tags_of(claimants) == {}


def test_the_claim_index_gives_the_same_features_as_the_memory_index(
    store: Store,
) -> None:
    epoch = epoch_store.open_epoch(store)
    claims = _claims(1, 120, "c")
    stored, memory = SqlClaimIndex(store, epoch, "a"), _Features()
    assert stored.add(claims[:80]) == memory.add(claims[:80])
    # Claims held already (here half of this list) are skipped by both.
    assert stored.add(claims[40:]) == memory.add(claims[40:])
    assert len(stored.add(claims)) == 0
    flagged = [c.claim_id for c in claims[::7]] + ["no-such-claim"]
    stored.flag(flagged)
    memory.flag(flagged)
    ends = [date(2023, 6, 1).toordinal() + 60 * k for k in range(12)]
    queries = [(bytes([k]) * 32, end) for k in range(7) for end in ends]
    answers = stored(queries)
    assert answers == memory(queries)
    assert sum(a is None for a in answers) == len(ends)  # claimant 6 is nobody's
    assert any(a is not None and a.earlier_flags for a in answers)
    # Another insurer's index of the same epoch holds none of these claims.
    assert SqlClaimIndex(store, epoch, "b")(queries[:3]) == [None] * 3


def test_a_scoring_epoch_in_the_database_scores_as_one_in_memory(
    store: Store,
) -> None:
    epoch = epoch_store.open_epoch(store)
    names = ["a", "b", "c"]
    keys = {name: SigningKey.generate() for name in names}
    stored = ScoringEpoch(
        keys,
        indexes={n: SqlClaimIndex(store, epoch, n) for n in names},
        tags={n: SqlClaimantTags(store, epoch, n) for n in names},
    )
    memory = ScoringEpoch(keys)
    held = {name: _claims(10 + i, 60, name) for i, name in enumerate(names)}
    for name in names:
        stored.add(name, held[name][:40])
        memory.add(name, held[name][:40])
    for step, (asker, part) in enumerate([("a", slice(40, 50)), ("b", slice(40, 60))]):
        batch = {asker: held[asker][part]}
        got = stored.score(batch, job_id=f"db-{step}").verdicts
        want = memory.score(batch, job_id=f"mem-{step}").verdicts
        assert [v.score for v in got.values()] == [v.score for v in want.values()]
        assert {v.contributors for v in got.values()} == {3}
        stored.flag(asker, [c.claim_id for c in batch[asker][:3]])
        memory.flag(asker, [c.claim_id for c in batch[asker][:3]])


def test_closing_an_epoch_deletes_its_rows_and_no_other(store: Store) -> None:
    kept, closed = epoch_store.open_epoch(store), epoch_store.open_epoch(store)
    for epoch in (kept, closed):
        SqlTagSet(store, epoch, "a").update([b"t" * 32])
        SqlClaimantTags(store, epoch, "a").learn([b"c" * 32], [b"t" * 32])
        SqlClaimIndex(store, epoch, "a").add(_claims(3, 5, "x"))
    epoch_store.close_epoch(store, closed)
    assert _counts(store) == {
        "check_epoch": 1,
        "epoch_claim": 5,
        "epoch_claimant": 1,
        "epoch_tag": 1,
    }
    assert SqlTagSet(store, kept, "a").contains([b"t" * 32]) == [True]


def test_an_epoch_unused_for_a_day_goes_when_a_later_one_opens(
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    now = [utcnow()]
    store = Store(database_url, clock=lambda: now[0])
    request.addfinalizer(store.engine.dispose)
    dead = epoch_store.open_epoch(store)
    SqlClaimIndex(store, dead, "a").add(_claims(4, 3, "d"))
    now[0] += epoch_store.STALE_AFTER * 0.9
    epoch_store.open_epoch(store)  # the dead run might still be going
    epoch_store.touch(store, dead)  # and it is: it checked a batch
    now[0] += epoch_store.STALE_AFTER * 0.9
    epoch_store.open_epoch(store)
    assert _counts(store)["epoch_claim"] == 3
    now[0] += epoch_store.STALE_AFTER * 0.2
    epoch_store.open_epoch(store)
    assert _counts(store) == {
        "check_epoch": 2,
        "epoch_claim": 0,
        "epoch_claimant": 0,
        "epoch_tag": 0,
    }


def test_a_new_epoch_catches_up_with_the_store_a_page_at_a_time(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's first check takes in every live claim, a few per job, and still
    checks its batch against all of them."""
    if not database_url.startswith("sqlite"):
        monkeypatch.setenv("CLAIMS_DATABASE_URL", database_url)
    options = DemoOptions(
        fhir=example_bundles(),
        out=tmp_path / "out",
        workspace=tmp_path / "ws",
        prefect=False,
    )
    assert run_demo(options)["duplicates_caught"] == 5
    consortium = Consortium(Settings.load(tmp_path / "ws"))
    with Session(consortium.store.engine) as session:
        claims = list(session.exec(select(Claim).where(Claim.treatment != None)))  # noqa: E711
    live = [c for c in claims if c.state != "rejected"]
    twins = [c for c in live if c.duplicate]
    assert len(twins) >= 5

    monkeypatch.setattr(steps, "CATCH_UP_PAGE", 4)
    epoch = steps.JointCheckEpoch(consortium)
    # One session per check, as `joint_check` does: on SQLite a session's
    # reads see the database as it was at its first.
    with Session(consortium.store.engine) as session:
        flags, records, _ = steps._check(session, twins, epoch)
    # The others went in first, four per job; then the batch's own job.
    assert len(records) > (len(live) - len(twins)) // 4
    assert {flags[c.id] for c in twins} == {True}
    assert _counts(consortium.store)["epoch_claim"] == len(live)
    # Nothing is new now: a check of clean claims runs no job and flags none.
    clean = [c for c in live if not c.duplicate][:6]
    with Session(consortium.store.engine) as session:
        flags, records, _ = steps._check(session, clean, epoch)
    assert records == [] and not any(flags.get(c.id) for c in clean)
    epoch.close()
    assert _counts(consortium.store)["check_epoch"] == 0
    consortium.store.engine.dispose()


def _queued(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Consortium, int]:
    """A consortium with claims waiting in the queue, and how many."""
    monkeypatch.setenv("CLAIMS_DATABASE_URL", database_url)
    consortium = Consortium(Settings.load(tmp_path / "ws"))
    made = populate(consortium, Shapes.from_fhir(example_bundles()), 30, duplicates=2)
    return consortium, made.claims


def test_a_run_that_fails_still_deletes_its_epoch(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consortium, _ = _queued(database_url, tmp_path, monkeypatch)

    def broken(_consortium: Consortium, _ids: list[str]) -> list[str]:
        raise RuntimeError("adjudication broke")

    monkeypatch.setitem(process.STEPS, "adjudicate", broken)
    with pytest.raises(RuntimeError, match="adjudication broke"):
        process.run_steps(consortium)
    assert _counts(consortium.store)["check_epoch"] == 0
    consortium.store.engine.dispose()


def test_an_epoch_that_cannot_be_deleted_does_not_hide_the_runs_outcome(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    consortium, queued = _queued(database_url, tmp_path, monkeypatch)

    def unreachable(_store: Store, _epoch_id: int) -> None:
        raise sa.exc.OperationalError("DELETE", {}, Exception("server gone"))

    monkeypatch.setattr(epoch_store, "close_epoch", unreachable)
    report = process.run_steps(consortium)
    assert report["counts"]["batch"] == report["counts"]["adjudicate"] == queued
    assert _counts(consortium.store)["check_epoch"] == 1  # left for a later run
    assert "left in the database" in caplog.text
    consortium.store.engine.dispose()
