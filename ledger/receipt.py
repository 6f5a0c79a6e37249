"""Offline verification of ledger receipts.

A receipt (made by `TransparencyLog.receipt`) is a JSON object:

    format           "claims-ledger-receipt/v1"
    origin           the log's origin line
    leaf_index       index of the entry
    tree_size        size of the checkpointed tree
    entry            the record (its RFC 8785 bytes are the leaf)
    inclusion_proof  base64 hashes, RFC 9162 section 2.1.3.1 order
    checkpoint       the signed checkpoint note, with cosignatures
    signers          name, key ID and role of each signature line (informative)

Verification needs nothing but the receipt and the verifier keys the caller
trusts: the log's Ed25519 key (type 0x01) and, for a quorum, witness keys
(type 0x04). The ``signers`` list is never trusted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from ledger import merkle
from ledger._canonical import canonical_bytes
from ledger.errors import CheckpointError, InvalidRecord, LedgerError, ReceiptError
from ledger.note import (
    COSIGNATURE_TYPE,
    ED25519_TYPE,
    Checkpoint,
    NoteVerifier,
    OpenedNote,
    unverified_signers,
    verify_note,
)

__all__ = [
    "RECEIPT_FORMAT",
    "VerifiedCheckpoint",
    "VerifiedReceipt",
    "verify_checkpoint",
    "verify_receipt",
]

RECEIPT_FORMAT = "claims-ledger-receipt/v1"


class VerifiedCheckpoint:
    """What a verified checkpoint establishes (returned by `verify_checkpoint`)."""

    def __init__(self, checkpoint: Checkpoint, opened: OpenedNote) -> None:
        self.checkpoint = checkpoint
        self.log_signers = [
            s.name for s in opened.signatures if s.signature_type == ED25519_TYPE
        ]
        self.cosigners = [
            s.name for s in opened.signatures if s.signature_type == COSIGNATURE_TYPE
        ]


class VerifiedReceipt(VerifiedCheckpoint):
    """What a verified receipt establishes (returned by `verify_receipt`)."""

    def __init__(
        self, entry: dict[str, Any], leaf_index: int, verified: VerifiedCheckpoint
    ) -> None:
        self.entry = entry
        self.leaf_index = leaf_index
        self.checkpoint = verified.checkpoint
        self.log_signers = verified.log_signers
        self.cosigners = verified.cosigners


def verify_checkpoint(
    note: str, vkeys: Sequence[str], *, min_cosignatures: int = 0
) -> VerifiedCheckpoint:
    """Verify a checkpoint note against trusted verifier keys.

    The rule a receipt's checkpoint is held to, on its own: a trusted log key
    (Ed25519, type 0x01) signed it, and at least `min_cosignatures` trusted
    witnesses (type 0x04) cosigned it. Lines from keys not trusted are
    ignored; a line that reuses a trusted key's name or ID with another key
    is an alteration. Raises `CheckpointError` naming the failed step
    (``"keys"``, ``"checkpoint"`` or ``"cosignatures"``).
    """
    # Plan: 1. trusted keys; 2. signatures and body; 3. cosignature quorum.

    # 1.
    try:
        verifiers = [NoteVerifier.from_vkey(vkey) for vkey in vkeys]
    except LedgerError as exc:
        raise CheckpointError("keys", str(exc)) from exc
    if not any(v.signature_type == ED25519_TYPE for v in verifiers):
        raise CheckpointError("keys", "no log key (Ed25519, type 0x01) is trusted")

    # 2.
    try:
        opened = verify_note(note, verifiers)
        checkpoint = Checkpoint.from_text(opened.text)
    except LedgerError as exc:
        raise CheckpointError("checkpoint", str(exc)) from exc
    if not any(s.signature_type == ED25519_TYPE for s in opened.signatures):
        raise CheckpointError("checkpoint", "no trusted log key signed the checkpoint")
    # Lines from unknown keys are ignored (C2SP signed-note), but a line that
    # names a trusted key with another key ID, or carries a trusted key ID
    # under another name, is a trusted line that was altered.
    trusted_names = {v.name for v in verifiers}
    trusted_ids = {v.key_id for v in verifiers}
    trusted_pairs = {(v.name, v.key_id) for v in verifiers}
    for name, key_id in unverified_signers(note):
        if (name, key_id) not in trusted_pairs and (
            name in trusted_names or key_id in trusted_ids
        ):
            raise CheckpointError(
                "checkpoint",
                f"signature line for {name} (key {key_id:08x}) does not match the"
                " trusted key of that name or ID: the checkpoint was altered",
            )

    # 3.
    verified = VerifiedCheckpoint(checkpoint, opened)
    count = len(verified.cosigners)
    if count < min_cosignatures:
        noun = "cosignature" if count == 1 else "cosignatures"
        raise CheckpointError(
            "cosignatures", f"{count} trusted {noun}, {min_cosignatures} required"
        )
    return verified


def _field(receipt: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in receipt:
        raise ReceiptError("structure", f"field {name!r} is missing")
    value = receipt[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ReceiptError("structure", f"field {name!r} has the wrong type")
    return value


def _decode_hash(value: Any, position: int) -> bytes:
    if not isinstance(value, str):
        raise ReceiptError("structure", f"inclusion proof hash {position} is not text")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ReceiptError(
            "structure", f"inclusion proof hash {position} is not base64"
        ) from exc
    if base64.b64encode(data).decode("ascii") != value:
        raise ReceiptError(
            "structure", f"inclusion proof hash {position} is not canonical base64"
        )
    return data


def verify_receipt(
    receipt: dict[str, Any],
    vkeys: Sequence[str],
    *,
    min_cosignatures: int = 0,
) -> VerifiedReceipt:
    """Verify a receipt offline against trusted verifier keys.

    ``vkeys`` holds the log's key and any witness keys that count towards
    ``min_cosignatures``. Returns what was verified; raises `ReceiptError`
    whose ``step`` says which check failed. The caller must still decide
    whether the entry is the one it expected (compare its fields).
    """
    # Plan: 1. structure; 2.-4. the checkpoint (`verify_checkpoint`), and that
    # it is the receipt's; 5. the entry's inclusion under the root.

    # 1.
    if not isinstance(receipt, dict):
        raise ReceiptError("structure", "a receipt must be a JSON object")
    if receipt.get("format") != RECEIPT_FORMAT:
        raise ReceiptError("structure", f"format is not {RECEIPT_FORMAT}")
    origin = _field(receipt, "origin", str)
    leaf_index = _field(receipt, "leaf_index", int)
    tree_size = _field(receipt, "tree_size", int)
    entry = _field(receipt, "entry", dict)
    raw_proof = _field(receipt, "inclusion_proof", list)
    note = _field(receipt, "checkpoint", str)
    proof = [_decode_hash(value, i) for i, value in enumerate(raw_proof)]

    # 2.-4.
    try:
        verified = verify_checkpoint(note, vkeys, min_cosignatures=min_cosignatures)
    except CheckpointError as exc:
        raise ReceiptError(exc.step, exc.reason) from exc
    checkpoint = verified.checkpoint
    if checkpoint.origin != origin:
        raise ReceiptError(
            "checkpoint", f"checkpoint origin {checkpoint.origin!r} is not {origin!r}"
        )
    if checkpoint.size != tree_size:
        raise ReceiptError(
            "checkpoint",
            f"checkpoint size {checkpoint.size} is not the receipt's {tree_size}",
        )
    result = VerifiedReceipt(entry, leaf_index, verified)

    # 5.
    try:
        leaf = merkle.leaf_hash(canonical_bytes(entry))
    except InvalidRecord as exc:
        raise ReceiptError("inclusion", str(exc)) from exc
    try:
        merkle.verify_inclusion(
            leaf, leaf_index, tree_size, proof, checkpoint.root_hash
        )
    except LedgerError as exc:
        raise ReceiptError("inclusion", str(exc)) from exc
    return result
