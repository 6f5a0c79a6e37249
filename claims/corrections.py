"""Resubmissions and corrections: one invoice, one answer, paid once.

A claim is known by its invoice (`Treatment.invoice`, the hospital's FHIR
`Claim.id`) from its issuing hospital, at one insurer. When a verified claim
names an invoice the insurer already holds a live claim for:

* the same content (the verified treatments are equal) is a *resubmission*:
  `answer_resubmission` gives it the earlier claim's ClaimResponse and
  rejects it with a reason naming the earlier claim, so it is never paid a
  second time (the earlier one is paid, or decided, on its own);
* different content is a *correction*: `apply_correction` replaces the
  earlier claim and takes its effect off the member's accumulators, and the
  correction is then adjudicated as a new claim.

A FHIR correction that carries a new `Claim.id` names the claim it replaces
in `Claim.related` (`claims.fhir_intake.prior_claim`); pass that invoice as
`prior_invoice` to `find_earlier`.

What replacing does, by the earlier claim's state
--------------------------------------------------
========================  =============================================
submitted, pending        moved to `rejected` ("replaced by correction")
in_review                 moved to `denied`; it was never counted
denied                    left as it is; nothing was counted
settled                   left as it is (it was paid); its deductible and
                          benefit are withdrawn from the member's year and
                          its payment is recorded as `recover_cents`, to be
                          netted off the correction's payment
                          (`net_payment_cents`)
verified, scored,         refused (`CorrectionRefused`): the earlier claim
adjudicated, approved,    is between two steps of a flow run; send the
partially_approved        correction again once it is decided or settled
rejected                  refused: there is nothing to correct
========================  =============================================

Every function here works inside the caller's session (the flow step's
transaction), so the replacement, the accumulators and the correction's own
state change commit together; `apply_correction_by_id` wraps one in its own
transaction.

`classify` asks the database once per claim. A step that classifies a whole
batch loads the invoices already held once (`HeldInvoices.load`) and passes
them along, so that only a claim whose invoice is held queries its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from sqlmodel import Session, select

from claims.errors import ClaimsError
from claims.payer_tables import CorrectionRecord
from claims.states import ClaimState
from claims.store import Accumulator, Claim, Store, in_chunks
from claims.treatment import Treatment

__all__ = [
    "CorrectionError",
    "CorrectionRefused",
    "HeldInvoices",
    "answer_resubmission",
    "apply_correction",
    "apply_correction_by_id",
    "classify",
    "find_earlier",
    "net_payment_cents",
    "net_payments_cents",
]

logger = logging.getLogger(__name__)

S = ClaimState
_UNDECIDED = frozenset({S.SUBMITTED.value, S.VERIFIED.value, S.SCORED.value})
_IN_FLIGHT = frozenset(
    {
        S.VERIFIED.value,
        S.SCORED.value,
        S.ADJUDICATED.value,
        S.APPROVED.value,
        S.PARTIALLY_APPROVED.value,
    }
)


class CorrectionError(ClaimsError):
    """Raised when a resubmission or correction cannot be handled."""


class CorrectionRefused(CorrectionError):
    """Raised when a claim cannot replace the one it names (the message says why)."""


def _invoice(claim: Claim) -> str:
    return str(claim.treatment_data()["invoice"])


def find_earlier(
    session: Session, claim: Claim, *, prior_invoice: str | None = None
) -> Claim | None:
    """The live claim of the same invoice, hospital and insurer as `claim`.

    `claim` must be verified (its treatment and issuer known). The invoice
    is `prior_invoice` when given (a FHIR correction's `Claim.related`),
    else the claim's own. Rejected claims, claims already replaced, and
    `claim` itself are not candidates; the most recent one wins.
    """
    invoice = prior_invoice or _invoice(claim)
    replaced = select(CorrectionRecord.old_claim_id)
    candidates = session.exec(
        select(Claim)
        .where(
            Claim.insurer_id == claim.insurer_id,
            Claim.issuer_did == claim.issuer_did,
            Claim.id != claim.id,
            Claim.state != S.REJECTED.value,
            Claim.invoice == invoice,
            Claim.id.not_in(replaced),  # type: ignore[attr-defined]
        )
        .order_by(Claim.submitted_at.desc(), Claim.id)  # type: ignore[attr-defined]
    )
    for candidate in candidates:
        if _invoice(candidate) == invoice:
            return candidate
    return None


_Key = tuple[str, str | None, str]


class HeldInvoices:
    """The (insurer, hospital, invoice) keys of live claims, for one batch.

    A claim whose key is not here has no earlier claim (`find_earlier` would
    find none), so `classify` answers it without a query. The keys are read
    once (`load`) and only ever grow: `add` each claim whose invoice was set
    since, before the next claim is classified. A key whose claims were since
    rejected or replaced costs a query, never a wrong answer.

    NOTE: on PostgreSQL, a claim of the same invoice that another
    transaction commits after `load` is missed. A query per claim caught it
    only when it committed before that claim's query, so two workers that
    verify the same invoice at the same time race either way.
    """

    def __init__(self, keys: Iterable[_Key] = ()) -> None:
        self._keys: set[_Key] = set(keys)

    @classmethod
    def load(cls, session: Session, invoices: Iterable[str]) -> HeldInvoices:
        """The keys of the live (not rejected) claims of any of `invoices`."""
        held = cls()
        wanted = sorted(set(invoices))
        for chunk in in_chunks(wanted):
            rows = session.exec(
                select(Claim.insurer_id, Claim.issuer_did, Claim.invoice).where(
                    Claim.invoice.in_(chunk),  # type: ignore[union-attr]
                    Claim.state != S.REJECTED.value,
                )
            )
            held._keys.update(
                (insurer, issuer, invoice)
                for insurer, issuer, invoice in rows
                if invoice is not None
            )
        return held

    def add(self, claim: Claim) -> None:
        """Count `claim`, whose invoice was set after `load`."""
        if claim.invoice is not None:
            self._keys.add((claim.insurer_id, claim.issuer_did, claim.invoice))

    def __contains__(self, key: object) -> bool:
        return key in self._keys


def classify(
    session: Session,
    claim: Claim,
    *,
    prior_invoice: str | None = None,
    held: HeldInvoices | None = None,
) -> tuple[str, Claim] | None:
    """`("resubmission", earlier)`, `("correction", earlier)`, or None.

    A claim naming another invoice (`prior_invoice`) is always a correction.
    With `held` (`HeldInvoices`, current up to this claim), a claim whose
    invoice no live claim holds is answered None without a query.
    """
    invoice = prior_invoice or _invoice(claim)
    if held is not None and (claim.insurer_id, claim.issuer_did, invoice) not in held:
        return None
    earlier = find_earlier(session, claim, prior_invoice=prior_invoice)
    if earlier is None:
        return None
    same = prior_invoice is None and (
        earlier.treatment_data() == claim.treatment_data()
    )
    return ("resubmission" if same else "correction"), earlier


def answer_resubmission(
    store: Store, session: Session, claim: Claim, earlier: Claim
) -> None:
    """Give a resubmitted claim the earlier claim's answer, and never pay it.

    `claim` must be `submitted` (the flow's verify step calls this before it
    would move the claim to `verified`); it moves to `rejected` with a
    reason naming the earlier claim, and carries that claim's ClaimResponse
    and payable (both None when the earlier one is not decided yet).

    Raises `CorrectionRefused` when `claim` is not `submitted`.
    """
    if claim.state != S.SUBMITTED.value:
        raise CorrectionRefused(
            f"claim {claim.id} is {claim.state}; a resubmission is answered at"
            " verification, while it is submitted"
        )
    claim.claim_response = earlier.claim_response
    claim.payable_cents = earlier.payable_cents
    store.move(
        session,
        claim,
        S.REJECTED,
        f"resubmission: the same claim as {earlier.id}, answered there"
        f" ({earlier.state}); not paid again",
    )
    logger.debug("claim %s is a resubmission of %s", claim.id, earlier.id)


def _withdraw(session: Session, old: Claim) -> tuple[int, int]:
    """Take a settled claim's deductible and benefit off the member's year."""
    response = json.loads(old.claim_response or "{}")
    totals = {
        total["category"]["coding"][0]["code"]: total["amount"]["value"]
        for total in response.get("total", ())
    }
    deductible = round(float(totals.get("deductible", 0)) * 100)
    benefit = old.payable_cents or 0
    treatment = Treatment.from_subject(old.treatment_data())
    year = int(treatment.service_date[:4])
    row = session.get(Accumulator, (old.insurer_id, old.claimant_did, year))
    if row is None or (
        row.deductible_met_cents < deductible or row.benefit_paid_cents < benefit
    ):
        raise CorrectionRefused(
            f"claim {old.id} was not counted in the member's {year} accumulators;"
            " it cannot be withdrawn"
        )
    row.deductible_met_cents -= deductible
    row.benefit_paid_cents -= benefit
    session.add(row)
    return deductible, benefit


def apply_correction(
    store: Store, session: Session, new: Claim, old: Claim
) -> CorrectionRecord:
    """Let `new` replace `old` (module docstring), in the caller's session.

    `new` must not be priced yet (`submitted`, `verified` or `scored`), and
    be the same member's claim at the same insurer. Applying the same pair
    again returns the stored record and changes nothing.

    Raises `CorrectionRefused` when `old` is already replaced by another
    claim, is in a state that cannot be replaced (table above), or belongs
    to another member or insurer, or when `new` is already priced; nothing
    is changed then.
    """
    existing = session.exec(
        select(CorrectionRecord).where(CorrectionRecord.old_claim_id == old.id)
    ).first()
    if existing is not None:
        if existing.new_claim_id == new.id:
            return existing
        raise CorrectionRefused(
            f"claim {old.id} was already replaced by claim {existing.new_claim_id}"
        )
    if (new.insurer_id, new.claimant_did) != (old.insurer_id, old.claimant_did):
        raise CorrectionRefused(
            f"claim {new.id} cannot replace claim {old.id}: another member or insurer"
        )
    if new.state not in _UNDECIDED:
        raise CorrectionRefused(
            f"claim {new.id} is {new.state}; a correction replaces the earlier"
            " claim before it is priced"
        )
    if old.state in _IN_FLIGHT or old.state == S.REJECTED.value:
        raise CorrectionRefused(
            f"claim {old.id} is {old.state} and cannot be replaced now",
            remedy="send the correction again once the earlier claim is decided"
            " or settled",
        )

    record = CorrectionRecord(
        new_claim_id=new.id,
        old_claim_id=old.id,
        old_state=old.state,
        at=store.clock(),
    )
    reason = f"replaced by correction {new.id}"
    if old.state == S.PENDING.value:
        store.move(session, old, S.SUBMITTED)
    if old.state == S.SUBMITTED.value:
        store.move(session, old, S.REJECTED, reason)
    elif old.state == S.IN_REVIEW.value:
        old.payable_cents = 0
        store.move(session, old, S.DENIED, reason)
    elif old.state == S.SETTLED.value:
        deductible, benefit = _withdraw(session, old)
        record.deductible_withdrawn_cents = deductible
        record.benefit_withdrawn_cents = benefit
        record.recover_cents = old.payable_cents or 0
    session.add(record)
    logger.debug("claim %s replaces %s (%s)", new.id, old.id, record.old_state)
    return record


def apply_correction_by_id(
    store: Store, new_claim_id: str, old_claim_id: str
) -> CorrectionRecord:
    """`apply_correction` for two claim ids, in a transaction of its own.

    Raises `claims.errors.NotFound` for an unknown id, and `CorrectionRefused`
    as `apply_correction` does; nothing is changed then.
    """
    with store.session() as session:
        new = store.get_claim(session, new_claim_id)
        old = store.get_claim(session, old_claim_id)
        return apply_correction(store, session, new, old)


def net_payment_cents(session: Session, claim: Claim) -> int:
    """What settling `claim` pays: its payable less what its predecessor got.

    Negative when the correction pays less than the replaced claim did (an
    amount to recover from the provider).
    """
    return net_payments_cents(session, [claim])[claim.id]


def net_payments_cents(session: Session, claims: list[Claim]) -> dict[str, int]:
    """`net_payment_cents` of every claim, by id, in one query per chunk."""
    ids = [claim.id for claim in claims]
    recover: dict[str, int] = {}
    query = select(CorrectionRecord.new_claim_id, CorrectionRecord.recover_cents)
    for chunk in in_chunks(ids):
        rows = session.exec(query.where(CorrectionRecord.new_claim_id.in_(chunk)))  # type: ignore[attr-defined]
        recover.update((claim_id, cents) for claim_id, cents in rows)
    return {
        claim.id: (claim.payable_cents or 0) - recover.get(claim.id, 0)
        for claim in claims
    }
