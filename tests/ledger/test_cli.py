"""The offline ``claims ledger`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.log import TransparencyLog
from ledger.note import CosignatureSigner, NoteSigner, add_signatures

from .conftest import records

runner = CliRunner()
WITNESS = CosignatureSigner("w.example", bytes([7]) * 32)


@pytest.fixture
def receipt(log: TransparencyLog) -> dict[str, Any]:
    log.append(*records(5))
    log.checkpoint()
    made = log.receipt(2)
    made["checkpoint"] = add_signatures(made["checkpoint"], [WITNESS])
    return made


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_verify_receipt_succeeds_with_one_line(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    path = _write(tmp_path, "r.json", json.dumps(receipt))
    result = runner.invoke(app, ["verify-receipt", str(path), "--key", signer.vkey])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    assert "receipt verified: entry 2 of ledger.example/claims" in result.output


def test_verify_receipt_reads_a_keys_file_and_counts_cosigners(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    path = _write(tmp_path, "r.json", json.dumps(receipt))
    keys = _write(tmp_path, "keys.json", json.dumps([signer.vkey, WITNESS.vkey]))
    args = ["verify-receipt", str(path), "--keys-file", str(keys)]
    result = runner.invoke(app, [*args, "--min-cosignatures", "1"])
    assert result.exit_code == 0, result.output
    assert "1 cosignature(s)" in result.output
    result = runner.invoke(app, [*args, "--min-cosignatures", "2"])
    assert result.exit_code == 1
    assert "1 trusted cosignature, 2 required" in result.output


def test_verify_receipt_fails_with_the_reason(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    receipt["entry"]["n"] = 3
    path = _write(tmp_path, "r.json", json.dumps(receipt))
    result = runner.invoke(app, ["verify-receipt", str(path), "--key", signer.vkey])
    assert result.exit_code == 1
    assert "receipt NOT verified: receipt inclusion check failed" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "message", "code"),
    [
        (None, "does not exist", 3),
        ("{not json", "is not valid JSON (line 1, column 2", 1),
    ],
)
def test_verify_receipt_explains_unusable_files(
    tmp_path: Path, signer: NoteSigner, content: str | None, message: str, code: int
) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["verify-receipt", str(path), "--key", signer.vkey])
    assert result.exit_code == code
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_verify_receipt_needs_a_key(tmp_path: Path, receipt: dict[str, Any]) -> None:
    path = _write(tmp_path, "r.json", json.dumps(receipt))
    result = runner.invoke(app, ["verify-receipt", str(path)])
    assert result.exit_code == 1
    assert "give at least one trusted key" in result.output


def test_verify_checkpoint_holds_the_rule_a_receipt_is_held_to(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    path = _write(tmp_path, "cp.txt", receipt["checkpoint"])
    absent = CosignatureSigner.generate("absent.example")
    args = ["verify-checkpoint", str(path), "--key", signer.vkey]
    args += ["--key", WITNESS.vkey, "--key", absent.vkey]
    result = runner.invoke(app, [*args, "--min-cosignatures", "1"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "checkpoint verified: ledger.example/claims at tree size 5, "
        "signed by ledger.example/claims, 1 cosignature(s)\n"
    )
    result = runner.invoke(app, [*args, "--min-cosignatures", "2"])
    assert result.exit_code == 1
    assert result.output == (
        "checkpoint NOT verified: 1 trusted cosignature, 2 required\n"
    )
    result = runner.invoke(app, ["verify-checkpoint", str(path), "-k", WITNESS.vkey])
    assert result.exit_code == 1
    assert "no log key (Ed25519, type 0x01) is trusted" in result.output


def test_a_keys_files_quorum_means_the_same_to_both_commands(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    """Two of three witnesses asked for; only one cosigned: both refuse."""
    others = [CosignatureSigner.generate(f"w{i}.example").vkey for i in (2, 3)]
    trust = {"keys": [signer.vkey, WITNESS.vkey, *others], "min_cosignatures": 2}
    keys = _write(tmp_path, "ledger-keys.json", json.dumps(trust))
    note = _write(tmp_path, "cp.txt", receipt["checkpoint"])
    whole = _write(tmp_path, "r.json", json.dumps(receipt))
    for command, path in (("verify-checkpoint", note), ("verify-receipt", whole)):
        result = runner.invoke(app, [command, str(path), "--keys-file", str(keys)])
        assert result.exit_code == 1, (command, result.output)
        assert "1 trusted cosignature, 2 required" in result.output, command
    trust["min_cosignatures"] = 1
    keys.write_text(json.dumps(trust), encoding="utf-8")
    for command, path in (("verify-checkpoint", note), ("verify-receipt", whole)):
        result = runner.invoke(app, [command, str(path), "--keys-file", str(keys)])
        assert result.exit_code == 0, (command, result.output)


def test_a_negative_quorum_is_a_usage_error(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    path = _write(tmp_path, "cp.txt", receipt["checkpoint"])
    args = ["verify-checkpoint", str(path), "-k", signer.vkey]
    result = runner.invoke(app, [*args, "--min-cosignatures", "-1"])
    assert result.exit_code == 2


def test_verify_checkpoint_rejects_a_bad_signature(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    tampered = receipt["checkpoint"].replace("\n5\n", "\n6\n")
    path = _write(tmp_path, "cp.txt", tampered)
    result = runner.invoke(app, ["verify-checkpoint", str(path), "--key", signer.vkey])
    assert result.exit_code == 1
    assert (
        "checkpoint NOT verified: signature by ledger.example/claims" in result.output
    )
