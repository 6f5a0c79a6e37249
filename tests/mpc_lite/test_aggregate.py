"""Tests for `mpc_lite.aggregate` and `mpc_lite.score`."""

from __future__ import annotations

import math
import os
from array import array
from decimal import Decimal

import pytest

from mpc_lite.aggregate import (
    AggregationParty,
    ClaimantFeatures,
    TooFewParties,
    aggregate_features,
    decode,
    encode,
    reconstruct,
    share,
    share_words,
    sum_words,
)
from mpc_lite.errors import InvalidInput
from mpc_lite.keys import claimant_key
from mpc_lite.score import DEFAULT_MODEL, RiskModel, score_claimant

ANN, BOB, CAT = (claimant_key(mrn) for mrn in ("MRN-ann", "MRN-bob", "MRN-cat"))


def test_fixed_point_round_trips_signed_values() -> None:
    for value in (0, 1.5, -2.25, 123456.0000152587890625):
        assert decode(encode(value)) == pytest.approx(value, abs=2**-16)
    assert encode(-1) == 2**64 - 2**16


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**41, "x"])
def test_encode_refuses_values_it_cannot_hold(value: object) -> None:
    with pytest.raises(InvalidInput, match="value to encode"):
        encode(value)  # type: ignore[arg-type]


def test_shares_sum_to_the_vector_and_one_share_is_not_it() -> None:
    vector = [encode(v) for v in (1, 2, 3, -4)]
    shares = share(vector, 5)
    assert len(shares) == 5
    assert reconstruct(shares) == vector
    assert all(part != vector for part in shares)
    assert reconstruct(shares[:4]) != vector


def test_features_out_of_range_are_refused_naming_the_feature() -> None:
    with pytest.raises(InvalidInput, match="feature claims_12m is out of range"):
        ClaimantFeatures(-1, 0, 0, 0).encoded()
    with pytest.raises(InvalidInput, match="feature amount_claimed"):
        AggregationParty("a", {ANN: ClaimantFeatures(1, 10**10, 1, 0)})


def _consortium() -> list[AggregationParty]:
    return [
        AggregationParty(
            "a",
            {
                ANN: ClaimantFeatures(2, Decimal("1200.50"), 1, 0),
                BOB: ClaimantFeatures(1, 80, 1, 0),
            },
        ),
        AggregationParty(
            "b",
            {ANN: ClaimantFeatures(3, 900, 2, 1), CAT: ClaimantFeatures(1, 5, 1, 0)},
        ),
        AggregationParty("c", {ANN: ClaimantFeatures(4, 300.25, 2, 1)}),
        AggregationParty("d", {BOB: ClaimantFeatures(1, 10, 1, 0)}),
    ]


def test_aggregate_sums_over_every_insurer_holding_the_claimant() -> None:
    result = aggregate_features("a", [ANN, BOB, ANN], _consortium(), min_parties=3)
    sums = result.sums[ANN]
    assert sums.contributors == 3
    assert sums.claims_12m == 9
    assert sums.amount_claimed == pytest.approx(2400.75, abs=2**-15)
    assert sums.distinct_hospitals == 5
    assert sums.earlier_flags == 2
    assert result.refused == [BOB]


def test_a_sum_over_too_few_parties_cannot_be_scored() -> None:
    result = aggregate_features("d", [BOB, CAT], _consortium(), min_parties=3)
    assert sorted(result.refused) == sorted([BOB, CAT])
    with pytest.raises(TooFewParties, match="fewer insurers than min_parties"):
        score_claimant(result, BOB)
    two = aggregate_features("d", [BOB], _consortium(), min_parties=2)
    assert two.sums[BOB].contributors == 2


def test_score_is_logistic_and_flags_at_the_threshold() -> None:
    result = aggregate_features("a", [ANN], _consortium())
    risk = score_claimant(result, ANN)
    sums = result.sums[ANN]
    weights = DEFAULT_MODEL.weights
    logit = DEFAULT_MODEL.bias + (
        weights["claims_12m"] * 9
        + weights["amount_claimed"] * sums.amount_claimed
        + weights["distinct_hospitals"] * 5
        + weights["earlier_flags"] * 2
    )
    assert risk.score == pytest.approx(1 / (1 + math.exp(-logit)))
    assert risk.flagged is (risk.score >= 0.5)
    strict = RiskModel(weights=dict(DEFAULT_MODEL.weights), threshold=0.01)
    assert score_claimant(result, ANN, strict).flagged is True


def test_model_configuration_is_checked() -> None:
    with pytest.raises(InvalidInput, match="one weight per feature"):
        RiskModel(weights={"claims_12m": 1.0})
    with pytest.raises(InvalidInput, match="threshold"):
        RiskModel(threshold=1.0)


def test_aggregate_refuses_an_unknown_requester() -> None:
    with pytest.raises(InvalidInput, match="requester"):
        aggregate_features("z", [ANN], _consortium())


@pytest.mark.parametrize("parties", [1, 2, 10])
@pytest.mark.parametrize("count", [0, 1, 5, 70_001])
def test_share_words_sum_back_to_the_vector_modulo_2_64(
    parties: int, count: int
) -> None:
    vector = array("Q", os.urandom(8 * count))
    if count:
        vector[0] = 2**64 - 1  # wraps when the shares are added back
    parts = share_words(vector, parties)
    assert len(parts) == parties
    assert all(isinstance(part, array) and len(part) == count for part in parts)
    assert sum_words(parts) == vector
    assert reconstruct([part.tolist() for part in parts]) == vector.tolist()
    if count > 1 and parties > 1:
        assert all(part != vector for part in parts)
        assert len({part.tobytes() for part in parts}) == parties


def test_sharing_draws_fresh_randomness_every_time() -> None:
    vector = [encode(v) for v in range(16)]
    first, second = share(vector, 3), share(vector, 3)
    assert first[0] != second[0] and first[2] != second[2]
    assert reconstruct(first) == reconstruct(second) == vector


def test_shares_add_up_to_the_sum_of_the_vectors() -> None:
    left = [encode(v) for v in (1, -2, 3.5)]
    right = [encode(v) for v in (-1, 5, 0.25)]
    holders = [
        sum_words([a, b]) for a, b in zip(share(left, 4), share(right, 4), strict=True)
    ]
    assert [decode(word) for word in sum_words(holders)] == [0, 3, 3.75]


@pytest.mark.parametrize("bad", [[-1], [2**64], [1.5], ["1"]])
def test_share_elements_outside_z_2_64_are_refused(bad: list[object]) -> None:
    with pytest.raises(InvalidInput, match=r"integer in \[0, 2\^64\)"):
        share(bad, 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"integer in \[0, 2\^64\)"):
        reconstruct([[0], bad])  # type: ignore[list-item]


def test_share_and_reconstruct_check_their_arguments() -> None:
    with pytest.raises(InvalidInput, match="at least one share"):
        share([1], 0)
    with pytest.raises(InvalidInput, match="nothing to reconstruct"):
        reconstruct([])
    with pytest.raises(InvalidInput, match="same length"):
        reconstruct([[1, 2], [3]])


@pytest.mark.parametrize("count", [7, 8, 9, 17])
def test_share_words_across_keystream_blocks(
    monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    import mpc_lite.aggregate as aggregate

    monkeypatch.setattr(aggregate, "_BLOCK_WORDS", 4)
    vector = array("Q", os.urandom(8 * count))
    parts = share_words(vector, 3)
    assert [len(part) for part in parts] == [count] * 3
    assert sum_words(parts) == vector
    # Every block of a random share is fresh keystream, not a repeat.
    first = parts[0]
    assert first[:4] != first[4:8]
