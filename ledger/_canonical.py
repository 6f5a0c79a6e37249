"""RFC 8785 (JCS) canonical bytes of a ledger record."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from ledger.errors import InvalidRecord

try:  # a Prefect dependency; about a third faster than the standard library
    import orjson
except ImportError:  # pragma: no cover - the standard library encoder is used
    orjson = None  # type: ignore[assignment]

__all__ = ["canonical_bytes"]

_SAFE_INTEGER = 2**53 - 1
_PLAIN_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def _plain_types(value: Any) -> bool:
    """Whether ``value`` holds only str keys, str, bool, None and safe integers.

    For those values, `json.dumps` with sorted keys is RFC 8785 output as
    long as every string is ASCII (JCS orders keys by UTF-16 code units,
    which for ASCII is code point order, and escapes strings the same way);
    `canonical_bytes` checks the ASCII part on the encoded text at once.
    Floats and integers beyond +-(2^53 - 1) take the `rfc8785` path.
    """
    if type(value) is dict:
        try:
            "".join(value)  # raises TypeError for a key that is not a string
        except TypeError:
            return False
        items = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                return False
        elif kind is dict or kind is list:
            if not _plain_types(item):
                return False
        else:
            return False
    return True


def _plain_bytes(record: dict[str, Any]) -> bytes | None:
    """Sorted-key compact JSON; None when the fast encoder refuses the value."""
    if orjson is None:
        return _PLAIN_ENCODER.encode(record).encode("utf-8")
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # e.g. a lone surrogate: let rfc8785 decide
        return None


def canonical_bytes(record: dict[str, Any]) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``record`` (a JSON object)."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"a record must be a dict, not {type(record).__name__}")
    if _plain_types(record):
        data = _plain_bytes(record)
        if data is not None and data.isascii():
            return data
    try:
        return rfc8785.dumps(record)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidRecord(f"record cannot be canonicalised as JSON: {exc}") from exc
