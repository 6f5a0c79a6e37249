"""The issue's bad-input list, one test each, through the receipt and CLI paths.

Malformed notes, truncated or padded proofs, a proof for a tree larger than
the checkpoint, an index beyond the size, sizes beyond 2^63: each must give
a clear `LedgerError` (or exit 1 with one line from the CLI), never a crash.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger import merkle
from ledger.cli import app
from ledger.errors import InvalidKey, MalformedNote, ReceiptError, TreeSizeError
from ledger.log import TransparencyLog
from ledger.note import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    verify_note,
)
from ledger.receipt import verify_receipt

from .conftest import records

runner = CliRunner()


@pytest.fixture
def receipt(log: TransparencyLog) -> dict[str, Any]:
    log.append(*records(11))
    log.checkpoint()
    return log.receipt(6)


def _cli_fails(
    tmp_path: Path, receipt: dict[str, Any], vkey: str, message: str
) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(receipt))
    result = runner.invoke(app, ["verify-receipt", str(path), "--key", vkey])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda n: n.replace("\n\n", "\n", 1), "no blank line before its signatures"),
        (lambda n: n.replace("\u2014 ", "- "), "does not start with an em dash"),
        (lambda n: n[: n.rindex(" ") + 1] + "@@@@\n", "is not valid base64"),
    ],
)
def test_malformed_checkpoint_in_a_receipt(
    receipt: dict[str, Any],
    signer: NoteSigner,
    tmp_path: Path,
    mangle: Any,
    message: str,
) -> None:
    receipt["checkpoint"] = mangle(receipt["checkpoint"])
    with pytest.raises(ReceiptError, match=message) as caught:
        verify_receipt(receipt, [signer.vkey])
    assert caught.value.step == "checkpoint"
    _cli_fails(tmp_path, receipt, signer.vkey, message)


def test_unknown_key_type_is_refused(signer: NoteSigner, tmp_path: Path) -> None:
    name, key_id, data = signer.vkey.split("+", 2)
    raw = base64.b64decode(data)
    other_type = base64.b64encode(b"\x02" + raw[1:]).decode()
    with pytest.raises(InvalidKey, match="not an Ed25519 key of type 0x01 or 0x04"):
        NoteVerifier.from_vkey(f"{name}+{key_id}+{other_type}")
    path = tmp_path / "cp.txt"
    path.write_text("x\n\n\u2014 x AAAAAAA=\n")
    result = runner.invoke(
        app, ["verify-checkpoint", str(path), "--key", f"{name}+{key_id}+{other_type}"]
    )
    assert result.exit_code == 1
    assert "not an Ed25519 key of type 0x01 or 0x04" in result.output


def test_unknown_signer_next_to_a_valid_one_is_ignored(
    receipt: dict[str, Any], signer: NoteSigner
) -> None:
    stranger = NoteSigner.generate("stranger.example")
    receipt["checkpoint"] = add_signatures(receipt["checkpoint"], [stranger])
    assert verify_receipt(receipt, [signer.vkey]).log_signers == [signer.name]


def test_known_key_with_a_bad_signature_rejects(
    receipt: dict[str, Any], signer: NoteSigner, tmp_path: Path
) -> None:
    witness = CosignatureSigner.generate("w.example")
    note = add_signatures(receipt["checkpoint"], [witness])
    line = note.rstrip("\n").rsplit("\n", 1)[1]
    name, data = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(data))
    raw[-1] ^= 1
    bad = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    receipt["checkpoint"] = note.replace(line, bad)
    with pytest.raises(ReceiptError, match="signature by w.example .* does not verify"):
        verify_receipt(receipt, [signer.vkey, witness.vkey])
    path = tmp_path / "r.json"
    path.write_text(json.dumps(receipt))
    result = runner.invoke(
        app,
        ["verify-receipt", str(path), "--key", signer.vkey, "--key", witness.vkey],
    )
    assert result.exit_code == 1
    assert "does not verify" in result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[:-1], "proof has 3 hashes, leaf 6 in a tree of size 11 needs 4"),
        (lambda p: [*p, p[0]], "proof has 5 hashes"),
        (lambda p: [p[0][:-4], *p[1:]], "proof hash 0 has 28 bytes, expected 32"),
    ],
)
def test_truncated_or_padded_proofs(
    receipt: dict[str, Any],
    signer: NoteSigner,
    tmp_path: Path,
    change: Any,
    message: str,
) -> None:
    proof = [base64.b64decode(h) for h in receipt["inclusion_proof"]]
    receipt["inclusion_proof"] = [base64.b64encode(h).decode() for h in change(proof)]
    with pytest.raises(ReceiptError, match=message):
        verify_receipt(receipt, [signer.vkey])
    _cli_fails(tmp_path, receipt, signer.vkey, "inclusion check failed")


def test_proof_for_a_larger_tree_than_the_checkpoint(
    log: TransparencyLog, receipt: dict[str, Any], signer: NoteSigner, tmp_path: Path
) -> None:
    log.append(*records(5, start=11))
    larger = log.inclusion_proof(6, 16)
    receipt["inclusion_proof"] = [base64.b64encode(h).decode() for h in larger]
    with pytest.raises(ReceiptError, match="inclusion check failed"):
        verify_receipt(receipt, [signer.vkey])
    receipt["tree_size"] = 16
    with pytest.raises(
        ReceiptError, match="checkpoint size 11 is not the receipt's 16"
    ):
        verify_receipt(receipt, [signer.vkey])
    _cli_fails(tmp_path, receipt, signer.vkey, "checkpoint size 11")
    with pytest.raises(TreeSizeError, match="leaf index 6"):
        merkle.verify_inclusion(bytes(32), 6, 3, larger, log.root(11))


def test_index_beyond_the_size(
    receipt: dict[str, Any], signer: NoteSigner, tmp_path: Path
) -> None:
    receipt["leaf_index"] = 11
    with pytest.raises(ReceiptError, match="leaf index 11 is not below tree size 11"):
        verify_receipt(receipt, [signer.vkey])
    _cli_fails(tmp_path, receipt, signer.vkey, "not below tree size 11")


@pytest.mark.parametrize("size", [2**63, 2**64 + 5, 10**30])
def test_sizes_beyond_2_63(
    receipt: dict[str, Any], signer: NoteSigner, tmp_path: Path, size: int
) -> None:
    receipt["leaf_index"] = size
    with pytest.raises(ReceiptError, match="outside 0..2\\^63-1"):
        verify_receipt(receipt, [signer.vkey])
    _cli_fails(tmp_path, receipt, signer.vkey, "outside 0..2^63-1")
    body = f"{signer.name}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n"
    with pytest.raises(MalformedNote, match="checkpoint size .*out of range"):
        Checkpoint.from_text(body)
    with pytest.raises(MalformedNote, match="out of range"):
        Checkpoint(signer.name, size, bytes(32))


def test_checkpoint_with_a_huge_size_in_a_note_is_refused(signer: NoteSigner) -> None:
    body = f"{signer.name}\n{2**63}\n{base64.b64encode(bytes(32)).decode()}\n"
    data = signer.key_id.to_bytes(4, "big") + signer.sign(body.encode())
    note = body + "\n\u2014 " + signer.name + " " + base64.b64encode(data).decode()
    opened = verify_note(note + "\n", [signer.verifier()])
    with pytest.raises(MalformedNote, match="out of range"):
        Checkpoint.from_text(opened.text)
