"""Review: list, show, approve (re-price, settle), deny; refusals change nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fhir.resources.R4B.claimresponse import ClaimResponse
from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.errors import NotFound
from claims.payer_tables import ReviewDecision
from claims.review import (
    RISK_THRESHOLD,
    InvalidReviewer,
    NotInReview,
    approve,
    deny,
    describe_risk,
    list_reviews,
    publish_pending,
    risk_mark,
    show,
)
from claims.store import Accumulator, Claim, ClaimEvent, Settlement


def _snapshot(consortium: Consortium) -> tuple[object, ...]:
    """Everything a review action may write: claims, events, accumulators, ledger."""
    with Session(consortium.store.engine) as session:
        claims = sorted(
            (c.id, c.state, c.reason, c.payable_cents, c.claim_response)
            for c in session.exec(select(Claim))
        )
        events = len(session.exec(select(ClaimEvent)).all())
        accumulators = sorted(
            (
                a.insurer_id,
                a.member,
                a.year,
                a.deductible_met_cents,
                a.benefit_paid_cents,
            )
            for a in session.exec(select(Accumulator))
        )
        decisions = len(session.exec(select(ReviewDecision)).all())
    return claims, events, accumulators, decisions, consortium.ledger.size()


def _claim(consortium: Consortium, claim_id: str) -> Claim:
    with Session(consortium.store.engine) as session:
        return consortium.store.get_claim(session, claim_id)


def _accumulator(consortium: Consortium, claim: Claim) -> Accumulator | None:
    year = int(json.loads(claim.treatment or "{}")["start"][:4])
    with Session(consortium.store.engine) as session:
        return session.get(Accumulator, (claim.insurer_id, claim.claimant_did, year))


def _payable_review(consortium: Consortium) -> str:
    """A claim in review whose re-pricing pays something."""
    for item in list_reviews(consortium):
        claim = _claim(consortium, item.claim_id)
        if (claim.billed_cents or 0) > 50_000:
            return item.claim_id
    pytest.fail("the demo left no large claim in review")


class TestList:
    def test_lists_every_claim_in_review_with_its_reason(
        self, consortium: Consortium
    ) -> None:
        items = list_reviews(consortium)
        with Session(consortium.store.engine) as session:
            held = {c.id for c in session.exec(select(Claim)) if c.state == "in_review"}
        assert {item.claim_id for item in items} == held
        assert held
        assert all(item.reason and item.age_seconds >= 0 for item in items)

    def test_filters_by_insurer(self, consortium: Consortium) -> None:
        everything = list_reviews(consortium)
        insurer = everything[0].insurer_id
        mine = list_reviews(consortium, insurer)
        assert mine and all(item.insurer_id == insurer for item in mine)
        assert len(mine) == sum(1 for i in everything if i.insurer_id == insurer)

    def test_show_has_lines_and_timeline(self, consortium: Consortium) -> None:
        claim_id = list_reviews(consortium)[0].claim_id
        data = show(consortium, claim_id)
        assert data["claim"]["state"] == "in_review"
        assert [e["state"] for e in data["timeline"]][-1] == "in_review"
        assert data["lines"] and all(line["code"] for line in data["lines"])
        for line in data["lines"]:  # as text with two decimals, like `billed`
            assert re.fullmatch(r"\d+\.\d\d", line["submitted"]), line
        assert data["decisions"] == []

    def test_each_item_carries_its_joint_risk_score(
        self, consortium: Consortium
    ) -> None:
        items = list_reviews(consortium)
        for item in items:
            claim = _claim(consortium, item.claim_id)
            assert item.risk_score == claim.risk_score
            assert item.risk_flagged is bool(claim.risk_flagged)
            assert item.risk_threshold == RISK_THRESHOLD == 0.5
        flagged = [item for item in items if item.risk_flagged]
        assert flagged, "the demo left no risk-flagged claim in review"
        data = flagged[0].to_json()
        assert isinstance(data["risk_score"], float)
        assert data["risk_score"] >= data["risk_threshold"] == 0.5
        assert data["risk_flagged"] is True
        unscored = next(item for item in items if item.risk_score is None)
        assert unscored.to_json()["risk_flagged"] is False

    def test_show_has_the_risk_score_and_threshold(
        self, consortium: Consortium
    ) -> None:
        flagged = next(item for item in list_reviews(consortium) if item.risk_flagged)
        claim = show(consortium, flagged.claim_id)["claim"]
        assert claim["risk_score"] == flagged.risk_score
        assert (claim["risk_flagged"], claim["risk_threshold"]) == (True, 0.5)
        json.dumps(claim)  # numbers and booleans, ready for --json

    def test_show_by_an_id_prefix_has_the_whole_timeline(
        self, consortium: Consortium
    ) -> None:
        claim_id = list_reviews(consortium)[0].claim_id
        assert show(consortium, claim_id[:8]) == show(consortium, claim_id)
        assert show(consortium, claim_id[:8])["timeline"]


class TestApprove:
    def test_approve_counts_settles_and_logs(self, consortium: Consortium) -> None:
        claim_id = _payable_review(consortium)
        before = _claim(consortium, claim_id)
        acc_before = _accumulator(consortium, before)
        size = consortium.ledger.size()

        decision = approve(consortium, claim_id, "j.doe", "checked with hospital")

        after = _claim(consortium, claim_id)
        assert after.state == "settled"
        assert decision.reviewer == "j.doe"
        assert decision.note == "checked with hospital"
        assert decision.decision in ("approved", "partially_approved")
        assert decision.payable_cents_after == after.payable_cents
        assert decision.decided_at is not None
        # The accumulators now count the claim's benefit.
        acc_after = _accumulator(consortium, after)
        assert acc_after is not None
        paid_before = acc_before.benefit_paid_cents if acc_before else 0
        assert acc_after.benefit_paid_cents == paid_before + (after.payable_cents or 0)
        # One settlement row, paying what was re-priced.
        with Session(consortium.store.engine) as session:
            rows = session.exec(
                select(Settlement).where(Settlement.claim_id == claim_id)
            ).all()
        assert [row.amount_cents for row in rows] == [after.payable_cents]
        # The decision is in the ledger with codes only.
        assert decision.ledger_index is not None and decision.ledger_index >= size
        record = consortium.ledger.entry(decision.ledger_index)
        assert record["type"] == "review.decision"
        assert record["claim_id"] == claim_id
        assert record["review_id"] == decision.id
        assert "checked with hospital" not in json.dumps(record)
        # The response no longer holds the payment for review, and parses.
        response = json.loads(after.claim_response or "{}")
        assert "processNote" not in response
        ClaimResponse.model_validate(response)

    def test_approve_reprices_against_current_accumulators(
        self, consortium: Consortium
    ) -> None:
        """The rule: price again on today's accumulators (review module docstring).

        Exhaust the member's annual limit first: the approval then pays
        nothing and the claim ends denied, with the re-pricing recorded.
        """
        claim_id = _payable_review(consortium)
        claim = _claim(consortium, claim_id)
        year = int(json.loads(claim.treatment or "{}")["start"][:4])
        with consortium.store.session() as session:
            row = session.get(
                Accumulator, (claim.insurer_id, claim.claimant_did, year)
            ) or Accumulator(
                insurer_id=claim.insurer_id, member=claim.claimant_did, year=year
            )
            row.deductible_met_cents = 10**9
            row.benefit_paid_cents = 10**9
            session.add(row)

        decision = approve(consortium, claim_id, "j.doe")

        assert decision.decision == "denied"
        assert decision.reason_code == "review-approved-nothing-payable"
        assert decision.payable_cents_before == claim.payable_cents
        assert decision.payable_cents_after == 0
        assert _claim(consortium, claim_id).state == "denied"
        assert decision.ledger_index is not None

    def test_approve_by_an_id_prefix_settles_the_claim(
        self, consortium: Consortium
    ) -> None:
        claim_id = _payable_review(consortium)
        decision = approve(consortium, claim_id[:8], "j.doe")
        assert decision.claim_id == claim_id
        assert _claim(consortium, claim_id).state == "settled"
        with Session(consortium.store.engine) as session:
            rows = session.exec(
                select(Settlement).where(Settlement.claim_id == claim_id)
            ).all()
        assert len(rows) == 1

    def test_second_approval_is_refused(self, consortium: Consortium) -> None:
        claim_id = _payable_review(consortium)
        approve(consortium, claim_id, "j.doe")
        snapshot = _snapshot(consortium)
        with pytest.raises(NotInReview, match=f"claim {claim_id} is settled, not in"):
            approve(consortium, claim_id, "j.doe")
        assert _snapshot(consortium) == snapshot


class TestDeny:
    def test_deny_stores_the_reason_and_pays_nothing(
        self, consortium: Consortium
    ) -> None:
        claim_id = _payable_review(consortium)
        claim = _claim(consortium, claim_id)
        acc_before = _accumulator(consortium, claim)

        decision = deny(consortium, claim_id, "a.smith", "billed elsewhere")

        after = _claim(consortium, claim_id)
        assert after.state == "denied"
        assert after.reason == "denied on review: billed elsewhere"
        assert after.payable_cents == 0
        assert (decision.reviewer, decision.note) == ("a.smith", "billed elsewhere")
        assert decision.reason_code == "review-denied"
        acc_after = _accumulator(consortium, after)
        assert (acc_after and acc_after.benefit_paid_cents) == (
            acc_before and acc_before.benefit_paid_cents
        )
        record = consortium.ledger.entry(decision.ledger_index or 0)
        assert (record["decision"], record["reason_code"]) == (
            "denied",
            "review-denied",
        )
        assert "billed elsewhere" not in json.dumps(record)
        response = json.loads(after.claim_response or "{}")
        ClaimResponse.model_validate(response)
        assert "payment" not in response
        benefit = [
            t["amount"]["value"]
            for t in response["total"]
            if t["category"]["coding"][0]["code"] == "benefit"
        ]
        assert benefit == [0.0]
        shown = show(consortium, claim_id)["decisions"]
        assert [(d["reviewer"], d["note"]) for d in shown] == [
            ("a.smith", "billed elsewhere")
        ]


class TestRefusals:
    """A review action that cannot be taken raises and changes nothing."""

    def test_unknown_claim(self, consortium: Consortium) -> None:
        snapshot = _snapshot(consortium)
        with pytest.raises(NotFound, match="no claim has the id 'nope'"):
            approve(consortium, "nope", "j.doe")
        with pytest.raises(NotFound, match="no claim has the id 'nope'"):
            deny(consortium, "nope", "j.doe", "x")
        with pytest.raises(NotFound, match="no claim has the id 'nope'"):
            show(consortium, "nope")
        assert _snapshot(consortium) == snapshot

    def test_claim_not_in_review(self, consortium: Consortium) -> None:
        with Session(consortium.store.engine) as session:
            settled = session.exec(
                select(Claim.id).where(Claim.state == "settled")
            ).first()
        assert settled is not None
        snapshot = _snapshot(consortium)
        with pytest.raises(NotInReview, match="is settled, not in review"):
            approve(consortium, settled, "j.doe")
        with pytest.raises(NotInReview, match="is settled, not in review"):
            deny(consortium, settled, "j.doe", "too late")
        assert _snapshot(consortium) == snapshot

    @pytest.mark.parametrize("reviewer", ["", "a b", "x" * 65, "a@b.example"])
    def test_unusable_reviewer(self, consortium: Consortium, reviewer: str) -> None:
        claim_id = list_reviews(consortium)[0].claim_id
        snapshot = _snapshot(consortium)
        with pytest.raises(InvalidReviewer, match="the reviewer must be 1-64"):
            approve(consortium, claim_id, reviewer)
        assert _snapshot(consortium) == snapshot

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_deny_needs_a_reason(self, consortium: Consortium, reason: str) -> None:
        claim_id = list_reviews(consortium)[0].claim_id
        snapshot = _snapshot(consortium)
        with pytest.raises(InvalidReviewer, match="a reason is required"):
            deny(consortium, claim_id, "j.doe", reason)
        assert _snapshot(consortium) == snapshot


def test_a_decision_missed_by_the_ledger_is_appended_later(
    consortium: Consortium,
) -> None:
    """A crash between the store and the ledger is repaired by the next action."""
    claim_id = list_reviews(consortium)[0].claim_id
    decision = deny(consortium, claim_id, "j.doe", "duplicate")
    with consortium.store.session() as session:
        row = session.get(ReviewDecision, decision.id)
        assert row is not None
        row.ledger_index = None
        session.add(row)
    size = consortium.ledger.size()
    assert publish_pending(consortium) == 1
    # The idempotency key finds the entry already there: nothing appended.
    assert consortium.ledger.size() == size
    with Session(consortium.store.engine) as session:
        row = session.get(ReviewDecision, decision.id)
    assert row is not None and row.ledger_index == decision.ledger_index


class TestMalformedClaimsChangeNothing:
    """A malformed claim never changes a stored claim or an accumulator."""

    def test_dry_run_of_a_malformed_claim(
        self, consortium: Consortium, tmp_path: Path
    ) -> None:
        from typer.testing import CliRunner

        from claims.cli.main import app

        claim = {"resourceType": "Claim", "id": "bad", "status": "paid"}
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(claim), encoding="utf-8")
        snapshot = _snapshot(consortium)
        workspace = str(consortium.settings.workspace)
        result = CliRunner().invoke(app, ["-w", workspace, "adjudicate", str(path)])
        assert result.exit_code == 1
        assert _snapshot(consortium) == snapshot

    def test_malformed_submission_through_the_flow(
        self, consortium: Consortium
    ) -> None:
        from flows.process import run_steps

        snapshot = _snapshot(consortium)
        now = consortium.clock()
        with consortium.store.session() as session:
            session.add(
                Claim(
                    id="malformed",
                    insurer_id="insurer-1",
                    state="submitted",
                    claimant_did="did:key:z6Mk-nobody",
                    challenge="none",
                    submission=json.dumps(
                        {
                            "presentation": {"verifiableCredential": []},
                            "consent": {"jointFraudCheck": True},
                        }
                    ),
                    submission_hash="0" * 64,
                    submitted_at=now,
                    updated_at=now,
                )
            )
        run_steps(consortium)

        bad = _claim(consortium, "malformed")
        assert (bad.state, bad.payable_cents) == ("rejected", None)
        assert (bad.reason or "").startswith("malformed: ")
        claims, _, accumulators, decisions, _ = _snapshot(consortium)
        assert [c for c in claims if c[0] != "malformed"] == snapshot[0]
        assert accumulators == snapshot[2]
        assert decisions == snapshot[3]


@pytest.mark.parametrize(
    ("score", "flagged", "mark"),
    [
        (0.5146192069642812, True, "0.51!"),
        (0.5, True, "0.50!"),
        # Cut, not rounded: just below the threshold never reads as 0.50.
        (0.4999, False, "0.49"),
        (0.57, False, "0.57"),
        (5.63e-05, False, "0.00"),
        (None, False, "-"),
    ],
)
def test_risk_mark(score: float | None, flagged: bool, mark: str) -> None:
    assert risk_mark(score, flagged) == mark


@pytest.mark.parametrize(
    ("score", "flagged", "state", "reached", "duplicate", "words"),
    [
        (0.6, True, "in_review", {"scored"}, False, "0.6000, flagged: at or above"),
        (0.1, False, "settled", {"scored"}, False, "0.1000, below the threshold 0.5"),
        (None, False, "rejected", {"submitted"}, None, "the claim was rejected"),
        (None, False, "verified", {"verified"}, None, "not been through the joint"),
        (None, False, "settled", {"scored"}, None, "no consent to the joint fraud"),
        (None, False, "settled", {"scored"}, False, "fewer than 3 insurers hold"),
    ],
)
def test_describe_risk(
    score: float | None,
    flagged: bool,
    state: str,
    reached: set[str],
    duplicate: bool | None,
    words: str,
) -> None:
    text = describe_risk(
        score, flagged, state=state, reached=reached, duplicate=duplicate
    )
    assert words in text
