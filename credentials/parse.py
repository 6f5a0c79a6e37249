"""Careful JSON parsing for documents that arrive from outside.

Two readers share one set of checks (`_decode`, `_check_depth`, `_parse`), so
that every JSON a user hands the engine is refused the same way before
Python's recursive parser can overflow its stack:

- `load_json` is for documents that are signed and verified (credentials,
  presentations, status lists). It accepts only what RFC 8785 (JCS) can
  canonicalise and what I-JSON (RFC 7493) allows, so that a document that
  parses here signs and verifies the same everywhere: UTF-8 only, at most
  1 MiB, nesting at most 64 deep, no duplicate member names (RFC 7493 section
  2.3), no NaN or Infinity, integer literals within +-(2^53 - 1) (RFC 7493
  section 2.2: beyond that a double silently rounds them), no lone surrogates
  (section 2.1). Numbers written with a fraction or exponent are doubles
  already and are kept (JCS serialises them as ECMAScript does, RFC 8785
  section 3.2.2.3).
- `load_user_json` is for JSON that is read but never signed here (FHIR
  bundles and claims, ledger receipts, trust files): UTF-8 (a leading byte
  order mark is dropped), nesting at most 64 deep, and a size limit only if
  the caller gives one. Duplicate names, large integers and non-finite
  numbers are left as Python's `json` reads them.

Both raise `MalformedDocument` with one message naming the input (`what`)
and, for a syntax error, its line and column; never a value from the input.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path
from typing import Any

from credentials.errors import MalformedDocument

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "load_json",
    "load_user_json",
    "read_user_file",
]

MAX_BYTES = 1 << 20
MAX_FILE_BYTES = 64 << 20
"""The most read from a file a user names: 64 MiB, where the largest Synthea
bundle is under 1 MiB. A file is read only up to its limit, so naming
/dev/zero or a 10 GB file costs no more memory than this."""
MAX_DEPTH = 64
_MAX_SAFE_INTEGER = (1 << 53) - 1
# A JSON string, written as an unrolled loop so that it runs in linear time.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def read_user_file(path: Path, *, what: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a file a user named, at most `max_bytes` of them.

    Raises `MalformedDocument` when there are more (nothing past the limit is
    read) and lets `OSError` through for the caller to name. A pipe such as
    /dev/stdin is read like a file; a folder of inputs should list only
    regular files (`Path.is_file`), since a FIFO nobody writes to never ends.
    """
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
        if len(data) <= max_bytes:
            return data
        size = os.fstat(handle.fileno()).st_size
    if size > max_bytes:  # a regular file knows its size
        raise MalformedDocument(f"{what} is {size} bytes; the limit is {max_bytes}")
    raise MalformedDocument(
        f"{what} goes on past {max_bytes} bytes; the limit is {max_bytes}"
    )


def load_json(data: bytes, *, what: str = "the input") -> Any:
    """The JSON value in `data`; `MalformedDocument` saying which rule it breaks.

    `what` names the input in messages (a file name, say).
    """
    if not isinstance(data, bytes | bytearray):
        raise MalformedDocument("JSON input must be bytes")
    text = _decode(bytes(data), what, max_bytes=MAX_BYTES, bom=False)
    value = _parse(
        text,
        what,
        object_pairs_hook=_no_duplicates,
        parse_constant=_no_constant,
        parse_int=_safe_int,
        parse_float=_finite_float,
    )
    # Strings JCS can encode (no lone surrogates).
    _check_strings(value)
    return value


def load_user_json(
    data: bytes | str,
    *,
    what: str = "the input",
    parse_float: Callable[[str], Any] | None = None,
    max_bytes: int | None = None,
) -> Any:
    """The JSON value in `data`, read with the nesting limit of `load_json`.

    For JSON from a user that is read, not signed: `parse_float` as in
    `json.loads` (`decimal.Decimal` keeps a FHIR amount's digits), and no size
    limit unless `max_bytes` is given. `what` names the input in messages.
    Raises `MalformedDocument`. The caller still checks the shape of what it
    gets: any JSON value, `null` included, can come back.
    """
    if isinstance(data, str):
        # Encoded again so that size and lone surrogates are checked as bytes.
        data = data.encode("utf-8", errors="surrogatepass")
    if not isinstance(data, bytes | bytearray):
        raise MalformedDocument(f"{what} must be bytes or text")
    text = _decode(bytes(data), what, max_bytes=max_bytes, bom=True)
    return _parse(text, what, parse_float=parse_float)


def _decode(data: bytes, what: str, *, max_bytes: int | None, bom: bool) -> str:
    """Step 1 of both readers: size and encoding; a BOM dropped if `bom`."""
    if max_bytes is not None and len(data) > max_bytes:
        raise MalformedDocument(
            f"{what} is {len(data)} bytes; the limit is {max_bytes}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedDocument(f"{what} is not UTF-8 (byte {exc.start})") from exc
    if text.startswith("\ufeff"):
        if not bom:
            raise MalformedDocument(f"{what} starts with a byte order mark")
        text = text[1:]
    return text


def _check_depth(text: str, what: str) -> None:
    """Refuse nesting deeper than `MAX_DEPTH`, counted outside strings.

    Runs before `json.loads`, whose recursion would otherwise overflow the
    stack (RecursionError) on a few thousand brackets.
    """
    outside = _STRING.sub("", text).encode("utf-8", errors="surrogatepass")
    brackets = outside.translate(None, _NOT_BRACKETS)
    # The running sum of +1 per opening and -1 per closing bracket, in C.
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
        raise MalformedDocument(f"JSON nesting is deeper than {MAX_DEPTH} in {what}")


def _parse(text: str, what: str, **hooks: Any) -> Any:
    """Steps 2 and 3 of both readers: the depth limit, then `json.loads`."""
    _check_depth(text, what)
    try:
        return json.loads(text, **hooks)
    except MalformedDocument:
        raise
    except json.JSONDecodeError as exc:
        raise MalformedDocument(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}:"
            f" {exc.msg})"
        ) from exc
    except RecursionError as exc:
        raise MalformedDocument(f"JSON nesting is too deep to read in {what}") from exc
    except ValueError as exc:
        # Python refuses integer literals of more than 4300 digits.
        raise MalformedDocument(f"{what} holds an integer too long to read") from exc


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
