"""Sealed key files: Argon2id + secretbox, and every way opening one fails."""

from __future__ import annotations

import json

import nacl.pwhash
import pytest

from credentials.errors import KeyFileError
from credentials.key_file import KdfLimits, open_key, seal_key
from credentials.keys import Ed25519Key

FAST = KdfLimits(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)


@pytest.fixture
def key() -> Ed25519Key:
    return Ed25519Key.from_seed(bytes.fromhex("44" * 32))


def test_sealed_key_opens_with_its_passphrase(key: Ed25519Key) -> None:
    sealed = seal_key(key, "pass phrase", FAST)
    assert open_key(sealed, "pass phrase").seed == key.seed
    assert sealed["did"] == key.did


def test_sealed_form_holds_no_seed_and_a_fresh_salt(key: Ed25519Key) -> None:
    first, second = seal_key(key, "p", FAST), seal_key(key, "p", FAST)
    text = json.dumps(first)
    assert key.seed.hex() not in text and key.private_multibase not in text
    assert first["salt"] != second["salt"] and first["box"] != second["box"]


def test_wrong_passphrase_is_one_opaque_error(key: Ed25519Key) -> None:
    sealed = seal_key(key, "right", FAST)
    with pytest.raises(KeyFileError, match="wrong passphrase or damaged file"):
        open_key(sealed, "wrong")


def test_empty_passphrase_is_refused(key: Ed25519Key) -> None:
    with pytest.raises(KeyFileError, match="empty passphrase"):
        seal_key(key, "", FAST)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "other"}, "not in the claims-sealed-ed25519/1 format"),
        ({"kdf": "scrypt"}, "uses KDF 'scrypt'"),
        ({"salt": "not base64!"}, "a field is missing or bad"),
        ({"salt": "AAAA"}, "salt has the wrong length"),
        ({"opslimit": None}, "a field is missing or bad"),
        ({"did": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"}, "DID"),
    ],
)
def test_damaged_files_say_what_is_wrong(
    key: Ed25519Key, change: dict[str, object], match: str
) -> None:
    sealed = {**seal_key(key, "p", FAST), **change}
    with pytest.raises(KeyFileError, match=match):
        open_key(sealed, "p")


def test_a_flipped_bit_in_the_box_fails_like_a_wrong_passphrase(
    key: Ed25519Key,
) -> None:
    import base64

    sealed = seal_key(key, "p", FAST)
    box = bytearray(base64.b64decode(sealed["box"]))
    box[-1] ^= 1
    sealed["box"] = base64.b64encode(bytes(box)).decode()
    with pytest.raises(KeyFileError, match="wrong passphrase or damaged file"):
        open_key(sealed, "p")
