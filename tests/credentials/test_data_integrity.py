"""eddsa-jcs-2022 proofs: the W3C vector, verification failures, proof sets."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from credentials import data_integrity
from credentials._codec import decode_base58btc, encode_base58btc
from credentials.data_integrity import add_proof, verify_proof, verify_proof_set
from credentials.errors import (
    InvalidProofValue,
    MalformedDocument,
    ProofContextMismatch,
    ProofError,
    UnsupportedCryptosuite,
    VerificationError,
)
from credentials.keys import Ed25519Key

VECTOR_CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)
CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def jcs_dir(vc_vectors: Path) -> Path:
    return vc_vectors / "vc-di-eddsa" / "eddsa-jcs-2022"


@pytest.fixture(scope="module")
def vector_key(vc_vectors: Path) -> Ed25519Key:
    pair = json.loads((vc_vectors / "vc-di-eddsa/keyPair.json").read_text())
    return Ed25519Key.from_private_multibase(pair["privateKeyMultibase"])


@pytest.fixture(scope="module")
def unsigned(vc_vectors: Path) -> dict[str, Any]:
    return json.loads((vc_vectors / "vc-di-eddsa/unsigned.json").read_text())


def _text(path: Path) -> str:
    return path.read_text().strip()


def test_w3c_eddsa_jcs_2022_vector_reproduces_byte_for_byte(
    jcs_dir: Path, vector_key: Ed25519Key, unsigned: dict[str, Any]
) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-jcs-2022/* (canonDoc, proofConfig,
    proofCanon, docHash, proofHash, combinedHash, sigHex, sigBTC58, signed)
    with TestVectors/keyPair.json and TestVectors/unsigned.json."""
    signed = add_proof(
        unsigned, vector_key, proof_purpose="assertionMethod", created=VECTOR_CREATED
    )
    proof = signed["proof"]
    options = {name: value for name, value in proof.items() if name != "proofValue"}

    canon_doc = rfc8785.dumps(unsigned)
    assert canon_doc.decode() == _text(jcs_dir / "canonDocJCS.txt")
    assert options == json.loads((jcs_dir / "proofConfigJCS.json").read_text())
    canon_proof = rfc8785.dumps(options)
    assert canon_proof.decode() == _text(jcs_dir / "proofCanonJCS.txt")
    doc_hash = hashlib.sha256(canon_doc).digest()
    proof_hash = hashlib.sha256(canon_proof).digest()
    assert doc_hash.hex() == _text(jcs_dir / "docHashJCS.txt")
    assert proof_hash.hex() == _text(jcs_dir / "proofHashJCS.txt")
    assert (proof_hash + doc_hash).hex() == _text(jcs_dir / "combinedHashJCS.txt")
    signature = decode_base58btc(proof["proofValue"])
    assert signature.hex() == _text(jcs_dir / "sigHexJCS.txt")
    assert proof["proofValue"] == _text(jcs_dir / "sigBTC58JCS.txt")
    assert json.dumps(signed, indent=2) == (jcs_dir / "signedJCS.json").read_text()


def test_w3c_signed_vector_verifies(jcs_dir: Path, vector_key: Ed25519Key) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-jcs-2022/signedJCS.json."""
    signed = json.loads((jcs_dir / "signedJCS.json").read_text())
    assert verify_proof(signed, expected_purpose="assertionMethod") == vector_key.did


def test_add_proof_leaves_its_input_alone(
    hospital: Ed25519Key, unsigned: dict[str, Any]
) -> None:
    before = copy.deepcopy(unsigned)
    signed = add_proof(
        unsigned, hospital, proof_purpose="assertionMethod", created=CREATED
    )
    assert unsigned == before
    signed["credentialSubject"]["alumniOf"] = "changed"
    assert unsigned == before


@pytest.fixture
def signed(hospital: Ed25519Key, unsigned: dict[str, Any]) -> dict[str, Any]:
    return add_proof(
        unsigned,
        hospital,
        proof_purpose="authentication",
        created=CREATED,
        challenge="abc",
        domain="insurer.example",
    )


def test_challenge_and_domain_are_checked(
    signed: dict[str, Any], hospital: Ed25519Key
) -> None:
    assert (
        verify_proof(
            signed,
            expected_purpose="authentication",
            challenge="abc",
            domain="insurer.example",
        )
        == hospital.did
    )
    with pytest.raises(ProofError, match="expected challenge") as caught:
        verify_proof(signed, expected_purpose="authentication", challenge="other")
    assert caught.value.reason == "wrong_challenge"
    with pytest.raises(ProofError, match="expected domain 'x.example'") as caught:
        verify_proof(signed, expected_purpose="authentication", domain="x.example")
    assert caught.value.reason == "wrong_domain"


def test_wrong_purpose_is_refused(signed: dict[str, Any]) -> None:
    with pytest.raises(ProofError, match="no proof has the purpose 'assertionMethod'"):
        verify_proof(signed, expected_purpose="assertionMethod")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("name",), "Tampered"),
        (("credentialSubject", "alumniOf"), "Another School"),
        (("validFrom",), "2023-01-01T00:00:01Z"),
        (("proof", "created"), "2025-01-02T03:04:06Z"),
        (("proof", "challenge"), "abd"),
        (("proof", "domain"), "other.example"),
    ],
)
def test_any_change_breaks_the_signature(
    signed: dict[str, Any], path: tuple[str, ...], value: str
) -> None:
    target = signed
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    with pytest.raises(ProofError, match="signature by did:key:.* does not verify"):
        verify_proof(signed, expected_purpose="authentication")


def test_added_property_breaks_the_signature(signed: dict[str, Any]) -> None:
    signed["extra"] = True
    with pytest.raises(ProofError, match="does not verify"):
        verify_proof(signed, expected_purpose="authentication")


def test_missing_proof_is_refused(unsigned: dict[str, Any]) -> None:
    with pytest.raises(ProofError, match="document has no proof"):
        verify_proof(unsigned, expected_purpose="assertionMethod")


def test_unknown_cryptosuite_has_its_own_error(signed: dict[str, Any]) -> None:
    signed["proof"]["cryptosuite"] = "ecdsa-jcs-2019"
    with pytest.raises(UnsupportedCryptosuite, match="unsupported cryptosuite"):
        verify_proof(signed, expected_purpose="authentication")


def test_unknown_proof_type_has_its_own_error(signed: dict[str, Any]) -> None:
    signed["proof"]["type"] = "Ed25519Signature2020"
    with pytest.raises(UnsupportedCryptosuite, match="not 'DataIntegrityProof'"):
        verify_proof(signed, expected_purpose="authentication")


def test_proof_context_differing_from_the_document_has_its_own_error(
    signed: dict[str, Any],
) -> None:
    signed["@context"] = [*signed["@context"], "https://example.org/extra/v1"]
    with pytest.raises(ProofContextMismatch, match="@context differs"):
        verify_proof(signed, expected_purpose="authentication")


@pytest.mark.parametrize("length", [1, 63, 65])
def test_signature_of_wrong_length_has_its_own_error(
    signed: dict[str, Any], length: int
) -> None:
    signed["proof"]["proofValue"] = encode_base58btc(bytes(range(length)))
    with pytest.raises(InvalidProofValue, match=f"signature has {length} bytes"):
        verify_proof(signed, expected_purpose="authentication")


@pytest.mark.parametrize("value", ["u" + "A" * 86, "z0OIl", 42, None])
def test_proof_value_not_base58btc_is_refused(
    signed: dict[str, Any], value: Any
) -> None:
    signed["proof"]["proofValue"] = value
    with pytest.raises(InvalidProofValue):
        verify_proof(signed, expected_purpose="authentication")


def test_verification_method_of_another_did_is_refused(
    signed: dict[str, Any], stranger: Ed25519Key
) -> None:
    signed["proof"]["verificationMethod"] = stranger.verification_method
    with pytest.raises(ProofError, match="does not verify"):
        verify_proof(signed, expected_purpose="authentication")


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "with a fragment"),
        ("did:web:example.com#key-1", "cannot be resolved"),
        (
            "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK#key-1",
            "is not in did:key:z6Mkha",
        ),
    ],
)
def test_unresolvable_verification_methods_are_refused(
    signed: dict[str, Any], method: str, message: str
) -> None:
    signed["proof"]["verificationMethod"] = method
    with pytest.raises(ProofError, match=message):
        verify_proof(signed, expected_purpose="authentication")


def test_unknown_proof_purpose_is_refused(signed: dict[str, Any]) -> None:
    signed["proof"]["proofPurpose"] = "keyAgreement"
    with pytest.raises(ProofError, match="unknown proofPurpose 'keyAgreement'"):
        verify_proof(signed, expected_purpose="keyAgreement")


def test_malformed_created_is_refused(signed: dict[str, Any]) -> None:
    signed["proof"]["created"] = "yesterday"
    with pytest.raises(ProofError, match="created is not a dateTimeStamp"):
        verify_proof(signed, expected_purpose="authentication")


def test_proof_errors_are_verification_errors() -> None:
    assert issubclass(ProofError, VerificationError)
    assert ProofError("x").reason == "bad_credential_proof"


def test_add_proof_refuses_a_naive_created(hospital: Ed25519Key) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_proof(
            {"a": 1},
            hospital,
            proof_purpose="assertionMethod",
            created=datetime(2025, 1, 1),
        )


def test_add_proof_refuses_numbers_jcs_cannot_represent(hospital: Ed25519Key) -> None:
    with pytest.raises(MalformedDocument, match="cannot be canonicalised"):
        add_proof(
            {"n": 2**60}, hospital, proof_purpose="assertionMethod", created=CREATED
        )


def test_proof_set_appends_and_every_proof_verifies(
    hospital: Ed25519Key, patient: Ed25519Key, unsigned: dict[str, Any]
) -> None:
    """Data Integrity section 2.1.2: each proof of a set signs the document
    without proofs."""
    first = add_proof(
        unsigned, hospital, proof_purpose="assertionMethod", created=CREATED
    )
    both = add_proof(first, patient, proof_purpose="assertionMethod", created=CREATED)
    assert isinstance(both["proof"], list) and len(both["proof"]) == 2
    assert both["proof"][0] == first["proof"]
    assert verify_proof_set(both, expected_purpose="assertionMethod") == [
        hospital.did,
        patient.did,
    ]
    assert verify_proof(both, expected_purpose="assertionMethod") == hospital.did

    both["proof"][1]["proofValue"] = both["proof"][0]["proofValue"]
    with pytest.raises(ProofError, match="proof 1 signature by .* does not verify"):
        verify_proof(both, expected_purpose="assertionMethod")


def test_proof_chain_signs_over_the_previous_proof(
    hospital: Ed25519Key, patient: Ed25519Key, unsigned: dict[str, Any]
) -> None:
    """Data Integrity section 2.1.3: a proof with previousProof signs the
    document together with the proof it names."""
    first = add_proof(
        unsigned,
        hospital,
        proof_purpose="assertionMethod",
        created=CREATED,
        proof_id="urn:uuid:proof-1",
    )
    chain = add_proof(
        first,
        patient,
        proof_purpose="assertionMethod",
        created=CREATED,
        previous_proof="urn:uuid:proof-1",
    )
    assert chain["proof"][1]["previousProof"] == "urn:uuid:proof-1"
    assert verify_proof_set(chain, expected_purpose="assertionMethod") == [
        hospital.did,
        patient.did,
    ]

    # Dropping the proof that was chained to breaks the chain.
    broken = {**chain, "proof": [chain["proof"][1]]}
    with pytest.raises(ProofError, match="previousProof that is missing"):
        verify_proof(broken, expected_purpose="assertionMethod")

    # The chained proof really covers the first: change it and it fails.
    chain["proof"][1]["previousProof"] = "urn:uuid:proof-1"
    chain["proof"][0]["created"] = "2025-01-02T03:04:07Z"
    with pytest.raises(ProofError, match="proof 0 signature"):
        verify_proof(chain, expected_purpose="assertionMethod")


def test_chaining_to_an_unknown_proof_is_refused(
    hospital: Ed25519Key, unsigned: dict[str, Any]
) -> None:
    first = add_proof(
        unsigned, hospital, proof_purpose="assertionMethod", created=CREATED
    )
    with pytest.raises(MalformedDocument, match="no single existing proof has id"):
        add_proof(
            first,
            hospital,
            proof_purpose="assertionMethod",
            created=CREATED,
            previous_proof="urn:uuid:nope",
        )


def test_canonicalize_is_rfc8785() -> None:
    assert data_integrity.canonicalize({"b": 1, "a": [True, None, "é"]}) == (
        '{"a":[true,null,"é"],"b":1}'.encode()
    )


def test_proof_without_its_own_context_takes_the_documents(jcs_dir: Path) -> None:
    """vc-di-eddsa section 3.3.5: the proof configuration gets the document's
    @context, so the W3C signed vector verifies with the proof's copy removed."""
    signed = json.loads((jcs_dir / "signedJCS.json").read_text())
    del signed["proof"]["@context"]
    assert verify_proof(signed, expected_purpose="assertionMethod")
