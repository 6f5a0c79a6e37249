"""Adjudication: what a `Policy` pays for a `Treatment`, line by line.

`adjudicate` is a pure function of the treatment, the policy and the member's
year-to-date `Accumulator` (read through `AccumulatorView`); it returns the
new accumulator values instead of writing them, so the caller commits them
in the same transaction as the decision (and serialises adjudications of
one member, or the deductible is counted twice).

The steps, in the order they apply
----------------------------------
Whole claim (the first that fails denies every line):
  1. currency: the claim's currency must be the policy's;
  2. in force: the service date lies in the policy's effective period and on
     or after the member's enrolment;
  3. waiting period: no benefit until `waiting_period_days` after enrolment
     (`member_since`; unknown enrolment counts from the policy's start);
  4. claim type: the policy must cover it.
Each line, in `sequence` order:
  5. excluded code: not covered;
  6. pre-authorisation: a code that needs it and is not in `preauthorised`;
  7. copay: the claim type's copay, once per claim, from the first lines;
  8. deductible: what is left of the annual deductible;
  9. coinsurance: the member's share of the rest, rounded half-even to cents;
 10. per-service maximum: the most one line pays;
 11. annual limit: the most the plan pays per member and calendar year.

A line denied at 5 or 6 (or by 1-4) has eligible amount zero. A line whose
benefit a limit (10, 11) brings to zero is denied too; cost sharing (7-9)
never denies. The claim is `denied` when every billed line is denied,
`partially_approved` when some are, `approved` otherwise, even when cost
sharing leaves nothing payable (the deductible still counts what it took).
A claim whose payable exceeds `Policy.review_threshold` `needs_review`.

Every amount is a `Decimal`, quantised half-even to cents on entry.

Resubmission, correction, cancellation
--------------------------------------
A claim is known by its invoice (`Treatment.invoice`, the hospital's
`Claim.id`) at its provider.

* Resubmission: the same invoice with the same content is the same claim.
  `adjudicate` is a pure function, so pricing it again against the same
  accumulators gives the same answer; the store must simply not price or
  count a claim twice (it adjudicates a claim once, in state `scored`).
* Correction: a new Claim naming the one it replaces in `Claim.related`
  with relationship `prior` (`claims.fhir_intake.prior_claim`). The prior
  claim's effect is taken off the member's year with `withdraw`, then the
  correction is adjudicated as usual. Before settlement the prior decision
  is void; after settlement the difference between the two payables is
  paid or recovered (the settlement side is not built yet).
* Cancellation: `Claim.status` `cancelled` or `entered-in-error` is refused
  by `adjudicate_fhir_claim`; the store withdraws the earlier decision, if
  any, with `withdraw`.

Reason codes
------------
HL7 adjudication-reason (http://terminology.hl7.org/CodeSystem/adjudication-reason)
where it has a code: `ar001` Not covered (claim type not covered, excluded
code), `ar002` Plan Limit Reached (annual limit). The others are ours, in
`REASON_SYSTEM`: `currency` (claim in another currency), `not-in-force`,
`waiting-period`, `preauth-missing`, `copay`, `deductible`, `coinsurance`,
`service-maximum`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any, Protocol

from claims.errors import ClaimsError
from claims.fhir_intake import treatment_from_claim
from claims.money import CENT
from claims.policy import Policy
from claims.treatment import Treatment
from credentials.errors import MalformedDocument
from credentials.parse import load_user_json

__all__ = [
    "Accumulator",
    "AccumulatorView",
    "Adjudication",
    "AdjudicationError",
    "CATEGORY_SYSTEM",
    "InMemoryAccumulators",
    "LineResult",
    "Outcome",
    "REASON_SYSTEM",
    "Reason",
    "ClaimDecision",
    "adjudicate",
    "adjudicate_fhir_claim",
    "dry_run",
    "single_claim",
    "to_claim_response",
    "to_explanation_of_benefit",
    "withdraw",
]

log = logging.getLogger(__name__)

HL7_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication-reason"
REASON_SYSTEM = "http://example.org/claims-engine/CodeSystem/adjudication-reason"
"""Our adjudication reasons, where HL7's code system has none that fits."""
ADJUDICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication"
CATEGORY_SYSTEM = "http://example.org/claims-engine/CodeSystem/adjudication-category"
"""Our adjudication categories: `coinsurance` and `limit` amounts."""
CLAIM_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/claim-type"
CLAIM_REF_SYSTEM = "http://example.org/claims-engine/claim-ref"
"""`ClaimResponse.identifier.system` of the insurer's claim reference."""
ZERO = Decimal("0.00")


class AdjudicationError(ClaimsError):
    """Raised when a treatment or its output cannot be adjudicated at all."""


@dataclass(frozen=True)
class Reason:
    """Why a line was reduced or denied: one coded adjudication reason."""

    system: str
    code: str
    display: str

    def to_fhir(self) -> dict[str, Any]:
        return {
            "coding": [{"system": self.system, "code": self.code}],
            "text": self.display,
        }


NOT_COVERED = Reason(HL7_REASON_SYSTEM, "ar001", "Not covered")
PLAN_LIMIT = Reason(HL7_REASON_SYSTEM, "ar002", "Plan Limit Reached")
CURRENCY = Reason(REASON_SYSTEM, "currency", "Claim currency differs from the plan")
NOT_IN_FORCE = Reason(REASON_SYSTEM, "not-in-force", "Plan not in force on that date")
WAITING_PERIOD = Reason(REASON_SYSTEM, "waiting-period", "Within the waiting period")
PREAUTH_MISSING = Reason(REASON_SYSTEM, "preauth-missing", "Pre-authorisation missing")
COPAY = Reason(REASON_SYSTEM, "copay", "Copay")
DEDUCTIBLE = Reason(REASON_SYSTEM, "deductible", "Applied to the deductible")
COINSURANCE = Reason(REASON_SYSTEM, "coinsurance", "Member coinsurance share")
SERVICE_MAXIMUM = Reason(REASON_SYSTEM, "service-maximum", "Per-service maximum")
_COST_SHARING = frozenset({COPAY, DEDUCTIBLE, COINSURANCE})


class Outcome(StrEnum):
    """The decision on a claim; the values are those of `ClaimState`."""

    APPROVED = "approved"
    """No line denied; cost sharing may still have reduced the benefit."""
    PARTIALLY_APPROVED = "partially_approved"
    """Some billed lines denied, others payable."""
    DENIED = "denied"
    """Every billed line denied."""


@dataclass(frozen=True)
class Accumulator:
    """A member's year-to-date totals under one policy, in its currency."""

    member: str
    year: int
    deductible_met: Decimal = ZERO
    benefit_paid: Decimal = ZERO


class AccumulatorView(Protocol):
    """How adjudication reads accumulators; the store implements it."""

    def get(self, member: str, year: int) -> Accumulator:
        """The member's totals for the year; all zero when none are stored."""
        ...


@dataclass
class InMemoryAccumulators:
    """An `AccumulatorView` in a dict, for tests, benchmarks and the demo."""

    values: dict[tuple[str, int], Accumulator] = field(default_factory=dict)

    def get(self, member: str, year: int) -> Accumulator:
        return self.values.get((member, year)) or Accumulator(member, year)

    def put(self, accumulator: Accumulator) -> None:
        self.values[(accumulator.member, accumulator.year)] = accumulator


@dataclass(frozen=True)
class LineResult:
    """One line as adjudicated. `benefit` is `eligible` less every reduction."""

    sequence: int
    code: str
    """`system|code` of the line."""
    submitted: Decimal
    eligible: Decimal
    copay: Decimal
    deductible: Decimal
    coinsurance: Decimal
    limited: Decimal
    """Removed by the per-service maximum and the annual limit."""
    benefit: Decimal
    reasons: tuple[Reason, ...]

    @property
    def denied(self) -> bool:
        """Billed, pays nothing, and not merely because of cost sharing."""
        return (
            self.submitted > 0
            and self.benefit == 0
            and any(reason not in _COST_SHARING for reason in self.reasons)
        )


@dataclass(frozen=True)
class Adjudication:
    """The decision on one treatment under one policy."""

    invoice: str
    member: str
    plan_id: str
    currency: str
    service_date: date
    outcome: Outcome
    lines: tuple[LineResult, ...]
    reasons: tuple[Reason, ...]
    """Claim-level reasons (steps 1-4), which also appear on every line."""
    needs_review: bool
    review_reason: str | None
    accumulator: Accumulator
    """The member's accumulator after this claim: store it with the decision."""

    @property
    def submitted(self) -> Decimal:
        return sum((line.submitted for line in self.lines), ZERO)

    @property
    def eligible(self) -> Decimal:
        return sum((line.eligible for line in self.lines), ZERO)

    @property
    def payable(self) -> Decimal:
        return sum((line.benefit for line in self.lines), ZERO)

    @property
    def member_share(self) -> Decimal:
        """What the member still owes the provider: submitted less payable."""
        return self.submitted - self.payable

    @property
    def deductible_met_after(self) -> Decimal:
        return self.accumulator.deductible_met

    @property
    def benefit_paid_after(self) -> Decimal:
        return self.accumulator.benefit_paid

    @property
    def reason(self) -> str:
        """Why anything was denied, in one line; empty when nothing was."""
        if self.reasons:
            return self.reasons[0].display
        denied = [
            f"line {line.sequence}: {line.reasons[-1].display}"
            for line in self.lines
            if line.denied
        ]
        return "; ".join(denied)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def adjudicate(
    treatment: Treatment,
    policy: Policy,
    accumulators: AccumulatorView | Accumulator,
    *,
    member_since: date | None = None,
    preauthorised: Iterable[str] = frozenset(),
    member: str | None = None,
) -> Adjudication:
    """Price a treatment under a policy (steps in the module docstring).

    `accumulators` is either a view to read the member's year from, or the
    member's `Accumulator` for the service year itself (its `member` then
    keys the result). `member` otherwise keys the accumulators; it defaults
    to the treatment's patient identifier. `preauthorised` holds
    `system|code` codes the insurer has approved in advance for this claim.
    Nothing is written: store `result.accumulator` with the decision.

    Raises `AdjudicationError` when the treatment's service date is not a
    date, or a given `Accumulator` is for another year.
    """
    try:
        service_date = date.fromisoformat(treatment.service_date)
    except ValueError as exc:
        raise AdjudicationError(
            f"treatment {treatment.invoice}: service date is not YYYY-MM-DD"
        ) from exc
    if isinstance(accumulators, Accumulator):
        before = accumulators
        if before.year != service_date.year:
            raise AdjudicationError(
                f"treatment {treatment.invoice}: accumulator is for {before.year}, "
                f"the service for {service_date.year}"
            )
        member_id = before.member
    else:
        member_id = treatment.patient_ref if member is None else member
        before = accumulators.get(member_id, service_date.year)
    approved_codes = frozenset(preauthorised)

    # 1-4. Whole-claim checks: the first that fails denies every line.
    claim_reason = _claim_reason(treatment, policy, service_date, member_since)

    copay_left = policy.copay.get(treatment.claim_type, ZERO)
    deductible_left = max(ZERO, policy.annual_deductible - before.deductible_met)
    limit_left = (
        None
        if policy.annual_limit is None
        else max(ZERO, policy.annual_limit - before.benefit_paid)
    )
    results = []
    deductible_taken = ZERO
    for line in sorted(treatment.lines, key=lambda item: item.sequence):
        code = f"{line.system}|{line.code}"
        submitted = _cents(line.amount)
        reasons: list[Reason] = []

        # 5-6. Line eligibility.
        if claim_reason is not None:
            reasons.append(claim_reason)
        elif code in policy.excluded_codes:
            reasons.append(NOT_COVERED)
        elif code in policy.preauth_codes and code not in approved_codes:
            reasons.append(PREAUTH_MISSING)
        eligible = ZERO if reasons else submitted

        # 7-9. Cost sharing: copay, deductible, coinsurance.
        copay = min(copay_left, eligible)
        copay_left -= copay
        rest = eligible - copay
        deductible = min(deductible_left, rest)
        deductible_left -= deductible
        deductible_taken += deductible
        rest -= deductible
        coinsurance = _cents(rest * policy.coinsurance)
        rest -= coinsurance
        for amount, reason in (
            (copay, COPAY),
            (deductible, DEDUCTIBLE),
            (coinsurance, COINSURANCE),
        ):
            if amount > 0:
                reasons.append(reason)

        # 10-11. Limits: per service, then per member and year.
        limited = ZERO
        maximum = policy.per_service_maximum
        if maximum is not None and rest > maximum:
            limited += rest - maximum
            rest = maximum
            reasons.append(SERVICE_MAXIMUM)
        if limit_left is not None:
            if rest > limit_left:
                limited += rest - limit_left
                rest = limit_left
                reasons.append(PLAN_LIMIT)
            limit_left -= rest

        results.append(
            LineResult(
                sequence=line.sequence,
                code=code,
                submitted=submitted,
                eligible=eligible,
                copay=copay,
                deductible=deductible,
                coinsurance=coinsurance,
                limited=limited,
                benefit=rest,
                reasons=tuple(reasons),
            )
        )

    payable = sum((line.benefit for line in results), ZERO)
    after = Accumulator(
        member=member_id,
        year=service_date.year,
        deductible_met=before.deductible_met + deductible_taken,
        benefit_paid=before.benefit_paid + payable,
    )
    needs_review = payable > policy.review_threshold
    review_reason = (
        f"payable {payable} {policy.currency} exceeds the review threshold "
        f"{policy.review_threshold}"
        if needs_review
        else None
    )
    outcome = _outcome(results)
    log.debug(
        "adjudicated %s under %s: %s, payable %s",
        treatment.invoice,
        policy.plan_id,
        outcome,
        payable,
    )
    return Adjudication(
        invoice=treatment.invoice,
        member=member_id,
        plan_id=policy.plan_id,
        currency=treatment.currency,
        service_date=service_date,
        outcome=outcome,
        lines=tuple(results),
        reasons=() if claim_reason is None else (claim_reason,),
        needs_review=needs_review,
        review_reason=review_reason,
        accumulator=after,
    )


def _claim_reason(
    treatment: Treatment,
    policy: Policy,
    service_date: date,
    member_since: date | None,
) -> Reason | None:
    if treatment.currency != policy.currency:
        return CURRENCY
    if not policy.covers_date(service_date):
        return NOT_IN_FORCE
    enrolled = policy.effective_start if member_since is None else member_since
    if service_date < enrolled:
        return NOT_IN_FORCE
    if service_date < enrolled + timedelta(days=policy.waiting_period_days):
        return WAITING_PERIOD
    if treatment.claim_type not in policy.covered_claim_types:
        return NOT_COVERED
    return None


def _outcome(lines: list[LineResult]) -> Outcome:
    billed = [line for line in lines if line.submitted > 0]
    denied = [line for line in billed if line.denied]
    if billed and len(denied) == len(billed):
        return Outcome.DENIED
    if denied:
        return Outcome.PARTIALLY_APPROVED
    return Outcome.APPROVED


# -- FHIR output ----------------------------------------------------------------

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    # NOTE: FHIR JSON decimals are JSON numbers; a float holds every cent
    # amount below 2**53 cents exactly and prints back the same digits.
    return {"value": float(amount), "currency": currency}


def _entry(
    system: str,
    code: str,
    amount: Decimal,
    currency: str,
    reason: Reason | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "category": {"coding": [{"system": system, "code": code}]},
        "amount": _money(amount, currency),
    }
    if reason is not None:
        entry["reason"] = reason.to_fhir()
    return entry


def _line_adjudication(line: LineResult, currency: str) -> list[dict[str, Any]]:
    """The adjudication entries of one item (FHIR R4 ClaimResponse.item)."""
    denial = next(
        (r for r in line.reasons if r not in _COST_SHARING and r != SERVICE_MAXIMUM),
        None,
    )
    entries = [_entry(ADJUDICATION_SYSTEM, "submitted", line.submitted, currency)]
    entries.append(
        _entry(
            ADJUDICATION_SYSTEM,
            "eligible",
            line.eligible,
            currency,
            denial if line.eligible == 0 and denial is not None else None,
        )
    )
    if line.copay:
        entries.append(
            _entry(ADJUDICATION_SYSTEM, "copay", line.copay, currency, COPAY)
        )
    if line.deductible:
        entries.append(
            _entry(
                ADJUDICATION_SYSTEM, "deductible", line.deductible, currency, DEDUCTIBLE
            )
        )
    if line.coinsurance:
        entries.append(
            _entry(
                CATEGORY_SYSTEM, "coinsurance", line.coinsurance, currency, COINSURANCE
            )
        )
    if line.limited:
        limit_reason = PLAN_LIMIT if PLAN_LIMIT in line.reasons else SERVICE_MAXIMUM
        entries.append(
            _entry(CATEGORY_SYSTEM, "limit", line.limited, currency, limit_reason)
        )
    entries.append(_entry(ADJUDICATION_SYSTEM, "benefit", line.benefit, currency))
    return entries


def _disposition(adjudication: Adjudication) -> str:
    denied = sum(1 for line in adjudication.lines if line.denied)
    if adjudication.outcome is Outcome.DENIED:
        reason = adjudication.reasons[0].display if adjudication.reasons else None
        text = f"denied: {reason}" if reason else "denied: no line is payable"
    elif adjudication.outcome is Outcome.PARTIALLY_APPROVED:
        text = f"partially approved: {denied} of {len(adjudication.lines)} lines denied"
    else:
        text = "approved"
    if adjudication.needs_review:
        text += "; held for review"
    return text


def to_claim_response(
    treatment: Treatment,
    adjudication: Adjudication,
    *,
    insurer: str,
    claim_ref: str,
    created: datetime,
) -> dict[str, Any]:
    """The adjudication as a FHIR R4 ClaimResponse (JSON dict).

    FHIR R4 section 13.5 (ClaimResponse): one `item` per claim line with
    adjudication amounts in the HL7 adjudication categories (`submitted`,
    `eligible`, `copay`, `deductible`, `benefit`) plus ours (`coinsurance`,
    `limit`) and the reason on the entry it explains. `claim_ref` is the
    insurer's claim reference (`identifier`, and `id` when it is a valid FHIR
    id); `created` must carry a time zone. A claim held for review gets no
    `payment` and a process note saying why.
    """
    if created.tzinfo is None or created.utcoffset() is None:
        raise AdjudicationError("ClaimResponse.created needs a time zone")
    currency = adjudication.currency
    totals = [
        ("submitted", adjudication.submitted),
        ("eligible", adjudication.eligible),
        ("copay", sum((line.copay for line in adjudication.lines), ZERO)),
        ("deductible", sum((line.deductible for line in adjudication.lines), ZERO)),
        ("benefit", adjudication.payable),
    ]
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "identifier": [{"system": CLAIM_REF_SYSTEM, "value": claim_ref}],
        "status": "active",
        "type": {
            "coding": [{"system": CLAIM_TYPE_SYSTEM, "code": treatment.claim_type}]
        },
        "use": "claim",
        "patient": {
            "identifier": {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                        }
                    ]
                },
                "value": treatment.patient_ref,
            }
        },
        "created": created.isoformat(),
        "insurer": {"display": insurer},
        "requestor": {
            "identifier": {"value": treatment.provider},
            "display": treatment.provider_name or treatment.provider,
        },
        "request": {"identifier": {"value": treatment.invoice}},
        "outcome": "complete",
        "disposition": _disposition(adjudication),
        "item": [
            {
                "itemSequence": line.sequence,
                "adjudication": _line_adjudication(line, currency),
            }
            for line in adjudication.lines
        ],
        "total": [
            {
                "category": {"coding": [{"system": ADJUDICATION_SYSTEM, "code": code}]},
                "amount": _money(amount, currency),
            }
            for code, amount in totals
        ],
    }
    if _FHIR_ID.fullmatch(claim_ref):
        response["id"] = claim_ref
    if adjudication.needs_review:
        response["processNote"] = [
            {"number": 1, "type": "display", "text": adjudication.review_reason}
        ]
    elif adjudication.payable > 0:
        response["payment"] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/ex-paymenttype",
                        "code": "complete",
                    }
                ]
            },
            "amount": _money(adjudication.payable, currency),
        }
    return response


# -- single FHIR Claims, corrections, ExplanationOfBenefit ----------------------


@dataclass(frozen=True)
class ClaimDecision:
    """A FHIR Claim sent on its own, flattened and adjudicated."""

    treatment: Treatment
    adjudication: Adjudication


def adjudicate_fhir_claim(
    claim_json: dict[str, Any] | str | bytes,
    policy: Policy,
    accumulators: AccumulatorView | Accumulator | None = None,
    *,
    member_since: date | None = None,
    preauthorised: Iterable[str] = frozenset(),
) -> ClaimDecision:
    """Adjudicate one HL7 FHIR R4 Claim resource (JSON text or parsed dict).

    The claim is checked with `claims.fhir_intake.validate_claim` and
    flattened with `treatment_from_claim` (residual pricing rule); the member
    is the patient's identifier. Without `accumulators` the member starts
    the year with nothing met or paid.

    Raises `claims.fhir_intake.ClaimRefused` (with every field at fault) for
    a claim a payer must refuse, or `AdjudicationError` for text that is not
    a JSON object.
    """
    if isinstance(claim_json, str | bytes):
        claim_json = _read_json(claim_json, "the claim")
    if not isinstance(claim_json, dict):
        raise AdjudicationError("the claim is not a JSON object")
    treatment = treatment_from_claim(claim_json)
    view = InMemoryAccumulators() if accumulators is None else accumulators
    result = adjudicate(
        treatment,
        policy,
        view,
        member_since=member_since,
        preauthorised=preauthorised,
    )
    return ClaimDecision(treatment, result)


def _read_json(data: str | bytes, what: str) -> Any:
    """JSON from a user, read as `credentials.parse.load_user_json` reads it
    (nesting at most 64 deep, a syntax error named by line and column)."""
    try:
        return load_user_json(data, what=what, parse_float=Decimal)
    except MalformedDocument as exc:
        raise AdjudicationError(str(exc)) from exc


def single_claim(data: Any) -> dict[str, Any]:
    """The one Claim in `data`: a Claim resource, or a Bundle holding one.

    Raises `AdjudicationError` when `data` is neither, or when a Bundle holds
    no Claim or more than one.
    """
    if not isinstance(data, dict):
        raise AdjudicationError("the input is not a JSON object")
    kind = data.get("resourceType")
    if kind == "Claim":
        return data
    if kind != "Bundle":
        raise AdjudicationError(
            f"the input is a {str(kind)[:40]!r}, not a Claim or a Bundle",
            remedy="pass one FHIR R4 Claim, or a Bundle holding exactly one",
        )
    claims = [
        entry["resource"]
        for entry in data.get("entry") or ()
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and entry["resource"].get("resourceType") == "Claim"
    ]
    if len(claims) != 1:
        raise AdjudicationError(
            f"the Bundle holds {len(claims)} Claims; a dry run takes exactly one"
        )
    claim: dict[str, Any] = claims[0]
    return claim


def dry_run(
    data: dict[str, Any] | str | bytes,
    policy: Policy,
    *,
    created: datetime,
    insurer: str | None = None,
) -> tuple[ClaimDecision, dict[str, Any]]:
    """Adjudicate one FHIR Claim (or a Bundle of one) and store nothing.

    The member starts the year with nothing met or paid and no
    pre-authorisations; enrolment counts from the policy's start. Returns
    the decision and its FHIR R4 ClaimResponse (JSON dict), whose insurer is
    `insurer` or the policy's.

    Raises `claims.fhir_intake.ClaimRefused` (every field at fault) or
    `AdjudicationError` (not JSON, not a single Claim).
    """
    if isinstance(data, str | bytes):
        data = _read_json(data, "the input")
    decision = adjudicate_fhir_claim(single_claim(data), policy)
    response = to_claim_response(
        decision.treatment,
        decision.adjudication,
        insurer=insurer or policy.insurer,
        claim_ref=decision.treatment.invoice or "dry-run",
        created=created,
    )
    return decision, response


def withdraw(adjudication: Adjudication, current: Accumulator) -> Accumulator:
    """The member's accumulator with one earlier decision taken back out.

    For corrections and cancellations (module docstring). `current` must be
    the same member and year as the decision.

    Raises `AdjudicationError` when it is not, or when the result would go
    below zero (the decision was never counted in `current`).
    """
    before = adjudication.accumulator
    if (current.member, current.year) != (before.member, before.year):
        raise AdjudicationError(
            f"claim {adjudication.invoice}: accumulator is for another member or year"
        )
    deductible = sum((line.deductible for line in adjudication.lines), ZERO)
    after = Accumulator(
        member=current.member,
        year=current.year,
        deductible_met=current.deductible_met - deductible,
        benefit_paid=current.benefit_paid - adjudication.payable,
    )
    if after.deductible_met < 0 or after.benefit_paid < 0:
        raise AdjudicationError(
            f"claim {adjudication.invoice}: was not counted in this accumulator"
        )
    return after


def to_explanation_of_benefit(
    treatment: Treatment,
    adjudication: Adjudication,
    *,
    insurer: str,
    claim_ref: str,
    created: datetime,
) -> dict[str, Any]:
    """The adjudication as a FHIR R4 ExplanationOfBenefit (JSON dict).

    FHIR R4 section 13.9 (ExplanationOfBenefit): what the member is told. It
    repeats the claim's lines (`item.productOrService`, `servicedDate`, `net`)
    beside the same adjudication entries as `to_claim_response`, names the
    plan as the focal insurance, and states `payment` unless the claim is
    held for review. `created` must carry a time zone.
    """
    response = to_claim_response(
        treatment, adjudication, insurer=insurer, claim_ref=claim_ref, created=created
    )
    currency = adjudication.currency
    lines = {line.sequence: line for line in treatment.lines}
    items = []
    for entry in response["item"]:
        line = lines[entry["itemSequence"]]
        items.append(
            {
                "sequence": line.sequence,
                "productOrService": {
                    "coding": [
                        {
                            "system": line.system,
                            "code": line.code,
                            **({"display": line.display} if line.display else {}),
                        }
                    ]
                },
                "servicedDate": treatment.service_date,
                "net": _money(line.amount, currency),
                "adjudication": entry["adjudication"],
            }
        )
    eob: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "identifier": response["identifier"],
        "status": "active",
        "type": response["type"],
        "use": "claim",
        "patient": response["patient"],
        "billablePeriod": {"start": treatment.start, "end": treatment.end},
        "created": response["created"],
        "insurer": response["insurer"],
        "provider": response["requestor"],
        "claim": {"identifier": {"value": treatment.invoice}},
        "outcome": response["outcome"],
        "disposition": response["disposition"],
        "insurance": [{"focal": True, "coverage": {"display": adjudication.plan_id}}],
        "item": items,
        "total": response["total"],
    }
    for key in ("id", "payment", "processNote"):
        if key in response:
            eob[key] = response[key]
    return eob
