"""Tests for `mpc_lite.fraud`: the joint check of one batch, and its faults."""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import date

import pytest
from nacl.signing import SigningKey

from mpc_lite.errors import MpcError, PartyUnavailable, ProtocolError
from mpc_lite.fraud import ClaimInput, Member, joint_fraud_check
from mpc_lite.score import DEFAULT_MODEL, RiskModel
from mpc_lite.transport import InProcessTransport, SealedMessage
from tests.mpc_lite.conftest import claim, consortium


def _batch(members: list[Member], ids: dict[str, list[str]]) -> dict:
    by_id = {c.claim_id: c for m in members for c in m.holdings}
    return {name: [by_id[i] for i in claim_ids] for name, claim_ids in ids.items()}


ASK = {"a": ["a2", "a3", "a4"], "b": ["b1"]}


def _logit(claims: int, amount: float, hospitals: int, flags: int) -> float:
    w = DEFAULT_MODEL.weights
    z = (
        DEFAULT_MODEL.bias
        + w["claims_12m"] * claims
        + w["amount_claimed"] * amount
        + w["distinct_hospitals"] * hospitals
        + w["earlier_flags"] * flags
    )
    return 1 / (1 + math.exp(-z))


def test_duplicates_scores_and_records_match_the_plain_computation() -> None:
    members = consortium()
    result = joint_fraud_check(members, _batch(members, ASK), job_id="j1")
    verdicts = result.verdicts
    assert sorted(verdicts) == ["a2", "a3", "a4", "b1"]
    assert verdicts["a2"].duplicate and verdicts["b1"].duplicate
    assert not verdicts["a3"].duplicate and not verdicts["a4"].duplicate
    # ann on 2024-05-01, window 2023-05-03..2024-05-01: a1, a2 at a (1000 +
    # 2000, two hospitals), b1 at b (2000, zH2), c1 at c (400, zH3); a0 is an
    # old flag, b3 (2022) is outside the window.
    ann = verdicts["a2"]
    assert ann.contributors == 3
    assert ann.score == pytest.approx(_logit(4, 5400, 2 + 1 + 1, 1))
    assert verdicts["b1"].score == pytest.approx(ann.score)
    # bob is held by two insurers, cat by one: below min_parties=3.
    assert verdicts["a3"].score is None and not verdicts["a3"].flagged
    assert verdicts["a4"].score is None
    dup, score = result.records
    assert dup["type"] == "mpc_lite.duplicate_check" and dup["job_id"] == "j1/dup"
    assert score["type"] == "mpc_lite.risk_score" and score["job_id"] == "j1/score"
    assert dup["parties"] == ["a", "b", "c"] == sorted(score["commitments"])


def test_min_parties_two_scores_a_claimant_held_by_two() -> None:
    members = consortium()
    verdicts = joint_fraud_check(
        members, _batch(members, ASK), job_id="j2", min_parties=2
    ).verdicts
    # bob on 2024-05-02: a3 (300) and b2 (700), one hospital at each.
    assert verdicts["a3"].score == pytest.approx(_logit(2, 1000, 2, 0))
    assert verdicts["a4"].score is None


def test_as_of_fixes_one_window_for_every_claim() -> None:
    members = consortium()
    verdicts = joint_fraud_check(
        members, _batch(members, ASK), job_id="j3", as_of=date(2024, 3, 1)
    ).verdicts
    # Only a1 (2024-03-01) and c1 (2024-01-15) are in the window ending then.
    assert verdicts["a2"].score == pytest.approx(_logit(2, 1400, 2, 1))


def test_a_batch_claim_not_yet_held_is_added_to_its_insurer() -> None:
    members = consortium()
    new = claim("c9", "MRN-bob", "INV-3", "2024-05-02", 300)
    verdicts = joint_fraud_check(members, {"c": [new]}, job_id="j4").verdicts
    assert verdicts["c9"].duplicate  # same treatment as a3
    assert verdicts["c9"].contributors == 3


def test_ordinary_patients_are_not_flagged_by_the_default_model() -> None:
    # The busiest 12 months of the shared Synthea sample: 8 claims, $64k at
    # most, 2 hospitals, no flags; doubled as if held at two insurers.
    assert _logit(8, 64_018, 2, 0) < 0.01
    assert _logit(16, 128_036, 4, 0) < 0.05
    members = [Member(name, SigningKey.generate(), []) for name in ("a", "b", "c")]
    for member in members:
        member.holdings = [
            claim(f"{member.name}{i}", "MRN-x", f"{member.name}-{i}", f"2024-0{i}-01")
            for i in range(1, 4)
        ]
    verdict = joint_fraud_check(
        members, {"a": [members[0].holdings[-1]]}, job_id="j5"
    ).verdicts["a3"]
    assert verdict.score is not None and not verdict.flagged
    heavy = RiskModel(bias=-1.0)
    flagged = joint_fraud_check(
        members, {"a": [members[0].holdings[-1]]}, job_id="j6", model=heavy
    ).verdicts["a3"]
    assert flagged.flagged


def _reseal(
    message: SealedMessage, key: SigningKey, **changes: object
) -> SealedMessage:
    envelope = replace(message.unverified_envelope(), **changes)  # type: ignore[arg-type]
    return envelope.seal(key)


class Editing(InProcessTransport):
    """Rewrites messages of the score job that `pick` selects."""

    def __init__(self, edit: Callable[[SealedMessage], SealedMessage | None]) -> None:
        super().__init__()
        self.edit = edit
        self.sent: list[SealedMessage] = []

    def send(self, message: SealedMessage) -> None:
        self.sent.append(message)
        envelope = message.unverified_envelope()
        if envelope.job_id.endswith("/score"):
            edited = self.edit(message)
            if edited is None:
                return
            message = edited
        super().send(message)


def _at(
    sender: str, round_: int, edit: Callable[[SealedMessage], SealedMessage | None]
):
    def pick(message: SealedMessage) -> SealedMessage | None:
        envelope = message.unverified_envelope()
        if (envelope.sender, envelope.round) == (sender, round_):
            return edit(message)
        return message

    return pick


def _check(transport: InProcessTransport) -> None:
    members = consortium()
    joint_fraud_check(members, _batch(members, ASK), job_id="f", transport=transport)


KEYS = {m.name: m.signing_key for m in consortium()}


@pytest.mark.parametrize("round_", [3, 4, 5, 6])
def test_an_aggregation_message_with_a_wrong_length_is_refused(round_: int) -> None:
    def cut(message: SealedMessage) -> SealedMessage:
        streams = message.unverified_envelope().streams
        name = sorted(streams)[0]
        return _reseal(message, KEYS["b"], streams={**streams, name: streams[name][1:]})

    with pytest.raises(ProtocolError, match=f"'b' in round {round_} refused") as info:
        _check(Editing(_at("b", round_, cut)))
    assert (info.value.party, info.value.round) == ("b", round_)


def test_an_invalid_tag_in_the_aggregation_is_refused() -> None:
    def poison(message: SealedMessage) -> SealedMessage:
        streams = message.unverified_envelope().streams
        name = sorted(streams)[0]
        return _reseal(message, KEYS["b"], streams={name: [b"\xff" * 32]})

    with pytest.raises(ProtocolError, match="'b' in round 2 .*element 0 .*invalid"):
        _check(Editing(_at("b", 2, poison)))


def test_a_replayed_aggregation_message_is_refused() -> None:
    transport = Editing(lambda message: message)

    def replay(message: SealedMessage) -> SealedMessage:
        return next(
            old
            for old in transport.sent
            if old.unverified_envelope().job_id.endswith("/score")
            and old.unverified_envelope().sender == "a"
        )

    transport.edit = _at("a", 2, replay)
    with pytest.raises(ProtocolError, match="'a' in round 1 .*replayed"):
        _check(transport)


def test_a_reordered_aggregation_message_is_refused() -> None:
    edit = _at("c", 5, lambda m: _reseal(m, KEYS["c"], round=6))
    with pytest.raises(ProtocolError, match=r"'c' in round 6 .*out of order"):
        _check(Editing(edit))


def test_an_aggregation_message_signed_by_a_non_member_is_refused() -> None:
    edit = _at("b", 4, lambda m: _reseal(m, SigningKey.generate()))
    with pytest.raises(ProtocolError, match="'b' in round 4 .*signature"):
        _check(Editing(edit))
    foreign = _at("b", 4, lambda m: _reseal(m, SigningKey.generate(), sender="eve"))
    with pytest.raises(ProtocolError, match="'eve' in round 4 .*not a member"):
        _check(Editing(foreign))


def test_a_party_dropping_out_of_the_aggregation_is_named_and_a_retry_completes() -> (
    None
):
    with pytest.raises(PartyUnavailable, match="'c' sent no message in round 5") as e:
        _check(Editing(_at("c", 5, lambda message: None)))
    assert (e.value.party, e.value.round) == ("c", 5)
    members = consortium()
    again = joint_fraud_check(members, _batch(members, ASK), job_id="f.2")
    assert again.verdicts["a2"].contributors == 3


def test_no_point_share_or_key_reaches_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every element, share word and key of a run, and of failing runs, is
    looked for in hex and base64 in every DEBUG log line and error text."""
    caplog.set_level(logging.DEBUG)
    transport = Editing(lambda message: message)
    members = consortium()
    joint_fraud_check(members, _batch(members, ASK), job_id="ok", transport=transport)
    errors: list[str] = []
    for edit in (
        _at("b", 4, lambda m: _reseal(m, KEYS["b"], streams={"share": [b"\x01" * 32]})),
        _at("b", 2, lambda m: _reseal(m, SigningKey.generate())),
        _at("c", 5, lambda message: None),
    ):
        with pytest.raises(MpcError) as info:
            _check(Editing(edit))
        errors.append(str(info.value))
    secrets: set[bytes] = set()
    for message in transport.sent:
        for items in message.unverified_envelope().streams.values():
            secrets.update(items)
            secrets.update(word for item in items for word in _words(item))
    for member in members:
        secrets.add(bytes(member.signing_key))
    secrets.discard(bytes(8))
    text = "\n".join([*errors, *(r.getMessage() for r in caplog.records)])
    assert caplog.records and errors
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode().rstrip("=")):
            assert form not in text


def _words(item: bytes) -> list[bytes]:
    return [item[at : at + 8] for at in range(0, len(item), 8)]


def test_members_must_be_distinct_and_known() -> None:
    members = consortium()
    with pytest.raises(MpcError, match="distinctly named"):
        joint_fraud_check(members[:1], {}, job_id="x")
    with pytest.raises(MpcError, match="not in members"):
        joint_fraud_check(members, {"zed": []}, job_id="x")
    bad = ClaimInput("z", b"t", b"c", "h", "2024-13-01", 1)
    with pytest.raises(MpcError, match="service_date"):
        joint_fraud_check(members, {"a": [bad]}, job_id="x")


def test_scores_alone_leave_duplicates_unchecked() -> None:
    members = consortium()
    result = joint_fraud_check(
        members, _batch(members, ASK), job_id="j7", duplicates=False
    )
    assert result.verdicts["a2"].duplicate is None
    assert result.verdicts["a2"].score is not None
    assert [r["type"] for r in result.records] == ["mpc_lite.risk_score"]
