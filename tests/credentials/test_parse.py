"""load_json: hostile input is refused with a clear MalformedDocument."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rfc8785

from credentials.errors import CredentialError, MalformedDocument
from credentials.parse import MAX_BYTES, MAX_DEPTH, load_json


def test_ordinary_json_parses() -> None:
    assert load_json(b'{"a": [1, 2.5, "x\\"[{", null, true], "b": {}}') == {
        "a": [1, 2.5, 'x"[{', None, True],
        "b": {},
    }


def test_jcs_vectors_parse_and_canonicalise(vc_vectors: Path) -> None:
    """cyberphone/json-canonicalization testdata/input/*.json -> output/*.json."""
    folder = vc_vectors / "jcs-rfc8785" / "testdata"
    names = sorted(path.name for path in (folder / "input").glob("*.json"))
    assert names
    for name in names:
        value = load_json((folder / "input" / name).read_bytes())
        assert rfc8785.dumps(value) == (folder / "output" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b"{", r"input is not valid JSON \(line 1, column 2: "),
        (b"", "input is not valid JSON"),
        (b"{'a': 1}", "input is not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate member 'a'"),
        (b'{"x": {"a": 1, "a": 1}}', "duplicate member 'a'"),
        (b"NaN", "NaN is not allowed"),
        (b"[-Infinity]", "-Infinity is not allowed"),
        (b"9007199254740992", r"beyond \+-\(2\^53 - 1\)"),
        (b"-9007199254740992", r"beyond \+-\(2\^53 - 1\)"),
        (b"[1" + b"0" * 400 + b"]", r"beyond \+-\(2\^53 - 1\)"),
        (b"1e400", "too large"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udc00": 1}', "lone surrogate"),
    ],
)
def test_refused_inputs(data: bytes, match: str) -> None:
    with pytest.raises(MalformedDocument, match=match):
        load_json(data)


def test_doubles_written_with_exponents_are_kept() -> None:
    assert load_json(b"[1e16, 1E30, -2.5e-3]") == [1e16, 1e30, -0.0025]


def test_largest_safe_integer_is_accepted() -> None:
    assert load_json(b"[9007199254740991, -9007199254740991]") == [
        2**53 - 1,
        -(2**53 - 1),
    ]


def test_nesting_limit() -> None:
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(MalformedDocument, match="nesting is deeper than 64"):
        load_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    with pytest.raises(MalformedDocument, match="nesting is deeper than 64"):
        load_json(b'{"a":' * 100_000)


def test_brackets_inside_strings_do_not_count() -> None:
    assert load_json(json.dumps(["[" * 200]).encode()) == ["[" * 200]


def test_size_limit() -> None:
    padding = b" " * (MAX_BYTES - 2)
    assert load_json(b"{" + padding + b"}") == {}
    with pytest.raises(MalformedDocument, match="limit is 1048576"):
        load_json(b"{ " + padding + b"}")


def test_not_bytes_is_refused() -> None:
    with pytest.raises(MalformedDocument, match="must be bytes"):
        load_json("{}")  # type: ignore[arg-type]


def test_no_third_party_exception_leaks() -> None:
    for data in [b"\x00", b"[1,]", b'"\\x"', b"{" * 10, b"tru", b"01"]:
        with pytest.raises(CredentialError):
            load_json(data)
