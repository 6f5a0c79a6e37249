"""The steps a claim goes through, each over a whole batch.

Every step takes the consortium and a list of claim ids, acts on those of
them that are in the state it expects, and returns the ids it moved on. A
step is safe to run again: claims it already moved are no longer in its
state, so a retried task, or a flow restarted after a crash, never does the
same work twice. `flows.process` wraps each step in a Prefect task.

The steps, in order (DESIGN.md, "One claim, end to end"):

1. `intake`     refuse duplicates of the insurer's own, log "claim received".
2. `verify`     presentation, credential, issuer, status, validity, holder;
                 a resubmitted invoice gets its earlier answer, a corrected
                 one replaces the claim before it (`claims.corrections`).
3. `joint_check` duplicates by n-party private set intersection over all
                 insurers, and a risk score by secure aggregation.
4. `adjudicate` price against the policy; straight through or to review.
5. `settle`     ledger first (idempotent), then the settlement rows.

Steps that write take the store's writer transaction (`Store.writer`: the
write lock up front on SQLite). Workers that run at the same time work on
disjoint leased batches (`flows.process`); what they share is guarded here:
an insurer's accumulators by a transaction-scoped advisory lock on
PostgreSQL, a claim being settled by a row lock, the ledger by its own log
row lock and idempotency keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from nacl.signing import SigningKey
from sqlmodel import Session, col, select

from claims import corrections
from claims.adjudication import adjudicate as price
from claims.adjudication import to_claim_response
from claims.consortium import Consortium
from claims.policy import Policy
from claims.states import ClaimState
from claims.store import (
    Accumulator,
    Claim,
    Enrollment,
    EpochClaim,
    Settlement,
    Store,
    cents,
    in_chunks,
)
from claims.treatment import Treatment
from credentials.data_integrity import canonicalize
from credentials.errors import VerificationError
from credentials.registry import TrustedIssuers
from credentials.status_list import StatusListCache
from credentials.verifier import verify_presentation
from flows import epoch_store
from ledger import records as records_
from ledger.errors import QuorumNotReached
from ledger.note import Checkpoint, NoteVerifier, verify_note
from ledger.records import idempotency_key
from mpc_lite.audit import job_record
from mpc_lite.fraud import ClaimInput, ScoringEpoch
from mpc_lite.incremental import Epoch
from mpc_lite.keys import claimant_key, treatment_key
from mpc_lite.psi import Party

__all__ = ["JointCheckEpoch", "adjudicate", "intake", "joint_check", "settle", "verify"]

logger = logging.getLogger(__name__)

S = ClaimState

CLOCK_SKEW = timedelta(minutes=5)
"""How far a credential's validity window may disagree with our clock."""

# Verification failures that are the outside world's fault, not the claim's:
# the claim waits (`pending`) and is retried instead of being rejected.
WAITS = frozenset({"status_undetermined"})


def _sha256(data: Any) -> str:
    """SHA-256 of the RFC 8785 bytes of `data` (`canonicalize`: the same bytes
    as `rfc8785.dumps`, through the C JSON encoder where they provably agree)."""
    return hashlib.sha256(canonicalize(data)).hexdigest()


def _load(session: Session, ids: list[str], state: ClaimState) -> list[Claim]:
    """The claims among `ids` that are in `state`, oldest submission first.

    Looked up by id alone, the state checked here: asked for `id IN (...)
    AND state = ?`, SQLite (no statistics without ANALYZE) walks the index on
    `state` instead, reading every claim in that state once per chunk, which
    made intake and verify cost twice as much per claim at 100,000 claims as
    at 10,000.
    """
    found: list[Claim] = []
    for chunk in in_chunks(ids):
        query = select(Claim).where(col(Claim.id).in_(chunk))
        found.extend(c for c in session.exec(query) if c.state == state.value)
    found.sort(key=lambda claim: (claim.submitted_at, claim.id))
    return found


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
    ledger entry with hashes only. The earlier claims are looked up for the
    whole batch in one query.
    """
    store = consortium.store
    received: list[tuple[Claim, list[dict[str, Any]]]] = []
    with store.writer() as session:
        batch = _load(session, ids, S.SUBMITTED)
        credential_ids: dict[str, str] = {}
        for claim in batch:
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
            credential_ids[claim.id] = credential_id
        held = _live_holders(session, set(credential_ids.values()), set(credential_ids))
        for claim in batch:
            credential_id = credential_ids.get(claim.id)
            if credential_id is None:
                continue
            claim.credential_id = credential_id
            session.add(claim)
            earlier = held.get((claim.insurer_id, credential_id))
            if earlier is not None:
                store.move(
                    session,
                    claim,
                    S.REJECTED,
                    f"duplicate_submission: the same credential is claim {earlier}",
                )
                continue
            held[(claim.insurer_id, credential_id)] = claim.id
            received.append((claim, _received_records(claim)))
    records = [record for _, pair in received for record in pair]
    _append(consortium, records, [idempotency_key(r) for r in records])
    return [claim.id for claim, _ in received]


def _live_holders(
    session: Session, credential_ids: set[str], batch: set[str]
) -> dict[tuple[str, str], str]:
    """(insurer, credential) -> the claim outside `batch` already holding it."""
    held: dict[tuple[str, str], str] = {}
    wanted = sorted(credential_ids)
    for chunk in in_chunks(wanted):
        rows = session.exec(
            select(Claim.id, Claim.insurer_id, Claim.credential_id).where(
                Claim.credential_id.in_(chunk),  # type: ignore[union-attr]
                Claim.state != S.REJECTED.value,
            )
        )
        for claim_id, insurer_id, credential_id in rows:
            if claim_id not in batch and credential_id is not None:
                held.setdefault((insurer_id, credential_id), claim_id)
    return held


def _enrollments(
    session: Session, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], Enrollment]:
    """The enrolments of (insurer, claimant DID) pairs, in one query per chunk."""
    found: dict[tuple[str, str], Enrollment] = {}
    dids = sorted({did for _, did in pairs})
    for chunk in in_chunks(dids):
        rows = session.exec(
            select(Enrollment).where(
                Enrollment.claimant_did.in_(chunk)  # type: ignore[attr-defined]
            )
        )
        for row in rows:
            if (row.insurer_id, row.claimant_did) in pairs:
                found[(row.insurer_id, row.claimant_did)] = row
    return found


def _append(
    consortium: Consortium, records: list[dict[str, Any]], keys: list[str]
) -> list[int]:
    """Append to the ledger; on SQLite holding the write lock from the start."""
    ledger = consortium.ledger  # opened first: its set-up is a transaction too
    with consortium.store.exclusive():
        return ledger.append(records, keys)


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


def _cached(
    resolve: Callable[[str], dict[str, Any]],
) -> Callable[[str], dict[str, Any]]:
    """The resolver, reading each published list once per step.

    Each call returns a fresh copy, so a verifier cannot change what the
    next claim is checked against.
    """
    documents: dict[str, str] = {}

    def cached(url: str) -> dict[str, Any]:
        if url not in documents:
            documents[url] = json.dumps(resolve(url))
        document: dict[str, Any] = json.loads(documents[url])
        return document

    return cached


def verify(consortium: Consortium, ids: list[str]) -> list[str]:
    """Verify each claim's presentation and credential (DESIGN.md step 4).

    1. Check every credential of the batch (`_presented`); no database work.
    2. Read what the batch needs in one query per chunk: the enrolments of
       its presenters and the invoices already held (`corrections.HeldInvoices`).
    3. Update the claims in submission order. Only a claim whose invoice is
       held looks its earlier claim up (`corrections.classify`), and then
       sees every change made before it; the others add nothing but their
       changes, which reach the database together at commit.
    """
    store = consortium.store
    issuers = consortium.trusted_issuers()
    status_lists = StatusListCache(_cached(consortium.status_list_resolver()))
    domains = {m.id: m.domain or "" for m in consortium.members("insurer")}
    now = consortium.clock()
    verified: list[str] = []
    entries: list[dict[str, Any]] = []
    with store.writer() as session:
        batch = _load(session, ids, S.SUBMITTED)

        # 1.
        presented = [
            _presented(claim, domains, issuers, status_lists, now) for claim in batch
        ]

        # 2.
        enrolled = _enrollments(
            session, {(claim.insurer_id, claim.claimant_did) for claim in batch}
        )
        held = corrections.HeldInvoices.load(
            session,
            (found[1].invoice for found in presented if isinstance(found, tuple)),
        )

        # 3.
        for claim, found in zip(batch, presented, strict=True):
            if isinstance(found, VerificationError):
                state = S.PENDING if found.reason in WAITS else S.REJECTED
                store.move(session, claim, state, f"{found.reason}: {found}")
                continue
            if isinstance(found, Exception):
                store.move(session, claim, S.REJECTED, f"malformed: {found}")
                continue
            credential, treatment = found
            if (claim.insurer_id, claim.claimant_did) not in enrolled:
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
            claim.invoice = treatment.invoice
            # The same invoice again: a resubmission gets the earlier answer
            # and is never paid twice; changed content replaces the earlier
            # claim (claims.corrections).
            answered = _resubmitted_or_refused(store, session, claim, held)
            held.add(claim)
            if answered:
                continue
            store.move(session, claim, S.VERIFIED)
            verified.append(claim.id)
            entries.append(
                records_.credential_verified(
                    claim.id,
                    _sha256(credential),
                    claim.issuer_did,
                    "valid",
                    at=now,
                )
            )
    _append(consortium, entries, [idempotency_key(e) for e in entries])
    return verified


def _presented(
    claim: Claim,
    domains: dict[str, str],
    issuers: TrustedIssuers,
    status_lists: StatusListCache,
    now: datetime,
) -> tuple[dict[str, Any], Treatment] | Exception:
    """The claim's verified credential and treatment, or why it has none.

    Returns (does not raise) a `VerificationError`, or the `KeyError`,
    `ValueError`, `TypeError` or `ArithmeticError` of a malformed
    submission; anything else is raised.
    """
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
        treatment = Treatment.from_subject(credential["credentialSubject"]["treatment"])
    except (VerificationError, KeyError, ValueError, TypeError, ArithmeticError) as exc:
        return exc
    return credential, treatment


def _resubmitted_or_refused(
    store: Store, session: Session, claim: Claim, held: corrections.HeldInvoices
) -> bool:
    """Apply `claims.corrections` to a claim about to be verified.

    Returns True when the claim was answered here (a resubmission, or a
    correction that cannot be applied now) and must not go on. `held` spares
    the query of a claim whose invoice nobody holds.
    """
    found = corrections.classify(session, claim, held=held)
    if found is None:
        return False
    kind, earlier = found
    if kind == "resubmission":
        corrections.answer_resubmission(store, session, claim, earlier)
        return True
    try:
        corrections.apply_correction(store, session, claim, earlier)
    except corrections.CorrectionRefused as exc:
        store.move(session, claim, S.REJECTED, f"correction refused: {exc}")
        return True
    return False


_LIVE = (
    Claim.treatment.is_not(None),  # type: ignore[union-attr]
    Claim.state != S.REJECTED.value,
)
"""Claims whose treatment the joint check holds: verified and not rejected."""


_Row = tuple[str, str, str | None, str, bool | None]

CATCH_UP_PAGE = 2_000
"""Live claims an epoch takes in per job when it catches up with the store."""


def _new_pages(session: Session, epoch_id: int) -> Iterator[list[_Row]]:
    """(id, insurer, issuer DID, treatment JSON, duplicate) of the live claims
    the epoch has not taken in yet, a page at a time in id order.

    NOTE: each call is an anti-join over every live claim, so a run pays
    for its batches times the live claims: small at 100,000 claims (50
    batches), not at millions. A monotonic "became live" number that the
    epoch reads past would end it, once it is safe against workers whose
    transactions commit out of order.
    """
    taken = select(EpochClaim.claim_id).where(
        EpochClaim.epoch_id == epoch_id, EpochClaim.claim_id == Claim.id
    )
    query = (
        select(  # type: ignore[call-overload]  # SQLModel types up to 4
            Claim.id,
            Claim.insurer_id,
            Claim.issuer_did,
            Claim.treatment,
            Claim.duplicate,
        )
        .where(*_LIVE, ~sa.exists(taken))
        .order_by(Claim.id)
        .limit(CATCH_UP_PAGE)
    )
    last = ""
    while True:
        page = [tuple(row) for row in session.exec(query.where(Claim.id > last))]
        if not page:
            return
        yield page
        last = page[-1][0]


class JointCheckEpoch:
    """What a flow run keeps between the joint checks of its batches.

    An `mpc_lite.incremental.Epoch` (every insurer's long-lived scalars and
    the tags the others sent) and an `mpc_lite.fraud.ScoringEpoch` (every
    insurer's claims indexed by claimant, and the claimant tags already
    blinded). The first check sends every live claim, the full cost once;
    each later check sends only the claims that became live since, whichever
    worker verified them, so a batch costs what the batch costs. One epoch
    lasts one flow run: the next run starts a fresh one, which is the key
    rotation `mpc_lite.incremental` asks for (and pays the full pass again).

    The scalars are in memory; the tags and the claim index are rows of the
    store (`flows.epoch_store`), so a run's memory does not grow with its
    claims. `close` deletes them; the flow calls it when the run ends.

    Within an epoch a duplicate found across batches flags the later claim
    only; within one batch both are flagged, as the full check does.
    """

    def __init__(self, consortium: Consortium) -> None:
        self.insurers = sorted(member.id for member in consortium.members("insurer"))
        keys = {name: SigningKey(consortium.key(name).seed) for name in self.insurers}
        self._store = consortium.store
        self.id = epoch_store.open_epoch(self._store)

        def rows(kind: Any) -> dict[str, Any]:
            return {name: kind(self._store, self.id, name) for name in self.insurers}

        self.epoch = Epoch(
            [Party(name, [], signing_key=keys[name]) for name in self.insurers],
            histories=rows(epoch_store.SqlTagSet),
        )
        self.scoring = ScoringEpoch(
            keys,
            indexes=rows(epoch_store.SqlClaimIndex),
            tags=rows(epoch_store.SqlClaimantTags),
        )
        self.flags: dict[str, bool] = {}
        """Answers for claims of the current batch, kept for a retried step."""

    def touch(self) -> None:
        """Keep the epoch's rows from being taken for a dead run's."""
        epoch_store.touch(self._store, self.id)

    def close(self) -> None:
        """Delete the epoch's rows; the epoch cannot be used afterwards."""
        epoch_store.close_epoch(self._store, self.id)


def _check(
    session: Session, batch: list[Claim], epoch: JointCheckEpoch
) -> tuple[dict[str, bool], list[dict[str, Any]], str]:
    """Take into `epoch` every live claim it lacks; flags of the batch's claims.

    Live claims outside the batch (those of other workers, or every claim
    in the store at a run's first check) go in first, a page per job, so
    that the batch's own job checks its claims against all of them while a
    run holds one page in memory. Returns the flags by claim id, the job
    records (none when nothing was new) and the batch's job id. The new
    claims also join the epoch's scoring index.
    """
    job_id = f"dup-{_sha256(sorted(claim.id for claim in batch))[:16]}"
    wanted = {claim.id for claim in batch}
    epoch.touch()
    records: list[dict[str, Any]] = []
    mine: list[_Row] = []
    for page in _new_pages(session, epoch.id):
        mine.extend(row for row in page if row[0] in wanted)
        others = [row for row in page if row[0] not in wanted]
        if others:
            records.append(_take_in(epoch, others, f"{job_id}-{len(records) + 1}")[1])
    if mine:
        flagged, record = _take_in(epoch, mine, job_id)
        epoch.flags.update(flagged)
        records.append(record)
    return epoch.flags, records, job_id


def _take_in(
    epoch: JointCheckEpoch, rows: list[_Row], job_id: str
) -> tuple[dict[str, bool], dict[str, Any]]:
    """One incremental duplicate check of `rows`: flags by claim id, job record."""
    insurers = epoch.insurers
    holdings: dict[str, list[ClaimInput]] = {insurer: [] for insurer in insurers}
    for claim_id, insurer_id, issuer_did, treatment, duplicate in rows:
        holdings[insurer_id].append(
            _claim_input(claim_id, issuer_did, treatment, duplicate=duplicate)
        )
    keys = {
        insurer: [claim.treatment for claim in claims]
        for insurer, claims in holdings.items()
    }
    # NOTE: these parties exist for their input commitments only, which
    # hashes every element again after the epoch's own parties did (about
    # 2 % of the joint check); `Epoch.check` handing back its commitments
    # would spare it.
    parties = [Party(insurer, keys[insurer]) for insurer in insurers]
    result = epoch.epoch.check(keys)
    for insurer, claims in holdings.items():
        epoch.scoring.add(insurer, claims)
    flagged = {
        claim.claim_id: hit
        for insurer in insurers
        for claim, hit in zip(holdings[insurer], result[insurer], strict=True)
    }
    record = job_record(
        job_id,
        insurers,
        {party.name: party.input_commitment() for party in parties},
        result,
    )
    return flagged, record


def joint_check(
    consortium: Consortium, ids: list[str], epoch: JointCheckEpoch | None = None
) -> list[str]:
    """Run the joint duplicate check for the verified claims among `ids`.

    Every insurer is a party holding the treatment keys of its own live
    claims; each learns, for each of its own, only whether another insurer
    holds the same treatment (see `mpc_lite.psi` for exactly what leaks).
    With `epoch` (a flow run's), an incremental check of the claims new to
    it (`JointCheckEpoch`); without, a fresh epoch, whose first check covers
    every live claim under fresh keys. A claimant who did not consent is not
    checked and goes to review.
    """
    if epoch is None:
        epoch = JointCheckEpoch(consortium)
    store = consortium.store
    with Session(store.engine) as session:
        batch = _load(session, ids, S.VERIFIED)
        if not batch:
            return []
        flagged, check_records, job_id = _check(session, batch, epoch)
        verdicts, score_records = _risk_scores(batch, job_id, epoch)

    scored: list[str] = []
    with store.writer() as session:
        for claim in _load(session, ids, S.VERIFIED):
            consent = json.loads(claim.submission)["consent"]["jointFraudCheck"]
            claim.duplicate = flagged.get(claim.id, False) if consent else None
            verdict = verdicts.get(claim.id)
            claim.risk_score = verdict.score if verdict else None
            claim.risk_flagged = bool(verdict and verdict.flagged)
            store.move(session, claim, S.SCORED)
            scored.append(claim.id)
    records = check_records + score_records
    _append(
        consortium,
        records,
        [f"fraud_check:{r.get('job_id', job_id)}:{r['type']}" for r in records],
    )
    # A duplicate counts among its claimant's earlier flags from the next
    # batch on.
    found: dict[str, list[str]] = defaultdict(list)
    by_id = {claim.id: claim.insurer_id for claim in batch}
    for claim_id in scored:
        if epoch.flags.pop(claim_id, False):
            found[by_id[claim_id]].append(claim_id)
    for insurer_id, claim_ids in found.items():
        epoch.scoring.flag(insurer_id, claim_ids)
    return scored


def _claim_input(
    claim_id: str,
    issuer_did: str | None,
    treatment_json: str,
    *,
    duplicate: bool | None = None,
) -> ClaimInput:
    treatment = Treatment.from_subject(json.loads(treatment_json))
    return ClaimInput(
        claim_id=claim_id,
        treatment=treatment_key(
            issuer_did or "",
            treatment.invoice,
            treatment.service_date,
            list(treatment.procedure_codes),
        ),
        claimant=claimant_key(treatment.patient_ref),
        hospital=issuer_did or "",
        service_date=treatment.service_date,
        amount=treatment.total,
        fraud_flag=bool(duplicate),
    )


def _risk_scores(
    batch: list[Claim], job_id: str, epoch: JointCheckEpoch
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score each consenting claimant of the batch across all insurers.

    Every insurer contributes the features of its own live claims (claims in
    the 12 months before the service date, amounts, distinct hospitals, and
    its claims of the claimant found to be duplicates before) by secure
    aggregation; only the asking insurer learns the score of its claim
    (`mpc_lite.fraud`). A claimant held by fewer than three insurers gets no
    score: a sum over fewer parties would tell the asker the others'
    figures. The epoch's `ScoringEpoch` (fed by `_check`) does the work of
    the batch only. Raises `MpcError` when a party fails; the task is
    retried and the claims stay `verified`, never approved.
    """
    asked: dict[str, list[ClaimInput]] = defaultdict(list)
    for claim in batch:
        if json.loads(claim.submission)["consent"]["jointFraudCheck"]:
            asked[claim.insurer_id].append(
                _claim_input(claim.id, claim.issuer_did, claim.treatment or "")
            )
    if not asked:
        return {}, []
    result = epoch.scoring.score(asked, job_id=f"risk-{job_id}")
    return dict(result.verdicts), list(result.records)


def _lock_insurer(store: Store, session: Session, insurer_id: str) -> None:
    """Serialise adjudications of one insurer across workers until commit.

    Two workers pricing claims of the same member at once would each read
    the accumulator and write back their own sum. On PostgreSQL a
    transaction-scoped advisory lock keyed by the insurer makes the second
    wait; SQLite's writer transaction already excludes every other writer.
    """
    if store.is_sqlite:
        return
    key = int.from_bytes(hashlib.sha256(insurer_id.encode()).digest()[:8], "big")
    session.execute(
        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - (1 << 63)}
    )


def _accumulators(
    session: Session, insurer_id: str, members: list[str]
) -> dict[tuple[str, int], Accumulator]:
    """The accumulators of `members` with one insurer (all their years)."""
    found: dict[tuple[str, int], Accumulator] = {}
    for chunk in in_chunks(members):
        rows = session.exec(
            select(Accumulator).where(
                Accumulator.insurer_id == insurer_id,
                Accumulator.member.in_(chunk),  # type: ignore[attr-defined]
            )
        )
        found.update(((row.member, row.year), row) for row in rows)
    return found


def adjudicate(consortium: Consortium, ids: list[str]) -> list[str]:
    """Price each scored claim; approve clean ones, send flagged ones to review."""
    store = consortium.store
    decided: list[str] = []
    with store.writer() as session:
        batch = _load(session, ids, S.SCORED)
        by_insurer: dict[str, list[Claim]] = defaultdict(list)
        for claim in batch:
            by_insurer[claim.insurer_id].append(claim)
        enrolled = _enrollments(
            session, {(claim.insurer_id, claim.claimant_did) for claim in batch}
        )
        for insurer_id, claims in sorted(by_insurer.items()):
            policy = consortium.policy(insurer_id)
            _lock_insurer(store, session, insurer_id)
            members = sorted({claim.claimant_did for claim in claims})
            accumulators = _accumulators(session, insurer_id, members)
            # Service order within a member's year, so accumulators fill up
            # in the order the care happened.
            claims.sort(key=lambda c: (c.claimant_did, c.treatment_data()["start"]))
            for claim in claims:
                enrollment = enrolled.get((claim.insurer_id, claim.claimant_did))
                decided.append(
                    _adjudicate_one(
                        consortium, session, claim, policy, accumulators, enrollment
                    )
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
    enrollment: Enrollment | None,
) -> str:
    store = consortium.store
    treatment = Treatment.from_subject(claim.treatment_data())
    year = int(treatment.service_date[:4])
    key = (claim.claimant_did, year)
    row = accumulators.get(key) or Accumulator(
        insurer_id=claim.insurer_id, member=claim.claimant_did, year=year
    )
    result = price(
        treatment,
        policy,
        row.year_to_date(),
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
    elif claim.risk_flagged:
        review_reason = "risk score across insurers above the threshold"
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
        size = consortium.ledger.size()
        if size and not _finalised(consortium, size):
            _finalise(consortium, size)
        return []
    with Session(store.engine) as session:
        # A correction pays what it owes less what the claim it replaced was
        # paid. NOTE: a negative net (money to recover from the provider) is
        # settled as 0 here and stays recorded on the correction record;
        # recovering it needs a payment-reversal record the ledger lacks yet.
        net = {
            claim_id: max(cents, 0)
            for claim_id, cents in corrections.net_payments_cents(
                session, payable
            ).items()
        }
    records = [
        records_.settlement(
            f"settlement-{claim.id}",
            claim.id,
            claim.insurer_id,
            net[claim.id],
            claim.currency or "",
            hashlib.sha256((claim.claim_response or "").encode()).hexdigest(),
            at=now,
        )
        for claim in payable
    ]
    indexes = _append(consortium, records, [idempotency_key(r) for r in records])

    # 2. Then the rows and the state, together.
    settled: list[str] = []
    with store.writer() as session:
        locked = _locked(store, session, [claim.id for claim in payable])
        for claim, index in zip(payable, indexes, strict=True):
            fresh = locked.get(claim.id)
            if fresh is None or fresh.state not in (
                S.APPROVED.value,
                S.PARTIALLY_APPROVED.value,
            ):
                continue
            session.add(
                Settlement(
                    claim_id=fresh.id,
                    insurer_id=fresh.insurer_id,
                    amount_cents=net[fresh.id],
                    currency=fresh.currency or "",
                    ledger_index=index,
                    created_at=now,
                )
            )
            store.move(session, fresh, S.SETTLED, at=now)
            settled.append(fresh.id)

    # 3. A cosigned checkpoint that includes them.
    _finalise(consortium, max(indexes) + 1)
    return settled


def _locked(store: Store, session: Session, ids: list[str]) -> dict[str, Claim]:
    """The claims `ids`, row-locked until commit (SQLite: the writer lock)."""
    found: dict[str, Claim] = {}
    for chunk in in_chunks(ids):
        query = select(Claim).where(Claim.id.in_(chunk))  # type: ignore[attr-defined]
        if not store.is_sqlite:
            query = query.with_for_update()
        found.update((claim.id, claim) for claim in session.exec(query))
    return found


FINALISE_ATTEMPTS = 5


def _finalise(consortium: Consortium, size: int) -> None:
    """Have a cosigned checkpoint of at least `size` entries, despite rivals.

    Two workers finalising at once race for the witnesses: a witness that
    has just cosigned the other worker's checkpoint refuses ours as stale
    (`ledger.witness` compares and sets its state). The other worker's
    checkpoint is then as good when it covers our entries; otherwise we sign
    a new one and ask again.
    """
    for attempt in range(1, FINALISE_ATTEMPTS + 1):
        try:
            consortium.ledger  # noqa: B018 - opened outside the exclusive block
            with consortium.store.exclusive():
                consortium.finalise_ledger()
            return
        except QuorumNotReached:
            if _finalised(consortium, size):
                return
            if attempt == FINALISE_ATTEMPTS:
                raise
            logger.debug("finalise: attempt %d lost a race, retrying", attempt)
            time.sleep(0.05 * attempt)


def _finalised(consortium: Consortium, size: int) -> bool:
    """Whether the latest checkpoint covers `size` entries with a quorum.

    Counts only cosignatures that verify against the consortium's witness
    keys (`ledger.note.verify_note`), not every signature line.
    """
    note = consortium.ledger.latest_checkpoint()
    if note is None:
        return False
    verifiers = [NoteVerifier.from_vkey(vkey) for vkey in consortium.ledger_vkeys()]
    opened = verify_note(note, verifiers)
    cosigners = sum(1 for sig in opened.signatures if sig.timestamp is not None)
    body = Checkpoint.from_text(opened.text)
    return body.size >= size and cosigners >= consortium.witness_quorum()


def settlement_index(consortium: Consortium, claim_id: str) -> int | None:
    with Session(consortium.store.engine) as session:
        row = session.exec(
            select(Settlement).where(Settlement.claim_id == claim_id)
        ).first()
    return row.ledger_index if row else None
