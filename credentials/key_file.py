"""Ed25519 keys at rest, sealed with a passphrase.

The seed is encrypted with libsodium's secretbox (XSalsa20-Poly1305) under a
key derived from the passphrase with Argon2id (RFC 9106), a fresh random salt
per file. The sealed form is a small JSON-ready dict that records the KDF
limits it was made with, so that a file sealed on a fast machine still opens
on a slow one. Nothing in it reveals the seed without the passphrase; the
DID is kept in clear so a wallet can say whose key it is without asking.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

import nacl.pwhash
import nacl.secret
import nacl.utils
from nacl.exceptions import CryptoError

from credentials.errors import InvalidKey, KeyFileError
from credentials.keys import Ed25519Key

__all__ = ["INTERACTIVE", "KdfLimits", "open_key", "seal_key"]

logger = logging.getLogger(__name__)

_FORMAT = "claims-sealed-ed25519/1"
_KDF = "argon2id"


@dataclass(frozen=True)
class KdfLimits:
    """Argon2id work factors: passes over memory, and bytes of memory."""

    opslimit: int
    memlimit: int


INTERACTIVE = KdfLimits(
    nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
    nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
)
"""libsodium's interactive limits (2 passes, 64 MiB): about half a second."""


def seal_key(
    key: Ed25519Key, passphrase: str, limits: KdfLimits = INTERACTIVE
) -> dict[str, Any]:
    """The sealed, JSON-ready form of `key` under `passphrase`.

    Raises `KeyFileError` for an empty passphrase.
    """
    if not passphrase:
        raise KeyFileError("a key cannot be sealed with an empty passphrase")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, limits))
    sealed = box.encrypt(key.seed)
    return {
        "format": _FORMAT,
        "did": key.did,
        "kdf": _KDF,
        "opslimit": limits.opslimit,
        "memlimit": limits.memlimit,
        "salt": _b64(salt),
        "box": _b64(bytes(sealed)),
    }


def open_key(data: Any, passphrase: str) -> Ed25519Key:
    """The key a `seal_key` dict holds.

    Raises `KeyFileError` when the dict is not a sealed key, the passphrase
    is wrong (the same message as a damaged box: nothing tells the two
    apart), or the key inside is not the one its DID names.
    """
    # 1. The envelope.
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise KeyFileError(f"key file is not in the {_FORMAT} format")
    if data.get("kdf") != _KDF:
        raise KeyFileError(f"key file uses KDF {data.get('kdf')!r}, not {_KDF!r}")
    try:
        limits = KdfLimits(int(data["opslimit"]), int(data["memlimit"]))
        salt = _unb64(data["salt"])
        box = _unb64(data["box"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise KeyFileError("key file is damaged: a field is missing or bad") from exc
    if len(salt) != nacl.pwhash.argon2id.SALTBYTES:
        raise KeyFileError("key file is damaged: the salt has the wrong length")

    # 2. Derive and open: a wrong passphrase fails the Poly1305 tag.
    try:
        seed = nacl.secret.SecretBox(_derive(passphrase, salt, limits)).decrypt(box)
        key = Ed25519Key.from_seed(seed)
    except (CryptoError, InvalidKey) as exc:
        raise KeyFileError(
            "key file cannot be opened: wrong passphrase or damaged file"
        ) from exc

    # 3. The key is the one the file names.
    if key.did != data.get("did"):
        raise KeyFileError("key file is damaged: its key does not match its DID")
    logger.debug("opened sealed key of %s", key.did)
    return key


def _derive(passphrase: str, salt: bytes, limits: KdfLimits) -> bytes:
    try:
        return nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode("utf-8"),
            salt,
            opslimit=limits.opslimit,
            memlimit=limits.memlimit,
        )
    except (CryptoError, ValueError, UnicodeEncodeError) as exc:
        raise KeyFileError("key file KDF limits or passphrase are not usable") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not a string")
    return base64.b64decode(text, validate=True)
