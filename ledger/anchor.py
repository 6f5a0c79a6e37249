"""Anchoring checkpoint roots on an EVM chain (the optional ``chain`` extra).

`ChainAnchor.maybe_anchor` publishes the latest checkpoint of a log when
``every_entries`` entries or ``every_seconds`` seconds have passed since the
last anchor (never per claim): one transaction from the anchoring account
to itself, value 0, whose input data is

    claims-ledger-anchor/v1\\n<origin>\\n<tree size>\\n<base64 root hash>\\n

Each anchor is stored in ``ledger_anchor``. `ChainAnchor.attach` adds to a
receipt the first anchor that covers its entry, with a consistency proof
between the anchored tree and the receipt's tree; `verify_anchor` checks it
against a chain reached through a web3 provider: the transaction is mined
and succeeded, was sent by the trusted anchoring address, carries exactly
that payload, and the proof ties the anchored root to the receipt's root.
`verify_anchor` does not check the receipt itself: call `verify_receipt`.

Requires ``web3`` (and ``eth-tester[py-evm]`` for the in-process test chain).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from ledger import merkle
from ledger.errors import LedgerError, NoteError, ReceiptError
from ledger.log import TransparencyLog
from ledger.note import Checkpoint, verify_note

__all__ = ["ANCHOR_PREFIX", "AnchorRecord", "ChainAnchor", "verify_anchor"]

logger = logging.getLogger(__name__)

ANCHOR_PREFIX: Final = b"claims-ledger-anchor/v1\n"


#: Kept apart from ``SQLModel.metadata``: the claims store's migrations do not
#: know this optional table, and the anchor creates it on first use.
_metadata = sa.MetaData()
_anchor_t = sa.Table(
    "ledger_anchor",
    _metadata,
    sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary, nullable=False),
    sa.Column("chain_id", sa.BigInteger, nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=False),
    sa.Column("block_number", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


@dataclass(frozen=True)
class AnchorRecord:
    """One published anchor: which tree, which chain, which transaction."""

    log_id: int
    size: int
    root_hash: bytes
    chain_id: int
    tx_hash: str
    block_number: int
    created_at: datetime


def anchor_payload(checkpoint: Checkpoint) -> bytes:
    """The transaction input that anchors ``checkpoint`` (no extensions)."""
    body = Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root_hash)
    return ANCHOR_PREFIX + body.to_text().encode("utf-8")


class ChainAnchor:
    """Publishes a log's checkpoint roots through ``web3`` from ``account``.

    ``account`` is an address the provider can sign for (an unlocked node
    account, or eth-tester's). ``every_entries`` and ``every_seconds`` say
    how often: an anchor is sent when either has passed since the last one.
    """

    def __init__(
        self,
        log: TransparencyLog,
        web3: Any,
        account: str,
        *,
        every_entries: int = 10_000,
        every_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.web3 = web3
        self.account = account
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self._clock = clock
        _metadata.create_all(log.engine)

    def latest(self) -> AnchorRecord | None:
        """The anchor of the largest tree published so far."""
        query = (
            sa.select(_anchor_t)
            .where(_anchor_t.c.log_id == self.log.log_id)
            .order_by(_anchor_t.c.size.desc())
            .limit(1)
        )
        with self.log.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else AnchorRecord(**row._mapping)

    def due(self) -> bool:
        """Whether enough entries or time passed since the last anchor."""
        latest = self.latest()
        size = self.log.size()
        if latest is None:
            return size > 0
        if size <= latest.size:
            return False
        created = latest.created_at.replace(tzinfo=UTC).timestamp()
        return (
            size - latest.size >= self.every_entries
            or self._clock() - created >= self.every_seconds
        )

    def maybe_anchor(self) -> AnchorRecord | None:
        """Anchor the latest checkpoint if one is due; return the new anchor."""
        if not self.due():
            return None
        note = self.log.latest_checkpoint()
        if note is None:
            return None
        checkpoint = Checkpoint.from_text(verify_note(note, [self.log.verifier]).text)
        latest = self.latest()
        if latest is not None and checkpoint.size <= latest.size:
            return None
        return self.anchor(checkpoint)

    def anchor(self, checkpoint: Checkpoint) -> AnchorRecord:
        """Send the anchoring transaction for ``checkpoint`` and store it."""
        try:
            tx_hash = self.web3.eth.send_transaction(
                {
                    "from": self.account,
                    "to": self.account,
                    "value": 0,
                    "data": anchor_payload(checkpoint),
                }
            )
            mined = self.web3.eth.wait_for_transaction_receipt(tx_hash)
            chain_id = int(self.web3.eth.chain_id)
        except Exception as exc:  # web3 raises many unrelated types
            raise LedgerError(
                f"anchoring {checkpoint.origin} at size {checkpoint.size} failed: "
                f"{type(exc).__name__}"
            ) from exc
        if int(mined["status"]) != 1:
            raise LedgerError(
                f"anchoring transaction for size {checkpoint.size} was reverted"
            )
        record = AnchorRecord(
            log_id=self.log.log_id,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            chain_id=chain_id,
            tx_hash="0x" + bytes(tx_hash).hex(),
            block_number=int(mined["blockNumber"]),
            created_at=datetime.fromtimestamp(self._clock(), UTC).replace(tzinfo=None),
        )
        with self.log.engine.begin() as conn:
            conn.execute(sa.insert(_anchor_t).values(**asdict(record)))
        logger.debug(
            "log %s: anchored size %d in block %d",
            checkpoint.origin,
            checkpoint.size,
            record.block_number,
        )
        return record

    def attach(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """``receipt`` with the first anchor covering its entry, if there is one."""
        index, tree_size = int(receipt["leaf_index"]), int(receipt["tree_size"])
        query = (
            sa.select(_anchor_t)
            .where(_anchor_t.c.log_id == self.log.log_id, _anchor_t.c.size > index)
            .order_by(_anchor_t.c.size)
            .limit(1)
        )
        with self.log.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return receipt
        size = int(row.size)
        low, high = sorted((size, tree_size))
        proof = self.log.consistency_proof(low, high)
        receipt = dict(receipt)
        receipt["anchor"] = {
            "chain_id": int(row.chain_id),
            "tx_hash": str(row.tx_hash),
            "block_number": int(row.block_number),
            "tree_size": size,
            "root_hash": base64.b64encode(bytes(row.root_hash)).decode("ascii"),
            "consistency_proof": [base64.b64encode(h).decode("ascii") for h in proof],
        }
        return receipt


def _anchor_fields(
    receipt: dict[str, Any],
) -> tuple[dict[str, Any], bytes, list[bytes]]:
    anchor = receipt.get("anchor")
    if not isinstance(anchor, dict):
        raise ReceiptError("anchor", "the receipt carries no anchor")
    try:
        root = base64.b64decode(str(anchor["root_hash"]), validate=True)
        proof = [
            base64.b64decode(str(h), validate=True) for h in anchor["consistency_proof"]
        ]
        for name in ("chain_id", "tree_size", "block_number"):
            if isinstance(anchor[name], bool) or not isinstance(anchor[name], int):
                raise ReceiptError("anchor", f"anchor field {name!r} is not a number")
        if not isinstance(anchor["tx_hash"], str):
            raise ReceiptError("anchor", "anchor field 'tx_hash' is not text")
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        raise ReceiptError("anchor", "the anchor is malformed") from exc
    return anchor, root, proof


def verify_anchor(receipt: dict[str, Any], web3: Any, anchor_address: str) -> int:
    """Check the receipt's anchor on the chain ``web3`` reaches; return its block.

    ``anchor_address`` is the consortium's anchoring account (trusted, given
    out of band). Raises `ReceiptError` with step ``"anchor"``.
    """
    # Plan: 1. the anchor's fields and the receipt's checkpoint; 2. the
    # transaction on the chain; 3. its sender and payload; 4. consistency
    # between the anchored tree and the receipt's tree, covering the entry.

    # 1.
    anchor, root, proof = _anchor_fields(receipt)
    try:
        checkpoint = Checkpoint.from_text(
            str(receipt["checkpoint"]).split("\n\n", 1)[0] + "\n"
        )
        anchored = Checkpoint(checkpoint.origin, int(anchor["tree_size"]), root)
    except (KeyError, NoteError) as exc:
        raise ReceiptError("anchor", f"cannot read the checkpoints: {exc}") from exc

    # 2.
    try:
        chain_id = int(web3.eth.chain_id)
        tx = web3.eth.get_transaction(anchor["tx_hash"])
        mined = web3.eth.get_transaction_receipt(anchor["tx_hash"])
    except Exception as exc:  # web3 raises many unrelated types
        raise ReceiptError(
            "anchor", f"transaction {anchor['tx_hash']} not found: {type(exc).__name__}"
        ) from exc
    if chain_id != anchor["chain_id"]:
        raise ReceiptError(
            "anchor", f"chain id is {chain_id}, the anchor names {anchor['chain_id']}"
        )
    if int(mined["status"]) != 1 or mined["blockNumber"] is None:
        raise ReceiptError("anchor", "the anchoring transaction did not succeed")

    # 3.
    if str(tx["from"]).lower() != anchor_address.lower():
        raise ReceiptError("anchor", "the transaction was not sent by the anchor key")
    if bytes(tx["input"]) != anchor_payload(anchored):
        raise ReceiptError(
            "anchor", "the transaction does not carry this tree size and root"
        )

    # 4.
    if anchored.size <= int(receipt["leaf_index"]):
        raise ReceiptError(
            "anchor", f"the anchored tree of size {anchored.size} lacks the entry"
        )
    low, high = sorted(
        [(anchored.size, anchored.root_hash), (checkpoint.size, checkpoint.root_hash)]
    )
    try:
        merkle.verify_consistency(low[0], high[0], proof, low[1], high[1])
    except LedgerError as exc:
        raise ReceiptError("anchor", f"anchored tree is not consistent: {exc}") from exc
    return int(mined["blockNumber"])
