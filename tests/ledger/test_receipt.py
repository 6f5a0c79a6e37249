"""Offline receipt verification: every changed byte must be caught."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from ledger._canonical import canonical_bytes
from ledger.errors import ReceiptError
from ledger.log import TransparencyLog
from ledger.note import CosignatureSigner, NoteSigner, add_signatures
from ledger.receipt import verify_receipt

from .conftest import records

WITNESSES = [CosignatureSigner(f"w{n}.example", bytes([n]) * 32) for n in range(3)]


@pytest.fixture
def receipt(log: TransparencyLog) -> dict[str, Any]:
    log.append(*records(11))
    log.checkpoint()
    made = log.receipt(6)
    made["checkpoint"] = add_signatures(made["checkpoint"], WITNESSES[:2])
    return made


@pytest.fixture
def vkeys(signer: NoteSigner) -> list[str]:
    return [signer.vkey, *(w.vkey for w in WITNESSES)]


def _fails(receipt: dict[str, Any], vkeys: list[str]) -> bool:
    """Whether verification with the full quorum of two cosigners fails.

    A changed byte in a cosignature line turns it into a line of an unknown
    key, which C2SP signed-note says to ignore: only the quorum catches it.
    """
    try:
        verify_receipt(receipt, vkeys, min_cosignatures=2)
    except ReceiptError:
        return True
    return False


def test_good_receipt_verifies_and_reports_cosigners(
    receipt: dict[str, Any], vkeys: list[str]
) -> None:
    result = verify_receipt(json.loads(json.dumps(receipt)), vkeys, min_cosignatures=2)
    assert result.leaf_index == 6
    assert result.entry == records(11)[0][6]
    assert result.cosigners == ["w0.example", "w1.example"]


def test_quorum_counts_only_trusted_cosigners(
    receipt: dict[str, Any], signer: NoteSigner
) -> None:
    with pytest.raises(ReceiptError, match="1 trusted cosignature, 2 required"):
        verify_receipt(receipt, [signer.vkey, WITNESSES[0].vkey], min_cosignatures=2)


def test_every_changed_byte_of_the_checkpoint_fails(
    receipt: dict[str, Any], vkeys: list[str]
) -> None:
    note = receipt["checkpoint"]
    passed = []
    for position, char in enumerate(note):
        changed = copy.deepcopy(receipt)
        changed["checkpoint"] = (
            note[:position] + chr(ord(char) ^ 1) + note[position + 1 :]
        )
        if not _fails(changed, vkeys):
            passed.append(position)
    assert passed == []


def test_every_changed_bit_of_the_proof_fails(
    receipt: dict[str, Any], vkeys: list[str]
) -> None:
    passed = []
    for number, encoded in enumerate(receipt["inclusion_proof"]):
        raw = base64.b64decode(encoded)
        for position in range(len(raw)):
            changed = copy.deepcopy(receipt)
            flipped = (
                raw[:position] + bytes([raw[position] ^ 0x10]) + raw[position + 1 :]
            )
            changed["inclusion_proof"][number] = base64.b64encode(flipped).decode()
            if not _fails(changed, vkeys):
                passed.append((number, position))
    assert passed == []


def test_every_changed_byte_of_the_entry_fails(
    receipt: dict[str, Any], vkeys: list[str]
) -> None:
    data = canonical_bytes(receipt["entry"])
    tried, passed = 0, []
    for position in range(len(data)):
        flipped = data[:position] + bytes([data[position] ^ 1]) + data[position + 1 :]
        try:
            entry = json.loads(flipped)
        except (ValueError, UnicodeDecodeError):
            continue  # not representable as a JSON entry at all
        if not isinstance(entry, dict):
            continue
        tried += 1
        changed = copy.deepcopy(receipt)
        changed["entry"] = entry
        if not _fails(changed, vkeys):
            passed.append(position)
    assert tried > 20
    assert passed == []


@pytest.mark.parametrize(
    ("field", "value", "step", "message"),
    [
        ("leaf_index", 5, "inclusion", "does not match"),
        ("leaf_index", 11, "inclusion", "not below tree size"),
        ("tree_size", 12, "checkpoint", "checkpoint size 11"),
        ("origin", "other.example", "checkpoint", "is not 'other.example'"),
        ("format", "v0", "structure", "format is not"),
        ("entry", "text", "structure", "'entry' has the wrong type"),
        ("leaf_index", True, "structure", "'leaf_index' has the wrong type"),
        ("inclusion_proof", ["!!"], "structure", "hash 0 is not base64"),
        ("inclusion_proof", [], "inclusion", "proof has 0 hashes"),
    ],
)
def test_changed_fields_name_the_failing_step(
    receipt: dict[str, Any],
    vkeys: list[str],
    field: str,
    value: Any,
    step: str,
    message: str,
) -> None:
    receipt[field] = value
    with pytest.raises(ReceiptError, match=message) as caught:
        verify_receipt(receipt, vkeys)
    assert caught.value.step == step


def test_missing_field_and_wrong_keys_are_reported(
    receipt: dict[str, Any], vkeys: list[str]
) -> None:
    with pytest.raises(ReceiptError, match="keys check failed: verifier key"):
        verify_receipt(receipt, ["nonsense"])
    with pytest.raises(ReceiptError, match="no log key"):
        verify_receipt(receipt, [WITNESSES[0].vkey])
    del receipt["checkpoint"]
    with pytest.raises(ReceiptError, match="'checkpoint' is missing"):
        verify_receipt(receipt, vkeys)


def test_receipt_from_another_log_key_is_untrusted(
    receipt: dict[str, Any], signer: NoteSigner
) -> None:
    other = NoteSigner.generate(signer.name)
    with pytest.raises(ReceiptError, match="checkpoint check failed: no signature"):
        verify_receipt(receipt, [other.vkey])
