"""Bitstring Status List v1.0: revocation and suspension bits for credentials.

A status list is a bitstring of at least 131,072 entries (section 2.2; the
minimum gives herd privacy, see the privacy considerations); entry `i` is
bit `i` counted from the left-most bit of the first byte. It is published
GZIP-compressed and base64url-encoded with the multibase `u` prefix (section
3.1 Bitstring Generation Algorithm) inside a signed
`BitstringStatusListCredential`.
"""

from __future__ import annotations

import gzip
import logging
import random
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, Self

from credentials._codec import decode_base64url, encode_base64url, format_datetime
from credentials.data_integrity import add_proof
from credentials.errors import StatusListError
from credentials.keys import Ed25519Key

__all__ = [
    "MIN_LENGTH",
    "PURPOSES",
    "StatusList",
    "StatusListCache",
    "status_entry",
    "status_list_credential",
]

logger = logging.getLogger(__name__)

MIN_LENGTH = 131_072
"""Minimum number of entries in a published list (section 2.2)."""
PURPOSES = frozenset({"revocation", "suspension"})
"""Status purposes this package issues and checks."""
_MAX_LENGTH = 1 << 27  # 16 MiB of bits: refuse a list that expands past this.
_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"


class RandomSource(Protocol):
    def randrange(self, stop: int, /) -> int: ...


class StatusList:
    """A bitstring of status entries, plus the indices already handed out.

    Build one with `new()` or `decode()`. `allocate()` hands out unused
    indices at random (privacy considerations: sequential indices would let
    verifiers correlate issuance order).
    """

    __slots__ = ("_allocated", "_bits", "_length")

    def __init__(self, bits: bytearray, length: int, allocated: set[int]) -> None:
        self._bits = bits
        self._length = length
        self._allocated = allocated

    @classmethod
    def new(cls, length: int = MIN_LENGTH) -> Self:
        """An all-zero list of `length` entries (a multiple of 8, at least 8)."""
        if length < 8 or length % 8 or length > _MAX_LENGTH:
            raise StatusListError(
                f"a status list length must be a multiple of 8 between 8 and "
                f"{_MAX_LENGTH}, not {length}"
            )
        return cls(bytearray(length // 8), length, set())

    @classmethod
    def decode(cls, encoded: str) -> Self:
        """The list an `encodedList` value holds (section 3.2 Bitstring Expansion).

        Raises `StatusListError` if it is not `u`-multibase base64url of GZIP
        data, or expands past 16 MiB.
        """
        if not isinstance(encoded, str):
            raise StatusListError("encodedList is not a string")
        try:
            compressed = decode_base64url(encoded)
        except ValueError as exc:
            raise StatusListError(
                f"encodedList is not multibase base64url: {exc}"
            ) from exc
        try:
            # wbits 16+MAX_WBITS: a GZIP container only; max_length caps a bomb.
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = inflater.decompress(compressed, _MAX_LENGTH // 8 + 1)
            complete = inflater.eof and not inflater.unconsumed_tail
        except zlib.error as exc:
            raise StatusListError("encodedList is not GZIP data") from exc
        if len(raw) > _MAX_LENGTH // 8:
            raise StatusListError("encodedList expands past the 16 MiB limit")
        if not complete or not raw:
            raise StatusListError("encodedList GZIP stream is truncated or empty")
        return cls(bytearray(raw), len(raw) * 8, set())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a list saved with `to_dict()`."""
        try:
            status_list = cls.decode(data["encodedList"])
            allocated = {int(index) for index in data.get("allocated", [])}
        except (KeyError, TypeError, ValueError) as exc:
            raise StatusListError("saved status list is not usable") from exc
        if any(not 0 <= index < status_list.length for index in allocated):
            raise StatusListError("saved status list has an allocation out of range")
        status_list._allocated = allocated
        return status_list

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the bits and the allocated indices."""
        return {"encodedList": self.encode(), "allocated": sorted(self._allocated)}

    @property
    def length(self) -> int:
        """Number of entries."""
        return self._length

    @property
    def allocated(self) -> frozenset[int]:
        """Indices handed out by `allocate()` (or restored by `from_dict()`)."""
        return frozenset(self._allocated)

    def allocate(self, rng: RandomSource | None = None) -> int:
        """A random index not handed out before, now marked as used.

        `rng` defaults to `random.SystemRandom()`. Raises `StatusListError`
        when every index is taken.
        """
        rng = rng or random.SystemRandom()
        free_count = self._length - len(self._allocated)
        if free_count <= 0:
            raise StatusListError(f"status list of {self._length} entries is full")
        if len(self._allocated) < self._length // 2:
            while (index := rng.randrange(self._length)) in self._allocated:
                pass
        else:
            # Dense list: draw among the free indices directly.
            free = [i for i in range(self._length) if i not in self._allocated]
            index = free[rng.randrange(len(free))]
        self._allocated.add(index)
        return index

    def set(self, index: int, value: bool = True) -> None:
        """Set (or clear, with `value=False`) entry `index`."""
        self._check(index)
        mask = 0x80 >> (index % 8)
        if value:
            self._bits[index // 8] |= mask
        else:
            self._bits[index // 8] &= ~mask & 0xFF

    def get(self, index: int) -> bool:
        """Entry `index`; bit 0 is the left-most bit of the first byte."""
        self._check(index)
        return bool(self._bits[index // 8] & (0x80 >> (index % 8)))

    def encode(self) -> str:
        """The `encodedList` value (section 3.1): GZIP, base64url, `u` prefix."""
        return encode_base64url(gzip.compress(bytes(self._bits), mtime=0))

    def _check(self, index: int) -> None:
        if not isinstance(index, int) or not 0 <= index < self._length:
            raise StatusListError(
                f"index {index} is outside the list of {self._length} entries"
            )


class StatusListCache:
    """A status list fetcher that keeps the lists the verifier has checked.

    Wraps a fetcher (status list URL -> status list credential). Given as
    `status_lists` to `credentials.verifier.verify_presentation`, it lets
    every presentation of a batch reuse a list that an earlier one fetched,
    verified and decoded, instead of checking its signature and inflating it
    again. Only lists that passed every check are kept, each under its URL,
    the issuer it was checked against, and the clock and skew it was checked
    with; a list that could not be fetched or checked is fetched again by the
    next presentation that needs it.

    Use one per batch (one `now`): a list republished after it was kept is
    not seen by the presentations that reuse it, so a credential revoked in
    the meantime is caught by the next batch, not this one.
    """

    def __init__(self, fetch: Callable[[str], dict[str, Any]]) -> None:
        self._fetch = fetch
        self.verified: dict[tuple[str, str, datetime, Any], Any] = {}
        """What the verifier kept, by (URL, issuer, now, skew)."""

    def __call__(self, url: str) -> dict[str, Any]:
        return self._fetch(url)


def status_entry(list_url: str, index: int, purpose: str) -> dict[str, Any]:
    """A `BitstringStatusListEntry` (section 2.1) pointing at `index` of a list."""
    if purpose not in PURPOSES:
        raise StatusListError(f"unsupported status purpose {purpose!r}")
    if not isinstance(index, int) or index < 0:
        raise StatusListError(
            f"status list index must be a non-negative int, not {index}"
        )
    return {
        "id": f"{list_url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def status_list_credential(
    issuer_key: Ed25519Key,
    list_id_url: str,
    status_list: StatusList,
    purpose: str,
    valid_from: datetime,
) -> dict[str, Any]:
    """A signed `BitstringStatusListCredential` (section 2.2) for `status_list`.

    Signed by `issuer_key` (assertionMethod, created at `valid_from`). The list
    must have at least 131,072 entries.
    """
    if purpose not in PURPOSES:
        raise StatusListError(f"unsupported status purpose {purpose!r}")
    if status_list.length < MIN_LENGTH:
        raise StatusListError(
            f"a published status list needs at least {MIN_LENGTH} entries, "
            f"not {status_list.length}"
        )
    credential = {
        "@context": [_V2_CONTEXT],
        "id": list_id_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer_key.did,
        "validFrom": format_datetime(valid_from),
        "credentialSubject": {
            "id": f"{list_id_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": status_list.encode(),
        },
    }
    logger.debug("signing status list %s (%s)", list_id_url, purpose)
    return add_proof(
        credential, issuer_key, proof_purpose="assertionMethod", created=valid_from
    )
