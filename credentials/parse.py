"""Careful JSON parsing for documents that arrive from outside.

`load_json` accepts only what RFC 8785 (JCS) can canonicalise and what I-JSON
(RFC 7493) allows, so that a document that parses here signs and verifies
the same everywhere: UTF-8 only, at most 1 MiB, nesting at most 64 deep, no
duplicate member names (RFC 7493 section 2.3), no NaN or Infinity, integer
literals within +-(2^53 - 1) (RFC 7493 section 2.2: beyond that a double
silently rounds them), no lone surrogates (section 2.1). Numbers written with
a fraction or exponent are doubles already and are kept (JCS serialises them
as ECMAScript does, RFC 8785 section 3.2.2.3).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from credentials.errors import MalformedDocument

__all__ = ["MAX_BYTES", "MAX_DEPTH", "load_json"]

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
_MAX_SAFE_INTEGER = (1 << 53) - 1
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def load_json(data: bytes) -> Any:
    """The JSON value in `data`; `MalformedDocument` saying which rule it breaks."""
    # 1. Size and encoding.
    if not isinstance(data, bytes | bytearray):
        raise MalformedDocument("JSON input must be bytes")
    if len(data) > MAX_BYTES:
        raise MalformedDocument(
            f"JSON input is {len(data)} bytes; the limit is {MAX_BYTES}"
        )
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedDocument(f"JSON input is not UTF-8 (byte {exc.start})") from exc
    if text.startswith("\ufeff"):
        raise MalformedDocument("JSON input starts with a byte order mark")

    # 2. Nesting depth, counted outside strings before the parser recurses.
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            raise MalformedDocument(f"JSON nesting is deeper than {MAX_DEPTH}")

    # 3. Parse, refusing duplicates, non-finite and unsafe numbers.
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_safe_int,
            parse_float=_finite_float,
        )
    except MalformedDocument:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedDocument(f"input is not JSON: {exc}") from exc

    # 4. Strings JCS can encode (no lone surrogates).
    _check_strings(value)
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise MalformedDocument(f"JSON object has a duplicate member {name!r}")
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    raise MalformedDocument(f"JSON number {name} is not allowed")


def _safe_int(text: str) -> int:
    if len(text) > 20 or abs(int(text)) > _MAX_SAFE_INTEGER:
        raise MalformedDocument("JSON integer is beyond +-(2^53 - 1)")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedDocument("JSON number is too large to represent")
    return value


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _encodable(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for name, member in item.items():
                _encodable(name)
                stack.append(member)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedDocument("JSON string holds a lone surrogate") from exc
