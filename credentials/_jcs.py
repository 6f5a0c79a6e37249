"""RFC 8785 (JCS) canonical bytes, with a fast path through the C JSON encoder.

The `rfc8785` package is exact but pure Python, and canonicalisation is most
of what verifying a credential costs. For the documents this engine signs
(strings, safe integers, booleans, null, lists and objects) Python's C
encoder, asked for sorted keys, compact separators and no ASCII escaping,
writes exactly the JCS bytes; `dumps` uses it when it can prove that, and
`rfc8785.dumps` otherwise. Why the two agree, rule by rule:

- Strings (RFC 8785 section 3.2.2.2, which defers to ECMAScript
  `JSON.stringify`): both escape `"` and `\\` with a backslash; U+0008,
  U+0009, U+000A, U+000C and U+000D as `\\b \\t \\n \\f \\r`; every other
  code point below U+0020 as `\\u00hh` with lower-case hex; and nothing else
  (not `/`, not U+007F, not U+2028/U+2029). A lone surrogate, which JCS
  refuses (I-JSON, RFC 7493 section 2.1), makes the UTF-8 encoding fail and
  so falls back to `rfc8785`, which raises.
- Literals (section 3.2.2.1): `true`, `false`, `null` alike.
- Numbers (section 3.2.2.3): an integer of magnitude at most 2^53 - 1 is an
  exact double whose ECMAScript form is its plain decimal digits, as
  `str(int)` writes it. Floats are left to `rfc8785` (Python's `repr` differs
  from ECMAScript's for, say, 1e21 or 1.0), and so are larger integers.
- Property order (section 3.2.3) compares names as UTF-16 code units; Python
  compares code points. The two orders agree unless a name holds a code point
  above U+FFFF (encoded as a surrogate pair, it sorts below U+E000-U+FFFF in
  UTF-16). The fast path is used only when the output holds no such code
  point at all, which covers every name.
- Whitespace (section 3.2.1): none, with separators `,` and `:`.

The tests compare both paths on random documents and on the published
cyberphone/json-canonicalization vectors.
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

__all__ = ["dumps"]

_MAX_SAFE = (1 << 53) - 1
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def dumps(value: Any) -> bytes:
    """The RFC 8785 bytes of `value`; raises as `rfc8785.dumps` does."""
    if _plain(value, 0):
        text = _ENCODER.encode(value)
        if text.isascii() or _ASTRAL.search(text) is None:
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:
                pass  # a lone surrogate: let rfc8785 refuse it
    return rfc8785.dumps(value)


def _plain(value: Any, depth: int) -> bool:
    """Whether `value` is built only of what the fast path serialises exactly."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE <= value <= _MAX_SAFE)
    if depth > 200:
        return False
    if kind is dict:
        for name, member in value.items():
            if type(name) is not str:
                return False
            if type(member) is not str and not _plain(member, depth + 1):
                return False
        return True
    if kind is list:
        for member in value:
            if type(member) is not str and not _plain(member, depth + 1):
                return False
        return True
    return False
