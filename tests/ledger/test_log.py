"""The stored transparency log: appends, proofs, checkpoints, audit."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import merkle
from ledger._canonical import canonical_bytes
from ledger._tables import LedgerCheckpoint, LedgerEntry, LedgerLog, LedgerNode
from ledger.errors import (
    EntryNotFound,
    InvalidRecord,
    LedgerTampered,
    NotCheckpointed,
)
from ledger.log import TransparencyLog
from ledger.note import Checkpoint, NoteSigner, open_note

from .conftest import ORIGIN, records


def _leaves(count: int) -> list[bytes]:
    items, _ = records(count)
    return [merkle.leaf_hash(canonical_bytes(item)) for item in items]


def _fill(log: TransparencyLog, batches: list[int]) -> None:
    start = 0
    for count in batches:
        items, keys = records(count, start)
        assert log.append(items, keys) == list(range(start, start + count))
        start += count


def test_roots_and_proofs_match_the_reference_across_batches(
    log: TransparencyLog,
) -> None:
    _fill(log, [1, 2, 5, 1, 13, 3, 8])
    leaves = _leaves(33)
    assert log.size() == 33
    for size in range(34):
        assert log.root(size) == merkle.root(leaves[:size])
        for index in range(size):
            assert log.inclusion_proof(index, size) == merkle.inclusion_proof(
                leaves, index, size
            )
        for size1 in range(size + 1):
            assert log.consistency_proof(size1, size) == merkle.consistency_proof(
                leaves, size1, size
            )


def test_proofs_read_stored_nodes_not_entries(
    log: TransparencyLog, engine: Engine
) -> None:
    _fill(log, [40])
    expected = log.inclusion_proof(7, 40)
    with engine.begin() as conn:
        conn.execute(sa.delete(LedgerEntry.__table__))  # type: ignore[attr-defined]
    assert log.inclusion_proof(7, 40) == expected


def test_same_key_returns_existing_index_and_stores_nothing(
    log: TransparencyLog,
) -> None:
    _fill(log, [3])
    root = log.root()
    indexes = log.append([{"other": 1}, {"new": 2}, {"new": 3}], ["event-1", "x", "x"])
    assert indexes == [1, 3, 3]
    assert log.size() == 4
    assert log.entry(1) == records(3)[0][1]
    assert log.index_for_key("x") == 3
    assert log.index_for_key("missing") is None
    assert log.consistency_proof(3, 4) == merkle.consistency_proof(
        [*_leaves(3), merkle.leaf_hash(canonical_bytes({"new": 2}))], 3, 4
    )
    assert log.root(3) == root


def test_entries_are_stored_as_jcs_bytes(log: TransparencyLog, engine: Engine) -> None:
    log.append([{"b": [1, "é"], "a": 1.5}], ["k"])
    with engine.connect() as conn:
        data = conn.execute(sa.select(LedgerEntry.data)).scalar_one()
    assert data == '{"a":1.5,"b":[1,"é"]}'.encode()
    assert log.entry(0) == {"a": 1.5, "b": [1, "é"]}


def test_bad_appends_are_refused_and_leave_the_log_unchanged(
    log: TransparencyLog,
) -> None:
    with pytest.raises(InvalidRecord, match="2 records but 1 keys"):
        log.append([{}, {}], ["a"])
    with pytest.raises(InvalidRecord, match="key 0 must be a string"):
        log.append([{}], [""])
    with pytest.raises(InvalidRecord, match="cannot be canonicalised"):
        log.append([{"x": float("nan")}], ["a"])
    with pytest.raises(InvalidRecord, match="must be a dict"):
        log.append(["not a dict"], ["a"])  # type: ignore[list-item]
    assert log.size() == 0
    assert log.append([], []) == []


def test_out_of_range_requests_raise_entry_not_found(log: TransparencyLog) -> None:
    _fill(log, [4])
    with pytest.raises(EntryNotFound, match="tree size 5 is beyond log"):
        log.root(5)
    with pytest.raises(EntryNotFound, match="leaf index 4 is not below tree size 4"):
        log.inclusion_proof(4, 4)
    with pytest.raises(EntryNotFound, match="no entry 9"):
        log.entry(9)
    with pytest.raises(EntryNotFound, match="size1 5 is larger than size2 4"):
        log.consistency_proof(5, 4)


def test_checkpoint_is_signed_stored_and_reused(
    log: TransparencyLog, signer: NoteSigner
) -> None:
    assert log.latest_checkpoint() is None
    _fill(log, [6])
    note = log.checkpoint()
    text, names = open_note(note, [signer.verifier()])
    assert names == [ORIGIN]
    assert Checkpoint.from_text(text) == Checkpoint(ORIGIN, 6, log.root())
    assert log.checkpoint() == note
    assert log.latest_checkpoint() == note
    assert log.checkpoint_at(6) == note
    _fill_more = records(1, 6)
    log.append(*_fill_more)
    assert log.checkpoint() != note
    assert log.checkpoint_at(6) == note


def test_two_logs_share_a_database(engine: Engine) -> None:
    first = TransparencyLog(
        engine, "a.example/log", NoteSigner.generate("a.example/log")
    )
    second = TransparencyLog(
        engine, "b.example/log", NoteSigner.generate("b.example/log")
    )
    first.append(*records(3))
    second.append(*records(2))
    assert (first.size(), second.size()) == (3, 2)
    again = TransparencyLog(engine, "a.example/log", first.signer)
    assert again.root() == first.root()
    first.verify()
    second.verify()


def test_receipt_needs_a_covering_checkpoint(log: TransparencyLog) -> None:
    _fill(log, [2])
    with pytest.raises(NotCheckpointed, match="has no checkpoint yet"):
        log.receipt(0)
    log.checkpoint()
    log.append(*records(1, 2))
    with pytest.raises(NotCheckpointed, match="entry 2 is not covered"):
        log.receipt(2)
    receipt = log.receipt(1)
    assert receipt["tree_size"] == 2
    assert receipt["signers"] == [
        {"name": ORIGIN, "key_id": f"{log.signer.key_id:08x}", "role": "log"}
    ]
    json.dumps(receipt)


def test_verify_passes_on_an_untouched_log(log: TransparencyLog) -> None:
    _fill(log, [5, 9, 2])
    log.checkpoint()
    log.append(*records(3, 16))
    log.checkpoint()
    log.verify()


def _tamper(engine: Engine, statement: sa.Executable) -> None:
    with engine.begin() as conn:
        conn.execute(statement)


_entry = LedgerEntry.__table__  # type: ignore[attr-defined]
_node = LedgerNode.__table__  # type: ignore[attr-defined]
_checkpoint = LedgerCheckpoint.__table__  # type: ignore[attr-defined]
_log = LedgerLog.__table__  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            sa.update(_entry).where(_entry.c.idx == 6).values(data=b'{"n":66}'),
            "entry 6 does not match its stored leaf hash",
        ),
        (
            sa.update(_node)
            .where(_node.c.level == 2, _node.c.idx == 1)
            .values(hash=bytes(32)),
            r"node \(level 2, index 1\) does not match its children",
        ),
        (
            sa.update(_node)
            .where(_node.c.level == 0, _node.c.idx == 3)
            .values(hash=bytes(32)),
            "entry 3 does not match its stored leaf hash",
        ),
        (sa.delete(_entry).where(_entry.c.idx == 9), "size 12 but stores 11 entries"),
        (sa.delete(_node).where(_node.c.level == 3), "nodes of level 3 0..0"),
        (
            sa.update(_checkpoint).values(note="x\n\n\u2014 y AAAAAAA=\n"),
            "checkpoint at size 12 does not verify",
        ),
        (
            sa.update(_checkpoint).values(root_hash=bytes(32)),
            "checkpoint at size 12 has root",
        ),
        (sa.update(_log).values(size=11), "size 11 but stores 12 entries"),
    ],
)
def test_verify_names_what_was_tampered(
    log: TransparencyLog, engine: Engine, statement: sa.Executable, message: str
) -> None:
    _fill(log, [12])
    log.checkpoint()
    _tamper(engine, statement)
    with pytest.raises(LedgerTampered, match=message):
        log.verify()


def test_verify_catches_a_checkpoint_signed_over_another_root(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    from ledger.note import sign_note

    _fill(log, [4])
    log.checkpoint()
    forged = sign_note(Checkpoint(ORIGIN, 4, bytes(32)).to_text(), [signer])
    _tamper(engine, sa.update(_checkpoint).values(note=forged))
    with pytest.raises(LedgerTampered, match="checkpoint at size 4 has root 0000"):
        log.verify()
