"""Issuing treatment credentials and presenting them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from credentials.data_integrity import verify_proof
from credentials.errors import MalformedDocument
from credentials.holder import present
from credentials.issuer import issue_credential
from credentials.keys import Ed25519Key
from credentials.validate import validate_credential, validate_presentation

from .conftest import CHALLENGE, DOMAIN, ISSUED, NOW, World, treatment_subject


def test_issued_credential_is_vc_2_0_and_signed(world: World) -> None:
    credential = world.issue()
    assert credential["@context"] == ["https://www.w3.org/ns/credentials/v2"]
    assert credential["type"] == ["VerifiableCredential", "TreatmentCredential"]
    assert credential["issuer"] == world.hospital.did
    assert credential["validFrom"] == "2025-02-01T09:30:00Z"
    assert credential["validUntil"] == "2026-02-01T09:30:00Z"
    assert credential["proof"]["proofPurpose"] == "assertionMethod"
    assert credential["proof"]["created"] == "2025-02-01T09:30:00Z"
    assert validate_credential(credential) == []
    assert verify_proof(credential, expected_purpose="assertionMethod") == (
        world.hospital.did
    )


def test_optional_parts_can_be_left_out(
    hospital: Ed25519Key, patient: Ed25519Key
) -> None:
    credential = issue_credential(
        hospital,
        credential_id="urn:uuid:1",
        subject=treatment_subject(patient.did),
        valid_from=ISSUED,
        valid_until=None,
        status=None,
        types=("VerifiableCredential",),
        created=NOW,
    )
    assert "validUntil" not in credential and "credentialStatus" not in credential
    assert credential["proof"]["created"] == "2025-03-01T12:00:00Z"


def test_issue_refuses_a_malformed_credential(
    hospital: Ed25519Key, patient: Ed25519Key
) -> None:
    with pytest.raises(MalformedDocument, match="validFrom is later than validUntil"):
        issue_credential(
            hospital,
            credential_id="urn:uuid:1",
            subject=treatment_subject(patient.did),
            valid_from=ISSUED,
            valid_until=ISSUED - timedelta(days=1),
            status=None,
        )
    with pytest.raises(MalformedDocument, match="id is not a URL") as caught:
        issue_credential(
            hospital,
            credential_id="not a url",
            subject=treatment_subject(patient.did),
            valid_from=ISSUED,
            valid_until=None,
            status=None,
        )
    assert "MRN-42" not in str(caught.value)


def test_presentation_binds_challenge_and_domain(world: World) -> None:
    credential = world.issue()
    vp = present(
        [credential], world.patient, challenge=CHALLENGE, domain=DOMAIN, created=NOW
    )
    assert vp["type"] == ["VerifiablePresentation"]
    assert vp["holder"] == world.patient.did
    assert vp["verifiableCredential"] == [credential]
    assert vp["proof"]["proofPurpose"] == "authentication"
    assert (vp["proof"]["challenge"], vp["proof"]["domain"]) == (CHALLENGE, DOMAIN)
    assert validate_presentation(vp) == []
    signer = verify_proof(
        vp, expected_purpose="authentication", challenge=CHALLENGE, domain=DOMAIN
    )
    assert signer == world.patient.did


@pytest.mark.parametrize(
    ("credentials", "challenge", "domain", "message"),
    [
        ([], CHALLENGE, DOMAIN, "at least one credential"),
        ([{}], "", DOMAIN, "a challenge and a domain"),
        ([{}], CHALLENGE, "", "a challenge and a domain"),
    ],
)
def test_present_refuses_incomplete_input(
    patient: Ed25519Key,
    credentials: list[dict[str, object]],
    challenge: str,
    domain: str,
    message: str,
) -> None:
    with pytest.raises(MalformedDocument, match=message):
        present(credentials, patient, challenge=challenge, domain=domain, created=NOW)
