"""Mistakes about files and stores are the user's: exit 1 with what is wrong.

They used to end as an internal error (exit 70): `-o` naming a folder raised
IsADirectoryError, and a store that may only be read was called damaged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.store import Claim

CLAIMS = str(Path(sys.executable).parent / "claims")


def _claims(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLAIMS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "500", **(env or {})},
    )


def test_writing_a_receipt_over_a_folder_says_so(
    consortium: Consortium, tmp_path: Path
) -> None:
    folder = tmp_path / "receipts"
    folder.mkdir()
    workspace = str(consortium.settings.workspace)
    done = _claims("-w", workspace, "ledger", "prove", "1", "-o", str(folder))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"error: cannot use {folder}: Is a directory"


def test_a_store_that_may_only_be_read_is_not_called_damaged(
    consortium: Consortium,
) -> None:
    with Session(consortium.store.engine) as session:
        held = session.exec(select(Claim).where(Claim.state == "in_review")).first()
    assert held is not None
    database = consortium.settings.workspace / "claims.db"
    read_only = f"sqlite:///file:{database}?mode=ro&uri=true"
    workspace = str(consortium.settings.workspace)
    done = _claims(
        "-w", workspace, "review", "approve", held.id,
        env={"CLAIMS_DATABASE_URL": read_only},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    message = " ".join(done.stderr.split())
    assert "may only be read here" in message
    assert "damaged" not in message
    with Session(consortium.store.engine) as session:
        after = session.get(Claim, held.id)
        assert after is not None and after.state == "in_review"
