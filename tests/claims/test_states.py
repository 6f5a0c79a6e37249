"""The claim state machine: one table of moves, and the store that obeys it."""

from __future__ import annotations

import pytest

from claims.errors import IllegalTransition
from claims.states import TERMINAL, TRANSITIONS, ClaimState, check_transition


def test_every_state_has_an_entry_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(ClaimState)


def test_final_states_are_settled_denied_and_rejected() -> None:
    assert TERMINAL == {ClaimState.SETTLED, ClaimState.DENIED, ClaimState.REJECTED}


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (ClaimState.SUBMITTED, ClaimState.SETTLED),
        (ClaimState.SETTLED, ClaimState.SETTLED),
        (ClaimState.REJECTED, ClaimState.VERIFIED),
        (ClaimState.IN_REVIEW, ClaimState.SETTLED),
    ],
)
def test_an_illegal_move_is_refused_with_both_states_named(
    current: ClaimState, new: ClaimState
) -> None:
    with pytest.raises(IllegalTransition, match=f"from {current} to {new}"):
        check_transition(current, new)


def test_the_happy_path_is_legal() -> None:
    path = [
        ClaimState.SUBMITTED,
        ClaimState.VERIFIED,
        ClaimState.SCORED,
        ClaimState.ADJUDICATED,
        ClaimState.APPROVED,
        ClaimState.SETTLED,
    ]
    for current, new in zip(path, path[1:], strict=False):
        check_transition(current, new)
