"""The did:key method for Ed25519 keys (W3C CCG did:key v0.9, Multikey form).

A did:key is `did:key:` followed by the multibase (base58btc, `z`) encoding of
a multicodec-prefixed public key; for Ed25519 the prefix is the varint of
0xed (`ed 01`), so every such DID starts `did:key:z6Mk`. The DID document is
computed from the DID alone: nothing is fetched.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_sign_ed25519_pk_to_curve25519,
)
from nacl.exceptions import CryptoError

from credentials._codec import (
    decode_base58btc,
    decode_varint,
    encode_base58btc,
    encode_varint,
)
from credentials.errors import InvalidDid

__all__ = [
    "DID_CONTEXT",
    "did_from_public_key",
    "public_key_from_did",
    "resolve",
    "verification_method_id",
]

logger = logging.getLogger(__name__)

DID_CONTEXT = "https://www.w3.org/ns/did/v1.1"

_ED25519_PUB = 0xED
_X25519_PUB = 0xEC
_KEY_LENGTH = 32

# DID Core section 3.1 DID syntax: did:<method-name>:<method-specific-id>,
# method names lower-case letters and digits, no path, query or fragment.
_DID_SYNTAX = re.compile(r"did:[a-z0-9]+:(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2}|:)+")


def did_from_public_key(public_key: bytes) -> str:
    """The did:key of a 32-byte Ed25519 public key (did:key section 3.1.1)."""
    if len(public_key) != _KEY_LENGTH:
        raise InvalidDid(
            f"an Ed25519 public key has {_KEY_LENGTH} bytes, not {len(public_key)}",
            rule="wrong_key_length",
        )
    return "did:key:" + _multikey(_ED25519_PUB, public_key)


def verification_method_id(did: str) -> str:
    """The id of the did:key's one verification method: `did#<multibase>`."""
    public_key_from_did(did)
    return f"{did}#{did.rsplit(':', 1)[1]}"


def public_key_from_did(did: str) -> bytes:
    """The Ed25519 public key a did:key encodes.

    Applies the did:key "Decode Public Key" checks in order and raises
    `InvalidDid` naming the first rule broken.
    """
    if not isinstance(did, str):
        raise InvalidDid("value is not a DID", rule="not_a_did")
    return _decode(did)


@functools.lru_cache(maxsize=4096)
def _decode(did: str) -> bytes:
    """`public_key_from_did` for a string, memoised: verifiers meet the same
    few issuer DIDs again and again, and the curve point check is the costly
    part. Failures raise and so are never cached."""
    # 1. DID syntax and method (DID Core section 3.1; did:key section 3.1.2).
    if not _DID_SYNTAX.fullmatch(did):
        raise InvalidDid("value is not a DID", rule="not_a_did")
    method = did.split(":", 2)[1]
    if method != "key":
        raise InvalidDid(
            f"DID method {method!r} is not 'key'", rule="unsupported_method"
        )
    parts = did.split(":")[2:]
    if len(parts) == 2 and parts[0] == "1":
        parts = parts[1:]
    if len(parts) != 1:
        raise InvalidDid(
            f"did:key {did!r} has an unsupported version or extra segments",
            rule="not_a_did",
        )
    multibase_value = parts[0]

    # 2. The method-specific id is base58btc multibase ('z').
    if not multibase_value.startswith("z"):
        raise InvalidDid(
            f"did:key {did!r} is not base58btc multibase (must start with 'z')",
            rule="not_multibase",
        )
    try:
        decoded = decode_base58btc(multibase_value)
        codec, used = decode_varint(decoded)
    except ValueError as exc:
        raise InvalidDid(
            f"did:key {did!r} is not valid base58btc with a multicodec prefix",
            rule="bad_encoding",
        ) from exc

    # 3. Multicodec Ed25519 public key, 32 bytes, a valid curve point.
    if codec != _ED25519_PUB:
        raise InvalidDid(
            f"did:key {did!r} has multicodec 0x{codec:x}, not Ed25519 (0xed)",
            rule="unsupported_key_type",
        )
    raw = decoded[used:]
    if len(raw) != _KEY_LENGTH:
        raise InvalidDid(
            f"did:key {did!r} holds a {len(raw)}-byte key; Ed25519 needs {_KEY_LENGTH}",
            rule="wrong_key_length",
        )
    if not crypto_core_ed25519_is_valid_point(raw):
        raise InvalidDid(
            f"did:key {did!r} is not a valid Ed25519 point",
            rule="invalid_public_key",
        )
    return raw


def resolve(
    did: str, *, enable_encryption_key_derivation: bool = True
) -> dict[str, Any]:
    """The DID document of an Ed25519 did:key (did:key section 3.1.2), Multikey form.

    With `enable_encryption_key_derivation` (the spec's option of that name,
    on by default) the document also carries the X25519 key agreement key
    derived from the Ed25519 key. Raises `InvalidDid`.
    """
    public_key = public_key_from_did(did)
    multibase_value = did.rsplit(":", 1)[1]
    method_id = f"{did}#{multibase_value}"
    document: dict[str, Any] = {
        "@context": [DID_CONTEXT],
        "id": did,
        "verificationMethod": [
            {
                "id": method_id,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": multibase_value,
            }
        ],
        "authentication": [method_id],
        "assertionMethod": [method_id],
        "capabilityDelegation": [method_id],
        "capabilityInvocation": [method_id],
    }
    if enable_encryption_key_derivation:
        try:
            x25519 = crypto_sign_ed25519_pk_to_curve25519(public_key)
        except CryptoError as exc:  # pragma: no cover - point already checked
            raise InvalidDid(
                f"did:key {did!r} has no X25519 equivalent",
                rule="invalid_public_key",
            ) from exc
        agreement = _multikey(_X25519_PUB, x25519)
        document["keyAgreement"] = [
            {
                "id": f"{did}#{agreement}",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": agreement,
            }
        ]
    logger.debug("resolved %s", did)
    return document


def _multikey(codec: int, key: bytes) -> str:
    return encode_base58btc(encode_varint(codec) + key)
