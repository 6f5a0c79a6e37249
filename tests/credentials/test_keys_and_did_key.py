"""did:key encoding, decoding, resolution, and the keys that carry it."""

from __future__ import annotations

import json
from pathlib import Path

import base58
import pytest
from nacl.signing import VerifyKey

from credentials import did_key
from credentials.errors import InvalidDid, InvalidKey
from credentials.keys import Ed25519Key


def test_seed_vectors_give_the_published_dids(vc_vectors: Path) -> None:
    """w3c-ccg/did-method-key test-vectors/ed25519-x25519.json: seed -> did:key,
    Ed25519 key, and the derived X25519 key agreement key."""
    vectors = json.loads((vc_vectors / "did-key/ed25519-x25519.json").read_text())
    assert len(vectors) == 5
    for did, vector in vectors.items():
        key = Ed25519Key.from_seed(bytes.fromhex(vector["seed"]))
        assert key.did == did
        assert did_key.public_key_from_did(did) == key.public_key
        agreement = vector["keyAgreementKeyPair"]
        document = did_key.resolve(did)
        agreement_id = document["keyAgreement"][0]["id"]
        assert agreement_id.endswith(agreement["id"].rsplit("#", 1)[1])
        if "publicKeyBase58" in vector["verificationKeyPair"]:
            expected = base58.b58decode(
                vector["verificationKeyPair"]["publicKeyBase58"]
            )
            assert key.public_key == expected


def test_resolve_matches_the_spec_multikey_document(vc_vectors: Path) -> None:
    """w3c-ccg/did-key-spec index.html, extracted as
    spec-example-ed25519-multikey-didDocument.json."""
    expected = json.loads(
        (
            vc_vectors / "did-key/spec-example-ed25519-multikey-didDocument.json"
        ).read_text()
    )
    assert did_key.resolve(expected["id"]) == expected


def test_resolve_without_key_derivation_omits_key_agreement(
    hospital: Ed25519Key,
) -> None:
    document = did_key.resolve(hospital.did, enable_encryption_key_derivation=False)
    assert "keyAgreement" not in document
    assert document["assertionMethod"] == [hospital.verification_method]


@pytest.mark.parametrize("name", ["notMultibase.json", "invalidDid.json"])
def test_published_invalid_dids_are_refused(vc_vectors: Path, name: str) -> None:
    """w3c-ccg/did-key-test-suite test-suite-dids/{notMultibase,invalidDid}.json."""
    vector = json.loads((vc_vectors / "did-key/invalid" / name).read_text())
    with pytest.raises(InvalidDid, match=r"not base58btc multibase.*\[not_multibase\]"):
        did_key.resolve(vector["did"])


def _did_of(prefix: bytes, key: bytes) -> str:
    return "did:key:z" + base58.b58encode(prefix + key).decode()


@pytest.mark.parametrize(
    ("did", "rule"),
    [
        ("not a did", "not_a_did"),
        ("did:key:z6Mk#frag", "not_a_did"),
        ("did:web:example.com", "unsupported_method"),
        ("did:key:2:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "not_a_did"),
        ("did:key:mAQID", "not_multibase"),
        ("did:key:z0OIl", "bad_encoding"),
        (_did_of(b"\xec\x01", bytes(32)), "unsupported_key_type"),
        (_did_of(b"\xed\x01", bytes(31)), "wrong_key_length"),
        (_did_of(b"\xed\x01", bytes(33)), "wrong_key_length"),
        (_did_of(b"\xed\x01", bytes(32)), "invalid_public_key"),
    ],
)
def test_each_did_rule_is_named(did: str, rule: str) -> None:
    with pytest.raises(InvalidDid, match=rf"\[{rule}\]") as caught:
        did_key.public_key_from_did(did)
    assert caught.value.rule == rule


def test_version_one_prefix_is_accepted(hospital: Ed25519Key) -> None:
    versioned = "did:key:1:" + hospital.did.removeprefix("did:key:")
    assert did_key.public_key_from_did(versioned) == hospital.public_key


def test_did_from_public_key_refuses_a_short_key() -> None:
    with pytest.raises(InvalidDid, match="32 bytes, not 31"):
        did_key.did_from_public_key(bytes(31))


def test_key_signs_verifiably_and_hides_its_seed(hospital: Ed25519Key) -> None:
    signature = hospital.sign(b"payload")
    VerifyKey(hospital.public_key).verify(b"payload", signature)
    assert hospital.seed.hex() not in repr(hospital)
    assert repr(hospital) == f"Ed25519Key(did={hospital.did!r})"
    assert hospital.verification_method == did_key.verification_method_id(hospital.did)


def test_key_round_trips_through_seed_and_multibase(hospital: Ed25519Key) -> None:
    assert Ed25519Key.from_seed(hospital.seed).did == hospital.did
    again = Ed25519Key.from_private_multibase(hospital.private_multibase)
    assert again.did == hospital.did
    assert Ed25519Key.generate().did != hospital.did


def test_vector_private_multibase_gives_its_public_key(vc_vectors: Path) -> None:
    """w3c/vc-di-eddsa TestVectors/keyPair.json."""
    pair = json.loads((vc_vectors / "vc-di-eddsa/keyPair.json").read_text())
    key = Ed25519Key.from_private_multibase(pair["privateKeyMultibase"])
    assert key.did == "did:key:" + pair["publicKeyMultibase"]
    assert key.private_multibase == pair["privateKeyMultibase"]


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_from_seed_refuses_wrong_lengths(seed: bytes) -> None:
    with pytest.raises(InvalidKey, match="seed has 32 bytes"):
        Ed25519Key.from_seed(seed)


def test_from_private_multibase_refuses_a_public_key(hospital: Ed25519Key) -> None:
    with pytest.raises(InvalidKey, match="0xed is not ed25519-priv"):
        Ed25519Key.from_private_multibase(hospital.did.removeprefix("did:key:"))
