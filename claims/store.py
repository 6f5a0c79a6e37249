"""The claims store: SQLModel tables and the one place a claim changes state.

The same models run on SQLite (the embedded default, one file in the
workspace) and on any database SQLAlchemy reaches through a URL. Amounts are
integer cents in the claim's currency, so no database has to represent a
decimal; times are stored as UTC and read back as aware UTC datetimes.

The ledger's own tables (`ledger._tables`) live in the same database and are
created with these. `alembic/` migrates an existing database to these models
on both SQLite and PostgreSQL (`alembic upgrade head`).

Concurrency: several flow runs or workers may share one database. A worker
takes claims with a lease (`Store.lease`): on PostgreSQL the lease query
locks the rows it takes with `FOR UPDATE SKIP LOCKED`, so two workers never
take the same claim; on SQLite the lease is taken in a `BEGIN IMMEDIATE`
transaction (`Store.writer`, `Store.exclusive`), SQLite's single writer.
A lease expires, so the claims of a worker that died are taken again later,
in the state it left them in.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

import ledger.log  # noqa: F401  (puts the ledger tables on SQLModel.metadata)
from claims.adjudication import Accumulator as YearToDate
from claims.errors import NotFound
from claims.settings import sqlite_file
from claims.states import ClaimState, check_transition

__all__ = [
    "IN_CHUNK",
    "MAX_CLAIM_ID",
    "MIN_CLAIM_PREFIX",
    "Accumulator",
    "AmbiguousClaimId",
    "Challenge",
    "Claim",
    "ClaimEvent",
    "Enrollment",
    "Member",
    "PolicyRecord",
    "Settlement",
    "Store",
    "StatusIndex",
    "StatusListRecord",
    "cents",
    "from_cents",
    "in_chunks",
    "utcnow",
]

logger = logging.getLogger(__name__)

IN_CHUNK = 500
"""Values per `IN (...)` list: well under SQLite's bound-parameter limit."""

_V = TypeVar("_V")


def in_chunks(values: Sequence[_V]) -> Iterator[Sequence[_V]]:
    """`values` in slices of at most `IN_CHUNK`, one `IN (...)` list each."""
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def utcnow() -> datetime:
    return datetime.now(UTC)


def cents(amount: Decimal) -> int:
    """Whole cents of an amount, rounded half to even."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and read back as aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        return stored.replace(tzinfo=UTC)


def _time(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class Member(SQLModel, table=True):
    """A consortium member or a claimant: hospital, insurer or claimant."""

    id: str = Field(primary_key=True)
    kind: str = Field(index=True)
    """`hospital`, `insurer` or `claimant`."""
    name: str
    did: str = Field(index=True)
    domain: str | None = None
    """An insurer's presentation domain."""
    accredited_from: datetime | None = _time(default=None)
    accredited_until: datetime | None = _time(default=None)
    created_at: datetime = _time(default_factory=utcnow)


class Enrollment(SQLModel, table=True):
    """A claimant's policy with an insurer, and since when it runs."""

    insurer_id: str = Field(foreign_key="member.id", primary_key=True)
    claimant_did: str = Field(primary_key=True)
    since: date


class PolicyRecord(SQLModel, table=True):
    """An insurer's plan, as the validated policy file's data."""

    __tablename__ = "policy"

    id: str = Field(primary_key=True)
    insurer_id: str = Field(foreign_key="member.id", index=True)
    body: str
    """The policy as JSON (see `claims.policy.Policy`)."""


class Challenge(SQLModel, table=True):
    """A submission challenge: expires, and can be used once."""

    nonce: str = Field(primary_key=True)
    insurer_id: str = Field(foreign_key="member.id", index=True)
    issued_at: datetime = _time()
    expires_at: datetime = _time()
    used_at: datetime | None = _time(default=None)


class Claim(SQLModel, table=True):
    """One claim as an insurer holds it, from submission to its final state."""

    id: str = Field(primary_key=True)
    insurer_id: str = Field(foreign_key="member.id", index=True)
    state: str = Field(index=True)
    reason: str | None = None
    """Why the claim is where it is: a rejection, denial or review reason."""
    claimant_did: str = Field(index=True)
    issuer_did: str | None = None
    credential_id: str | None = Field(default=None, index=True)
    invoice: str | None = Field(default=None, index=True)
    """The hospital's invoice number, once verified (resubmissions key on it)."""
    challenge: str
    submission: str
    """The presentation and consent as submitted (JSON)."""
    submission_hash: str = Field(index=True)
    treatment: str | None = None
    """The verified treatment (JSON of `Treatment.to_subject`)."""
    claim_type: str | None = None
    currency: str | None = None
    billed_cents: int | None = None
    payable_cents: int | None = None
    duplicate: bool | None = None
    """Set by the joint check: another insurer holds the same treatment."""
    risk_score: float | None = None
    """The joint risk score, when enough insurers hold the claimant to compute one."""
    risk_flagged: bool | None = None
    """The score crossed the model's threshold: the claim goes to review."""
    claim_response: str | None = None
    """The FHIR ClaimResponse (JSON)."""
    submitted_at: datetime = _time(index=True)
    updated_at: datetime = _time()
    settled_at: datetime | None = _time(default=None)
    lease_owner: str | None = None
    """The worker processing the claim now (see `Store.lease`)."""
    lease_until: datetime | None = _time(default=None)
    """When that worker's lease lapses and another may take the claim."""

    def treatment_data(self) -> dict[str, Any]:
        if self.treatment is None:
            raise NotFound(f"claim {self.id} has no verified treatment yet")
        data: dict[str, Any] = json.loads(self.treatment)
        return data


class ClaimEvent(SQLModel, table=True):
    """One state change of a claim, with its time."""

    __tablename__ = "claim_event"

    id: int | None = Field(default=None, primary_key=True)
    claim_id: str = Field(foreign_key="claim.id", index=True)
    state: str
    at: datetime = _time()
    reason: str | None = None


_PENDING_EVENTS = "claims.pending_events"
"""`Session.info` key of the events `Store.move` recorded but not yet written.

A step moves thousands of claims; one ORM object per event cost more than
the move itself, so the events go in as one multi-row insert after the
flush that writes their claims (the claim rows exist by then), inside the
same transaction: they commit or roll back with the moves.
"""


@event.listens_for(Session, "after_flush")
def _write_events(session: Session, _context: Any) -> None:
    rows = session.info.pop(_PENDING_EVENTS, None)
    if rows:
        session.connection().execute(sa.insert(ClaimEvent), rows)


@event.listens_for(Session, "after_soft_rollback")
def _drop_events(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING_EVENTS, None)


class Settlement(SQLModel, table=True):
    """A payment instruction; at most one per claim (the unique key says so)."""

    id: int | None = Field(default=None, primary_key=True)
    claim_id: str = Field(foreign_key="claim.id", unique=True)
    insurer_id: str = Field(foreign_key="member.id", index=True)
    amount_cents: int
    currency: str
    ledger_index: int
    created_at: datetime = _time()


class Accumulator(SQLModel, table=True):
    """What a member has used of a plan in one benefit year."""

    insurer_id: str = Field(primary_key=True)
    member: str = Field(primary_key=True)
    year: int = Field(primary_key=True)
    deductible_met_cents: int = 0
    benefit_paid_cents: int = 0

    def year_to_date(self) -> YearToDate:
        """The same totals as adjudication reads them (amounts, not cents)."""
        return YearToDate(
            member=self.member,
            year=self.year,
            deductible_met=from_cents(self.deductible_met_cents),
            benefit_paid=from_cents(self.benefit_paid_cents),
        )


class StatusListRecord(SQLModel, table=True):
    """A hospital's Bitstring Status List and where it is published."""

    __tablename__ = "status_list"

    url: str = Field(primary_key=True)
    hospital_id: str = Field(foreign_key="member.id", index=True)
    purpose: str
    encoded: str
    """The list's bits, as the status list credential encodes them."""
    published_path: str | None = None


class StatusIndex(SQLModel, table=True):
    """An index of a status list given to one credential (never reused)."""

    __tablename__ = "status_index"

    url: str = Field(primary_key=True)
    index: int = Field(primary_key=True)
    credential_id: str = Field(index=True)


class CheckEpoch(SQLModel, table=True):
    """A flow run's joint-check epoch; the three tables below hold its state.

    Rows are deleted with the epoch (`flows.epoch_store`): at the end of the
    run, or a day after its last check when the run died. What they hold is
    blinded under scalars that live only in the run's memory.
    """

    __tablename__ = "check_epoch"

    id: int | None = Field(default=None, primary_key=True)
    used_at: datetime = _time()
    """When the epoch was opened or last checked a batch."""


def _epoch_key() -> Any:
    return Field(foreign_key="check_epoch.id", primary_key=True, ondelete="CASCADE")


class EpochClaim(SQLModel, table=True):
    """A live claim taken into an epoch, as the risk score's features read it."""

    __tablename__ = "epoch_claim"
    __table_args__ = (
        sa.Index("ix_epoch_claim_claimant", "epoch_id", "party", "claimant"),
    )

    epoch_id: int = _epoch_key()
    party: str
    """The insurer holding the claim."""
    claim_id: str = Field(primary_key=True)
    claimant: bytes
    """`mpc_lite.keys.claimant_key` of the patient."""
    service_day: int
    """The service date as a day ordinal."""
    amount: str
    """The billed total, as a decimal string."""
    hospital: str
    flagged: bool


class EpochTag(SQLModel, table=True):
    """A tag in one party's duplicate-check history (`mpc_lite.psi.TagSet`)."""

    __tablename__ = "epoch_tag"

    epoch_id: int = _epoch_key()
    party: str = Field(primary_key=True)
    tag: bytes = Field(primary_key=True)


class EpochClaimant(SQLModel, table=True):
    """One party's tag of a claimant (`mpc_lite.aggregate.ClaimantTags`)."""

    __tablename__ = "epoch_claimant"
    __table_args__ = (sa.Index("ix_epoch_claimant_tag", "epoch_id", "party", "tag"),)

    epoch_id: int = _epoch_key()
    party: str = Field(primary_key=True)
    claimant: bytes = Field(primary_key=True)
    tag: bytes


_IMMEDIATE: ContextVar[bool] = ContextVar("claims_store_immediate", default=False)
"""Set by `Store.exclusive`: the next SQLite transaction begins IMMEDIATE."""


SQLITE_CACHE_KIB = 64 * 1024
"""Each SQLite connection's page cache, in KiB (SQLite's own default is 2 MiB).

With 2 MiB, every step of a 100,000-claim run (a database of over 1 GB)
grew faster than the claim count while the same queries were flat on
PostgreSQL. With 64 MiB (scale_bench, 2026-12-03, SQLite): 10,000 claims
68.7 -> 53.8 s, 100,000 claims 861 -> 600 s. The price is memory, bounded
by this figure per open connection (peak 230 -> 352 MB at 100,000 claims,
with two connections' caches full); it does not grow beyond that.
"""


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling starts a transaction only before
    # a write, so a read-then-write (the ledger's size, then its rows) would
    # not be one transaction. We begin every transaction ourselves instead
    # (`_sqlite_begin`), as SQLAlchemy's pysqlite notes recommend.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _readable(url: str) -> str:
    """`url`, or for a SQLite file on a read-only file system, an immutable open.

    SQLite keeps its write-ahead log beside the file (`-wal`, `-shm`) and
    must create them even to read; on read-only media (a mounted snapshot, a
    copy an auditor was handed) it cannot, and every command failed. Nobody
    can write such a file, so reading it as immutable is safe; a command that
    writes gets SQLite's "readonly database" error, which the CLI explains.
    """
    path = sqlite_file(url)
    if path is None or url.startswith("sqlite:///file:") or not path.exists():
        return url  # not a file, already a URI (its own options), or not yet made
    if not os.statvfs(path).f_flag & os.ST_RDONLY:
        return url
    return f"sqlite:///file:{quote(str(path))}?immutable=1&uri=true"


def _sqlite_begin(conn: sa.Connection) -> None:
    if _IMMEDIATE.get():
        _IMMEDIATE.set(False)  # one-shot: reads nested inside stay deferred
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


MAX_CLAIM_ID = 64
"""No claim id is longer (they are UUIDs, 36 characters); a longer one is refused."""
MIN_CLAIM_PREFIX = 8
"""The shortest prefix `Store.get_claim` looks a claim up by (what `claims status`
prints on a narrow terminal)."""


class AmbiguousClaimId(NotFound):
    """Raised when a claim id prefix is the start of more than one claim id."""


class Store:
    """The database behind one workspace, and the claim state machine on it.

    Args:
        url: a SQLAlchemy database URL.
        clock: the source of "now" for every stored time; omitted, the
            system clock in UTC.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.url = url
        self.clock = clock
        self.engine: Engine = create_engine(_readable(url))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        SQLModel.metadata.create_all(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success, rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """The first transaction begun inside takes SQLite's write lock at once.

        SQLite runs one writer at a time. A transaction that reads first and
        writes later fails when another writer went in between; one begun
        `IMMEDIATE` waits for the lock (up to the busy timeout) instead, and
        then nobody writes until it ends. Only the first transaction begun in
        the block is affected, so reads nested in it do not wait on it. On
        other databases this does nothing: row locks are taken by the
        queries that need them.
        """
        token = _IMMEDIATE.set(self.is_sqlite)
        try:
            yield
        finally:
            _IMMEDIATE.reset(token)

    @contextmanager
    def writer(self) -> Iterator[Session]:
        """Like `session`, but on SQLite the write lock is taken up front.

        See `exclusive`: workers writing at the same time wait for each
        other instead of failing halfway.
        """
        with self.exclusive(), Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                session.connection()  # begin now, while `exclusive` applies
                yield session

    def lease(
        self,
        owner: str,
        limit: int,
        *,
        states: tuple[ClaimState, ...],
        until: datetime,
        insurer_id: str | None = None,
    ) -> list[str]:
        """Take up to `limit` claims in `states` that nobody holds a live lease on.

        The claims taken are leased to `owner` until `until`; they are
        returned oldest submission first. On PostgreSQL the candidate rows
        are locked with `FOR UPDATE SKIP LOCKED`, so two workers leasing at
        the same time get disjoint sets without waiting for each other; on
        SQLite the whole lease runs under the single write lock.
        """
        now = self.clock()
        query = (
            select(Claim)
            .where(
                Claim.state.in_([state.value for state in states]),  # type: ignore[attr-defined]
                sa.or_(
                    col(Claim.lease_until).is_(None),
                    col(Claim.lease_until) < now,
                ),
            )
            .order_by(col(Claim.submitted_at), col(Claim.id))
            .limit(limit)
        )
        if insurer_id is not None:
            query = query.where(Claim.insurer_id == insurer_id)
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        with self.writer() as session:
            claims = list(session.exec(query))
            for claim in claims:
                claim.lease_owner, claim.lease_until = owner, until
                session.add(claim)
        logger.debug("lease %s: took %d claims", owner, len(claims))
        return [claim.id for claim in claims]

    def release(self, owner: str, ids: list[str]) -> None:
        """End `owner`'s lease on the claims among `ids` it still holds."""
        if not ids:
            return
        with self.writer() as session:
            session.execute(
                sa.update(Claim)
                .where(
                    Claim.id.in_(ids),  # type: ignore[attr-defined]
                    col(Claim.lease_owner) == owner,
                )
                .values(lease_owner=None, lease_until=None)
            )

    def move(
        self,
        session: Session,
        claim: Claim,
        state: ClaimState,
        reason: str | None = None,
        *,
        at: datetime | None = None,
    ) -> None:
        """Move a claim to `state` and record the event, in the caller's session.

        Raises `IllegalTransition` when `claims.states` forbids the move; the
        claim is then left as it was.
        """
        check_transition(ClaimState(claim.state), state)
        when = at or self.clock()
        claim.state = state.value
        claim.reason = reason
        claim.updated_at = when
        if state is ClaimState.SETTLED:
            claim.settled_at = when
        session.add(claim)
        events = session.info.setdefault(_PENDING_EVENTS, [])
        events.append(
            {"claim_id": claim.id, "state": state.value, "at": when, "reason": reason}
        )
        logger.debug("claim %s -> %s", claim.id, state.value)

    def claims_in(
        self, session: Session, state: ClaimState, insurer_id: str | None = None
    ) -> list[Claim]:
        """Claims in one state, oldest submission first."""
        query = select(Claim).where(Claim.state == state.value)
        if insurer_id is not None:
            query = query.where(Claim.insurer_id == insurer_id)
        query = query.order_by(col(Claim.submitted_at), col(Claim.id))
        return list(session.exec(query))

    def get_claim(self, session: Session, claim_id: str) -> Claim:
        """The claim with this id, or with a unique id prefix of 8+ characters.

        Raises `NotFound` for an id no claim has or that is longer than
        `MAX_CLAIM_ID` (no claim has one), for a prefix shorter than 8
        characters that is not a whole id, and `AmbiguousClaimId` (a
        `NotFound`) for a prefix that more than one claim id starts with.
        `_` and `%` in a prefix are matched as themselves.
        """
        if len(claim_id) > MAX_CLAIM_ID:
            raise NotFound(
                f"not a claim id: it has {len(claim_id)} characters, and a claim"
                f" id has at most {MAX_CLAIM_ID}",
                remedy="run `claims status` to list the claims",
            )
        claim = session.get(Claim, claim_id)
        if claim is not None:
            return claim
        if len(claim_id) < MIN_CLAIM_PREFIX:
            raise NotFound(
                f"no claim has the id {claim_id!r}, and a claim id prefix needs"
                f" at least {MIN_CLAIM_PREFIX} characters",
                remedy="run `claims status` to list the claims",
            )
        starts = col(Claim.id).startswith(claim_id, autoescape=True)
        found = list(session.exec(select(Claim).where(starts).limit(2)))
        if len(found) == 2:
            raise AmbiguousClaimId(
                f"more than one claim id starts with {claim_id!r}",
                remedy="give more of the id",
            )
        if not found:
            raise NotFound(
                f"no claim id is or starts with {claim_id!r}",
                remedy="run `claims status` to list the claims",
            )
        return found[0]

    def events(self, session: Session, claim_id: str) -> list[ClaimEvent]:
        query = select(ClaimEvent).where(ClaimEvent.claim_id == claim_id)
        query = query.order_by(col(ClaimEvent.at), col(ClaimEvent.id))
        return list(session.exec(query))

    def members(self, session: Session, kind: str) -> list[Member]:
        query = select(Member).where(Member.kind == kind).order_by(Member.id)
        return list(session.exec(query))


# The payer core's own tables; imported last because they use `_time` above.
import claims.payer_tables  # noqa: E402, F401
