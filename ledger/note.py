"""Signed notes (C2SP signed-note), checkpoints (C2SP tlog-checkpoint) and
witness cosignatures (C2SP tlog-cosignature, Ed25519 type 0x04).

A note is text ending in a newline, a blank line, then signature lines
``— <key name> base64(key ID || signature)``. Keys travel as verifier key
strings (``name+hexkeyid+base64(type || public key)``). Only Ed25519 (type
0x01) note signatures and timestamped Ed25519 cosignatures (type 0x04) are
supported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import nacl.exceptions
import nacl.signing

from ledger.errors import BadSignature, InvalidKey, MalformedNote, UntrustedNote
from ledger.merkle import HASH_SIZE, MAX_TREE_SIZE

__all__ = [
    "COSIGNATURE_TYPE",
    "ED25519_TYPE",
    "Checkpoint",
    "CosignatureSigner",
    "NoteSigner",
    "NoteVerifier",
    "OpenedNote",
    "VerifiedSignature",
    "add_signature_lines",
    "add_signatures",
    "open_note",
    "sign_note",
    "unverified_signers",
    "unverified_text",
    "verify_note",
]

logger = logging.getLogger(__name__)

#: C2SP signed-note section "Signature types": Ed25519 note signatures.
ED25519_TYPE: Final = 0x01
#: C2SP signed-note / tlog-cosignature: timestamped Ed25519 cosignatures.
COSIGNATURE_TYPE: Final = 0x04
#: C2SP signed-note asks verifiers to accept at least 16 signatures.
MAX_SIGNATURES: Final = 64
MAX_NOTE_BYTES: Final = 1 << 20

_EM_DASH_PREFIX: Final = "\u2014 "
_COSIGNATURE_HEADER: Final = b"cosignature/v1\n"
_SKEY_PREFIX: Final = "PRIVATE+KEY+"
_HEX_DIGITS: Final = frozenset("0123456789abcdef")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _strict_b64(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), canonical form only.

    Non-canonical padding bits are refused (RFC 4648 section 3.5) so that
    no changed character can leave the decoded bytes the same.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedNote(f"{what} is not valid base64") from exc
    if _b64(data) != text:
        raise MalformedNote(f"{what} is not canonical base64")
    return data


def _check_name(name: str, what: str = "key name") -> None:
    """C2SP signed-note: non-empty, no Unicode spaces, no plus sign."""
    if not isinstance(name, str) or not name:
        raise InvalidKey(f"{what} must be a non-empty string")
    if any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise InvalidKey(f"{what} {name!r} contains a space, plus or control character")


def _key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """C2SP signed-note: SHA-256(name || 0x0A || type || public key)[:4]."""
    digest = hashlib.sha256(
        name.encode() + b"\n" + bytes([signature_type]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def _cosigned_message(text: bytes, timestamp: int) -> bytes:
    """C2SP tlog-cosignature section "Ed25519 signed message"."""
    return _COSIGNATURE_HEADER + b"time %d\n" % timestamp + text


class NoteSigner:
    """An Ed25519 note signer (C2SP signed-note, type 0x01).

    ``seed`` is the 32-byte Ed25519 private seed; keep it secret. The key
    name should be the log's origin when the signer signs checkpoints.
    """

    signature_type: ClassVar[int] = ED25519_TYPE

    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise InvalidKey(f"seed for {name} must be 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.name = name
        self.public_key = bytes(self._key.verify_key)
        self.key_id = _key_id(name, self.signature_type, self.public_key)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A signer with a fresh random key."""
        return cls(name, bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+name+hexkeyid+base64(type || seed)`` (golang sumdb)."""
        if not skey.startswith(_SKEY_PREFIX):
            raise InvalidKey("signer key does not start with PRIVATE+KEY+")
        parts = skey[len(_SKEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise InvalidKey("signer key must have a name, a key ID and key data")
        name, key_id_hex, data_b64 = parts
        try:
            data = _strict_b64(data_b64, "signer key data")
        except MalformedNote as exc:
            raise InvalidKey(f"signer key data for {name} is not base64") from exc
        if len(data) != 33 or data[0] != cls.signature_type:
            raise InvalidKey(f"signer key for {name} is not a type 0x01 Ed25519 seed")
        signer = cls(name, data[1:])
        if key_id_hex != f"{signer.key_id:08x}":
            raise InvalidKey(f"signer key ID {key_id_hex} does not match key {name}")
        return signer

    @property
    def skey(self) -> str:
        """The secret key string; never log or print it."""
        data = bytes([self.signature_type]) + bytes(self._key)
        return f"{_SKEY_PREFIX}{self.name}+{self.key_id:08x}+{_b64(data)}"

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hexkeyid+base64(type || public key)``."""
        data = bytes([self.signature_type]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{_b64(data)}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(
            self.name, self.key_id, self.signature_type, self.public_key
        )

    def sign(self, text: bytes) -> bytes:
        """The signature bytes after the key ID: an Ed25519 signature of ``text``."""
        return self._key.sign(text).signature

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, key_id={self.key_id:08x})"


class CosignatureSigner(NoteSigner):
    """A witness key making C2SP tlog-cosignature type 0x04 cosignatures.

    Each signature is ``u64 timestamp || Ed25519 signature`` over
    ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint body.
    ``clock`` gives the POSIX time; omitted, the system clock is used.
    """

    signature_type: ClassVar[int] = COSIGNATURE_TYPE

    def __init__(
        self, name: str, seed: bytes, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, seed)
        self._clock = clock

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        return cls(name, bytes(nacl.signing.SigningKey.generate()))

    def sign(self, text: bytes) -> bytes:
        return self.sign_at(text, int(self._clock()))

    def sign_at(self, text: bytes, timestamp: int) -> bytes:
        """A cosignature with an explicit POSIX timestamp (0 .. 2^63-1)."""
        if not 0 <= timestamp <= MAX_TREE_SIZE:
            raise InvalidKey(f"cosignature timestamp {timestamp} is out of range")
        message = _cosigned_message(text, timestamp)
        return struct.pack(">Q", timestamp) + self._key.sign(message).signature


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted public key: (name, key ID, signature type, public key)."""

    name: str
    key_id: int
    signature_type: int
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key ``name+hexkeyid+base64(type || public key)``.

        Accepts Ed25519 note keys (type 0x01) and Ed25519 cosigner keys
        (type 0x04); the key ID must match the one computed from the key.
        """
        if not isinstance(vkey, str):
            raise InvalidKey("verifier key must be a string")
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise InvalidKey("verifier key must be name+keyid+keydata")
        name, key_id_hex, data_b64 = parts
        _check_name(name)
        if len(key_id_hex) != 8 or any(c not in _HEX_DIGITS for c in key_id_hex):
            raise InvalidKey(f"verifier key ID for {name} is not 8 lowercase hex")
        try:
            data = _strict_b64(data_b64, "verifier key data")
        except MalformedNote as exc:
            raise InvalidKey(f"verifier key data for {name} is not base64") from exc
        if len(data) != 33 or data[0] not in (ED25519_TYPE, COSIGNATURE_TYPE):
            raise InvalidKey(
                f"verifier key for {name} is not an Ed25519 key of type 0x01 or 0x04"
            )
        verifier = cls(name, int(key_id_hex, 16), data[0], data[1:])
        if verifier.key_id != _key_id(name, data[0], data[1:]):
            raise InvalidKey(f"verifier key ID {key_id_hex} does not match key {name}")
        return verifier

    @property
    def vkey(self) -> str:
        data = bytes([self.signature_type]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{_b64(data)}"

    @property
    def is_cosigner(self) -> bool:
        return self.signature_type == COSIGNATURE_TYPE

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key ID) signs ``text``."""
        message = text
        if self.signature_type == COSIGNATURE_TYPE:
            if len(signature) != 8 + 64:
                return False
            (timestamp,) = struct.unpack(">Q", signature[:8])
            if timestamp > MAX_TREE_SIZE:
                return False
            message, signature = _cosigned_message(text, timestamp), signature[8:]
        if len(signature) != 64:
            return False
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            return False
        return True


@dataclass(frozen=True)
class VerifiedSignature:
    """One signature line of a note that verified under a trusted key."""

    name: str
    key_id: int
    signature_type: int
    #: POSIX time of a type 0x04 cosignature, None for a note signature.
    timestamp: int | None


@dataclass(frozen=True)
class OpenedNote:
    """A note's text and the trusted signatures that verified on it."""

    text: str
    signatures: tuple[VerifiedSignature, ...]

    @property
    def names(self) -> list[str]:
        return [signature.name for signature in self.signatures]


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: int
    signature: bytes
    line: str


def _check_text(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise MalformedNote(f"{what} must be a string")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedNote(f"{what} contains a control character other than newline")


def _split_note(note: str | bytes) -> tuple[str, list[_SignatureLine]]:
    """C2SP signed-note section "Format": text, blank line, signature lines."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNote("note is not valid UTF-8") from exc
    _check_text(note, "note")
    try:
        size = len(note.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise MalformedNote("note is not valid UTF-8") from exc
    if size > MAX_NOTE_BYTES:
        raise MalformedNote(f"note has {size} bytes, more than {MAX_NOTE_BYTES}")
    separator = note.rfind("\n\n")
    if separator < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = note[: separator + 1], note[separator + 2 :]
    if not block.endswith("\n"):
        raise MalformedNote("note does not end with a signature line and newline")
    raw_lines = block[:-1].split("\n")
    if len(raw_lines) > MAX_SIGNATURES:
        raise MalformedNote(
            f"note has {len(raw_lines)} signatures, more than {MAX_SIGNATURES}"
        )
    lines: list[_SignatureLine] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.startswith(_EM_DASH_PREFIX):
            raise MalformedNote(
                f"signature line {number} does not start with an em dash and a space"
            )
        fields = raw[len(_EM_DASH_PREFIX) :].split(" ")
        if len(fields) != 2 or not fields[0]:
            raise MalformedNote(f"signature line {number} is not '<name> <base64>'")
        name, encoded = fields
        try:
            _check_name(name)
        except InvalidKey as exc:
            raise MalformedNote(f"signature line {number} has a bad key name") from exc
        data = _strict_b64(encoded, f"signature line {number}")
        if len(data) < 5:
            raise MalformedNote(f"signature line {number} is too short")
        key_id = int.from_bytes(data[:4], "big")
        lines.append(_SignatureLine(name, key_id, data[4:], raw))
    return text, lines


def verify_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """Open a signed note and say which trusted keys signed it.

    C2SP signed-note section "Signatures": lines from unknown keys are
    ignored; a known key (same name and key ID) whose signature fails
    rejects the whole note (`BadSignature`); without any verified known
    signature the note is rejected (`UntrustedNote`).
    """
    text, lines = _split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    message = text.encode("utf-8")
    verified: list[VerifiedSignature] = []
    seen: set[tuple[str, int]] = set()
    for line in lines:
        verifier = known.get((line.name, line.key_id))
        if verifier is None:
            logger.debug("ignoring signature from unknown key %s", line.name)
            continue
        if not verifier.verify(message, line.signature):
            raise BadSignature(
                f"signature by {line.name} (key {line.key_id:08x}) does not verify"
            )
        if (line.name, line.key_id) in seen:
            continue
        seen.add((line.name, line.key_id))
        timestamp = None
        if verifier.is_cosigner:
            timestamp = int.from_bytes(line.signature[:8], "big")
        kind = verifier.signature_type
        verified.append(VerifiedSignature(line.name, line.key_id, kind, timestamp))
    if not verified:
        names = sorted({line.name for line in lines})
        raise UntrustedNote(
            f"no signature from a trusted key; note is signed by {', '.join(names)}"
        )
    return OpenedNote(text, tuple(verified))


def open_note(
    note: str | bytes, verifiers: Iterable[NoteVerifier]
) -> tuple[str, list[str]]:
    """The note text and the names of the trusted keys whose signatures verify."""
    opened = verify_note(note, verifiers)
    return opened.text, opened.names


def _signature_line(signer: NoteSigner, text: str) -> str:
    data = signer.key_id.to_bytes(4, "big") + signer.sign(text.encode("utf-8"))
    return f"{_EM_DASH_PREFIX}{signer.name} {_b64(data)}\n"


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """A signed note of ``text`` (which must end in a newline) by ``signers``."""
    _check_text(text, "note text")
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if not signers:
        raise MalformedNote("a note needs at least one signer")
    return text + "\n" + "".join(_signature_line(s, text) for s in signers)


def add_signatures(note: str, signers: Sequence[NoteSigner]) -> str:
    """``note`` with signature lines by ``signers`` appended.

    Existing lines are kept as they are (they are not verified here); a
    signer whose name and key ID already have a line is skipped.
    """
    text, lines = _split_note(note)
    present = {(line.name, line.key_id) for line in lines}
    added = [
        _signature_line(s, text) for s in signers if (s.name, s.key_id) not in present
    ]
    block = "".join(line.line + "\n" for line in lines)
    return text + "\n" + block + "".join(added)


def add_signature_lines(note: str, lines: Sequence[str]) -> str:
    """``note`` with ready-made signature lines (e.g. a witness's) appended.

    The lines must be well formed; they are not verified here. A line whose
    key name and ID already sign the note is skipped.
    """
    text, present = _split_note(note)
    _, extra = _split_note("x\n\n" + "".join(lines))
    seen = {(line.name, line.key_id) for line in present}
    block = "".join(line.line + "\n" for line in present)
    for line in extra:
        if (line.name, line.key_id) not in seen:
            seen.add((line.name, line.key_id))
            block += line.line + "\n"
    return text + "\n" + block


def unverified_text(note: str | bytes) -> str:
    """The text of a well-formed note, before any signature is checked."""
    text, _ = _split_note(note)
    return text


def unverified_signers(note: str) -> list[tuple[str, int]]:
    """(key name, key ID) of each signature line, without verifying any."""
    _, lines = _split_note(note)
    return [(line.name, line.key_id) for line in lines]


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint body: origin, tree size, root hash, extensions."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise MalformedNote("checkpoint origin must be non-empty")
        _check_text(self.origin, "checkpoint origin")
        if "\n" in self.origin:
            raise MalformedNote("checkpoint origin must be a single line")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise MalformedNote("checkpoint size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedNote(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise MalformedNote("checkpoint root hash must be 32 bytes")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            _check_text(line, "checkpoint extension line")
            if not line or "\n" in line:
                raise MalformedNote("checkpoint extension lines must be non-empty")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root, extension lines."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (C2SP tlog-checkpoint section "Note text")."""
        _check_text(text, "checkpoint")
        if not text.endswith("\n"):
            raise MalformedNote("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedNote(f"checkpoint has {len(lines)} lines, at least 3 needed")
        origin, size_text, root_text, *extensions = lines
        if not size_text.isascii() or not size_text.isdigit():
            raise MalformedNote("checkpoint size is not a decimal number")
        if size_text != "0" and size_text.startswith("0"):
            raise MalformedNote("checkpoint size has a leading zero")
        if len(size_text) > 19:
            raise MalformedNote("checkpoint size is out of range")
        root_hash = _strict_b64(root_text, "checkpoint root hash")
        return cls(origin, int(size_text), root_hash, tuple(extensions))
