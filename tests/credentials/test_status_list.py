"""Bitstring Status List v1.0: encoding, the spec's examples, allocation."""

from __future__ import annotations

import base64
import gzip
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credentials.data_integrity import verify_proof
from credentials.errors import StatusListError
from credentials.keys import Ed25519Key
from credentials.status_list import (
    MIN_LENGTH,
    StatusList,
    status_entry,
    status_list_credential,
)


@pytest.mark.parametrize(
    "name",
    [
        "03-example-bitstringstatuslistcredential.json",
        "05-a-status-list-verifiable-credential.json",
    ],
)
def test_spec_examples_decode_to_an_empty_list_of_131072(
    vc_vectors: Path, name: str
) -> None:
    """w3c/vc-bitstring-status-list index.html examples (extracted to
    examples/03 and 05): a revocation list of 131,072 bits, none set."""
    credential = json.loads(
        (vc_vectors / "bitstring-status-list/examples" / name).read_text()
    )
    status_list = StatusList.decode(credential["credentialSubject"]["encodedList"])
    assert status_list.length == MIN_LENGTH
    assert not any(status_list.get(i) for i in range(status_list.length))


def test_spec_example_entries_have_our_shape(vc_vectors: Path) -> None:
    """w3c/vc-bitstring-status-list example 04: our entries use the same keys."""
    credential = json.loads(
        (
            vc_vectors / "bitstring-status-list/examples/04-a-revocable-verifiable-"
            "credential.json"
        ).read_text()
    )
    published = credential["credentialStatus"]
    ours = status_entry(published["statusListCredential"], 94567, "revocation")
    assert ours == published


def test_bit_zero_is_the_leftmost_bit_of_the_first_byte() -> None:
    status_list = StatusList.new(16)
    status_list.set(0)
    status_list.set(9)
    raw = gzip.decompress(_unbase64(status_list.encode()))
    assert raw == bytes([0b1000_0000, 0b0100_0000])


def _unbase64(encoded: str) -> bytes:
    assert encoded.startswith("u")
    body = encoded[1:]
    assert "=" not in body and "+" not in body and "/" not in body
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def test_encode_decode_round_trip_keeps_every_bit() -> None:
    status_list = StatusList.new()
    chosen = random.Random(7).sample(range(MIN_LENGTH), 50)
    for index in chosen:
        status_list.set(index)
    status_list.set(chosen[0], False)
    again = StatusList.decode(status_list.encode())
    assert {i for i in range(MIN_LENGTH) if again.get(i)} == set(chosen[1:])


def test_encoding_is_deterministic() -> None:
    assert StatusList.new().encode() == StatusList.new().encode()


def test_allocate_hands_out_distinct_random_indices() -> None:
    status_list = StatusList.new(64)
    indices = [status_list.allocate(random.Random(i)) for i in range(64)]
    assert sorted(indices) == list(range(64))
    assert indices != sorted(indices)
    with pytest.raises(StatusListError, match="status list of 64 entries is full"):
        status_list.allocate(random.Random(0))


def test_allocate_defaults_to_system_randomness() -> None:
    status_list = StatusList.new()
    assert 0 <= status_list.allocate() < MIN_LENGTH


def test_to_dict_round_trip_keeps_bits_and_allocations() -> None:
    status_list = StatusList.new()
    index = status_list.allocate(random.Random(3))
    status_list.set(index)
    again = StatusList.from_dict(json.loads(json.dumps(status_list.to_dict())))
    assert again.allocated == {index}
    assert again.get(index)


@pytest.mark.parametrize("index", [-1, MIN_LENGTH, 10**9])
def test_out_of_range_index_is_refused(index: int) -> None:
    with pytest.raises(StatusListError, match=f"index {index} is outside"):
        StatusList.new().get(index)


@pytest.mark.parametrize("length", [0, 7, 12])
def test_bad_lengths_are_refused(length: int) -> None:
    with pytest.raises(StatusListError, match="multiple of 8"):
        StatusList.new(length)


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (
            "H4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA",
            "not multibase base64url",
        ),
        ("u!!!!", "not multibase base64url"),
        ("u" + base64.urlsafe_b64encode(b"plain").decode().rstrip("="), "not GZIP"),
        (
            "u"
            + base64.urlsafe_b64encode(gzip.compress(b"x" * 64)[:20])
            .decode()
            .rstrip("="),
            "truncated",
        ),
    ],
)
def test_undecodable_lists_are_refused(encoded: str, message: str) -> None:
    with pytest.raises(StatusListError, match=message):
        StatusList.decode(encoded)


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(bytes(20 * 1024 * 1024))
    encoded = "u" + base64.urlsafe_b64encode(bomb).decode().rstrip("=")
    with pytest.raises(StatusListError, match="16 MiB"):
        StatusList.decode(encoded)


def test_status_list_credential_is_signed_by_the_issuer(hospital: Ed25519Key) -> None:
    status_list = StatusList.new()
    status_list.set(5)
    credential = status_list_credential(
        hospital,
        "https://h.example/status/1",
        status_list,
        "suspension",
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert credential["type"] == [
        "VerifiableCredential",
        "BitstringStatusListCredential",
    ]
    assert credential["credentialSubject"]["statusPurpose"] == "suspension"
    assert credential["credentialSubject"]["id"] == "https://h.example/status/1#list"
    assert verify_proof(credential, expected_purpose="assertionMethod") == hospital.did
    assert StatusList.decode(credential["credentialSubject"]["encodedList"]).get(5)


def test_short_lists_and_unknown_purposes_are_not_published(
    hospital: Ed25519Key,
) -> None:
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(StatusListError, match="at least 131072 entries"):
        status_list_credential(
            hospital, "https://h/1", StatusList.new(8), "revocation", moment
        )
    with pytest.raises(StatusListError, match="unsupported status purpose 'message'"):
        status_list_credential(
            hospital, "https://h/1", StatusList.new(), "message", moment
        )
    with pytest.raises(StatusListError, match="unsupported status purpose"):
        status_entry("https://h/1", 1, "refresh")
