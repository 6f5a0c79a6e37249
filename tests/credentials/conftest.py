"""Fixtures for the credentials tests: fixed keys, a clock, a small world."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credentials.issuer import issue_credential
from credentials.keys import Ed25519Key
from credentials.registry import TrustedIssuers
from credentials.status_list import StatusList, status_entry, status_list_credential

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ISSUED = datetime(2025, 2, 1, 9, 30, tzinfo=UTC)
CHALLENGE = "c-7f3a91"
DOMAIN = "insurer-a.example"
LIST_URL = "https://hospital.example/status/revocation/1"
SUSPENSION_URL = "https://hospital.example/status/suspension/1"


@pytest.fixture(scope="session")
def vc_vectors(vectors_dir: Path) -> Path:
    return vectors_dir / "vc"


@pytest.fixture(scope="session")
def hospital() -> Ed25519Key:
    return Ed25519Key.from_seed(bytes.fromhex("11" * 32))


@pytest.fixture(scope="session")
def patient() -> Ed25519Key:
    return Ed25519Key.from_seed(bytes.fromhex("22" * 32))


@pytest.fixture(scope="session")
def stranger() -> Ed25519Key:
    return Ed25519Key.from_seed(bytes.fromhex("33" * 32))


def treatment_subject(holder_did: str) -> dict[str, Any]:
    """A credentialSubject as `Treatment.to_subject()` shapes it (synthetic)."""
    return {
        "id": holder_did,
        "treatment": {
            "invoice": "INV-0001",
            "encounter": "enc-1",
            "patient_ref": "MRN-42",
            "provider": "org-1",
            "provider_name": "General Hospital",
            "claim_type": "institutional",
            "start": "2025-01-30T08:00:00+01:00",
            "end": "2025-01-30T10:00:00+01:00",
            "currency": "EUR",
            "lines": [
                {
                    "sequence": 1,
                    "system": "http://snomed.info/sct",
                    "code": "710824005",
                    "display": "Assessment",
                    "amount": "120.50",
                }
            ],
            "diagnoses": ["http://snomed.info/sct|44054006"],
            "total": "120.50",
        },
    }


@dataclass
class World:
    """One hospital with revocation and suspension lists, one patient, a register."""

    hospital: Ed25519Key
    patient: Ed25519Key
    registry: TrustedIssuers
    revocation: StatusList = field(default_factory=StatusList.new)
    suspension: StatusList = field(default_factory=StatusList.new)
    fetched: list[str] = field(default_factory=list)
    published: dict[str, dict[str, Any]] = field(default_factory=dict)

    def issue(self, **overrides: Any) -> dict[str, Any]:
        rng = random.Random(len(self.revocation.allocated))
        index = self.revocation.allocate(rng)
        self.suspension.allocate(random.Random(index))
        arguments: dict[str, Any] = {
            "credential_id": f"urn:uuid:0000-{index}",
            "subject": treatment_subject(self.patient.did),
            "valid_from": ISSUED,
            "valid_until": ISSUED + timedelta(days=365),
            "status": [
                status_entry(LIST_URL, index, "revocation"),
                status_entry(SUSPENSION_URL, index, "suspension"),
            ],
        }
        arguments.update(overrides)
        if isinstance(arguments["status"], list) and len(arguments["status"]) == 1:
            arguments["status"] = arguments["status"][0]
        return issue_credential(self.hospital, **arguments)

    def publish(self) -> None:
        self.published = {
            LIST_URL: status_list_credential(
                self.hospital, LIST_URL, self.revocation, "revocation", ISSUED
            ),
            SUSPENSION_URL: status_list_credential(
                self.hospital, SUSPENSION_URL, self.suspension, "suspension", ISSUED
            ),
        }

    @property
    def fetch(self) -> Callable[[str], dict[str, Any]]:
        def fetch(url: str) -> dict[str, Any]:
            self.fetched.append(url)
            if not self.published:
                self.publish()
            return self.published[url]

        return fetch


@pytest.fixture
def world(hospital: Ed25519Key, patient: Ed25519Key) -> World:
    registry = TrustedIssuers()
    registry.add(hospital.did, "General Hospital", ISSUED - timedelta(days=30))
    return World(hospital=hospital, patient=patient, registry=registry)
