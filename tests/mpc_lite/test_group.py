"""Tests for `mpc_lite.group`: hashing to ristretto255, validation, blinding."""

from __future__ import annotations

import pytest
import rbcl

from mpc_lite.errors import InvalidPoint
from mpc_lite.group import (
    blind,
    blind_many,
    blind_received,
    expand_message_xmd,
    hash_many,
    hash_to_group,
    random_scalar,
    validate_point,
)

# RFC 9380 Appendix K.3, expand_message_xmd(SHA-512).
_XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
_XMD_VECTORS = [
    (b"", 32, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (b"abc", 32, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    (
        b"abc",
        128,
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
        "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
        "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
        "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
    ),
]

# RFC 9496 Appendix A.3, element derivation from 64 uniform bytes.
_MAP_VECTORS = [
    (
        "5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c1"
        "4d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6",
        "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46",
    ),
    (
        "f116b34b8f17ceb56e8732a60d913dd10cce47a6d53bee9204be8b44f6678b27"
        "0102a56902e2488c46120e9276cfe54638286b9e4b3cdb470b542d46c2068d38",
        "f26e5b6f7d362d2d2a94c5d0e7602cb4773c95a2e5c31a64f133189fa76ed61b",
    ),
]


@pytest.mark.parametrize(("msg", "length", "expected"), _XMD_VECTORS)
def test_expand_message_xmd_matches_rfc9380_k3(
    msg: bytes, length: int, expected: str
) -> None:
    """Vectors from RFC 9380 Appendix K.3 (expand_message_xmd, SHA-512)."""
    assert expand_message_xmd(msg, _XMD_DST, length).hex() == expected


@pytest.mark.parametrize(("uniform", "expected"), _MAP_VECTORS)
def test_libsodium_one_way_map_matches_rfc9496_a3(uniform: str, expected: str) -> None:
    """Vectors from RFC 9496 Appendix A.3 (ristretto255 element derivation)."""
    point = rbcl.crypto_core_ristretto255_from_hash(bytes.fromhex(uniform))
    assert bytes(point).hex() == expected


def test_hash_to_group_is_the_map_of_the_xmd_expansion() -> None:
    expected = rbcl.crypto_core_ristretto255_from_hash(
        expand_message_xmd(b"claim", b"dst", 64)
    )
    assert hash_to_group(b"dst", b"claim") == bytes(expected)


def test_hash_to_group_separates_domains_and_inputs() -> None:
    points = {
        hash_to_group(b"a", b"x"),
        hash_to_group(b"b", b"x"),
        hash_to_group(b"a", b"y"),
    }
    assert len(points) == 3
    assert hash_to_group(b"a", b"x") == hash_to_group(b"a", b"x")


def test_hash_to_group_refuses_an_empty_domain() -> None:
    with pytest.raises(ValueError, match="separation tag"):
        hash_to_group(b"", b"x")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(32), "identity"),
        (b"\xff" * 32, "canonical"),
        (bytes.fromhex("ec" + "ff" * 30 + "7f"), "canonical"),
        (b"\x01" * 31, "32 bytes"),
    ],
)
def test_validate_point_refuses_identity_and_bad_encodings(
    data: bytes, reason: str
) -> None:
    with pytest.raises(InvalidPoint, match=reason):
        validate_point(data)


def test_blind_commutes_and_inverts() -> None:
    point = hash_to_group(b"d", b"element")
    a, b = random_scalar(), random_scalar()
    assert blind(blind(point, a), b) == blind(blind(point, b), a)
    inverse = rbcl.crypto_core_ristretto255_scalar_invert(a)
    assert blind(blind(point, a), inverse) == point


def test_blind_refuses_the_identity() -> None:
    with pytest.raises(InvalidPoint, match="identity"):
        blind(bytes(32), random_scalar())


def test_blind_refuses_a_zero_scalar() -> None:
    with pytest.raises(InvalidPoint, match="identity"):
        blind(hash_to_group(b"d", b"x"), bytes(32))


def test_hash_many_is_hash_to_group_of_each_item() -> None:
    items = [b"", b"claim", b"x" * 300]
    assert hash_many(b"dst", items) == [hash_to_group(b"dst", i) for i in items]
    with pytest.raises(ValueError, match="separation tag"):
        hash_many(b"", items)


def test_blind_received_raises_valid_points_like_blind_many() -> None:
    points = hash_many(b"d", [b"1", b"2"])
    scalar = random_scalar()
    assert blind_received(points, scalar) == blind_many(points, scalar)


@pytest.mark.parametrize(
    "bad",
    [bytes(32), b"\xff" * 32, b"\x01" * 31],
    ids=["identity", "non-canonical", "short"],
)
def test_blind_received_refuses_what_validate_point_refuses(bad: bytes) -> None:
    with pytest.raises(InvalidPoint):
        validate_point(bad)
    points = [hash_to_group(b"d", b"1"), bad]
    with pytest.raises(InvalidPoint, match="not a valid non-identity element"):
        blind_received(points, random_scalar())
