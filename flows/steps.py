"""The steps a claim goes through, each over a whole batch.

Every step takes the consortium and a list of claim ids, acts on those of
them that are in the state it expects, and returns the ids it moved on. A
step is safe to run again: claims it already moved are no longer in its
state, so a retried task, or a flow restarted after a crash, never does the
same work twice. `flows.process` wraps each step in a Prefect task.

The steps, in order (DESIGN.md, "One claim, end to end"):

1. `intake`     refuse duplicates of the insurer's own, log "claim received".
2. `verify`     presentation, credential, issuer, status, validity, holder.
3. `joint_check` n-party private set intersection over all insurers.
4. `adjudicate` price against the policy; straight through or to review.
5. `settle`     ledger first (idempotent), then the settlement rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

import rfc8785
from nacl.signing import SigningKey
from sqlmodel import Session, select

from claims.adjudication import Accumulator as YearToDate
from claims.adjudication import adjudicate as price
from claims.adjudication import to_claim_response
from claims.consortium import Consortium
from claims.policy import Policy
from claims.states import ClaimState
from claims.store import Accumulator, Claim, Member, Settlement, cents, from_cents
from claims.treatment import Treatment
from credentials.errors import VerificationError
from credentials.verifier import verify_presentation
from ledger import records as records_
from ledger.note import Checkpoint
from ledger.records import idempotency_key
from mpc_lite.audit import job_record
from mpc_lite.keys import treatment_key
from mpc_lite.psi import Party, duplicate_check

__all__ = ["adjudicate", "intake", "joint_check", "settle", "verify"]

logger = logging.getLogger(__name__)

S = ClaimState

CLOCK_SKEW = timedelta(minutes=5)
"""How far a credential's validity window may disagree with our clock."""

# Verification failures that are the outside world's fault, not the claim's:
# the claim waits (`pending`) and is retried instead of being rejected.
WAITS = frozenset({"status_undetermined"})


def _sha256(data: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(data)).hexdigest()


def _load(session: Session, ids: list[str], state: ClaimState) -> list[Claim]:
    if not ids:
        return []
    query = select(Claim).where(Claim.id.in_(ids), Claim.state == state.value)  # type: ignore[attr-defined]
    return list(session.exec(query.order_by(Claim.submitted_at, Claim.id)))


def _credential(claim: Claim) -> dict[str, Any]:
    presentation = json.loads(claim.submission)["presentation"]
    credentials = presentation.get("verifiableCredential")
    if isinstance(credentials, dict):
        return credentials
    if isinstance(credentials, list) and len(credentials) == 1:
        first: dict[str, Any] = credentials[0]
        return first
    raise ValueError("the presentation must carry exactly one credential")


def intake(consortium: Consortium, ids: list[str]) -> list[str]:
    """Refuse what the insurer already holds and log each claim's receipt.

    A submission whose credential this insurer already has a live claim for
    is rejected as a duplicate submission (another insurer's copy is the
    joint check's business). Each accepted claim gets a "claim received"
    ledger entry with hashes only.
    """
    store = consortium.store
    received: list[tuple[Claim, dict[str, Any]]] = []
    with store.session() as session:
        for claim in _load(session, ids, S.SUBMITTED):
            try:
                credential_id = _credential(claim).get("id")
            except (ValueError, AttributeError, TypeError) as exc:
                store.move(session, claim, S.REJECTED, f"malformed: {exc}")
                continue
            if not isinstance(credential_id, str):
                store.move(
                    session, claim, S.REJECTED, "malformed: credential has no id"
                )
                continue
            earlier = session.exec(
                select(Claim.id).where(
                    Claim.insurer_id == claim.insurer_id,
                    Claim.credential_id == credential_id,
                    Claim.id != claim.id,
                    Claim.state != S.REJECTED.value,
                )
            ).first()
            claim.credential_id = credential_id
            session.add(claim)
            if earlier is not None:
                store.move(
                    session,
                    claim,
                    S.REJECTED,
                    f"duplicate_submission: the same credential is claim {earlier}",
                )
                continue
            received.append((claim, _received_records(claim)))
    records = [record for _, pair in received for record in pair]
    consortium.ledger.append(records, [idempotency_key(r) for r in records])
    return [claim.id for claim, _ in received]


def _received_records(claim: Claim) -> list[dict[str, Any]]:
    """The ledger entries of an accepted submission: receipt, and consent if given."""
    records = [
        records_.claim_received(
            claim.id, claim.insurer_id, claim.submission_hash, at=claim.submitted_at
        )
    ]
    consent = json.loads(claim.submission)["consent"]
    if consent["jointFraudCheck"]:
        records.append(
            records_.consent_given(
                claim.id, _sha256(consent), "joint-fraud-check", at=claim.submitted_at
            )
        )
    return records


def verify(consortium: Consortium, ids: list[str]) -> list[str]:
    """Verify each claim's presentation and credential (DESIGN.md step 4)."""
    store = consortium.store
    issuers = consortium.trusted_issuers()
    status_lists = consortium.status_list_resolver()
    domains = {m.id: m.domain or "" for m in consortium.members("insurer")}
    now = consortium.clock()
    verified: list[str] = []
    entries: list[dict[str, Any]] = []
    with store.session() as session:
        for claim in _load(session, ids, S.SUBMITTED):
            submission = json.loads(claim.submission)
            try:
                credentials = verify_presentation(
                    submission["presentation"],
                    challenge=claim.challenge,
                    domain=domains[claim.insurer_id],
                    issuers=issuers,
                    status_lists=status_lists,
                    now=now,
                    skew=CLOCK_SKEW,
                )
                if len(credentials) != 1:
                    raise ValueError("exactly one credential must be presented")
                credential = credentials[0]
                treatment = Treatment.from_subject(
                    credential["credentialSubject"]["treatment"]
                )
            except VerificationError as exc:
                state = S.PENDING if exc.reason in WAITS else S.REJECTED
                store.move(session, claim, state, f"{exc.reason}: {exc}")
                continue
            except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
                store.move(session, claim, S.REJECTED, f"malformed: {exc}")
                continue
            if consortium.enrollment(claim.insurer_id, claim.claimant_did) is None:
                store.move(
                    session,
                    claim,
                    S.REJECTED,
                    "not_covered: the presenter holds no policy with this insurer",
                )
                continue
            issuer = credential["issuer"]
            claim.issuer_did = issuer if isinstance(issuer, str) else issuer["id"]
            claim.treatment = json.dumps(treatment.to_subject(), sort_keys=True)
            claim.claim_type = treatment.claim_type
            claim.currency = treatment.currency
            claim.billed_cents = cents(treatment.total)
            store.move(session, claim, S.VERIFIED)
            verified.append(claim.id)
            entries.append(
                records_.credential_verified(
                    claim.id, _sha256(credential), claim.issuer_did, "valid", at=now
                )
            )
    consortium.ledger.append(entries, [idempotency_key(e) for e in entries])
    return verified


def _treatment_key(claim: Claim) -> bytes:
    treatment = Treatment.from_subject(claim.treatment_data())
    return treatment_key(
        claim.issuer_did or "",
        treatment.invoice,
        treatment.service_date,
        list(treatment.procedure_codes),
    )


def joint_check(consortium: Consortium, ids: list[str]) -> list[str]:
    """Run the joint duplicate check for the verified claims among `ids`.

    Every insurer is a party holding the treatment keys of all its own live
    claims; each learns, for each of its own, only whether another insurer
    holds the same treatment (see `mpc_lite.psi` for exactly what leaks).
    A claimant who did not consent is not checked and goes to review.
    """
    store = consortium.store
    with Session(store.engine) as session:
        batch = _load(session, ids, S.VERIFIED)
        if not batch:
            return []
        insurers = [m.id for m in store.members(session, "insurer")]
        live = session.exec(
            select(Claim).where(
                Claim.treatment.is_not(None),  # type: ignore[union-attr]
                Claim.state != S.REJECTED.value,
            )
        ).all()
    holdings: dict[str, list[Claim]] = {insurer: [] for insurer in insurers}
    for claim in live:
        holdings[claim.insurer_id].append(claim)
    parties = [
        Party(
            insurer,
            [_treatment_key(claim) for claim in holdings[insurer]],
            signing_key=SigningKey(consortium.key(insurer).seed),
        )
        for insurer in insurers
    ]
    job_id = f"dup-{_sha256(sorted(claim.id for claim in batch))[:16]}"
    result = duplicate_check(parties, job_id=job_id)
    flagged = {
        claim.id: hit
        for insurer in insurers
        for claim, hit in zip(holdings[insurer], result[insurer], strict=True)
    }
    record = job_record(
        job_id,
        insurers,
        {party.name: party.input_commitment() for party in parties},
        result,
    )

    scored: list[str] = []
    with store.session() as session:
        for claim in _load(session, ids, S.VERIFIED):
            consent = json.loads(claim.submission)["consent"]["jointFraudCheck"]
            claim.duplicate = flagged.get(claim.id, False) if consent else None
            store.move(session, claim, S.SCORED)
            scored.append(claim.id)
    consortium.ledger.append([record], [f"fraud_check:{job_id}"])
    return scored


def _accumulators(
    session: Session, insurer_id: str
) -> dict[tuple[str, int], Accumulator]:
    rows = session.exec(select(Accumulator).where(Accumulator.insurer_id == insurer_id))
    return {(row.member, row.year): row for row in rows}


def adjudicate(consortium: Consortium, ids: list[str]) -> list[str]:
    """Price each scored claim; approve clean ones, send flagged ones to review."""
    store = consortium.store
    decided: list[str] = []
    with store.session() as session:
        batch = _load(session, ids, S.SCORED)
        by_insurer: dict[str, list[Claim]] = defaultdict(list)
        for claim in batch:
            by_insurer[claim.insurer_id].append(claim)
        for insurer_id, claims in by_insurer.items():
            policy = consortium.policy(insurer_id)
            accumulators = _accumulators(session, insurer_id)
            # Service order within a member's year, so accumulators fill up
            # in the order the care happened.
            claims.sort(key=lambda c: (c.claimant_did, c.treatment_data()["start"]))
            for claim in claims:
                decided.append(
                    _adjudicate_one(consortium, session, claim, policy, accumulators)
                )
            for row in accumulators.values():
                session.add(row)
    return decided


def _adjudicate_one(
    consortium: Consortium,
    session: Session,
    claim: Claim,
    policy: Policy,
    accumulators: dict[tuple[str, int], Accumulator],
) -> str:
    store = consortium.store
    treatment = Treatment.from_subject(claim.treatment_data())
    enrollment = consortium.enrollment(claim.insurer_id, claim.claimant_did)
    year = int(treatment.service_date[:4])
    key = (claim.claimant_did, year)
    row = accumulators.get(key) or Accumulator(
        insurer_id=claim.insurer_id, member=claim.claimant_did, year=year
    )
    result = price(
        treatment,
        policy,
        YearToDate(
            member=claim.claimant_did,
            year=year,
            deductible_met=from_cents(row.deductible_met_cents),
            benefit_paid=from_cents(row.benefit_paid_cents),
        ),
        member_since=enrollment.since if enrollment else None,
    )
    claim.payable_cents = cents(result.payable)
    claim.claim_response = json.dumps(
        to_claim_response(
            treatment,
            result,
            insurer=claim.insurer_id,
            claim_ref=claim.id,
            created=consortium.clock(),
        )
    )
    store.move(session, claim, S.ADJUDICATED)

    # Flags first: a flagged claim is decided by a person, whatever it costs.
    review_reason = None
    if claim.duplicate:
        review_reason = "possible duplicate: the same treatment is claimed elsewhere"
    elif claim.duplicate is None:
        review_reason = "no consent to the joint fraud check"
    elif result.needs_review:
        review_reason = result.review_reason
    if review_reason is not None:
        store.move(session, claim, S.IN_REVIEW, review_reason)
        return claim.id

    outcome = ClaimState(str(result.outcome))
    if outcome is not S.DENIED:
        row.deductible_met_cents = cents(result.accumulator.deductible_met)
        row.benefit_paid_cents = cents(result.accumulator.benefit_paid)
        accumulators[key] = row
    store.move(session, claim, outcome, result.reason or None)
    return claim.id


def settle(consortium: Consortium, ids: list[str]) -> list[str]:
    """Record the payment of each approved claim, exactly once.

    1. Append one settlement record per claim to the ledger; each carries an
       idempotency key, so a retry after a crash finds the records already
       there and appends nothing.
    2. In one transaction, write the settlement rows and move the claims to
       `settled`; the unique claim id on `Settlement` refuses a second row.
    3. Sign a checkpoint covering the batch and have the witnesses cosign
       it; a receipt is final once a quorum has.
    """
    store = consortium.store
    now = consortium.clock()

    # 1. Ledger first.
    with Session(store.engine) as session:
        payable = [
            claim
            for state in (S.APPROVED, S.PARTIALLY_APPROVED)
            for claim in _load(session, ids, state)
        ]
    if not payable:
        # A retry after a crash past step 2 still owes the cosigned checkpoint.
        if consortium.ledger.size() and not _finalised(consortium):
            consortium.finalise_ledger()
        return []
    records = [
        records_.settlement(
            f"settlement-{claim.id}",
            claim.id,
            claim.insurer_id,
            claim.payable_cents or 0,
            claim.currency or "",
            hashlib.sha256((claim.claim_response or "").encode()).hexdigest(),
            at=now,
        )
        for claim in payable
    ]
    indexes = consortium.ledger.append(records, [idempotency_key(r) for r in records])

    # 2. Then the rows and the state, together.
    settled: list[str] = []
    with store.session() as session:
        for claim, index in zip(payable, indexes, strict=True):
            fresh = session.get(Claim, claim.id)
            if fresh is None or fresh.state not in (
                S.APPROVED.value,
                S.PARTIALLY_APPROVED.value,
            ):
                continue
            session.add(
                Settlement(
                    claim_id=fresh.id,
                    insurer_id=fresh.insurer_id,
                    amount_cents=fresh.payable_cents or 0,
                    currency=fresh.currency or "",
                    ledger_index=index,
                    created_at=now,
                )
            )
            store.move(session, fresh, S.SETTLED, at=now)
            settled.append(fresh.id)

    # 3. A cosigned checkpoint that includes them.
    consortium.finalise_ledger()
    return settled


def _finalised(consortium: Consortium) -> bool:
    note = consortium.ledger.latest_checkpoint()
    if note is None:
        return False
    body = Checkpoint.from_text(note.split("\n\n", 1)[0] + "\n")
    cosigners = sum(1 for line in note.splitlines() if line.startswith("\u2014 "))
    return body.size == consortium.ledger.size() and (
        cosigners - 1 >= consortium.witness_quorum()
    )


def settlement_index(consortium: Consortium, claim_id: str) -> int | None:
    with Session(consortium.store.engine) as session:
        row = session.exec(
            select(Settlement).where(Settlement.claim_id == claim_id)
        ).first()
    return row.ledger_index if row else None


def insurer_ids(consortium: Consortium) -> list[str]:
    with Session(consortium.store.engine) as session:
        return list(
            session.exec(
                select(Member.id).where(Member.kind == "insurer").order_by(Member.id)
            )
        )
