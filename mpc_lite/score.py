"""The fraud risk score: a logistic model over aggregated claimant features.

The model is public: every insurer knows the weights, the bias and the
threshold (they are consortium configuration, not secrets). The inputs are
the sums `mpc_lite.aggregate.aggregate_features` reconstructs for the
requesting insurer alone; scoring runs locally at the requester, so only
it learns the score and whether it crosses the threshold. Nothing here
sends a message.

A claimant whose sum was refused (fewer than `min_parties` insurers hold
it) has no score: `score_claimant` raises `TooFewParties`.

The default model (`DEFAULT_MODEL`) is set by hand, not calibrated on
claims data, so that ordinary patients are not flagged: the busiest 12
months of any patient in the shared Synthea sample hold 8 claims, 64,018
in amounts and 2 hospitals, which scores 0.003; the same pattern at two
insurers (every feature doubled, hospitals counted once per insurer)
scores 0.03. Weights per unit: 0.1 per claim in 12 months, 0.00001 per
currency unit claimed (1 per 100,000), 0.4 per distinct hospital, 2.5 per
earlier fraud flag; bias -8; flagged at 0.5, that is a weighted sum of 8,
such as 40 claims at 8 hospitals for 100,000, or 3 earlier flags and a
few claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mpc_lite.aggregate import FEATURES, AggregateResult, FeatureSums, TooFewParties
from mpc_lite.errors import InvalidInput

__all__ = ["DEFAULT_MODEL", "RiskModel", "RiskScore", "score_claimant"]


@dataclass(frozen=True)
class RiskScore:
    """A claimant's risk as the requester sees it."""

    score: float
    """The model's probability, in (0, 1)."""
    flagged: bool
    """True when `score` is at or above the model's threshold."""
    contributors: int


@dataclass(frozen=True)
class RiskModel:
    """`sigmoid(bias + sum(weight * feature))`, flagged at `threshold`."""

    weights: dict[str, float] = field(
        default_factory=lambda: {
            "claims_12m": 0.1,
            "amount_claimed": 0.00001,
            "distinct_hospitals": 0.4,
            "earlier_flags": 2.5,
        }
    )
    bias: float = -8.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if set(self.weights) != set(FEATURES):
            raise InvalidInput(
                f"a model needs one weight per feature: {list(FEATURES)}"
            )
        if not 0 < self.threshold < 1:
            raise InvalidInput("the threshold must lie strictly between 0 and 1")
        values = [*self.weights.values(), self.bias]
        if not all(math.isfinite(value) for value in values):
            raise InvalidInput("weights and bias must be finite")

    def evaluate(self, sums: FeatureSums) -> RiskScore:
        logit = self.bias + sum(
            self.weights[name] * value
            for name, value in zip(FEATURES, sums.vector(), strict=True)
        )
        # Numerically stable logistic function.
        if logit >= 0:
            score = 1 / (1 + math.exp(-logit))
        else:
            exp = math.exp(logit)
            score = exp / (1 + exp)
        return RiskScore(score, score >= self.threshold, sums.contributors)


DEFAULT_MODEL = RiskModel()


def score_claimant(
    result: AggregateResult, claimant: bytes, model: RiskModel = DEFAULT_MODEL
) -> RiskScore:
    """Score one claimant from the requester's aggregation result.

    Raises `TooFewParties` when the claimant's sum was refused and
    `InvalidInput` when the claimant was not asked about.
    """
    if claimant in result.refused:
        raise TooFewParties("the claimant's sum covers fewer insurers than min_parties")
    sums = result.sums.get(claimant)
    if sums is None:
        raise InvalidInput("the claimant was not part of this aggregation")
    return model.evaluate(sums)
