"""Crash safety: a child process killed inside an append, a checkpoint or a cosign.

The child (`_crash_child.py`) runs two batches of append, checkpoint and
cosign on a SQLite file (WAL, as the claims store runs it). It stops at a
named point of the second batch and says so; the test then kills it with
SIGKILL, so the kill lands inside the open transaction. After the kill the
log must verify with no partial batch, and redoing the whole work must
complete it exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger._tables import LedgerEntry

from ._crash_child import BATCHES, engine_for, parts, work

CHILD = Path(__file__).with_name("_crash_child.py")
FIRST = BATCHES[0][1]
TOTAL = sum(count for _, count in BATCHES)


def _run_child(db: Path, stop_at: str) -> None:
    """Start the child, wait until it stops where asked, and SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), stop_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != "STOPPED":
        child.kill()
        _, error = child.communicate()
        pytest.fail(f"child did not reach {stop_at}: {line!r} {error[-2000:]}")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    child.stdout.close()
    assert child.stderr is not None
    child.stderr.close()


def _keys(engine: sa.Engine) -> list[str]:
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return [str(k) for k in conn.execute(sa.select(table.c.entry_key)).scalars()]


@pytest.mark.parametrize(
    ("stop_at", "size_after_kill", "checkpointed"),
    [
        ("append-entries", FIRST, FIRST),
        ("append-commit", FIRST, FIRST),
        ("checkpoint-commit", TOTAL, FIRST),
        ("cosign", TOTAL, TOTAL),
    ],
)
def test_a_killed_child_leaves_no_partial_batch_and_the_work_completes_once(
    tmp_path: Path, stop_at: str, size_after_kill: int, checkpointed: int
) -> None:
    db = tmp_path / "ledger.db"
    _run_child(db, stop_at)

    # After the kill: the log verifies, holds whole batches only.
    engine = engine_for(db)
    log, witnesses = parts(engine)
    assert log.size() == size_after_kill
    log.verify()
    assert log.audit() == []
    keys = _keys(engine)
    assert len(keys) == size_after_kill == len(set(keys))
    latest = log.latest_checkpoint()
    assert latest is not None
    assert f"\n{checkpointed}\n" in latest

    # Redo the whole work: it completes, and doing it again changes nothing.
    work(log, witnesses, [False])
    root = log.root()
    work(log, witnesses, [False])
    assert log.size() == TOTAL
    assert log.root() == root
    keys = _keys(engine)
    assert sorted(keys) == sorted(f"event-{n}" for n in range(TOTAL))
    vkeys = [w.vkey for w in witnesses]
    assert log.audit(vkeys, quorum=len(witnesses)) == []
    note = log.latest_checkpoint()
    assert note is not None and f"\n{TOTAL}\n" in note
    assert note.count("\u2014 ") == 1 + len(witnesses)
    engine.dispose()


def test_the_child_runs_to_the_end_when_not_stopped(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    done = subprocess.run(
        [sys.executable, str(CHILD), str(db), "none"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.stdout.strip() == "DONE", done.stderr[-2000:]
    engine = engine_for(db)
    log, _ = parts(engine)
    assert log.size() == TOTAL
    engine.dispose()
