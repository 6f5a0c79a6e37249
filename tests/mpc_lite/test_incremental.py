"""Tests for `mpc_lite.incremental`: checks against history within an epoch."""

from __future__ import annotations

import pytest

from mpc_lite.errors import InvalidInput
from mpc_lite.incremental import Epoch
from mpc_lite.psi import Party
from tests.mpc_lite.test_psi import RecordingTransport


def _epoch(transport: RecordingTransport | None = None) -> Epoch:
    return Epoch([Party(name, []) for name in ("a", "b", "c")], transport)


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


def test_a_repeated_query_is_rerandomised_for_relays() -> None:
    transport = RecordingTransport()
    epoch = _epoch(transport)
    epoch.check({"a": [b"x"], "b": [], "c": []})
    first = {
        point
        for message in transport.sent
        for name, points in message.unverified_envelope().streams.items()
        if name == "query/a"
        for point in points
    }
    transport.sent.clear()
    epoch.check({"a": [b"x"], "b": [], "c": []})
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
