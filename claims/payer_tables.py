"""Store tables of the payer core: review decisions and corrections.

Kept apart from `claims.store` so that the payer core can grow its own tables;
`claims.store` imports this module at its end so that `create_all` sees them.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from claims.store import _time

__all__ = ["CorrectionRecord", "ReviewDecision"]


class ReviewDecision(SQLModel, table=True):
    """A person's decision on a claim held for review: who, when, what, why."""

    __tablename__ = "review_decision"

    id: str = Field(primary_key=True)
    """The review id, also in the ledger's `review.decision` record."""
    claim_id: str = Field(foreign_key="claim.id", index=True)
    reviewer: str
    decision: str
    """The state the claim moved to: approved, partially_approved or denied."""
    note: str | None = None
    """The reviewer's note on an approval, or the reason for a denial."""
    reason_code: str
    """The code written to the ledger (never the note's text)."""
    payable_cents_before: int | None = None
    """What adjudication priced before the review."""
    payable_cents_after: int | None = None
    """What the decision pays (re-priced on approval; 0 on denial)."""
    decided_at: datetime = _time(index=True)
    ledger_index: int | None = None
    """Where the decision sits in the ledger; None until it is appended."""


class CorrectionRecord(SQLModel, table=True):
    """A corrected claim replacing an earlier one of the same invoice."""

    __tablename__ = "claim_correction"

    new_claim_id: str = Field(foreign_key="claim.id", primary_key=True)
    old_claim_id: str = Field(foreign_key="claim.id", unique=True)
    """A claim is replaced at most once (the unique key says so)."""
    old_state: str
    """The earlier claim's state when it was replaced."""
    deductible_withdrawn_cents: int = 0
    benefit_withdrawn_cents: int = 0
    recover_cents: int = 0
    """Already paid on the earlier claim: to net off the correction's payment."""
    at: datetime = _time()
