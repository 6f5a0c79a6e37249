"""Multibase, multicodec and date-time helpers shared by the package.

Multibase (draft-multiformats-multibase): a one-character prefix names the
base; we use `z` (base58btc, Bitcoin alphabet) for keys and signatures and `u`
(base64url, no padding) for status lists. Multicodec prefixes are unsigned
LEB128 varints.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

import base58

_BASE58_DIGITS = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_ALPHABET = frozenset(_BASE58_DIGITS)
_BASE58_VALUE = {digit: value for value, digit in enumerate(_BASE58_DIGITS)}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

# XML Schema 1.1 dateTimeStamp: a dateTime whose time zone is mandatory
# (VC Data Model 2.0 section 4.9 requires it for validFrom and validUntil).
_DATE_TIME_STAMP = re.compile(
    r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)


def encode_base58btc(data: bytes) -> str:
    """Multibase `z` form of `data`."""
    return "z" + base58.b58encode(data).decode("ascii")


def decode_base58btc(value: str) -> bytes:
    """Bytes of a multibase `z` string; `ValueError` if it is not one."""
    if not value.startswith("z"):
        raise ValueError("not base58btc multibase (no 'z' prefix)")
    body = value[1:]
    if not body or not set(body) <= _BASE58_ALPHABET:
        raise ValueError("not valid base58btc")
    # draft-msporny-base58 section 3: the digits are one big-endian base-58
    # number; each leading '1' stands for one leading zero byte.
    number = 0
    for digit in body:
        number = number * 58 + _BASE58_VALUE[digit]
    zeros = len(body) - len(body.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def encode_base64url(data: bytes) -> str:
    """Multibase `u` form of `data` (base64url, no padding)."""
    return "u" + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_base64url(value: str) -> bytes:
    """Bytes of a multibase `u` string; `ValueError` if it is not one."""
    if not value.startswith("u"):
        raise ValueError("not base64url multibase (no 'u' prefix)")
    body = value[1:]
    if not _BASE64URL.fullmatch(body) or len(body) % 4 == 1:
        raise ValueError("not valid base64url")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except binascii.Error as exc:
        raise ValueError("not valid base64url") from exc


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128 varint, as multicodec prefixes use it."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes) -> tuple[int, int]:
    """(value, bytes used) of the varint at the start of `data`."""
    value = 0
    for i, byte in enumerate(data[:9]):
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, i + 1
    raise ValueError("truncated or over-long varint")


def format_datetime(moment: datetime) -> str:
    """XML Schema dateTimeStamp in UTC with `Z`; fractions only when present.

    Raises `ValueError` for a naive datetime: a time without a zone is not
    a dateTimeStamp (VC Data Model 2.0 section 4.9).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_datetime(value: object) -> datetime:
    """Aware datetime of an XML Schema dateTimeStamp; `ValueError` otherwise."""
    if not isinstance(value, str) or not _DATE_TIME_STAMP.fullmatch(value):
        raise ValueError("not an XML Schema dateTimeStamp")
    text = value.replace("Z", "+00:00")
    match = re.search(r"\.([0-9]+)", text)
    if match and len(match.group(1)) > 6:
        # Python keeps microseconds; finer digits cannot change an ordering
        # by more than a microsecond, which no check here depends on.
        text = text[: match.start(1) + 6] + text[match.end(1) :]
    return datetime.fromisoformat(text)
