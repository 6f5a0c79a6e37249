"""A credential whose amounts no store could hold is refused on its own.

A hospital running other software could sign a treatment billed at 1e20;
stored as cents that overflows a 64-bit column, and before `claims.money`
bounded amounts it failed the verify step for the whole batch, which then
stayed `submitted` and failed again on every run.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from claims.store import Claim
from claims.treatment import Treatment
from flows.process import run_steps
from tests.flows.test_resubmission import _settled_claim, _submit


def test_a_claim_billed_beyond_any_store_is_rejected_and_its_batch_goes_on(
    tmp_path: Path,
) -> None:
    consortium, earlier = _settled_claim(tmp_path)
    treatment = Treatment.from_subject(earlier.treatment_data())
    huge = Decimal("1E+20")
    first = dataclasses.replace(treatment.lines[0], amount=huge)
    unpayable = dataclasses.replace(
        treatment,
        invoice="INV-HUGE",
        lines=(first, *treatment.lines[1:]),
        total=treatment.total - treatment.lines[0].amount + huge,
    )
    ordinary = dataclasses.replace(treatment, invoice="INV-ORDINARY")
    bad = _submit(consortium, earlier, unpayable)
    good = _submit(consortium, earlier, ordinary)
    run_steps(consortium)
    with Session(consortium.store.engine) as session:
        refused = session.get(Claim, bad)
        paid = session.get(Claim, good)
        assert refused is not None and paid is not None
        assert refused.state == "rejected"
        assert refused.reason == (
            "malformed: the treatment's amount is more than the largest amount "
            "accepted, 999999999999.99"
        )
        assert refused.billed_cents is None
        assert paid.state == "settled", paid.reason
