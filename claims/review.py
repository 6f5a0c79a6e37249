"""Review: a person decides the claims that adjudication held back.

A claim lands in `in_review` when the joint check flagged it, when the
claimant gave no consent to that check, or when its payable exceeds the
plan's review threshold (`flows.steps.adjudicate`). Review claims were
priced but never counted in the member's accumulators, and never paid.

`approve` prices the claim again and pays it; `deny` closes it. Each decision
is stored (`claims.payer_tables.ReviewDecision`: who, when, what, why) and
written to the ledger as a `review.decision` record that carries codes and
ids only, never the reviewer's note.

The re-pricing rule
-------------------
On approval the claim is adjudicated again against the member's
accumulators as they are at that moment and the insurer's current policy,
because other claims of the same member and year may have been paid while
this one waited. The outcome (approved, partially approved, or denied when
nothing is payable any more) and the payable come from that pricing; the
accumulators are updated in the same transaction as the decision; the
stored ClaimResponse is rewritten without the review hold. When the payable
differs from the first pricing the decision keeps both amounts and its
ledger reason code is `review-approved-repriced`.

The order of writes
-------------------
1. One store transaction: the claim is still in review (else
   `NotInReview`), the decision row, the state move, the accumulators.
2. The ledger: every decision not yet appended is appended with its
   idempotency key, and its index is stored. A crash between 1 and 2 is
   repaired by the next review action (`publish_pending`).
3. An approved claim is settled at once with `flows.steps.settle`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlmodel import Session, select

from claims.adjudication import Adjudication, adjudicate, to_claim_response
from claims.consortium import Consortium
from claims.errors import ClaimsError
from claims.money import CENT
from claims.payer_tables import ReviewDecision
from claims.states import ClaimState
from claims.store import Accumulator, Claim, cents, from_cents
from claims.treatment import Treatment
from ledger import records
from mpc_lite.score import DEFAULT_MODEL

__all__ = [
    "RISK_THRESHOLD",
    "InvalidReviewer",
    "NotInReview",
    "ReviewError",
    "ReviewItem",
    "approve",
    "deny",
    "describe_risk",
    "list_reviews",
    "publish_pending",
    "risk_mark",
    "show",
]

logger = logging.getLogger(__name__)

S = ClaimState
_REVIEWER = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_NOTE = 500

RISK_THRESHOLD = DEFAULT_MODEL.threshold
"""The joint risk score at or above which a claim is flagged.

The threshold of the consortium's default model, the one the flow scores
with (`flows.steps`); a consortium that scored with another model would
have to show that model's threshold instead.
"""


class ReviewError(ClaimsError):
    """Raised when a review action cannot be taken; base of this module's errors."""


class NotInReview(ReviewError):
    """Raised when a claim asked to be decided is not in review."""


class InvalidReviewer(ReviewError):
    """Raised when a reviewer name, note or reason cannot be recorded."""


@dataclass(frozen=True)
class ReviewItem:
    """One claim waiting for review, as `claims review list` shows it."""

    claim_id: str
    insurer_id: str
    claim_type: str | None
    billed: str | None
    payable: str | None
    """What the first pricing would pay, before any re-pricing."""
    currency: str | None
    reason: str | None
    """Why the claim is held."""
    since: datetime
    age_seconds: float
    risk_score: float | None
    """The joint risk score across insurers; None when none was computed."""
    risk_flagged: bool
    """True when `risk_score` is at or above `risk_threshold`."""
    risk_threshold: float = RISK_THRESHOLD

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat()
        return data


def _money(value: int | None) -> str | None:
    return None if value is None else str(from_cents(value))


def _held_since(session: Session, consortium: Consortium, claim: Claim) -> datetime:
    events = consortium.store.events(session, claim.id)
    held = [event.at for event in events if event.state == S.IN_REVIEW.value]
    return held[-1] if held else claim.updated_at


def list_reviews(
    consortium: Consortium, insurer_id: str | None = None
) -> list[ReviewItem]:
    """The claims in review (of one insurer, or all), oldest submission first."""
    now = consortium.clock()
    items = []
    with Session(consortium.store.engine) as session:
        for claim in consortium.store.claims_in(session, S.IN_REVIEW, insurer_id):
            since = _held_since(session, consortium, claim)
            items.append(
                ReviewItem(
                    claim_id=claim.id,
                    insurer_id=claim.insurer_id,
                    claim_type=claim.claim_type,
                    billed=_money(claim.billed_cents),
                    payable=_money(claim.payable_cents),
                    currency=claim.currency,
                    reason=claim.reason,
                    since=since,
                    age_seconds=(now - since).total_seconds(),
                    risk_score=claim.risk_score,
                    risk_flagged=bool(claim.risk_flagged),
                )
            )
    return items


def show(consortium: Consortium, claim_id: str) -> dict[str, Any]:
    """One claim as a reviewer needs it, in any state (JSON-ready).

    Keys: `claim` (id, insurer, state, reason, amounts, duplicate flag, and
    `risk_score`, `risk_flagged`, `risk_threshold`: the score is None when
    none was computed, and then the claim is not flagged), `lines` (per
    line: sequence, code, submitted, benefit, reasons, from the stored
    ClaimResponse), `timeline` and `decisions`.

    `claim_id` may be a unique prefix of 8 or more characters. Raises
    `claims.errors.NotFound` for an unknown id.
    """
    store = consortium.store
    with Session(store.engine) as session:
        claim = store.get_claim(session, claim_id)
        # By the full id from here on: `claim_id` may be a prefix.
        events = store.events(session, claim.id)
        decisions = list(
            session.exec(
                select(ReviewDecision)
                .where(ReviewDecision.claim_id == claim.id)
                .order_by(ReviewDecision.decided_at)  # type: ignore[arg-type]
            )
        )
    treatment = json.loads(claim.treatment) if claim.treatment else None
    return {
        "claim": {
            "id": claim.id,
            "insurer": claim.insurer_id,
            "state": claim.state,
            "reason": claim.reason,
            "claim_type": claim.claim_type,
            "currency": claim.currency,
            "billed": _money(claim.billed_cents),
            "payable": _money(claim.payable_cents),
            "duplicate_elsewhere": claim.duplicate,
            "service_date": treatment["start"][:10] if treatment else None,
            "risk_score": claim.risk_score,
            "risk_flagged": bool(claim.risk_flagged),
            "risk_threshold": RISK_THRESHOLD,
        },
        "lines": _lines(claim),
        "timeline": [
            {"state": e.state, "at": e.at.isoformat(), "reason": e.reason}
            for e in events
        ],
        "decisions": [
            {
                "review_id": d.id,
                "reviewer": d.reviewer,
                "decision": d.decision,
                "note": d.note,
                "reason_code": d.reason_code,
                "payable_before": _money(d.payable_cents_before),
                "payable_after": _money(d.payable_cents_after),
                "decided_at": d.decided_at.isoformat(),
                "ledger_index": d.ledger_index,
            }
            for d in decisions
        ],
    }


def _lines(claim: Claim) -> list[dict[str, Any]]:
    """Per line: submitted and benefit amounts and reasons, from the response."""
    if not claim.claim_response:
        return []
    codes = {}
    if claim.treatment:
        codes = {
            line["sequence"]: f"{line['system']}|{line['code']}"
            for line in json.loads(claim.treatment)["lines"]
        }
    lines = []
    for item in json.loads(claim.claim_response).get("item", ()):
        amounts: dict[str, Any] = {}
        reasons: list[str] = []
        for entry in item.get("adjudication", ()):
            code = entry["category"]["coding"][0]["code"]
            amounts[code] = entry.get("amount", {}).get("value")
            if "reason" in entry:
                reasons.append(entry["reason"].get("text", ""))
        lines.append(
            {
                "sequence": item["itemSequence"],
                "code": codes.get(item["itemSequence"]),
                "submitted": _response_money(amounts.get("submitted")),
                "benefit": _response_money(amounts.get("benefit")),
                "reasons": reasons,
            }
        )
    return lines


def _response_money(value: Any) -> str | None:
    """A ClaimResponse amount (a JSON number) as the other amounts are shown:
    text with two decimals, `125.00` rather than `125.0`."""
    if value is None:
        return None
    return str(
        Decimal(repr(value) if isinstance(value, float) else str(value)).quantize(CENT)
    )


def risk_mark(score: float | None, flagged: bool) -> str:
    """A joint risk score in at most five characters: `0.51!`, `0.48` or `-`.

    Two decimals, cut rather than rounded, so that a score just below a
    threshold of two decimals (0.4996 under 0.5) never reads as the
    threshold itself; `!` marks a flagged score and `-` stands for no score.
    """
    if score is None:
        return "-"
    shown = Decimal(repr(score)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return f"{shown}!" if flagged else str(shown)


def describe_risk(
    score: float | None,
    flagged: bool,
    *,
    state: str,
    reached: Collection[str],
    duplicate: bool | None,
) -> str:
    """A claim's joint risk score and the threshold, or why it has none, in words.

    `reached` holds the states of the claim's timeline, and `duplicate` its
    duplicate flag, which the flow leaves None when the claimant gave no
    consent to the joint check.
    """
    if score is not None:
        if flagged:
            return f"{score:.4f}, flagged: at or above the threshold {RISK_THRESHOLD:g}"
        return f"{score:.4f}, below the threshold {RISK_THRESHOLD:g}"
    if state == S.REJECTED.value:
        return "not computed: the claim was rejected before the joint check"
    if S.SCORED.value not in reached:
        return "not computed: the claim has not been through the joint check"
    if duplicate is None:
        return "not computed: no consent to the joint fraud check"
    return "not computed: fewer than 3 insurers hold this claimant"


def _check_reviewer(reviewer: str) -> None:
    if not isinstance(reviewer, str) or not _REVIEWER.fullmatch(reviewer):
        raise InvalidReviewer(
            "the reviewer must be 1-64 letters, digits, '.', '_' or '-'",
            remedy="pass --reviewer with a staff id such as j.doe",
        )


def _check_text(name: str, text: str | None, *, required: bool) -> None:
    if text is None or not text.strip():
        if required:
            raise InvalidReviewer(f"a {name} is required and must not be blank")
        return
    if len(text) > MAX_NOTE:
        raise InvalidReviewer(f"the {name} is longer than {MAX_NOTE} characters")


def _in_review(consortium: Consortium, session: Session, claim_id: str) -> Claim:
    claim = consortium.store.get_claim(session, claim_id)
    if claim.state != S.IN_REVIEW.value:
        raise NotInReview(
            f"claim {claim_id} is {claim.state}, not in review",
            remedy="run `claims review list` to see the claims waiting for review",
        )
    return claim


def _reprice(
    consortium: Consortium, session: Session, claim: Claim
) -> tuple[Treatment, Adjudication, Accumulator]:
    """Price `claim` against the member's accumulators as they are now."""
    treatment = Treatment.from_subject(claim.treatment_data())
    policy = consortium.policy(claim.insurer_id)
    year = int(treatment.service_date[:4])
    row = session.get(Accumulator, (claim.insurer_id, claim.claimant_did, year))
    if row is None:
        row = Accumulator(
            insurer_id=claim.insurer_id, member=claim.claimant_did, year=year
        )
    enrollment = consortium.enrollment(claim.insurer_id, claim.claimant_did)
    result = adjudicate(
        treatment,
        policy,
        row.year_to_date(),
        member_since=enrollment.since if enrollment else None,
    )
    # The reviewer has just looked at it: no second hold.
    return treatment, replace(result, needs_review=False, review_reason=None), row


def _review_id(reviewer: str) -> str:
    return f"rv-{secrets.token_hex(8)}-{reviewer}"


def approve(
    consortium: Consortium, claim_id: str, reviewer: str, note: str | None = None
) -> ReviewDecision:
    """Approve a claim in review, re-price it (module docstring) and settle it.

    `claim_id` may be a unique prefix of 8 or more characters. Returns the
    stored decision. Raises `claims.errors.NotFound` for an unknown id,
    `NotInReview` when the claim is not in review, and `InvalidReviewer` for
    an unusable reviewer name or note, and the `ConfigError` of a key the
    ledger needs and cannot open; in each case nothing is changed.
    """
    _check_reviewer(reviewer)
    _check_text("note", note, required=False)
    consortium.check_keys()
    store = consortium.store
    now = consortium.clock()

    # 1. Decide, in one transaction.
    with store.session() as session:
        claim = _in_review(consortium, session, claim_id)
        claim_id = claim.id  # the full id, to settle by: it may have been a prefix
        treatment, result, row = _reprice(consortium, session, claim)
        before = claim.payable_cents
        after = cents(result.payable)
        outcome = ClaimState(str(result.outcome))
        if outcome is S.DENIED:
            code = "review-approved-nothing-payable"
        elif after != before:
            code = "review-approved-repriced"
        else:
            code = "review-approved"
        claim.payable_cents = after
        claim.claim_response = json.dumps(
            to_claim_response(
                treatment,
                result,
                insurer=claim.insurer_id,
                claim_ref=claim.id,
                created=now,
            )
        )
        if outcome is not S.DENIED:
            row.deductible_met_cents = cents(result.accumulator.deductible_met)
            row.benefit_paid_cents = cents(result.accumulator.benefit_paid)
            session.add(row)
        reason = result.reason or None
        store.move(session, claim, outcome, reason, at=now)
        decision = ReviewDecision(
            id=_review_id(reviewer),
            claim_id=claim.id,
            reviewer=reviewer,
            decision=outcome.value,
            note=note or None,
            reason_code=code,
            payable_cents_before=before,
            payable_cents_after=after,
            decided_at=now,
        )
        session.add(decision)
    logger.debug("claim %s approved on review as %s", claim_id, outcome.value)

    # 2. The ledger.
    publish_pending(consortium)

    # 3. Pay it (settling signs and cosigns a checkpoint over the decision too).
    if outcome is S.DENIED:
        consortium.finalise_ledger()
    else:
        from flows.steps import settle

        settle(consortium, [claim_id])
    return _decision(consortium, decision.id)


def deny(
    consortium: Consortium, claim_id: str, reviewer: str, reason: str
) -> ReviewDecision:
    """Deny a claim in review for `reason`; nothing is paid or counted.

    The reason is stored with the decision and on the claim; the ledger gets
    the code `review-denied` only. The stored ClaimResponse keeps its lines
    with every benefit set to zero and says it was denied on review.

    Raises `claims.errors.NotFound`, `NotInReview`, `InvalidReviewer` (no
    reason, or an unusable reviewer name) or the `ConfigError` of a key the
    ledger needs and cannot open, and then changes nothing.
    """
    _check_reviewer(reviewer)
    consortium.check_keys()
    _check_text("reason", reason, required=True)
    store = consortium.store
    now = consortium.clock()
    with store.session() as session:
        claim = _in_review(consortium, session, claim_id)
        before = claim.payable_cents
        claim.payable_cents = 0
        if claim.claim_response:
            claim.claim_response = json.dumps(
                _denied_response(json.loads(claim.claim_response))
            )
        store.move(session, claim, S.DENIED, f"denied on review: {reason}", at=now)
        decision = ReviewDecision(
            id=_review_id(reviewer),
            claim_id=claim.id,
            reviewer=reviewer,
            decision=S.DENIED.value,
            note=reason,
            reason_code="review-denied",
            payable_cents_before=before,
            payable_cents_after=0,
            decided_at=now,
        )
        session.add(decision)
    logger.debug("claim %s denied on review", claim_id)
    publish_pending(consortium)
    consortium.finalise_ledger()
    return _decision(consortium, decision.id)


def _denied_response(response: dict[str, Any]) -> dict[str, Any]:
    """A ClaimResponse with every benefit zeroed and no payment."""
    for item in response.get("item", ()):
        for entry in item.get("adjudication", ()):
            if entry["category"]["coding"][0]["code"] == "benefit":
                entry["amount"]["value"] = 0.0
    for total in response.get("total", ()):
        if total["category"]["coding"][0]["code"] == "benefit":
            total["amount"]["value"] = 0.0
    response.pop("payment", None)
    response["disposition"] = "denied on review"
    response["processNote"] = [
        {"number": 1, "type": "display", "text": "denied on review"}
    ]
    return response


def publish_pending(consortium: Consortium) -> int:
    """Append every decision not yet in the ledger; returns how many.

    Idempotent: each record's key is its claim and review id, so a decision
    appended before a crash is found, not appended twice.
    """
    with Session(consortium.store.engine) as session:
        pending = list(
            session.exec(
                select(ReviewDecision).where(
                    ReviewDecision.ledger_index == None  # noqa: E711
                )
            )
        )
    if not pending:
        return 0
    entries = [
        records.review_decision(
            d.claim_id, d.id, d.decision, d.reason_code, at=d.decided_at
        )
        for d in pending
    ]
    indexes = consortium.ledger.append(
        entries, [records.idempotency_key(e) for e in entries]
    )
    with consortium.store.session() as session:
        for decision, index in zip(pending, indexes, strict=True):
            row = session.get(ReviewDecision, decision.id)
            if row is not None:
                row.ledger_index = index
                session.add(row)
    return len(pending)


def _decision(consortium: Consortium, review_id: str) -> ReviewDecision:
    with Session(consortium.store.engine) as session:
        row = session.get(ReviewDecision, review_id)
    assert row is not None  # written above, in a committed transaction
    return row
