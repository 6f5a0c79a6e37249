"""SQLModel tables of the ledger, all prefixed ``ledger_``.

Importing this module registers the tables on ``SQLModel.metadata``; the
claims store creates them with its own. Column types are portable
(BIGINT, VARCHAR, BLOB/BYTEA, TEXT); ``sqlite_with_rowid`` only tunes
SQLite and is ignored elsewhere.

Several logs can share one database: every row carries its log's id.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "LedgerCheckpoint",
    "LedgerEntry",
    "LedgerLog",
    "LedgerNode",
    "LedgerWitnessState",
    "ledger_tables",
]


class LedgerLog(SQLModel, table=True):
    """One transparency log: its origin line and current tree size."""

    __tablename__ = "ledger_log"

    id: int | None = Field(default=None, primary_key=True)
    origin: str = Field(
        sa_column=sa.Column(sa.String(255), unique=True, nullable=False)
    )
    size: int = Field(default=0, sa_type=sa.BigInteger)


class LedgerEntry(SQLModel, table=True):
    """An appended record: its idempotency key and JCS-canonical bytes."""

    __tablename__ = "ledger_entry"
    __table_args__ = (
        # key first: SQLite then looks keys up through this index
        sa.UniqueConstraint("entry_key", "log_id", name="uq_ledger_entry_key"),
        {"sqlite_with_rowid": False},
    )

    log_id: int = Field(primary_key=True, foreign_key="ledger_log.id")
    idx: int = Field(
        sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False)
    )
    entry_key: str = Field(sa_type=sa.String(255))
    data: bytes


class LedgerNode(SQLModel, table=True):
    """A complete subtree hash: leaves ``idx * 2**level`` to ``(idx+1) * 2**level``.

    Level 0 holds the leaf hashes (RFC 9162 section 2.1.1).
    """

    __tablename__ = "ledger_node"
    __table_args__ = ({"sqlite_with_rowid": False},)

    log_id: int = Field(primary_key=True, foreign_key="ledger_log.id")
    level: int = Field(
        sa_column=sa.Column(sa.SmallInteger, primary_key=True, autoincrement=False)
    )
    idx: int = Field(
        sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False)
    )
    hash: bytes


class LedgerCheckpoint(SQLModel, table=True):
    """A signed checkpoint note of one tree size, with the cosignatures added."""

    __tablename__ = "ledger_checkpoint"

    log_id: int = Field(primary_key=True, foreign_key="ledger_log.id")
    size: int = Field(
        sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False)
    )
    root_hash: bytes
    note: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=sa.DateTime)


class LedgerWitnessState(SQLModel, table=True):
    """What one witness last cosigned for one log origin."""

    __tablename__ = "ledger_witness_state"

    witness: str = Field(sa_column=sa.Column(sa.String(255), primary_key=True))
    origin: str = Field(sa_column=sa.Column(sa.String(255), primary_key=True))
    size: int = Field(sa_type=sa.BigInteger)
    root_hash: bytes
    updated_at: datetime = Field(sa_type=sa.DateTime)


def ledger_tables() -> list[sa.Table]:
    """The ledger's tables, for ``metadata.create_all(engine, tables=...)``."""
    return [
        LedgerLog.__table__,  # type: ignore[attr-defined]
        LedgerEntry.__table__,  # type: ignore[attr-defined]
        LedgerNode.__table__,  # type: ignore[attr-defined]
        LedgerCheckpoint.__table__,  # type: ignore[attr-defined]
        LedgerWitnessState.__table__,  # type: ignore[attr-defined]
    ]
