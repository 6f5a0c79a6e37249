"""The user's mistakes are said as theirs.

About files and stores: exit 1 with what is wrong. They used to end as an
internal error (exit 70): `-o` naming a folder raised IsADirectoryError, and
a store that may only be read was called damaged. About the command line:
exit 2, a usage error, as for any flag click itself refuses; they used to
exit 1 like a failed check.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from claims.cli.main import app
from claims.consortium import Consortium
from claims.errors import ConfigError, NotFound
from claims.store import Claim, Enrollment
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


def _filled(args: list[str], **paths: Path) -> list[str]:
    """`args` with each `{name}` replaced by the path given for it."""
    for name, path in paths.items():
        args = [arg.replace(f"{{{name}}}", str(path)) for arg in args]
    return args


def test_writing_a_receipt_over_a_folder_says_so(
    consortium: Consortium, tmp_path: Path
) -> None:
    folder = tmp_path / "receipts"
    folder.mkdir()
    workspace = str(consortium.settings.workspace)
    done = _claims("-w", workspace, "ledger", "prove", "1", "-o", str(folder))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"error: cannot use {folder}: Is a directory"
    missing = tmp_path / "no-such-folder" / "r.json"
    done = _claims("-w", workspace, "ledger", "prove", "1", "-o", str(missing))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"error: cannot use {missing}: No such file or directory"
    )
    assert not missing.parent.exists()  # as `hospital issue --out`: not made


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
        (
            ["hospital", "init", "h[red]1"],
            "Invalid value for 'hospital_id': 'h[red]1' cannot name a member",
        ),
        (
            ["insurer", "init", "Big_Insurer"],
            "Invalid value for 'insurer_id': 'Big_Insurer' cannot name a member",
        ),
    ],
)
def test_a_flag_given_wrong_or_left_out_is_a_usage_error(
    args: list[str], said: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("{}", encoding="utf-8")
    args = _filled(args, empty=empty)
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


def test_a_store_on_read_only_media_can_be_read_and_refuses_writes(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite must create claims.db-wal and -shm even to read; on a read-only
    file system it could not, and `status` or `ledger verify` called the store
    damaged. Such a file is now opened as immutable."""
    with Session(consortium.store.engine) as session:
        held = session.exec(select(Claim).where(Claim.state == "in_review")).first()
    assert held is not None
    consortium.store.engine.dispose()
    workspace = consortium.settings.workspace
    # As a snapshot would be: the log folded into the file, no -wal or -shm.
    with closing(sqlite3.connect(workspace / "claims.db")) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    assert not (workspace / "claims.db-wal").exists()
    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, path: str) -> None:
            self.f_flag = real_statvfs(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr("claims.store.os.statvfs", ReadOnly)
    runner = CliRunner()
    for command in (["status"], ["ledger", "verify"], ["review", "list"]):
        result = runner.invoke(app, ["-w", str(workspace), *command])
        assert result.exit_code == 0, (command, result.output, result.exception)
    assert not (workspace / "claims.db-wal").exists()
    refused = runner.invoke(app, ["-w", str(workspace), "review", "approve", held.id])
    assert "attempt to write a readonly database" in str(refused.exception)


def test_a_sqlite_url_to_a_missing_file_names_that_file(tmp_path: Path) -> None:
    """It used to say "no store in <workspace>", which the URL had replaced."""
    missing = tmp_path / "elsewhere" / "store.db"
    result = CliRunner().invoke(
        app,
        ["-w", str(tmp_path / "ws"), "status"],
        env={"CLAIMS_DATABASE_URL": f"sqlite:///{missing}"},
    )
    assert isinstance(result.exception, NotFound)
    assert str(result.exception) == (
        f"no store at {missing}, where CLAIMS_DATABASE_URL points"
    )


def test_a_database_server_that_does_not_answer_is_not_called_damaged(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://claims:secret-pw@127.0.0.1:{port}/claims"
    done = _claims(
        "-w", str(tmp_path / "ws"), "status", env={"CLAIMS_DATABASE_URL": url}
    )
    assert done.returncode == 1, done.stderr
    assert "the database server could not be reached" in done.stderr
    assert "damaged" not in done.stderr
    assert "secret-pw" not in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["adjudicate", "/dev/zero"], "error: /dev/zero goes on past 67108864 bytes"),
        (
            ["ledger", "verify-receipt", "/dev/zero", "-k", "x"],
            "error: receipt file /dev/zero goes on past",
        ),
        (
            ["ledger", "verify-checkpoint", "{note}", "--keys-file", "/dev/zero"],
            "error: keys file /dev/zero goes on past",
        ),
        (
            ["-w", "{ws}", "insurer", "init", "i9", "--policy", "/dev/zero"],
            "error: policy /dev/zero goes on past 1048576 bytes",
        ),
    ],
)
def test_an_endless_file_is_read_only_up_to_the_limit(
    args: list[str], said: str, tmp_path: Path
) -> None:
    """/dev/zero used to be read until memory ran out (MemoryError, exit 70)."""
    note = tmp_path / "note.txt"
    note.write_text("example.com/log\n1\nAAAA\n\n", encoding="utf-8")
    workspace = tmp_path / "ws"
    args = _filled(args, note=note, ws=workspace)
    done = _claims(*args)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(said)
    assert "; the limit is " in done.stderr
    assert not workspace.exists()  # refused before anything was made


def test_enrolling_again_with_another_start_is_refused_not_ignored(
    consortium: Consortium,
) -> None:
    with Session(consortium.store.engine) as session:
        held = session.exec(select(Enrollment)).first()
    assert held is not None
    workspace = ["-w", str(consortium.settings.workspace)]
    enrol = [*workspace, "insurer", "enrol", held.claimant_did]
    enrol += ["--insurer", held.insurer_id]
    runner = CliRunner()
    moved = runner.invoke(app, [*enrol, "--since", "2099-01-01"])
    assert isinstance(moved.exception, ConfigError)
    assert f"since {held.since}; an enrolment's start is not changed" in str(
        moved.exception
    )
    for again in ([], ["--since", str(held.since)]):
        result = runner.invoke(app, [*enrol, *again, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["since"] == str(held.since)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["ledger", "verify-receipt", "{dir}", "-k", "x"], "receipt file {dir} (Is a"),
        (["adjudicate", "{dir}"], "cannot read {dir} (Is a directory)"),
        (["adjudicate", "c.json", "--policy", "{dir}/x/p.toml"], "no policy file"),
        (["vc", "verify", "/dev/zero"], "error: /dev/zero is not a regular file"),
        (["vc", "verify", "{dir}"], "is not a regular file"),
    ],
)
def test_a_folder_or_a_missing_file_is_named_with_its_whole_path(
    args: list[str], said: str, tmp_path: Path
) -> None:
    args = _filled(args, dir=tmp_path)
    done = _claims(*args)
    assert done.returncode in (1, 3), done.stderr
    assert said.replace("{dir}", str(tmp_path)) in " ".join(done.stderr.split())
    assert "Errno" not in done.stderr


def test_a_sqlite_file_in_a_missing_folder_is_not_called_damaged(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/no-such-folder/claims.db"
    done = _claims(
        "-w", str(tmp_path / "ws"), "insurer", "init", "i9",
        env={"CLAIMS_DATABASE_URL": url},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "SQLite cannot open its file" in " ".join(done.stderr.split())
    assert "damaged" not in done.stderr


def test_a_gateway_url_that_is_no_url_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("07" * 32, encoding="utf-8")  # a holder's seed
    done = _claims(
        "-w", str(tmp_path / "ws"), "track", "--insurer-url", "http://[::1",
        "--key-file", str(tmp_path / "k"),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: --insurer-url is not a URL")


def test_serve_on_a_port_in_use_is_refused_before_it_announces_itself(
    consortium: Consortium,
) -> None:
    """It printed its banner, then uvicorn's raw bind error, and exited 3."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _claims(
            "-w", str(consortium.settings.workspace), "insurer", "serve",
            "--port", str(port), "--no-flow",
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use)"
    )
    assert "gateway of" not in done.stderr
