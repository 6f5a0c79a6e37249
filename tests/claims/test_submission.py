"""The insurer's challenges: single use, short-lived, its own (claims.submission)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from claims.consortium import Consortium
from claims.demo import example_policy
from claims.hospital import find_treatment, issue_treatment_credential
from claims.settings import Settings
from claims.submission import (
    CHALLENGE_TTL,
    SubmissionRefused,
    issue_challenge,
    make_submission,
    receive,
)

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "claims" / "examples" / "bundles" / "maren_oakridge.json"
CLAIM_ID = "d4507001-82a1-59e7-8737-8d9b7d06817c"


class Clock:
    """A settable clock for the consortium."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    clock = Clock()
    consortium = Consortium(Settings.load(tmp_path / "ws"), clock=clock)
    consortium.add_insurer("insurer-1", "Insurer 1", example_policy(1))
    consortium.add_insurer("insurer-2", "Insurer 2", example_policy(2))
    treatment = find_treatment(BUNDLE, claim=CLAIM_ID)
    consortium.add_hospital(treatment.provider, "Oakridge")
    _, wallet = consortium.add_member("patient-1", "claimant", "patient 1")
    credential = issue_treatment_credential(
        consortium, treatment.provider, treatment, wallet.did
    )
    return {
        "consortium": consortium,
        "clock": clock,
        "wallet": wallet,
        "credential": credential,
    }


def _submission(setup: dict[str, Any], insurer: str = "insurer-1") -> dict[str, Any]:
    challenge = issue_challenge(setup["consortium"], insurer)
    return make_submission(
        setup["credential"],
        setup["wallet"],
        challenge=challenge["challenge"],
        domain=challenge["domain"],
        created=setup["clock"](),
    )


def test_a_fresh_challenge_is_accepted_once(setup: dict[str, Any]) -> None:
    submission = _submission(setup)
    claim = receive(setup["consortium"], "insurer-1", submission)
    assert claim.state == "submitted"
    assert claim.claimant_did == setup["wallet"].did


def test_a_replayed_submission_is_refused(setup: dict[str, Any]) -> None:
    submission = _submission(setup)
    receive(setup["consortium"], "insurer-1", submission)
    with pytest.raises(SubmissionRefused, match="already used: .* cannot be replayed"):
        receive(setup["consortium"], "insurer-1", submission)


def test_a_replayed_challenge_with_a_new_presentation_is_refused(
    setup: dict[str, Any],
) -> None:
    first = _submission(setup)
    receive(setup["consortium"], "insurer-1", first)
    again = make_submission(
        setup["credential"],
        setup["wallet"],
        challenge=first["challenge"],
        domain="insurer-1.insurers.example",
        created=setup["clock"]() + timedelta(seconds=1),
    )
    with pytest.raises(SubmissionRefused, match="challenge was already used"):
        receive(setup["consortium"], "insurer-1", again)


def test_an_expired_challenge_is_refused(setup: dict[str, Any]) -> None:
    submission = _submission(setup)
    setup["clock"].now += CHALLENGE_TTL + timedelta(seconds=1)
    with pytest.raises(SubmissionRefused, match="challenge has expired") as caught:
        receive(setup["consortium"], "insurer-1", submission)
    assert caught.value.remedy == "ask the insurer for a new one"


def test_another_insurers_challenge_is_refused(setup: dict[str, Any]) -> None:
    submission = _submission(setup, insurer="insurer-2")
    with pytest.raises(SubmissionRefused, match="not issued by insurer-1"):
        receive(setup["consortium"], "insurer-1", submission)


def test_a_submission_of_the_wrong_shape_is_refused(setup: dict[str, Any]) -> None:
    submission = _submission(setup)
    del submission["consent"]
    with pytest.raises(SubmissionRefused, match="consent.jointFraudCheck is missing"):
        receive(setup["consortium"], "insurer-1", submission)
