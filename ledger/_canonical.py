"""RFC 8785 (JCS) canonical bytes of a ledger record."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from ledger.errors import InvalidRecord

__all__ = ["canonical_bytes"]

_SAFE_INTEGER = 2**53 - 1
_PLAIN_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def _is_plain(value: Any) -> bool:
    """Whether `json.dumps` with sorted keys is already RFC 8785 output.

    True for ASCII keys and strings, integers within +-(2^53 - 1), booleans
    and null, in dicts and lists: there JCS key order (UTF-16 code units)
    equals code point order and both escape strings the same way. Floats and
    non-ASCII text take the `rfc8785` path.
    """
    kind = type(value)
    if kind is str:
        return value.isascii()  # type: ignore[no-any-return]
    if kind is int:
        return -_SAFE_INTEGER <= value <= _SAFE_INTEGER  # type: ignore[no-any-return]
    if kind is bool or value is None:
        return True
    if kind is dict:
        try:
            if not "".join(value).isascii():
                return False
        except TypeError:  # a key that is not a string
            return False
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False
    for item in items:
        item_kind = type(item)
        if item_kind is str:
            if not item.isascii():
                return False
        elif item_kind is int:
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                return False
        elif not (item_kind is bool or item is None or _is_plain(item)):
            return False
    return True


def canonical_bytes(record: dict[str, Any]) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``record`` (a JSON object)."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"a record must be a dict, not {type(record).__name__}")
    if _is_plain(record):
        return _PLAIN_ENCODER.encode(record).encode("utf-8")
    try:
        return rfc8785.dumps(record)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidRecord(f"record cannot be canonicalised as JSON: {exc}") from exc
