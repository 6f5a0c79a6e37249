"""Resubmissions and corrections against a store the demo filled."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.corrections import (
    CorrectionRefused,
    HeldInvoices,
    answer_resubmission,
    apply_correction,
    apply_correction_by_id,
    classify,
    net_payment_cents,
)
from claims.payer_tables import CorrectionRecord
from claims.store import Accumulator, Claim, Settlement
from flows import steps


def _one(consortium: Consortium, state: str, *, paid: bool = False) -> Claim:
    with Session(consortium.store.engine) as session:
        for claim in session.exec(select(Claim).where(Claim.state == state)):
            if not paid or (claim.payable_cents or 0) > 0:
                return claim
    pytest.fail(f"the demo left no {state} claim")


def _clone(
    consortium: Consortium,
    old: Claim,
    new_id: str,
    state: str,
    change: dict[str, Any] | None = None,
) -> Claim:
    """A second claim of the same invoice, as verify would leave it."""
    treatment = json.loads(old.treatment or "{}")
    for key, value in (change or {}).items():
        treatment["lines"][0][key] = value
    data = old.model_dump()
    data.update(
        id=new_id,
        state=state,
        reason=None,
        credential_id=f"urn:uuid:{new_id}",
        submission_hash=new_id,
        treatment=json.dumps(treatment, sort_keys=True),
        claim_response=None,
        payable_cents=None,
        duplicate=False,
        settled_at=None,
    )
    claim = Claim(**data)
    with consortium.store.session() as session:
        session.add(claim)
    return claim


def _accumulator(consortium: Consortium, claim: Claim) -> tuple[int, int]:
    year = int(json.loads(claim.treatment or "{}")["start"][:4])
    with Session(consortium.store.engine) as session:
        row = session.get(Accumulator, (claim.insurer_id, claim.claimant_did, year))
    return (row.deductible_met_cents, row.benefit_paid_cents) if row else (0, 0)


def _state(consortium: Consortium, claim_id: str) -> Claim:
    with Session(consortium.store.engine) as session:
        return consortium.store.get_claim(session, claim_id)


class TestClassify:
    def test_same_content_is_a_resubmission(self, consortium: Consortium) -> None:
        old = _one(consortium, "settled")
        new = _clone(consortium, old, "again", "submitted")
        with Session(consortium.store.engine) as session:
            kind, earlier = classify(session, new) or ("", None)
        assert (kind, earlier and earlier.id) == ("resubmission", old.id)

    def test_changed_content_is_a_correction(self, consortium: Consortium) -> None:
        old = _one(consortium, "settled")
        new = _clone(consortium, old, "fixed", "scored", {"amount": "1.00"})
        with Session(consortium.store.engine) as session:
            kind, earlier = classify(session, new) or ("", None)
        assert (kind, earlier and earlier.id) == ("correction", old.id)

    def test_related_prior_names_another_invoice(self, consortium: Consortium) -> None:
        old = _one(consortium, "settled")
        invoice = json.loads(old.treatment or "{}")["invoice"]
        treatment = json.loads(old.treatment or "{}")
        treatment["invoice"] = "a-new-invoice"
        new = _clone(consortium, old, "renamed", "scored")
        with consortium.store.session() as session:
            new.treatment = json.dumps(treatment, sort_keys=True)
            session.add(new)
        with Session(consortium.store.engine) as session:
            assert classify(session, new) is None
            kind, earlier = classify(session, new, prior_invoice=invoice) or ("", None)
        assert (kind, earlier and earlier.id) == ("correction", old.id)


class TestResubmission:
    def test_gets_the_same_answer_and_is_not_paid_twice(
        self, consortium: Consortium
    ) -> None:
        old = _one(consortium, "settled", paid=True)
        new = _clone(consortium, old, "again", "submitted")
        with consortium.store.session() as session:
            claim = consortium.store.get_claim(session, new.id)
            answer_resubmission(consortium.store, session, claim, old)

        after = _state(consortium, new.id)
        assert after.state == "rejected"
        assert after.reason == (
            f"resubmission: the same claim as {old.id}, answered there (settled);"
            " not paid again"
        )
        assert after.claim_response == old.claim_response
        assert steps.settle(consortium, [new.id]) == []
        with Session(consortium.store.engine) as session:
            paid = session.exec(
                select(Settlement).where(Settlement.claim_id == new.id)
            ).all()
        assert paid == []

    def test_only_a_submitted_claim_is_answered(self, consortium: Consortium) -> None:
        old = _one(consortium, "settled")
        new = _clone(consortium, old, "again", "scored")
        with (
            consortium.store.session() as session,
            pytest.raises(CorrectionRefused, match="is scored; a resubmission"),
        ):
            answer_resubmission(consortium.store, session, new, old)


class TestCorrection:
    def test_settled_claim_is_withdrawn_and_the_correction_priced_after(
        self, consortium: Consortium
    ) -> None:
        old = _one(consortium, "settled", paid=True)
        deductible_before, paid_before = _accumulator(consortium, old)
        response = json.loads(old.claim_response or "{}")
        old_deductible = round(
            100
            * next(
                t["amount"]["value"]
                for t in response["total"]
                if t["category"]["coding"][0]["code"] == "deductible"
            )
        )
        new = _clone(consortium, old, "fixed", "scored", {"amount": "10.00"})

        record = apply_correction_by_id(consortium.store, new.id, old.id)

        assert record.old_state == "settled"
        assert record.benefit_withdrawn_cents == old.payable_cents
        assert record.deductible_withdrawn_cents == old_deductible
        assert record.recover_cents == old.payable_cents
        assert _accumulator(consortium, old) == (
            deductible_before - old_deductible,
            paid_before - (old.payable_cents or 0),
        )
        assert _state(consortium, old.id).state == "settled"

        # The correction is then priced on the withdrawn year, as usual.
        assert steps.adjudicate(consortium, [new.id]) == [new.id]
        priced = _state(consortium, new.id)
        assert _accumulator(consortium, old)[1] == (
            paid_before - (old.payable_cents or 0) + (priced.payable_cents or 0)
        )
        with Session(consortium.store.engine) as session:
            net = net_payment_cents(session, priced)
        assert net == (priced.payable_cents or 0) - (old.payable_cents or 0)

    def test_claim_in_review_is_denied_and_nothing_withdrawn(
        self, consortium: Consortium
    ) -> None:
        old = _one(consortium, "in_review")
        before = _accumulator(consortium, old)
        new = _clone(consortium, old, "fixed", "verified", {"amount": "1.00"})
        record = apply_correction_by_id(consortium.store, new.id, old.id)
        assert (record.benefit_withdrawn_cents, record.recover_cents) == (0, 0)
        after = _state(consortium, old.id)
        assert (after.state, after.reason) == ("denied", "replaced by correction fixed")
        assert _accumulator(consortium, old) == before

    def test_applying_twice_changes_nothing(self, consortium: Consortium) -> None:
        old = _one(consortium, "settled", paid=True)
        new = _clone(consortium, old, "fixed", "scored", {"amount": "1.00"})
        first = apply_correction_by_id(consortium.store, new.id, old.id)
        accumulators = _accumulator(consortium, old)
        again = apply_correction_by_id(consortium.store, new.id, old.id)
        assert again.model_dump() == first.model_dump()
        assert _accumulator(consortium, old) == accumulators

    def test_a_replaced_claim_cannot_be_replaced_again(
        self, consortium: Consortium
    ) -> None:
        old = _one(consortium, "settled", paid=True)
        new = _clone(consortium, old, "fixed", "scored", {"amount": "1.00"})
        apply_correction_by_id(consortium.store, new.id, old.id)
        other = _clone(consortium, old, "fixed-2", "scored", {"amount": "2.00"})
        accumulators = _accumulator(consortium, old)
        with pytest.raises(CorrectionRefused, match="already replaced by claim fixed"):
            apply_correction_by_id(consortium.store, other.id, old.id)
        assert _accumulator(consortium, old) == accumulators

    @pytest.mark.parametrize(
        ("old_state", "new_state", "message"),
        [
            ("rejected", "scored", "is rejected and cannot be replaced now"),
            ("settled", "settled", "is settled; a correction replaces the earlier"),
        ],
    )
    def test_refusals_change_nothing(
        self, consortium: Consortium, old_state: str, new_state: str, message: str
    ) -> None:
        old = _one(consortium, "settled")
        if old_state != "settled":
            old = _clone(consortium, old, "earlier", old_state)
        new = _clone(consortium, old, "fixed", new_state, {"amount": "1.00"})
        accumulators = _accumulator(consortium, old)
        with pytest.raises(CorrectionRefused, match=message):
            apply_correction_by_id(consortium.store, new.id, old.id)
        assert _state(consortium, old.id).state == old_state
        assert _accumulator(consortium, old) == accumulators
        with Session(consortium.store.engine) as session:
            assert session.exec(select(CorrectionRecord)).all() == []

    def test_another_member_cannot_correct(self, consortium: Consortium) -> None:
        old = _one(consortium, "settled")
        new = _clone(consortium, old, "fixed", "scored")
        with consortium.store.session() as session:
            claim = consortium.store.get_claim(session, new.id)
            claim.claimant_did = "did:key:someone-else"
            session.add(claim)
        with pytest.raises(CorrectionRefused, match="another member or insurer"):
            apply_correction_by_id(consortium.store, new.id, old.id)

    def test_in_the_callers_session(self, consortium: Consortium) -> None:
        """The flow's hook: the replacement commits with the caller's work."""
        old = _one(consortium, "in_review")
        new = _clone(consortium, old, "fixed", "scored", {"amount": "1.00"})
        with pytest.raises(RuntimeError, match="the step failed"):
            with consortium.store.session() as session:
                apply_correction(
                    consortium.store,
                    session,
                    consortium.store.get_claim(session, new.id),
                    consortium.store.get_claim(session, old.id),
                )
                raise RuntimeError("the step failed")
        assert _state(consortium, old.id).state == "in_review"


# uses that file's helpers `_one` and `_clone`.


class TestHeldInvoices:
    def test_a_held_invoice_gets_the_answer_of_a_query(
        self, consortium: Consortium
    ) -> None:
        old = _one(consortium, "settled")
        new = _clone(consortium, old, "again", "submitted")
        with Session(consortium.store.engine) as session:
            held = HeldInvoices.load(session, [old.invoice or ""])
            kind, earlier = classify(session, new, held=held) or ("", None)
        assert (kind, earlier and earlier.id) == ("resubmission", old.id)

    def test_an_invoice_nobody_holds_is_answered_without_a_query(
        self, consortium: Consortium
    ) -> None:
        old = _one(consortium, "settled")
        new = _clone(consortium, old, "again", "submitted")
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        with Session(consortium.store.engine) as session:
            held = HeldInvoices.load(session, ["an-invoice-nobody-sent"])
            event.listen(consortium.store.engine, "before_cursor_execute", count)
            try:
                assert classify(session, new, held=held) is None
            finally:
                event.remove(consortium.store.engine, "before_cursor_execute", count)
        assert statements == []

    def test_a_rejected_claim_holds_no_invoice(self, consortium: Consortium) -> None:
        old = _one(consortium, "settled")
        refused = _clone(consortium, old, "refused", "rejected")
        with consortium.store.session() as session:
            refused.invoice = "sent-once-and-refused"
            session.add(refused)
        with Session(consortium.store.engine) as session:
            held = HeldInvoices.load(
                session, ["sent-once-and-refused", old.invoice or ""]
            )
        assert (old.insurer_id, old.issuer_did, old.invoice) in held
        assert (old.insurer_id, old.issuer_did, "sent-once-and-refused") not in held

    def test_a_claim_added_after_the_load_is_found(
        self, consortium: Consortium
    ) -> None:
        old = _one(consortium, "settled")
        new = _clone(consortium, old, "fixed", "scored", {"amount": "1.00"})
        with Session(consortium.store.engine) as session:
            held = HeldInvoices.load(session, [])
            assert classify(session, new, held=held) is None
            held.add(old)
            kind, earlier = classify(session, new, held=held) or ("", None)
        assert (kind, earlier and earlier.id) == ("correction", old.id)
