"""Tests for `mpc_lite.transport`: the envelope encoding and sealing."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from mpc_lite.errors import PartyUnavailable, ProtocolError
from mpc_lite.group import hash_to_group
from mpc_lite.transport import (
    Envelope,
    InProcessTransport,
    SealedMessage,
    pack_words,
    unpack_words,
)

KEY = SigningKey.generate()
ROSTER = {"a": bytes(KEY.verify_key)}


def _envelope() -> Envelope:
    point = hash_to_group(b"d", b"x")
    return Envelope("job", 2, "a", "b", {"query/b": [point], "ref/b/a": []})


def test_sealed_message_round_trips_through_bytes() -> None:
    sealed = _envelope().seal(KEY)
    again = SealedMessage.from_bytes(sealed.to_bytes())
    assert again.open(ROSTER) == _envelope()


def test_truncated_body_is_refused() -> None:
    sealed = _envelope().seal(KEY)
    cut = SealedMessage(sealed.body[:-5], sealed.signature)
    with pytest.raises(ProtocolError, match="malformed"):
        cut.open(ROSTER)


def test_trailing_bytes_are_refused() -> None:
    longer = _envelope().encode() + b"\x00"
    sealed = SealedMessage(longer, KEY.sign(longer).signature)
    with pytest.raises(ProtocolError, match="malformed"):
        sealed.open(ROSTER)


def test_unknown_sender_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not a member"):
        _envelope().seal(KEY).open({"b": bytes(KEY.verify_key)})


def test_in_process_transport_delivers_in_order_and_drains() -> None:
    transport = InProcessTransport()
    first, second = _envelope().seal(KEY), _envelope().seal(SigningKey.generate())
    transport.send(first)
    transport.send(second)
    assert transport.receive("b") == [first, second]
    assert transport.receive("b") == []


def test_sending_to_a_disconnected_party_names_it() -> None:
    transport = InProcessTransport()
    transport.disconnect("b")
    with pytest.raises(PartyUnavailable, match="'b' is unreachable"):
        transport.send(_envelope().seal(KEY))


def test_words_travel_four_to_an_item_and_padding_must_be_zero() -> None:
    words = [0, 1, 2**64 - 1, 5, 7]
    items = pack_words(words)
    assert len(items) == 2 and all(len(item) == 32 for item in items)
    assert unpack_words(items, 5) == words
    with pytest.raises(ValueError, match="wrong number of items"):
        unpack_words(items, 9)
    with pytest.raises(ValueError, match="non-zero padding"):
        unpack_words(pack_words([1, 2, 3, 4]), 3)
