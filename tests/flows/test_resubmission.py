"""The same invoice sent again: the same answer, never paid twice; a correction
replaces the claim before it (claims.corrections, wired into the verify step)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.demo import DemoOptions, run_demo
from claims.hospital import issue_treatment_credential
from claims.settings import Settings
from claims.store import Claim, Member, Settlement
from claims.submission import issue_challenge, make_submission, receive
from claims.treatment import Treatment
from flows.process import run_steps


def _settled_claim(tmp_path: Path) -> tuple[Consortium, Claim]:
    run_demo(
        DemoOptions(
            out=tmp_path / "out", workspace=tmp_path / "ws", prefect=False, duplicates=0
        )
    )
    consortium = Consortium(Settings.load(tmp_path / "ws"))
    with Session(consortium.store.engine) as session:
        claims = session.exec(select(Claim).where(Claim.state == "settled")).all()
    claim = max(claims, key=lambda c: c.payable_cents or 0)
    assert (claim.payable_cents or 0) > 0
    return consortium, claim


def _resubmit(consortium: Consortium, claim: Claim, treatment: Treatment) -> str:
    new_id = _submit(consortium, claim, treatment)
    run_steps(consortium)
    return new_id


def test_the_same_invoice_again_gets_the_same_answer_and_is_not_paid(
    tmp_path: Path,
) -> None:
    consortium, earlier = _settled_claim(tmp_path)
    treatment = Treatment.from_subject(earlier.treatment_data())
    again = _resubmit(consortium, earlier, treatment)
    with Session(consortium.store.engine) as session:
        claim = session.get(Claim, again)
        assert claim is not None
        assert claim.state == "rejected"
        assert claim.reason is not None
        assert claim.reason.startswith(f"resubmission: the same claim as {earlier.id}")
        assert claim.payable_cents == earlier.payable_cents
        assert claim.claim_response == earlier.claim_response
        paid = session.exec(select(Settlement).where(Settlement.claim_id == again))
        assert paid.first() is None


def test_a_corrected_invoice_is_priced_again_and_paid_only_the_difference(
    tmp_path: Path,
) -> None:
    consortium, earlier = _settled_claim(tmp_path)
    treatment = Treatment.from_subject(earlier.treatment_data())
    first = treatment.lines[0]
    extra = Decimal("100.00")
    lines = (dataclasses.replace(first, amount=first.amount + extra),) + tuple(
        treatment.lines[1:]
    )
    corrected = dataclasses.replace(
        treatment, lines=lines, total=treatment.total + extra
    )
    new_id = _resubmit(consortium, earlier, corrected)
    with Session(consortium.store.engine) as session:
        new = session.get(Claim, new_id)
        old = session.get(Claim, earlier.id)
        assert new is not None and old is not None
        assert old.state == "settled"  # it was paid; its effect is withdrawn
        assert new.state == "settled", new.reason
        settlement = session.exec(
            select(Settlement).where(Settlement.claim_id == new_id)
        ).one()
        assert (new.payable_cents or 0) > (old.payable_cents or 0)
        assert settlement.amount_cents == (new.payable_cents or 0) - (
            old.payable_cents or 0
        )


def _submit(consortium: Consortium, claim: Claim, treatment: Treatment) -> str:
    """Submit `treatment` as `claim`'s claimant, to its insurer; nothing runs yet."""
    with Session(consortium.store.engine) as session:
        member = session.exec(
            select(Member).where(Member.did == claim.claimant_did)
        ).one()
        hospital = session.exec(
            select(Member).where(Member.did == claim.issuer_did)
        ).one()
    wallet = consortium.key(member.id)
    credential = issue_treatment_credential(
        consortium, hospital.id, treatment, wallet.did
    )
    challenge = issue_challenge(consortium, claim.insurer_id)
    submission = make_submission(
        credential, wallet, challenge=challenge["challenge"], domain=challenge["domain"]
    )
    return receive(consortium, claim.insurer_id, submission).id


def test_one_new_invoice_three_times_in_one_batch(tmp_path: Path) -> None:
    consortium, earlier = _settled_claim(tmp_path)
    treatment = dataclasses.replace(
        Treatment.from_subject(earlier.treatment_data()), invoice="INV-NEW-TWICE"
    )
    changed = dataclasses.replace(treatment, total=treatment.total + Decimal("1.00"))
    first = _submit(consortium, earlier, treatment)
    again = _submit(consortium, earlier, treatment)
    other = _submit(consortium, earlier, changed)
    run_steps(consortium)
    with Session(consortium.store.engine) as session:
        claims = {i: session.get(Claim, i) for i in (first, again, other)}
    assert claims[first] is not None and claims[first].state != "rejected"
    assert claims[again] is not None and claims[again].state == "rejected"
    assert claims[again].reason == (
        f"resubmission: the same claim as {first}, answered there (verified);"
        " not paid again"
    )
    assert claims[other] is not None and claims[other].state == "rejected"
    assert claims[other].reason == (
        f"correction refused: claim {first} is verified and cannot be replaced now"
    )
