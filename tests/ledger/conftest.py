"""Fixtures for the ledger tests: an in-memory store, keys and a log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, create_engine

import ledger  # noqa: F401  (registers the ledger tables)
from ledger.log import TransparencyLog
from ledger.note import NoteSigner

ORIGIN = "ledger.example/claims"


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine(
        "sqlite://",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
    )
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, bytes(range(32)))


@pytest.fixture
def log(engine: Engine, signer: NoteSigner) -> TransparencyLog:
    return TransparencyLog(engine, ORIGIN, signer)


def records(count: int, start: int = 0) -> tuple[list[dict[str, object]], list[str]]:
    """``count`` small settlement-like records and their idempotency keys."""
    items = [
        {"type": "test.event", "v": 1, "n": n, "hash": f"{n:064x}"}
        for n in range(start, start + count)
    ]
    return items, [f"event-{n}" for n in range(start, start + count)]
