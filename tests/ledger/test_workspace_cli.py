"""`claims ledger prove` and `claims ledger verify` on a workspace.

Each kind of tampering named in the ledger issue (a changed, deleted,
inserted or reordered entry; a forked checkpoint) is done with SQL on the
workspace's database, and `claims ledger verify` must name it by index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from claims.cli.main import app
from claims.consortium import Consortium
from claims.settings import Settings
from ledger._tables import LedgerCheckpoint, LedgerEntry, LedgerLog, LedgerNode
from ledger.log import TransparencyLog
from ledger.note import Checkpoint, add_signature_lines, sign_note

from .conftest import records

runner = CliRunner()

_entry = LedgerEntry.__table__  # type: ignore[attr-defined]
_checkpoint = LedgerCheckpoint.__table__  # type: ignore[attr-defined]
_log = LedgerLog.__table__  # type: ignore[attr-defined]
_node = LedgerNode.__table__  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace keys are sealed; these tests' keys protect nothing."""
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "ledger-tests-only")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Three insurers; 16 entries, cosigned checkpoints at sizes 5, 10 and 16."""
    folder = tmp_path / "ws"
    consortium = Consortium(Settings.load(folder))
    for name in ("ins-a", "ins-b", "ins-c"):
        consortium.add_member(name, "insurer", name.upper())
    start = 0
    for count in (5, 5, 6):
        consortium.ledger.append(*records(count, start))
        consortium.finalise_ledger()
        start += count
    consortium.ledger.append(
        [{"type": "settlement", "v": 1, "claim_id": "claim-7"}],
        ["settlement:settlement-claim-7"],
    )
    consortium.finalise_ledger()
    consortium.store.engine.dispose()
    return folder


def _engine(folder: Path) -> sa.Engine:
    return sa.create_engine(Settings.load(folder).database_url)


def _tamper(folder: Path, *statements: sa.Executable) -> None:
    engine = _engine(folder)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)
    engine.dispose()


def _verify(folder: Path) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["-w", str(folder), "ledger", "verify", "--json"])
    return result.exit_code, json.loads(result.stdout)


def _kinds(report: dict[str, Any]) -> set[tuple[str, int | None]]:
    return {(f["kind"], f["index"]) for f in report["findings"]}


def test_verify_passes_on_an_untouched_workspace(workspace: Path) -> None:
    result = runner.invoke(app, ["-w", str(workspace), "ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "ledger verified: claims.consortium.example/ledger, 17 entries" in (
        result.output
    )


def test_changed_entry_is_named(workspace: Path) -> None:
    _tamper(workspace, sa.update(_entry).where(_entry.c.idx == 6).values(data=b"{}"))
    code, report = _verify(workspace)
    assert code == 1
    assert ("changed", 6) in _kinds(report)
    assert "entry 6 was changed" in report["findings"][0]["message"]


def test_deleted_entry_is_named(workspace: Path) -> None:
    _tamper(workspace, sa.delete(_entry).where(_entry.c.idx == 9))
    code, report = _verify(workspace)
    assert code == 1
    assert ("deleted", 9) in _kinds(report)


def test_deleted_entry_with_the_rest_moved_down_is_named(workspace: Path) -> None:
    _tamper(
        workspace,
        sa.delete(_entry).where(_entry.c.idx == 9),
        sa.update(_entry).where(_entry.c.idx > 9).values(idx=-_entry.c.idx + 1),
        sa.update(_entry).where(_entry.c.idx < 0).values(idx=-_entry.c.idx),
        sa.update(_log).values(size=16),
    )
    code, report = _verify(workspace)
    assert code == 1
    assert ("deleted", 9) in _kinds(report)
    messages = " ".join(f["message"] for f in report["findings"])
    assert "entry 9 was deleted; entries 10..16 were moved down by one" in messages
    assert "checkpoint at size 17 is beyond the log size 16" in messages


def test_inserted_entry_is_named(workspace: Path) -> None:
    _tamper(
        workspace,
        sa.update(_entry).where(_entry.c.idx >= 4).values(idx=-_entry.c.idx - 1),
        sa.update(_entry).where(_entry.c.idx < 0).values(idx=-_entry.c.idx),
        sa.insert(_entry).values(log_id=1, idx=4, entry_key="forged", data=b"{}"),
        sa.update(_log).values(size=18),
    )
    code, report = _verify(workspace)
    assert code == 1
    assert ("inserted", 4) in _kinds(report)
    assert any(
        "an entry was inserted at index 4; entries 4..16 were moved up by one"
        in f["message"]
        for f in report["findings"]
    )


def test_appended_entry_beyond_the_size_is_named(workspace: Path) -> None:
    _tamper(
        workspace,
        sa.insert(_entry).values(log_id=1, idx=17, entry_key="late", data=b"{}"),
    )
    code, report = _verify(workspace)
    assert code == 1
    assert ("inserted", 17) in _kinds(report)


def test_reordered_entries_are_named(workspace: Path) -> None:
    engine = _engine(workspace)
    with engine.connect() as conn:
        rows = {
            int(r.idx): (r.entry_key, r.data)
            for r in conn.execute(sa.select(_entry).where(_entry.c.idx.in_([3, 7])))
        }
    engine.dispose()
    _tamper(
        workspace,
        sa.update(_entry).where(_entry.c.idx == 3).values(entry_key="tmp"),
        sa.update(_entry)
        .where(_entry.c.idx == 7)
        .values(entry_key=rows[3][0], data=rows[3][1]),
        sa.update(_entry)
        .where(_entry.c.idx == 3)
        .values(entry_key=rows[7][0], data=rows[7][1]),
    )
    code, report = _verify(workspace)
    assert code == 1
    assert ("reordered", 3) in _kinds(report)
    assert "entries 3 and 7 were swapped" in report["findings"][0]["message"]


def test_forked_checkpoint_is_named(workspace: Path) -> None:
    consortium = Consortium.open(workspace)
    forged = sign_note(
        Checkpoint(consortium.ledger.origin, 10, bytes(32)).to_text(),
        [consortium.ledger.signer],
    )
    consortium.store.engine.dispose()
    _tamper(
        workspace,
        sa.update(_checkpoint)
        .where(_checkpoint.c.size == 10)
        .values(note=forged, root_hash=bytes(32)),
    )
    code, report = _verify(workspace)
    assert code == 1
    assert ("fork", 5) in _kinds(report)
    fork = next(f for f in report["findings"] if f["kind"] == "fork")
    assert "checkpoint at size 10 has root 0000000000000000..." in fork["message"]
    assert "entries 5..9 differ from what was signed" in fork["message"]
    assert "not consistent with the checkpoint at size 16" in fork["message"]
    # the forged checkpoint carries no cosignature
    assert ("quorum", None) in _kinds(report)


def test_bad_cosignature_is_named(workspace: Path) -> None:
    engine = _engine(workspace)
    with engine.connect() as conn:
        note = conn.execute(
            sa.select(_checkpoint.c.note).where(_checkpoint.c.size == 16)
        ).scalar_one()
    engine.dispose()
    text, block = note.split("\n\n")
    lines = block.splitlines()
    name, data = lines[1].rsplit(" ", 1)
    flipped = data[:20] + ("A" if data[20] != "A" else "B") + data[21:]
    altered = text + "\n\n" + "\n".join([lines[0], f"{name} {flipped}"]) + "\n"
    altered = add_signature_lines(altered, [line + "\n" for line in lines[2:]])
    _tamper(
        workspace,
        sa.update(_checkpoint).where(_checkpoint.c.size == 16).values(note=altered),
    )
    code, report = _verify(workspace)
    assert code == 1
    assert ("cosignature", None) in _kinds(report)
    assert (
        "checkpoint at size 16: the cosignature by" in report["findings"][0]["message"]
    )


def test_verify_prints_findings_without_json(workspace: Path) -> None:
    _tamper(workspace, sa.update(_entry).where(_entry.c.idx == 2).values(data=b"[]"))
    result = runner.invoke(app, ["-w", str(workspace), "ledger", "verify"])
    assert result.exit_code == 1
    assert "ledger NOT verified" in result.output
    assert "changed at entry 2: log claims.consortium.example/ledger: entry 2" in (
        result.output.replace("\n", " ")
    )


@pytest.mark.parametrize(
    ("entry_id", "index"),
    [("16", 16), ("event-3", 3), ("claim-7", 16)],
)
def test_prove_finds_an_entry_by_index_key_or_claim(
    workspace: Path, tmp_path: Path, entry_id: str, index: int
) -> None:
    out = tmp_path / "receipt.json"
    args = ["-w", str(workspace), "ledger", "prove", entry_id, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    receipt = json.loads(out.read_text())
    assert receipt["leaf_index"] == index
    keys = tmp_path / "keys.json"
    consortium = Consortium.open(workspace)
    keys.write_text(json.dumps(consortium.trust_file()))
    consortium.store.engine.dispose()
    result = runner.invoke(
        app, ["ledger", "verify-receipt", str(out), "--keys-file", str(keys)]
    )
    assert result.exit_code == 0, result.output
    assert "3 cosignature(s)" in result.output


def test_prove_writes_to_stdout(workspace: Path) -> None:
    result = runner.invoke(app, ["-w", str(workspace), "ledger", "prove", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entry"] == records(1)[0][0]


@pytest.mark.parametrize(
    ("entry_id", "message"),
    [("99", "entry 99 is beyond the ledger"), ("nope", "no ledger entry with key")],
)
def test_prove_refuses_an_unknown_entry(
    workspace: Path, entry_id: str, message: str
) -> None:
    result = runner.invoke(app, ["-w", str(workspace), "ledger", "prove", entry_id])
    assert result.exit_code != 0
    assert message in str(result.exception)


def test_commands_explain_a_missing_workspace(tmp_path: Path) -> None:
    result = runner.invoke(app, ["-w", str(tmp_path / "none"), "ledger", "verify"])
    assert result.exit_code != 0
    assert "no store in" in str(result.exception)


def test_rewritten_entries_and_hashes_are_caught_by_the_checkpoints(
    workspace: Path,
) -> None:
    """An attacker who rebuilds the whole tree still contradicts the signatures."""
    consortium = Consortium.open(workspace)
    signer = consortium.ledger.signer
    consortium.store.engine.dispose()
    scratch = sa.create_engine("sqlite://")
    rebuilt = TransparencyLog(scratch, signer.name, signer)
    items, keys = records(16)
    items[6] = {"type": "test.event", "v": 1, "n": 600}
    rebuilt.append(items, keys)
    rebuilt.append(
        [{"type": "settlement", "v": 1, "claim_id": "claim-7"}],
        ["settlement:settlement-claim-7"],
    )
    with scratch.connect() as conn:
        entries = [dict(r._mapping) for r in conn.execute(sa.select(_entry))]
        nodes = [dict(r._mapping) for r in conn.execute(sa.select(_node))]
    _tamper(
        workspace,
        sa.delete(_entry),
        sa.delete(_node),
        sa.insert(_entry).values(entries),
        sa.insert(_node).values(nodes),
    )
    code, report = _verify(workspace)
    assert code == 1
    kinds = _kinds(report)
    assert ("fork", 5) in kinds
    assert not {kind for kind, _ in kinds} & {"changed", "node", "deleted"}
    fork = next(f for f in report["findings"] if f["kind"] == "fork")
    assert "checkpoint at size 10" in fork["message"]
    assert "entries 5..9 differ from what was signed" in fork["message"]
