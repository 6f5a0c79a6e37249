"""Ed25519 signing keys with their did:key identity."""

from __future__ import annotations

from typing import Self

from nacl.signing import SigningKey

from credentials._codec import (
    decode_base58btc,
    decode_varint,
    encode_base58btc,
    encode_varint,
)
from credentials.did_key import did_from_public_key
from credentials.errors import InvalidKey

__all__ = ["Ed25519Key"]

_SEED_LENGTH = 32
_ED25519_PRIV = 0x1300  # multicodec ed25519-priv


class Ed25519Key:
    """An Ed25519 key pair, named by its did:key.

    Build one with `generate()`, `from_seed()` or `from_private_multibase()`.
    The seed is the secret: `repr()` shows only the DID.
    """

    __slots__ = ("_did", "_signing_key")

    def __init__(self, signing_key: SigningKey) -> None:
        self._signing_key = signing_key
        self._did = did_from_public_key(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> Self:
        """A fresh key from the operating system's random source."""
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        """The key of a 32-byte RFC 8032 seed; `InvalidKey` for another length."""
        if not isinstance(seed, bytes) or len(seed) != _SEED_LENGTH:
            raise InvalidKey(f"an Ed25519 seed has {_SEED_LENGTH} bytes")
        return cls(SigningKey(seed))

    @classmethod
    def from_private_multibase(cls, value: str) -> Self:
        """The key of a Multikey `privateKeyMultibase` (`z` + 0x1300 + seed)."""
        try:
            decoded = decode_base58btc(value)
            codec, used = decode_varint(decoded)
        except ValueError as exc:
            raise InvalidKey("private key is not base58btc multibase") from exc
        if codec != _ED25519_PRIV:
            raise InvalidKey(f"private key multicodec 0x{codec:x} is not ed25519-priv")
        return cls.from_seed(decoded[used:])

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed. Keep it secret."""
        return bytes(self._signing_key)

    @property
    def private_multibase(self) -> str:
        """The seed as a Multikey `privateKeyMultibase`. Keep it secret."""
        return encode_base58btc(encode_varint(_ED25519_PRIV) + self.seed)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(self._signing_key.verify_key)

    @property
    def did(self) -> str:
        """The did:key naming this key."""
        return self._did

    @property
    def verification_method(self) -> str:
        """The key's verification method id, `did:key:z...#z...`."""
        return f"{self._did}#{self._did.rsplit(':', 1)[1]}"

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature (RFC 8032 section 5.1.6) of `data`."""
        return self._signing_key.sign(data).signature

    def __repr__(self) -> str:
        return f"Ed25519Key(did={self._did!r})"
