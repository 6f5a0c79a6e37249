"""Witnesses: cosign only consistent checkpoints; the log collects a quorum."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ledger import merkle
from ledger.errors import (
    ForkDetected,
    NotSignedByLog,
    QuorumNotReached,
    RollbackRefused,
    SizeConflict,
    UnknownLog,
)
from ledger.log import TransparencyLog
from ledger.note import Checkpoint, NoteSigner, NoteVerifier, sign_note, verify_note
from ledger.receipt import verify_receipt
from ledger.witness import FileWitnessState, SqlWitnessState, Witness

from .conftest import ORIGIN, records


def _witnesses(engine: Engine, signer: NoteSigner, count: int) -> list[Witness]:
    state = SqlWitnessState(engine)
    return [
        Witness(
            f"w{n}.example",
            bytes([n + 1]) * 32,
            state,
            logs=[signer.vkey],
            clock=lambda: 1_700_000_000,
        )
        for n in range(count)
    ]


def test_cosign_collects_k_of_n_and_receipt_meets_quorum(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    witnesses = _witnesses(engine, signer, 3)
    log.append(*records(7))
    log.checkpoint()
    note = log.cosign(witnesses, k=2)
    opened = verify_note(
        note, [signer.verifier(), *(NoteVerifier.from_vkey(w.vkey) for w in witnesses)]
    )
    assert opened.names == [ORIGIN, "w0.example", "w1.example", "w2.example"]
    assert log.latest_checkpoint() == note
    vkeys = [signer.vkey, *(w.vkey for w in witnesses)]
    verify_receipt(log.receipt(3), vkeys, min_cosignatures=3)


def test_witness_follows_the_log_as_it_grows(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    (witness,) = _witnesses(engine, signer, 1)
    for batch in range(4):
        log.append(*records(3 + batch, start=10 * batch))
        log.checkpoint()
        log.cosign([witness], k=1)
        assert witness.known_size(ORIGIN) == log.size()
    log.verify()


def test_stale_old_size_is_a_conflict_with_the_known_size(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    (witness,) = _witnesses(engine, signer, 1)
    log.append(*records(4))
    note = log.checkpoint()
    witness.add_checkpoint(note, 0, [])
    log.append(*records(2, start=4))
    newer = log.checkpoint()
    with pytest.raises(SizeConflict, match="old size 0 given, last cosigned size is 4"):
        witness.add_checkpoint(newer, 0, [])
    try:
        witness.add_checkpoint(newer, 0, [])
    except SizeConflict as exc:
        assert exc.known_size == 4


def test_rollback_is_refused(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    (witness,) = _witnesses(engine, signer, 1)
    log.append(*records(4))
    small = log.checkpoint()
    log.append(*records(4, start=4))
    big = log.checkpoint()
    witness.add_checkpoint(big, 0, [])
    with pytest.raises(RollbackRefused, match="size 4 is smaller than .* size 8"):
        witness.add_checkpoint(small, 8, [])


def test_fork_at_same_size_is_detected(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    (witness,) = _witnesses(engine, signer, 1)
    log.append(*records(4))
    witness.add_checkpoint(log.checkpoint(), 0, [])
    forked = sign_note(Checkpoint(ORIGIN, 4, bytes(32)).to_text(), [signer])
    with pytest.raises(ForkDetected, match="size 4 was cosigned with root"):
        witness.add_checkpoint(forked, 4, [])


def test_inconsistent_growth_is_a_fork(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    (witness,) = _witnesses(engine, signer, 1)
    log.append(*records(4))
    witness.add_checkpoint(log.checkpoint(), 0, [])
    leaves = [merkle.leaf_hash(bytes([n])) for n in range(6)]
    forked = sign_note(Checkpoint(ORIGIN, 6, merkle.root(leaves)).to_text(), [signer])
    proof = merkle.consistency_proof(leaves, 4, 6)
    with pytest.raises(ForkDetected, match="size 6 is not consistent with"):
        witness.add_checkpoint(forked, 4, proof)
    assert witness.known_size(ORIGIN) == 4


def test_unknown_log_or_key_is_refused(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    stranger = NoteSigner.generate(ORIGIN)
    (witness,) = _witnesses(engine, stranger, 1)
    log.append(*records(2))
    with pytest.raises(UnknownLog, match="not signed by a followed log"):
        witness.add_checkpoint(log.checkpoint(), 0, [])
    other = NoteSigner.generate("other.example/log")
    witness.follow(other.vkey, origin=ORIGIN + "x")
    note = sign_note(Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT).to_text(), [other])
    with pytest.raises(NotSignedByLog, match="not signed by a followed log"):
        witness.add_checkpoint(note, 0, [])
    elsewhere = sign_note(
        Checkpoint("else.example", 0, merkle.EMPTY_ROOT).to_text(), [other]
    )
    with pytest.raises(UnknownLog, match="does not follow log else.example") as caught:
        witness.add_checkpoint(elsewhere, 0, [])
    assert not isinstance(caught.value, NotSignedByLog)


def test_quorum_not_reached_stores_what_was_collected(
    log: TransparencyLog, engine: Engine, signer: NoteSigner
) -> None:
    good = _witnesses(engine, signer, 1)
    blind = Witness("blind.example", bytes(32), SqlWitnessState(engine))
    log.append(*records(3))
    log.checkpoint()
    with pytest.raises(QuorumNotReached, match="1 of 2 required .* blind.example"):
        log.cosign([*good, blind], k=2)
    assert "w0.example" in (log.latest_checkpoint() or "")


def test_file_state_survives_a_new_witness_object(
    log: TransparencyLog, signer: NoteSigner, tmp_path: Path
) -> None:
    path = tmp_path / "witness" / "state.json"
    first = Witness("w.example", bytes(32), FileWitnessState(path), logs=[signer.vkey])
    log.append(*records(5))
    log.checkpoint()
    log.cosign([first], k=1)
    again = Witness("w.example", bytes(32), FileWitnessState(path), logs=[signer.vkey])
    assert again.known_size(ORIGIN) == 5
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_state_compare_and_set_refuses_a_stale_old_value(engine: Engine) -> None:
    state = SqlWitnessState(engine)
    assert state.compare_and_set("w", "o", None, (1, bytes(32)))
    assert not state.compare_and_set("w", "o", None, (2, bytes(32)))
    assert not state.compare_and_set("w", "o", (0, bytes(32)), (2, bytes(32)))
    assert state.compare_and_set("w", "o", (1, bytes(32)), (2, bytes(32)))
    assert state.get("w", "o") == (2, bytes(32))
