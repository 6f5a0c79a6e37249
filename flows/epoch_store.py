"""A joint-check epoch's state in the insurers' database instead of memory.

A flow run checks batch after batch within one epoch (`flows.steps.
JointCheckEpoch`), and the epoch keeps, per insurer, the duplicate-check
tags the others sent (`mpc_lite.psi.TagSet`), its claimants' aggregation
tags (`mpc_lite.aggregate.ClaimantTags`) and its claims as the risk score
reads them (`mpc_lite.fraud.ClaimIndex`). In memory that grew by about
1.2 KB per claim of the run; here each batch reads and writes only its own
rows, so a run's memory does not grow with its claims.

Each insurer's rows carry its name (`party`). In this in-process driver all
insurers share one database, as they share one process; in a deployment
each keeps its own rows in its own database. Nothing stored here leaves the
database it is in, and none of it is logged (only epoch ids are).

An epoch's rows go when the epoch is closed (`close_epoch`, at the end of
its flow run); those of a run that died are deleted by the first epoch
opened a day after the dead run's last check (`STALE_AFTER`). They are
useless once their run is gone: the scalars under which the tags were
blinded lived only in its memory.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, select

from claims.store import (
    CheckEpoch,
    EpochClaim,
    EpochClaimant,
    EpochTag,
    Store,
    in_chunks,
)
from mpc_lite.aggregate import ClaimantFeatures, Query
from mpc_lite.fraud import ClaimInput, _ordinal, claimant_features

__all__ = [
    "STALE_AFTER",
    "SqlClaimIndex",
    "SqlClaimantTags",
    "SqlTagSet",
    "close_epoch",
    "open_epoch",
    "touch",
]

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(days=1)
"""An epoch not used for this long belongs to a run that died; the next one
opened deletes it. (A live run uses its epoch at every batch: `touch`.)"""


def open_epoch(store: Store) -> int:
    """Start an epoch (deleting stale ones) and return its id."""
    now = store.clock()
    with store.writer() as session:
        session.execute(
            sa.delete(CheckEpoch).where(col(CheckEpoch.used_at) < now - STALE_AFTER)
        )
        epoch = CheckEpoch(used_at=now)
        session.add(epoch)
        session.flush()
        if epoch.id is None:
            raise RuntimeError("the database gave the new epoch no id")
        return epoch.id


def touch(store: Store, epoch_id: int) -> None:
    """Mark the epoch as in use now, so that no other run takes it for stale."""
    with store.writer() as session:
        session.execute(
            sa.update(CheckEpoch)
            .where(col(CheckEpoch.id) == epoch_id)
            .values(used_at=store.clock())
        )


def close_epoch(store: Store, epoch_id: int) -> None:
    """Delete an epoch and every row it kept."""
    with store.writer() as session:
        # The foreign keys cascade; deleting the child rows first spares
        # SQLite a cascade it runs row by row.
        for table in (EpochTag, EpochClaimant, EpochClaim):
            session.execute(sa.delete(table).where(col(table.epoch_id) == epoch_id))
        session.execute(sa.delete(CheckEpoch).where(col(CheckEpoch.id) == epoch_id))
    logger.debug("joint-check epoch %s closed", epoch_id)


def _insert_new(
    session: Session, table: type[SQLModel], rows: list[dict[str, Any]]
) -> None:
    """Insert `rows`, skipping those whose primary key is already there."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing()
    session.execute(statement, rows)


class _Rows:
    """The rows of one party in one epoch."""

    def __init__(self, store: Store, epoch_id: int, party: str) -> None:
        self._store, self._epoch, self._party = store, epoch_id, party

    def _mine(self, table: Any) -> tuple[Any, ...]:
        return (table.epoch_id == self._epoch, table.party == self._party)

    def _read(self, query: Any) -> list[Any]:
        with Session(self._store.engine) as session:
            return list(session.exec(query))


class SqlTagSet(_Rows):
    """A `mpc_lite.psi.TagSet` in the `epoch_tag` table."""

    def update(self, tags: Iterable[bytes]) -> None:
        rows = [
            {"epoch_id": self._epoch, "party": self._party, "tag": tag}
            for tag in dict.fromkeys(tags)
        ]
        with self._store.writer() as session:
            _insert_new(session, EpochTag, rows)

    def contains(self, tags: Sequence[bytes]) -> list[bool]:
        held: set[bytes] = set()
        for chunk in in_chunks(list(dict.fromkeys(tags))):
            held.update(
                self._read(
                    select(EpochTag.tag).where(
                        *self._mine(EpochTag), col(EpochTag.tag).in_(chunk)
                    )
                )
            )
        return [tag in held for tag in tags]

    def __len__(self) -> int:
        query = (
            select(sa.func.count()).select_from(EpochTag).where(*self._mine(EpochTag))
        )
        return int(self._read(query)[0])


class SqlClaimantTags(_Rows):
    """`mpc_lite.aggregate.ClaimantTags` in the `epoch_claimant` table."""

    def learn(self, claimants: Sequence[bytes], tags: Sequence[bytes]) -> None:
        rows = [
            {"epoch_id": self._epoch, "party": self._party, "claimant": c, "tag": t}
            for c, t in zip(claimants, tags, strict=True)
        ]
        with self._store.writer() as session:
            _insert_new(session, EpochClaimant, rows)

    def tags_of(self, claimants: Sequence[bytes]) -> dict[bytes, bytes]:
        return self._pairs(EpochClaimant.claimant, EpochClaimant.tag, claimants)

    def owners_of(self, tags: Sequence[bytes]) -> dict[bytes, bytes]:
        return self._pairs(EpochClaimant.tag, EpochClaimant.claimant, tags)

    def _pairs(
        self, key: Any, value: Any, wanted: Sequence[bytes]
    ) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        for chunk in in_chunks(list(dict.fromkeys(wanted))):
            query = select(key, value).where(
                *self._mine(EpochClaimant), col(key).in_(chunk)
            )
            found.update((k, v) for k, v in self._read(query))
        return found


class SqlClaimIndex(_Rows):
    """A `mpc_lite.fraud.ClaimIndex` in the `epoch_claim` table.

    A claim id is held once per epoch whichever party adds it, so the table
    also tells which live claims the epoch has taken in (`flows.steps`).
    """

    def add(self, claims: Sequence[ClaimInput]) -> list[bytes]:
        if not claims:
            return []
        with self._store.writer() as session:
            held: set[str] = set()
            for chunk in in_chunks([claim.claim_id for claim in claims]):
                held.update(
                    session.exec(
                        select(EpochClaim.claim_id).where(
                            EpochClaim.epoch_id == self._epoch,
                            col(EpochClaim.claim_id).in_(chunk),
                        )
                    )
                )
            new = list(
                {c.claim_id: c for c in claims if c.claim_id not in held}.values()
            )
            _insert_new(
                session,
                EpochClaim,
                [
                    {
                        "epoch_id": self._epoch,
                        "claim_id": claim.claim_id,
                        "party": self._party,
                        "claimant": claim.claimant,
                        "service_day": _ordinal(claim.service_date),
                        "amount": str(Decimal(claim.amount)),
                        "hospital": claim.hospital,
                        "flagged": claim.fraud_flag,
                    }
                    for claim in new
                ],
            )
        return [claim.claimant for claim in new]

    def flag(self, claim_ids: Sequence[str]) -> None:
        with self._store.writer() as session:
            for chunk in in_chunks(list(claim_ids)):
                session.execute(
                    sa.update(EpochClaim)
                    .where(*self._mine(EpochClaim), col(EpochClaim.claim_id).in_(chunk))
                    .values(flagged=True)
                )

    def __call__(self, queries: Sequence[Query]) -> list[ClaimantFeatures | None]:
        rows: dict[bytes, list[tuple[int, str, str, bool]]] = defaultdict(list)
        columns = select(  # type: ignore[call-overload]  # SQLModel types up to 4
            EpochClaim.claimant,
            EpochClaim.service_day,
            EpochClaim.amount,
            EpochClaim.hospital,
            EpochClaim.flagged,
        ).where(*self._mine(EpochClaim))
        for chunk in in_chunks(list(dict.fromkeys(c for c, _ in queries))):
            query = columns.where(col(EpochClaim.claimant).in_(chunk))
            for claimant, *row in self._read(query):
                rows[claimant].append(tuple(row))
        return [claimant_features(rows.get(c, []), end) for c, end in queries]
