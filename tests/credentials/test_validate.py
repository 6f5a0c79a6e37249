"""VC Data Model 2.0 structural validation, separate from proofs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from credentials.validate import validate_credential, validate_presentation

V2 = "https://www.w3.org/ns/credentials/v2"


def _credential(**changes: Any) -> dict[str, Any]:
    credential: dict[str, Any] = {
        "@context": [V2],
        "id": "urn:uuid:1",
        "type": ["VerifiableCredential", "TreatmentCredential"],
        "issuer": "did:key:z6Mk",
        "validFrom": "2025-01-01T00:00:00Z",
        "validUntil": "2026-01-01T00:00:00+01:00",
        "credentialSubject": {"id": "did:key:z6Mkh", "treatment": {}},
        "credentialStatus": {
            "id": "https://h.example/s/1#4",
            "type": "BitstringStatusListEntry",
        },
    }
    for name, value in changes.items():
        if value is None:
            credential.pop(name, None)
        else:
            credential[name] = value
    return credential


def test_well_formed_credential_has_no_violations() -> None:
    assert validate_credential(_credential()) == []


@pytest.mark.parametrize(
    "name",
    [
        "01-example-statuslistcredential-using-simple-entries.json",
        "03-example-bitstringstatuslistcredential.json",
        "04-a-revocable-verifiable-credential.json",
    ],
)
def test_spec_examples_are_well_formed(vc_vectors: Path, name: str) -> None:
    """w3c/vc-bitstring-status-list index.html examples (VC DM 2.0 shape)."""
    path = vc_vectors / "bitstring-status-list/examples" / name
    assert validate_credential(json.loads(path.read_text())) == []


def test_w3c_vc_di_eddsa_unsigned_credential_is_well_formed(vc_vectors: Path) -> None:
    """w3c/vc-di-eddsa TestVectors/unsigned.json."""
    path = vc_vectors / "vc-di-eddsa/unsigned.json"
    assert validate_credential(json.loads(path.read_text())) == []


def test_spec_example_with_vc_1_1_dates_is_not_flagged_for_them(
    vc_vectors: Path,
) -> None:
    """Example 06 of w3c/vc-bitstring-status-list uses VC 1.1 issuanceDate: an
    unknown property to VC DM 2.0, which this validator leaves alone."""
    path = (
        vc_vectors / "bitstring-status-list/examples/06-associating-multiple-status-"
        "lists-with-a-single-verifiable-c.json"
    )
    assert validate_credential(json.loads(path.read_text())) == []


@pytest.mark.parametrize(
    ("changes", "violation"),
    [
        ({"@context": None}, "@context is missing"),
        ({"@context": V2}, "@context is missing or not a non-empty list"),
        ({"@context": ["https://www.w3.org/2018/credentials/v1"]}, "must start with"),
        ({"@context": [V2, 5]}, r"@context\[1\] is neither a URL nor an object"),
        ({"id": "not a url"}, "^id is not a URL$"),
        ({"type": None}, "type is missing"),
        (
            {"type": ["TreatmentCredential"]},
            "type does not include VerifiableCredential",
        ),
        ({"type": ["VerifiableCredential", 3]}, "type is missing or not a string"),
        ({"issuer": None}, "issuer is missing"),
        ({"issuer": "General Hospital"}, "issuer is not a URL"),
        ({"issuer": {"name": "x"}}, "issuer is not a URL"),
        ({"validFrom": "2025-01-01"}, "validFrom is not an XML Schema dateTimeStamp"),
        ({"validFrom": "2025-01-01T00:00:00"}, "validFrom is not an XML"),
        ({"validUntil": "tomorrow"}, "validUntil is not an XML"),
        ({"validFrom": "2027-01-01T00:00:00Z"}, "validFrom is later than validUntil"),
        ({"credentialSubject": None}, "credentialSubject is missing"),
        ({"credentialSubject": []}, "credentialSubject is an empty list"),
        ({"credentialSubject": {}}, "credentialSubject is not a non-empty object"),
        ({"credentialSubject": [{"a": 1}, "x"]}, r"credentialSubject\[1\] is not"),
        ({"credentialSubject": {"id": "me"}}, "credentialSubject.id is not a URL"),
        ({"credentialStatus": "revoked"}, "credentialStatus is not an object"),
        (
            {"credentialStatus": [{"id": "https://x/1"}]},
            r"credentialStatus\[0\] has no",
        ),
        ({"credentialStatus": {"type": "X", "id": "x"}}, "credentialStatus.id is not"),
    ],
)
def test_each_violation_is_named(changes: dict[str, Any], violation: str) -> None:
    problems = validate_credential(_credential(**changes))
    assert len(problems) == 1, problems
    assert re.search(violation, problems[0]), problems


def test_every_violation_is_listed() -> None:
    problems = validate_credential(
        {"@context": ["x"], "type": "Thing", "validFrom": "now"}
    )
    assert problems == [
        f"@context must start with {V2}",
        "type does not include VerifiableCredential",
        "issuer is missing",
        "credentialSubject is missing",
        "validFrom is not an XML Schema dateTimeStamp",
    ]


def test_not_an_object() -> None:
    assert validate_credential([]) == ["credential is not a JSON object"]
    assert validate_presentation("x") == ["presentation is not a JSON object"]


def test_presentation_lists_its_own_and_its_credentials_violations() -> None:
    vp = {
        "@context": [V2],
        "type": ["VerifiablePresentation"],
        "holder": "someone",
        "verifiableCredential": [_credential(), _credential(issuer=None)],
    }
    assert validate_presentation(vp) == [
        "holder is not a URL or an object with a URL id",
        "verifiableCredential[1]: issuer is missing",
    ]
    assert validate_presentation(vp, include_credentials=False) == [
        "holder is not a URL or an object with a URL id"
    ]
