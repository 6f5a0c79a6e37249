"""Record bytes are RFC 8785 (JCS) whichever path computes them."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
import rfc8785

from ledger import _canonical
from ledger._canonical import canonical_bytes
from ledger.errors import InvalidRecord


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(7 if depth < 3 else 4)
    if choice == 0:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(8)))
    if choice == 1:
        return rng.randrange(-(2**53) + 1, 2**53)
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        return rng.choice(["é", "\u2028", "\U0001f600", "\x7f", "a\x00b", 0.5, 1e21])
    if choice in (4, 5):
        return {
            rng.choice(["a", "B", "é", "\uffff"]) + str(n): _random_value(
                rng, depth + 1
            )
            for n in range(rng.randrange(4))
        }
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


@pytest.fixture(params=["orjson", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the orjson fast path and with the standard library one."""
    if request.param == "stdlib":
        monkeypatch.setattr(_canonical, "orjson", None)
    return str(request.param)


def test_fast_path_matches_rfc8785_on_random_records(encoder: str) -> None:
    rng = random.Random(1)
    for _ in range(2000):
        record = {"k": _random_value(rng), "x": _random_value(rng)}
        assert canonical_bytes(record) == rfc8785.dumps(record)


def test_every_ascii_character_is_escaped_as_rfc8785_does(encoder: str) -> None:
    for code in range(128):
        char = chr(code)
        record = {"k" + char: [char, {"z": char, "a": 1}], "n": None, "b": True}
        assert canonical_bytes(record) == rfc8785.dumps(record), code


def test_key_order_follows_utf16_code_units() -> None:
    record = {"\U0001f600": 1, "\uffff": 2}
    assert canonical_bytes(record) == rfc8785.dumps(record)
    assert canonical_bytes(record).index("\U0001f600".encode()) < canonical_bytes(
        record
    ).index("\uffff".encode())


@pytest.mark.parametrize(
    "record", [{"n": float("inf")}, {1: "int key"}, {"s": {1}}, {"n": 2**53}]
)
def test_non_json_records_are_refused(record: dict[Any, Any]) -> None:
    with pytest.raises(InvalidRecord, match="cannot be canonicalised"):
        canonical_bytes(record)
