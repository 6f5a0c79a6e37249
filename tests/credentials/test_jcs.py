"""The JCS fast path writes exactly what `rfc8785` writes, or defers to it."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from credentials import _jcs
from credentials.data_integrity import canonicalize
from credentials.errors import MalformedDocument
from credentials.parse import load_json

MAX_SAFE = (1 << 53) - 1


def _fast_path_taken(value: Any) -> bool:
    text = _jcs._ENCODER.encode(value) if _jcs._plain(value, 0) else None
    return text is not None and _jcs._ASTRAL.search(text) is None


def test_cyberphone_vectors_match_byte_for_byte(vc_vectors: Path) -> None:
    """cyberphone/json-canonicalization testdata/input/*.json -> output/*.json
    (commit 19d51d7), through `canonicalize` and its fast path."""
    folder = vc_vectors / "jcs-rfc8785" / "testdata"
    names = sorted(path.name for path in (folder / "input").glob("*.json"))
    assert len(names) == 6
    for name in names:
        value = load_json((folder / "input" / name).read_bytes())
        expected = (folder / "output" / name).read_bytes()
        assert _jcs.dumps(value) == expected, name
        assert canonicalize(value) == expected, name


def test_every_bmp_character_escapes_as_rfc8785_escapes_it() -> None:
    """RFC 8785 section 3.2.2.2, for each code point U+0000-U+FFFF but the
    surrogates, as a string value and as a property name."""
    for start in range(0, 0x10000, 0x800):
        chars = [
            chr(c) for c in range(start, start + 0x800) if not 0xD800 <= c <= 0xDFFF
        ]
        value = {"".join(chars): chars, "k" + "".join(reversed(chars)): "".join(chars)}
        assert _fast_path_taken(value)
        assert _jcs.dumps(value) == rfc8785.dumps(value), hex(start)


def test_astral_property_names_sort_by_utf16_code_units() -> None:
    """U+1F602 sorts before U+FB33 in UTF-16 (0xD83D < 0xFB33) though not by
    code point: the fast path must step aside (RFC 8785 section 3.2.3)."""
    value = {"\ufb33": 1, "\U0001f602": 2, "a": 3}
    assert not _fast_path_taken(value)
    assert _jcs.dumps(value) == rfc8785.dumps(value)
    assert _jcs.dumps(value).decode("utf-8").index("\U0001f602") < _jcs.dumps(
        value
    ).decode("utf-8").index("\ufb33")


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        1e21,
        [0.1, -0.0],
        {"a": MAX_SAFE + 1},
        [-MAX_SAFE - 1],
        (1, 2),
        {1: "x"},
        {"a": True, "b": False, "c": None, "d": MAX_SAFE, "e": -MAX_SAFE},
    ],
)
def test_values_off_the_fast_path_give_the_same_result_or_error(value: Any) -> None:
    assert not _fast_path_taken(value) or isinstance(value, dict)
    if _safe(value):
        assert _jcs.dumps(value) == rfc8785.dumps(value)
    else:
        with pytest.raises((rfc8785.CanonicalizationError, TypeError, ValueError)):
            _jcs.dumps(value)


def test_lone_surrogates_are_refused_as_rfc8785_refuses_them() -> None:
    for value in ({"a": "\ud800"}, {"\udc00": 1}, ["x\udfff"]):
        # rfc8785 raises CanonicalizationError, or UnicodeEncodeError (a
        # ValueError) for a name it cannot sort.
        with pytest.raises(ValueError):
            _jcs.dumps(value)
        with pytest.raises(MalformedDocument, match="cannot be canonicalised"):
            canonicalize(value)


def test_random_documents_agree_with_rfc8785() -> None:
    """Randomised comparison: 3,000 documents mixing escapes, quotes, control
    characters, BMP and astral text, safe and unsafe numbers, deep nesting."""
    rng = random.Random(8785)
    fast = 0
    for _ in range(3000):
        value = _random_value(rng, 0)
        try:
            expected: bytes | type[Exception] = rfc8785.dumps(value)
        except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
            expected = type(exc)
        if isinstance(expected, bytes):
            assert _jcs.dumps(value) == expected, repr(value)
        else:
            with pytest.raises(expected):
                _jcs.dumps(value)
        fast += _fast_path_taken(value)
    assert 500 < fast < 2900  # both paths were exercised


_ALPHABET = (
    string.printable
    + "\x00\x01\x07\x08\x0b\x0c\x1b\x1f\x7f\x80\x9f\xa0\xe9\u2028\u2029"
    + '\u20ac\ufb33\ufeff\uffff\U0001f602\U00010000\U0010ffff/\\"'
)


def _random_string(rng: random.Random) -> str:
    text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 8)))
    if rng.random() < 0.01:
        text += "\ud800"
    return text


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 5 or roll < 0.35:
        return _random_string(rng)
    if roll < 0.45:
        return rng.choice(
            [0, 1, -1, MAX_SAFE, -MAX_SAFE, MAX_SAFE + 1, rng.randrange(-999, 999)]
        )
    if roll < 0.5:
        return rng.choice([True, False, None])
    if roll < 0.53:
        return rng.choice([0.5, 1e21, 1.0, -0.0, 123456.789])
    if roll < 0.75:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {
        _random_string(rng): _random_value(rng, depth + 1)
        for _ in range(rng.randrange(0, 6))
    }


def _safe(value: Any) -> bool:
    try:
        rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return False
    return True
