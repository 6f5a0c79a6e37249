"""The child process of the crash test: appends, checkpoints, cosigns; stops where told.

Run as ``python _crash_child.py DB_PATH STOP_AT``. The work is two batches,
each appended, checkpointed and cosigned by three witnesses. ``STOP_AT``
names a point inside the second batch's work; when the child reaches it,
it prints ``STOPPED`` and sleeps so that the parent kills it right there,
inside the open transaction (or between two transactions for ``cosign``).
``none`` runs the work to the end; the parent uses it to redo the work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

import ledger.log
from ledger.log import TransparencyLog
from ledger.note import NoteSigner
from ledger.witness import SqlWitnessState, Witness

ORIGIN = "crash.example/log"
LOG_SEED = bytes(range(32))
WITNESS_SEEDS = [bytes([n]) * 32 for n in (11, 12, 13)]
BATCHES = [(0, 20), (20, 30)]


def batch(start: int, count: int) -> tuple[list[dict[str, Any]], list[str]]:
    items = [
        {"type": "test.event", "v": 1, "n": n} for n in range(start, start + count)
    ]
    return items, [f"event-{n}" for n in range(start, start + count)]


def engine_for(path: Path) -> sa.Engine:
    """A file database configured like the claims store (WAL, synchronous NORMAL)."""
    engine = sa.create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def parts(engine: sa.Engine) -> tuple[TransparencyLog, list[Witness]]:
    log = TransparencyLog(engine, ORIGIN, NoteSigner(ORIGIN, LOG_SEED))
    state = SqlWitnessState(engine)
    witnesses = [
        Witness(f"w{n}.example", seed, state, logs=[log.signer.vkey])
        for n, seed in enumerate(WITNESS_SEEDS)
    ]
    return log, witnesses


def work(log: TransparencyLog, witnesses: list[Witness], armed: list[bool]) -> None:
    for number, (start, count) in enumerate(BATCHES):
        armed[0] = number == len(BATCHES) - 1
        log.append(*batch(start, count))
        log.checkpoint()
        log.cosign(witnesses, len(witnesses))


def stop() -> None:
    print("STOPPED", flush=True)
    time.sleep(600)


def main(path: Path, stop_at: str) -> None:
    engine = engine_for(path)
    log, witnesses = parts(engine)
    armed = [False]
    phase = {"name": ""}

    if stop_at == "append-entries":
        original = ledger.log.bulk_insert

        def hooked(conn: Any, table: str, columns: Any, rows: Any) -> None:
            original(conn, table, columns, rows)
            if armed[0] and table == "ledger_entry":
                stop()

        ledger.log.bulk_insert = hooked  # type: ignore[assignment]

    if stop_at in ("append-commit", "checkpoint-commit"):
        wanted = stop_at.split("-")[0]
        for name in ("append", "checkpoint"):
            method = getattr(TransparencyLog, name)

            def wrapper(self: Any, *args: Any, _m: Any = method, _n: str = name) -> Any:
                phase["name"] = _n
                try:
                    return _m(self, *args)
                finally:
                    phase["name"] = ""

            setattr(TransparencyLog, name, wrapper)

        @event.listens_for(engine, "commit")
        def _before_commit(_conn: Any) -> None:
            if armed[0] and phase["name"] == wanted:
                stop()

    if stop_at == "cosign":
        original_cas = SqlWitnessState.compare_and_set

        def cas(self: Any, *args: Any) -> bool:
            stored = original_cas(self, *args)
            if armed[0] and stored:
                stop()
            return stored

        SqlWitnessState.compare_and_set = cas  # type: ignore[method-assign]

    work(log, witnesses, armed)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
