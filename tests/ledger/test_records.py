"""Typed record builders carry ids, hashes and codes only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger import records
from ledger.errors import InvalidRecord
from ledger.log import TransparencyLog

H = records.sha256_hex(b"x")
AT = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))


def test_builders_set_type_version_and_utc_time() -> None:
    built = [
        records.claim_received("c1", "ins-a", H, at=AT),
        records.credential_verified("c1", H, "did:key:z6Mk", "valid", at=AT),
        records.fraud_check_run("c1", "job-1", ["ins-a", "ins-b"], [H, H], H, at=AT),
        records.consent_given("c1", H, "joint-fraud-check", at=AT),
        records.settlement("s1", "c1", "ins-a", 12_345, "EUR", H, at=AT),
        records.review_decision("c1", "r1", "denied", "not-covered", at=AT),
    ]
    assert [r["type"] for r in built] == list(records.RECORD_TYPES)
    assert all(r["v"] == 1 and r["at"] == "2025-03-01T10:00:00Z" for r in built)
    assert records.idempotency_key(built[4]) == "settlement:s1"
    assert records.idempotency_key(built[1]) == f"credential.verified:c1:{H}"


def test_records_append_idempotently(log: TransparencyLog) -> None:
    record = records.settlement("s9", "c9", "ins-a", 100, "USD", H, at=AT)
    key = records.idempotency_key(record)
    assert log.append([record], [key]) == [0]
    assert log.append([record], [key]) == [0]
    assert log.size() == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: records.claim_received("c", "i", "ABC"), "claim_hash must be"),
        (lambda: records.claim_received("", "i", H), "claim_id must be"),
        (
            lambda: records.claim_received("c", "i", H, at=datetime(2025, 1, 1)),
            "timezone-aware",
        ),
        (lambda: records.settlement("s", "c", "i", -1, "EUR", H), "between 0"),
        (lambda: records.settlement("s", "c", "i", 1, "euro", H), "ISO 4217"),
        (
            lambda: records.credential_verified("c", H, "did:x", "ok"),
            "status must be one of",
        ),
        (
            lambda: records.fraud_check_run("c", "j", ["a", "b"], [H], H),
            "one input commitment per party",
        ),
        (lambda: records.idempotency_key({"type": "x"}), "unknown record type"),
    ],
)
def test_bad_fields_are_refused(build: object, message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        build()  # type: ignore[operator]


def test_default_time_is_now_in_utc() -> None:
    record = records.consent_given("c", H, "scope")
    stamped = datetime.fromisoformat(record["at"].replace("Z", "+00:00"))
    assert abs(stamped - datetime.now(UTC)) < timedelta(minutes=1)
