"""Tests for `mpc_lite.incremental`: checks against history within an epoch."""

from __future__ import annotations

import pytest

from mpc_lite.errors import InvalidInput
from mpc_lite.incremental import Epoch
from mpc_lite.psi import Party
from tests.mpc_lite.test_psi import RecordingTransport


def _epoch(transport: RecordingTransport | None = None, names: str = "abc") -> Epoch:
    return Epoch([Party(name, []) for name in names], transport)


def _stream_names(transport: RecordingTransport) -> set[str]:
    return {
        name
        for message in transport.sent
        for name in message.unverified_envelope().streams
    }


def test_new_claims_are_checked_against_others_history() -> None:
    epoch = _epoch()
    first = epoch.check({"a": [b"x", b"x"], "b": [b"y"], "c": []})
    assert first == {"a": [False, False], "b": [False], "c": []}
    second = epoch.check({"a": [b"y", b"x"], "b": [b"z"], "c": [b"x", b"q"]})
    # a's x is held by c in the same batch; c's x was a's in the last one.
    assert second == {"a": [True, True], "b": [False], "c": [True, False]}
    third = epoch.check({"a": [b"x"], "b": [b"x"], "c": [b"y"]})
    assert third == {"a": [True], "b": [True], "c": [True]}
    assert epoch.history_size("a") == 4  # y and z from b, x and q from c


def test_history_grows_by_the_batch_not_by_rechecking() -> None:
    transport = RecordingTransport()
    epoch = _epoch(transport)
    epoch.check({"a": [bytes([i]) for i in range(30)], "b": [], "c": []})
    before = len(transport.sent)
    carried = sum(
        len(points)
        for message in transport.sent
        for points in message.unverified_envelope().streams.values()
    )
    epoch.check({"a": [], "b": [b"\x01"], "c": []})
    later = sum(
        len(points)
        for message in transport.sent[before:]
        for points in message.unverified_envelope().streams.values()
    )
    assert later < carried / 10


@pytest.mark.parametrize("names", ["ab", "abc"])
def test_a_repeated_query_is_rerandomised_for_relays(names: str) -> None:
    transport = RecordingTransport()
    epoch = _epoch(transport, names)
    empty: dict[str, list[bytes]] = {name: [] for name in names[1:]}
    epoch.check({"a": [b"x"], **empty})
    first = {
        point
        for message in transport.sent
        for name, points in message.unverified_envelope().streams.items()
        if name == "query/a"
        for point in points
    }
    transport.sent.clear()
    epoch.check({"a": [b"x"], **empty})
    second = {
        point
        for message in transport.sent
        for name, points in message.unverified_envelope().streams.items()
        if name == "query/a"
        for point in points
    }
    assert first and not first & second


def test_a_batch_must_name_every_member() -> None:
    with pytest.raises(InvalidInput, match="every member"):
        _epoch().check({"a": []})


def test_a_party_own_earlier_elements_never_count() -> None:
    epoch = _epoch()
    epoch.check({"a": [b"w"], "b": [], "c": []})
    assert epoch.check({"a": [b"w"], "b": [], "c": []})["a"] == [False]


def test_two_members_keep_the_history_semantics() -> None:
    transport = RecordingTransport()
    epoch = _epoch(transport, "ab")
    first = epoch.check({"a": [b"x", b"x"], "b": [b"y"]})
    assert first == {"a": [False, False], "b": [False]}
    second = epoch.check({"a": [b"y", b"x", b"w"], "b": [b"z", b"x"]})
    # a's y was b's in the last batch; x is held by both in this one.
    assert second == {"a": [True, True, False], "b": [False, True]}
    third = epoch.check({"a": [b"z", b"q"], "b": [b"w", b"q"]})
    assert third == {"a": [True, True], "b": [True, True]}
    epoch.check({"a": [b"v"], "b": []})
    assert epoch.check({"a": [b"v"], "b": []})["a"] == [False]
    assert epoch.history_size("a") == 5  # y, z, x, w and q from b
    assert not [name for name in _stream_names(transport) if "merge" in name]


@pytest.mark.parametrize("names", ["ab", "abc"])
def test_a_member_with_an_empty_batch_still_takes_in_history(names: str) -> None:
    transport = RecordingTransport()
    epoch = _epoch(transport, names)
    others = {name: [] for name in names[2:]}
    epoch.check({"a": [b"x"], "b": [], **others})
    assert "query/b" not in _stream_names(transport)
    assert "ref/b/a" in _stream_names(transport)
    assert epoch.check({"a": [], "b": [b"x", b"v"], **others})["b"] == [True, False]
