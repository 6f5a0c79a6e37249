"""The trusted issuer register."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from credentials.errors import MalformedDocument, UntrustedIssuer, VerificationError
from credentials.registry import TrustedIssuers

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)
DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


@pytest.fixture
def registry() -> TrustedIssuers:
    registry = TrustedIssuers()
    registry.add(DID, "General Hospital", START, END)
    return registry


def test_accredited_period_is_inclusive_start_exclusive_end(
    registry: TrustedIssuers,
) -> None:
    assert registry.check(DID, START).name == "General Hospital"
    assert registry.check(DID, END - timedelta(seconds=1)).did == DID
    with pytest.raises(
        UntrustedIssuer, match="was not accredited at 2025-01-01T00:00:00Z"
    ):
        registry.check(DID, END)
    with pytest.raises(UntrustedIssuer, match="was not accredited at"):
        registry.check(DID, START - timedelta(seconds=1))


def test_unknown_issuer_is_untrusted(registry: TrustedIssuers) -> None:
    with pytest.raises(
        UntrustedIssuer, match="did:key:other is not a registered"
    ) as caught:
        registry.check("did:key:other", START)
    assert isinstance(caught.value, VerificationError)
    assert caught.value.reason == "untrusted_issuer"


def test_second_period_reaccredits(registry: TrustedIssuers) -> None:
    registry.add(DID, "General Hospital", END + timedelta(days=10))
    registry.check(DID, END + timedelta(days=400))
    with pytest.raises(UntrustedIssuer):
        registry.check(DID, END + timedelta(days=5))


def test_round_trips_through_json(registry: TrustedIssuers) -> None:
    registry.add("did:key:z6Mkopen", "Open Clinic", START)
    again = TrustedIssuers.from_dict(json.loads(json.dumps(registry.to_dict())))
    assert again.to_dict() == registry.to_dict()
    assert "did:key:z6Mkopen" in again and len(again) == 2
    assert again.name(DID) == "General Hospital"
    again.check("did:key:z6Mkopen", END + timedelta(days=1000))


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"issuers": [{"did": DID}]},
        {"issuers": [{"did": DID, "name": "x", "validFrom": "2024-01-01"}]},
        {
            "issuers": [
                {"did": "nope", "name": "x", "validFrom": "2024-01-01T00:00:00Z"}
            ]
        },
    ],
)
def test_from_dict_refuses_bad_data(data: dict[str, object]) -> None:
    with pytest.raises(MalformedDocument, match="register is not usable"):
        TrustedIssuers.from_dict(data)


def test_add_refuses_bad_periods() -> None:
    registry = TrustedIssuers()
    with pytest.raises(ValueError, match="must end after it starts"):
        registry.add(DID, "x", END, START)
    with pytest.raises(ValueError, match="timezone-aware"):
        registry.add(DID, "x", datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="must be a DID"):
        registry.add("https://h.example", "x", START)
