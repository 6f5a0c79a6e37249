"""C2SP signed-note, tlog-checkpoint and tlog-cosignature."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import BadSignature, InvalidKey, MalformedNote, UntrustedNote
from ledger.note import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    NoteVerifier,
    add_signature_lines,
    add_signatures,
    open_note,
    sign_note,
    verify_note,
)

TEXT = "ledger.example/log\n3\n" + base64.b64encode(bytes(32)).decode() + "\n"


def _vector(vectors_dir: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((vectors_dir / "ledger" / "signed-note" / name).read_text()))


def test_golang_vector_resigns_byte_for_byte(vectors_dir: Path) -> None:
    """golang/mod sumdb/note/note_test.go (TestSign, TestNewSigner)."""
    case = _vector(vectors_dir, "golang-sumdb-note-peterneumann.json")
    signer = NoteSigner.from_skey(case["skey"])
    assert signer.vkey == case["vkey"]
    assert signer.skey == case["skey"]
    assert sign_note(case["text"], [signer]) == case["note_signed_by_peter"]


def test_golang_vector_opens_with_both_keys(vectors_dir: Path) -> None:
    """golang/mod sumdb/note/note_test.go (TestOpen)."""
    case = _vector(vectors_dir, "golang-sumdb-note-peterneumann.json")
    peter = NoteVerifier.from_vkey(case["vkey"])
    enoch = NoteVerifier.from_vkey(case["vkey_enoch"])
    note = case["note_signed_by_peter"] + case["enoch_sig_line"]
    assert open_note(note, [peter, enoch]) == (
        case["text"],
        ["PeterNeumann", "EnochRoot"],
    )
    assert open_note(note, [enoch]) == (case["text"], ["EnochRoot"])


def test_golang_bad_verifier_keys_are_refused(vectors_dir: Path) -> None:
    """golang/mod sumdb/note/note_test.go (TestNewVerifier)."""
    case = _vector(vectors_dir, "golang-sumdb-note-peterneumann.json")
    for vkey in case["bad_vkeys_must_reject"]:
        with pytest.raises(InvalidKey, match="PeterNeumann"):
            NoteVerifier.from_vkey(vkey)


def test_c2sp_example_verifies(vectors_dir: Path) -> None:
    """C2SP/C2SP signed-note.md, section "Verifier keys / Example"."""
    case = _vector(vectors_dir, "c2sp-signed-note-example.json")
    verifier = NoteVerifier.from_vkey(case["vkey"])
    assert verifier.vkey == case["vkey"]
    text, names = open_note(case["note"], [verifier])
    assert (text, names) == ("This is an example message.\n", ["example.com/foo"])


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    import hashlib

    signer = NoteSigner("example.com/k", bytes(32))
    digest = hashlib.sha256(b"example.com/k\n\x01" + signer.public_key).digest()
    assert signer.key_id == int.from_bytes(digest[:4], "big")
    assert signer.vkey.split("+")[1] == digest[:4].hex()


def test_unknown_key_lines_are_ignored() -> None:
    ours, theirs = NoteSigner.generate("a.example"), NoteSigner.generate("b.example")
    note = sign_note(TEXT, [theirs, ours])
    assert open_note(note, [ours.verifier()]) == (TEXT, ["a.example"])


def test_same_name_other_key_is_ignored_not_rejected() -> None:
    ours, impostor = NoteSigner.generate("a.example"), NoteSigner.generate("a.example")
    note = sign_note(TEXT, [impostor, ours])
    assert open_note(note, [ours.verifier()])[1] == ["a.example"]


def test_note_without_trusted_signature_is_rejected() -> None:
    note = sign_note(TEXT, [NoteSigner.generate("b.example")])
    with pytest.raises(UntrustedNote, match="signed by b.example"):
        open_note(note, [NoteSigner.generate("a.example").verifier()])


def test_known_key_with_bad_signature_rejects_the_note() -> None:
    signer = NoteSigner.generate("a.example")
    note = sign_note(TEXT, [signer]).replace("\n3\n", "\n4\n")
    with pytest.raises(BadSignature, match="signature by a.example"):
        open_note(note, [signer.verifier()])


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n.replace("\u2014", "-"), "em dash"),
        (lambda n: n[:-3] + "!=\n", "not valid base64"),
        (lambda n: n[:-1], "does not end with a signature line"),
        (lambda n: n.replace("3\n", "3\t\n", 1), "control character"),
        (lambda n: n + "\u2014 x\n", "not '<name> <base64>'"),
    ],
)
def test_malformed_notes_are_refused(mangle: Any, message: str) -> None:
    signer = NoteSigner.generate("a.example")
    note = mangle(sign_note(TEXT, [signer]))
    with pytest.raises(MalformedNote, match=message):
        open_note(note, [signer.verifier()])


def test_non_canonical_base64_is_refused() -> None:
    signer = NoteSigner.generate("a.example")
    note = sign_note(TEXT, [signer])
    line = note.rsplit("\n", 2)[-2]
    payload = line.split(" ")[-1]
    assert payload.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = payload[-2]
    sibling = alphabet[alphabet.index(last) ^ 1]  # same decoded bytes
    mangled = note.replace(payload, payload[:-2] + sibling + "=")
    with pytest.raises(MalformedNote, match="not canonical base64"):
        open_note(mangled, [signer.verifier()])


def test_add_signatures_appends_once() -> None:
    first, second = NoteSigner.generate("a.example"), NoteSigner.generate("b.example")
    note = sign_note(TEXT, [first])
    both = add_signatures(add_signatures(note, [second]), [second, first])
    assert both.count("\u2014 ") == 2
    assert open_note(both, [first.verifier(), second.verifier()])[1] == [
        "a.example",
        "b.example",
    ]


def test_cosignature_type_4_signs_header_time_and_body() -> None:
    """C2SP tlog-cosignature, section "Ed25519 signed message"."""
    log = NoteSigner.generate("ledger.example/log")
    witness = CosignatureSigner("w.example", bytes(32), clock=lambda: 1679315147.9)
    assert base64.b64decode(witness.vkey.split("+", 2)[2])[0] == 0x04
    note = add_signatures(sign_note(TEXT, [log]), [witness])
    opened = verify_note(note, [log.verifier(), NoteVerifier.from_vkey(witness.vkey)])
    assert [s.timestamp for s in opened.signatures] == [None, 1679315147]
    raw = base64.b64decode(note.rsplit(" ", 1)[1])
    assert raw[4:12] == (1679315147).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1679315147\n" + TEXT.encode()
    from nacl.signing import VerifyKey

    VerifyKey(witness.public_key).verify(message, raw[12:])


def test_cosignature_key_does_not_verify_as_note_key() -> None:
    witness = CosignatureSigner.generate("w.example")
    plain = NoteVerifier("w.example", witness.key_id, 0x01, witness.public_key)
    note = sign_note(TEXT, [witness])
    with pytest.raises(BadSignature):
        open_note(note, [plain])


def test_add_signature_lines_skips_duplicates_and_checks_format() -> None:
    log, witness = NoteSigner.generate("l.example"), CosignatureSigner.generate("w.x")
    note = sign_note(TEXT, [log])
    line = add_signatures(note, [witness]).split("\n\n")[1].split("\n")[1] + "\n"
    once = add_signature_lines(add_signature_lines(note, [line]), [line])
    assert once.count("\u2014 ") == 2
    with pytest.raises(MalformedNote, match="em dash"):
        add_signature_lines(note, ["- w.x AAAA\n"])


def test_checkpoint_round_trips_with_extensions() -> None:
    checkpoint = Checkpoint("o.example/log", 20852163, bytes(range(32)), ("ext a",))
    text = checkpoint.to_text()
    assert text.splitlines()[:2] == ["o.example/log", "20852163"]
    assert Checkpoint.from_text(text) == checkpoint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("o\n01\n" + base64.b64encode(bytes(32)).decode() + "\n", "leading zero"),
        ("o\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n", "not a decimal"),
        ("o\n1\n" + base64.b64encode(bytes(31)).decode() + "\n", "32 bytes"),
        ("o\n1\n", "at least 3"),
        ("\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", "non-empty"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n", "non-empty"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode(), "end with a newline"),
    ],
)
def test_bad_checkpoint_bodies_are_refused(text: str, message: str) -> None:
    with pytest.raises(MalformedNote, match=message):
        Checkpoint.from_text(text)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidKey, match="key name"):
        NoteSigner(name, bytes(32))


def test_vkey_with_wrong_key_id_is_refused() -> None:
    vkey = NoteSigner.generate("a.example").vkey
    name, _, data = vkey.split("+", 2)
    with pytest.raises(InvalidKey, match="does not match key a.example"):
        NoteVerifier.from_vkey(f"{name}+00000000+{data}")
