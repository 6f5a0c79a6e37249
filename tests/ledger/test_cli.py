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
    assert "1 trusted cosignatures, 2 required" in result.output


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


def test_verify_checkpoint_needs_every_key_given(
    tmp_path: Path, receipt: dict[str, Any], signer: NoteSigner
) -> None:
    path = _write(tmp_path, "cp.txt", receipt["checkpoint"])
    args = ["verify-checkpoint", str(path), "--key", signer.vkey]
    result = runner.invoke(app, [*args, "--key", WITNESS.vkey])
    assert result.exit_code == 0, result.output
    assert "signed by ledger.example/claims, w.example" in result.output
    absent = CosignatureSigner.generate("absent.example")
    result = runner.invoke(app, [*args, "--key", absent.vkey])
    assert result.exit_code == 1
    assert "no valid signature by absent.example" in result.output


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
