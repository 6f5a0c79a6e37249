"""Typed, versioned ledger records: plain dicts with ``type`` and ``v``.

Records carry identifiers, SHA-256 hex digests, amounts in integer cents,
codes and UTC times, never patient data: hash or commit to anything
personal before it reaches a builder. `idempotency_key` gives the key to
append a record with, so a retried step never logs twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from ledger.errors import InvalidRecord

__all__ = [
    "RECORD_TYPES",
    "claim_received",
    "consent_given",
    "credential_verified",
    "fraud_check_run",
    "idempotency_key",
    "review_decision",
    "settlement",
    "sha256_hex",
]

_HEX64: Final = re.compile(r"[0-9a-f]{64}")

#: record type -> (version, fields that make its idempotency key)
RECORD_TYPES: Final[dict[str, tuple[int, tuple[str, ...]]]] = {
    "claim.received": (1, ("claim_id",)),
    "credential.verified": (1, ("claim_id", "credential_hash")),
    "fraud_check.run": (1, ("claim_id", "job_id")),
    "consent.given": (1, ("claim_id", "consent_hash")),
    "settlement": (1, ("settlement_id",)),
    "review.decision": (1, ("claim_id", "review_id")),
}

CREDENTIAL_STATUSES: Final = frozenset({"valid", "invalid", "undetermined"})
REVIEW_DECISIONS: Final = frozenset({"approved", "partially_approved", "denied"})


def sha256_hex(data: bytes) -> str:
    """The SHA-256 digest of ``data`` in lowercase hex, as records hold hashes."""
    return hashlib.sha256(data).hexdigest()


def _id(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidRecord(f"{name} must be a non-empty string of at most 200 chars")
    return value


def _digest(name: str, value: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidRecord(f"{name} must be a lowercase hex SHA-256 digest")
    return value


def _time(name: str, value: datetime | None) -> str:
    moment = datetime.now(UTC) if value is None else value
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidRecord(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _choice(name: str, value: str, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise InvalidRecord(f"{name} must be one of {', '.join(sorted(allowed))}")
    return value


def _record(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "v": RECORD_TYPES[kind][0], **fields}


def claim_received(
    claim_id: str, insurer: str, claim_hash: str, *, at: datetime | None = None
) -> dict[str, Any]:
    """An insurer accepted a claim for processing (DESIGN step 3)."""
    return _record(
        "claim.received",
        claim_id=_id("claim_id", claim_id),
        insurer=_id("insurer", insurer),
        claim_hash=_digest("claim_hash", claim_hash),
        at=_time("at", at),
    )


def credential_verified(
    claim_id: str,
    credential_hash: str,
    issuer: str,
    status: str,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A treatment credential was checked; ``status`` valid/invalid/undetermined."""
    return _record(
        "credential.verified",
        claim_id=_id("claim_id", claim_id),
        credential_hash=_digest("credential_hash", credential_hash),
        issuer=_id("issuer", issuer),
        status=_choice("status", status, CREDENTIAL_STATUSES),
        at=_time("at", at),
    )


def fraud_check_run(
    claim_id: str,
    job_id: str,
    parties: Sequence[str],
    input_commitments: Sequence[str],
    result_hash: str,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A joint fraud check ran: parties, their input commitments, result hash."""
    if not parties or len(parties) != len(input_commitments):
        raise InvalidRecord("fraud check needs one input commitment per party")
    return _record(
        "fraud_check.run",
        claim_id=_id("claim_id", claim_id),
        job_id=_id("job_id", job_id),
        parties=[_id("party", p) for p in parties],
        input_commitments=[_digest("input commitment", c) for c in input_commitments],
        result_hash=_digest("result_hash", result_hash),
        at=_time("at", at),
    )


def consent_given(
    claim_id: str, consent_hash: str, scope: str, *, at: datetime | None = None
) -> dict[str, Any]:
    """The claimant consented (e.g. ``scope="joint-fraud-check"``)."""
    return _record(
        "consent.given",
        claim_id=_id("claim_id", claim_id),
        consent_hash=_digest("consent_hash", consent_hash),
        scope=_id("scope", scope),
        at=_time("at", at),
    )


def settlement(
    settlement_id: str,
    claim_id: str,
    insurer: str,
    amount_cents: int,
    currency: str,
    payment_hash: str,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A payment instruction was recorded for a claim (DESIGN step 7)."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise InvalidRecord("amount_cents must be an integer")
    if not 0 <= amount_cents <= 2**53 - 1:
        raise InvalidRecord("amount_cents must be between 0 and 2^53-1")
    if not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
        raise InvalidRecord("currency must be a three-letter ISO 4217 code")
    return _record(
        "settlement",
        settlement_id=_id("settlement_id", settlement_id),
        claim_id=_id("claim_id", claim_id),
        insurer=_id("insurer", insurer),
        amount_cents=amount_cents,
        currency=currency,
        payment_hash=_digest("payment_hash", payment_hash),
        at=_time("at", at),
    )


def review_decision(
    claim_id: str,
    review_id: str,
    decision: str,
    reason_code: str,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A reviewer decided a flagged claim; ``reason_code`` is a code, not prose."""
    return _record(
        "review.decision",
        claim_id=_id("claim_id", claim_id),
        review_id=_id("review_id", review_id),
        decision=_choice("decision", decision, REVIEW_DECISIONS),
        reason_code=_id("reason_code", reason_code),
        at=_time("at", at),
    )


def idempotency_key(record: dict[str, Any]) -> str:
    """The append key of a record built here: its type and identifying fields."""
    kind = record.get("type")
    if kind not in RECORD_TYPES:
        raise InvalidRecord(f"unknown record type {kind!r}")
    version, fields = RECORD_TYPES[kind]
    if record.get("v") != version:
        raise InvalidRecord(f"record {kind} has version {record.get('v')!r}")
    parts = [str(record.get(field, "")) for field in fields]
    key = ":".join([kind, *parts])
    if len(key) > 255:
        key = f"{kind}:sha256:{sha256_hex(key.encode())}"
    return key
