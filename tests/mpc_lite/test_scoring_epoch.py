"""Tests for `mpc_lite.fraud.ScoringEpoch`: risk scores batch after batch."""

from __future__ import annotations

import pytest

from mpc_lite.errors import InvalidInput, PartyUnavailable
from mpc_lite.fraud import ClaimInput, Member, ScoringEpoch, joint_fraud_check
from mpc_lite.transport import InProcessTransport, SealedMessage
from tests.mpc_lite.conftest import claim, consortium


class Recording(InProcessTransport):
    """Counts the tags each party sends in the tags lap; can drop one message."""

    def __init__(self, drop: tuple[str, int] | None = None) -> None:
        super().__init__()
        self.drop = drop
        self.lapped: dict[str, int] = {}

    def send(self, message: SealedMessage) -> None:
        envelope = message.unverified_envelope()
        if (envelope.sender, envelope.round) == self.drop:
            self.drop = None
            return
        if envelope.round == 1:
            self.lapped[envelope.sender] = sum(map(len, envelope.streams.values()))
        super().send(message)


def _epoch(members: list[Member], transport: InProcessTransport) -> ScoringEpoch:
    return ScoringEpoch({m.name: m.signing_key for m in members}, transport=transport)


def _split(members: list[Member]) -> tuple[dict, dict]:
    """Each member's holdings in two halves, in claim order."""
    first = {m.name: m.holdings[: len(m.holdings) // 2] for m in members}
    second = {m.name: m.holdings[len(m.holdings) // 2 :] for m in members}
    return first, second


def test_batch_after_batch_gives_the_scores_of_one_full_check() -> None:
    members = consortium()
    epoch = _epoch(members, InProcessTransport())
    first, second = _split(members)
    for name, claims in first.items():
        epoch.add(name, claims)
    ask = {"a": [c for c in members[0].holdings if c.claim_id in ("a2", "a3")]}
    early = epoch.score(ask, job_id="e1").verdicts
    # b's and c's later claims are not held yet: a2's claimant (ann) is held
    # by a and b only, below min_parties=3.
    assert early["a2"].score is None
    for name, claims in second.items():
        epoch.add(name, claims)
    ask = {
        "a": [c for c in members[0].holdings if c.claim_id in ("a2", "a3", "a4")],
        "b": [members[1].holdings[0]],
    }
    later = epoch.score(ask, job_id="e2")
    full = joint_fraud_check(members, ask, job_id="full", duplicates=False)
    assert later.verdicts.keys() == full.verdicts.keys()
    for claim_id, verdict in full.verdicts.items():
        assert later.verdicts[claim_id].score == pytest.approx(verdict.score)
        assert later.verdicts[claim_id].contributors == verdict.contributors
        assert later.verdicts[claim_id].duplicate is None
    assert later.verdicts["a2"].contributors == 3
    (record,) = later.records
    assert record["type"] == "mpc_lite.risk_score" and record["job_id"] == "e2"


def test_each_claimant_goes_through_the_tags_lap_once_per_epoch() -> None:
    members = consortium()
    transport = Recording()
    epoch = _epoch(members, transport)
    for member in members:
        epoch.add(member.name, member.holdings)
    epoch.score({"a": [members[0].holdings[1]]}, job_id="e1")
    # a holds ann, bob, cat; b holds ann, bob; c holds ann.
    assert transport.lapped == {"a": 3, "b": 2, "c": 1}
    transport.lapped.clear()
    again = epoch.score({"a": [members[0].holdings[1]]}, job_id="e2")
    assert transport.lapped == {"a": 0, "b": 0, "c": 0}
    assert again.verdicts["a2"].contributors == 3
    newcomer = claim("c2", "MRN-dan", "INV-9", "2024-06-01", 80)
    epoch.add("c", [newcomer])
    epoch.score({"c": [newcomer]}, job_id="e3")
    assert transport.lapped == {"a": 0, "b": 0, "c": 1}


def test_a_flag_counts_for_the_claimants_later_claims() -> None:
    members = consortium()
    epoch = _epoch(members, InProcessTransport())
    for member in members:
        epoch.add(member.name, member.holdings)
    ask = {"a": [members[0].holdings[1]]}
    before = epoch.score(ask, job_id="e1").verdicts["a2"].score
    epoch.flag("b", ["b3"])  # ann's 2022 claim at b, before a2's service date
    after = epoch.score(ask, job_id="e2").verdicts["a2"].score
    assert before is not None and after is not None and after > before
    epoch.flag("b", ["no-such-claim"])  # unknown ids change nothing
    assert epoch.score(ask, job_id="e3").verdicts["a2"].score == pytest.approx(after)


def test_a_dropped_party_fails_the_job_and_the_next_call_completes() -> None:
    members = consortium()
    transport = Recording(drop=("c", 2))
    epoch = _epoch(members, transport)
    for member in members:
        epoch.add(member.name, member.holdings)
    ask = {"a": [members[0].holdings[1]]}
    with pytest.raises(PartyUnavailable) as failed:
        epoch.score(ask, job_id="e1")
    assert failed.value.party == "c"
    retried = epoch.score(ask, job_id="e1.2").verdicts["a2"]
    assert retried.contributors == 3 and retried.score is not None


def test_bad_members_and_batches_are_refused() -> None:
    members = consortium()
    with pytest.raises(InvalidInput, match="at least two"):
        ScoringEpoch({"a": members[0].signing_key})
    epoch = _epoch(members, InProcessTransport())
    with pytest.raises(InvalidInput, match="outside the epoch"):
        epoch.add("zed", [])
    stray: list[ClaimInput] = [members[0].holdings[0]]
    with pytest.raises(InvalidInput, match="not in members"):
        epoch.score({"zed": stray}, job_id="x")
