"""The user's mistakes are said as theirs.

About files and stores: exit 1 with what is wrong. They used to end as an
internal error (exit 70): `-o` naming a folder raised IsADirectoryError, and
a store that may only be read was called damaged. About the command line:
exit 2, a usage error, as for any flag click itself refuses; they used to
exit 1 like a failed check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from claims.cli.main import app
from claims.consortium import Consortium
from claims.store import Claim
from tests.claims._text import flat

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


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["insurer", "enrol", "did:key:z6Mkx", "--since", "2020-13-01"],
            "Invalid value for '--since': '2020-13-01' is not a YYYY-MM-DD date",
        ),
        (
            ["insurer", "enrol", "nodid"],
            "Invalid value for 'DID': 'nodid' is not a did:key",
        ),
        (
            ["vc", "verify", "{empty}", "--context", "nourl"],
            "Invalid value for '--context': 'nourl' is not URL=FILE",
        ),
        (
            ["track", "--insurer-url", "http://127.0.0.1:9"],
            "Invalid value for '--wallet' / '--key-file': no holder key given",
        ),
    ],
)
def test_a_flag_given_wrong_or_left_out_is_a_usage_error(
    args: list[str], said: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("{}", encoding="utf-8")
    args = [arg.replace("{empty}", str(empty)) for arg in args]
    result = CliRunner().invoke(app, ["-w", str(tmp_path / "ws"), *args])
    assert result.exit_code == 2, result.output
    assert said in flat(result.output)


def test_text_that_looks_like_markup_is_printed_as_it_is(
    consortium: Consortium,
) -> None:
    """A reviewer's reason with "[/]" in it used to make `claims status` and
    `claims review show` fail with Rich's MarkupError (exit 70) for everyone."""
    with Session(consortium.store.engine) as session:
        held = session.exec(select(Claim).where(Claim.state == "in_review")).first()
    assert held is not None
    reason = "[/] paid twice [bold]before[/bold]"
    workspace = ["-w", str(consortium.settings.workspace)]
    runner = CliRunner()
    denied = runner.invoke(
        app, [*workspace, "review", "deny", held.id, "--reason", reason]
    )
    assert denied.exit_code == 0, denied.output
    for command in (["status"], ["status", held.id], ["review", "show", held.id]):
        shown = runner.invoke(app, [*workspace, *command], env={"COLUMNS": "400"})
        assert shown.exit_code == 0, (command, shown.output, shown.exception)
        assert reason in shown.output, command
