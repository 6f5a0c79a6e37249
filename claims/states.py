"""The states of a claim and the one table of moves between them.

`ClaimState` names every state a claim can be in; `TRANSITIONS` is the only
place that says which moves are legal, and `check_transition` refuses the
rest. The store calls it on every state change (see `claims.store.Store.move`).
"""

from __future__ import annotations

from enum import StrEnum

from claims.errors import IllegalTransition

__all__ = ["ClaimState", "TERMINAL", "TRANSITIONS", "check_transition"]


class ClaimState(StrEnum):
    """Where a claim is on its way from submission to settlement."""

    SUBMITTED = "submitted"
    """Received by the insurer, structure checked, not yet verified."""
    VERIFIED = "verified"
    """Presentation and credential checked: signatures, issuer, status, holder."""
    SCORED = "scored"
    """The joint fraud check has run and its outcome is recorded."""
    ADJUDICATED = "adjudicated"
    """Priced against the policy; the outcome state follows at once."""
    APPROVED = "approved"
    """Every line payable as priced; waiting for settlement."""
    PARTIALLY_APPROVED = "partially_approved"
    """Some lines payable, others denied with reasons; waiting for settlement."""
    DENIED = "denied"
    """Nothing payable under the policy. Final."""
    IN_REVIEW = "in_review"
    """Flagged (duplicate elsewhere, or a large amount): a person decides."""
    SETTLED = "settled"
    """Payment recorded and appended to the ledger. Final."""
    REJECTED = "rejected"
    """The credential or presentation did not hold; the reason says why. Final."""
    PENDING = "pending"
    """Waiting on something external (a party, a status list); retried later."""


S = ClaimState

TRANSITIONS: dict[ClaimState, frozenset[ClaimState]] = {
    S.SUBMITTED: frozenset({S.VERIFIED, S.REJECTED, S.PENDING}),
    S.VERIFIED: frozenset({S.SCORED, S.PENDING}),
    S.SCORED: frozenset({S.ADJUDICATED, S.PENDING}),
    S.ADJUDICATED: frozenset({S.APPROVED, S.PARTIALLY_APPROVED, S.DENIED, S.IN_REVIEW}),
    S.IN_REVIEW: frozenset({S.APPROVED, S.PARTIALLY_APPROVED, S.DENIED}),
    S.APPROVED: frozenset({S.SETTLED}),
    S.PARTIALLY_APPROVED: frozenset({S.SETTLED}),
    S.PENDING: frozenset({S.SUBMITTED}),
    S.DENIED: frozenset(),
    S.SETTLED: frozenset(),
    S.REJECTED: frozenset(),
}

TERMINAL = frozenset(state for state, nxt in TRANSITIONS.items() if not nxt)


def check_transition(current: ClaimState, new: ClaimState) -> None:
    """Raise `IllegalTransition` unless `current -> new` is in `TRANSITIONS`."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"a claim cannot move from {current} to {new}")
