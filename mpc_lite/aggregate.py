"""Secure aggregation of claimant features: additive sharing modulo 2^64.

Numbers are fixed point with 16 fractional bits (`encode`), range-checked
before encoding so that a sum over many parties never wraps. A vector is
split into one additive share per party (`share`); any set of shares
short of all of them is uniformly random, so a party holding one share of
everybody's input learns nothing from it.

`aggregate_features` sums, for each claimant a requesting insurer asks
about, the feature vectors every insurer holds for that claimant, and
returns the sums to the requester only.

Protocol (semi-honest, all parties in one process; fresh keys per job)
-----------------------------------------------------------------------
1. Tags. Every party (the requester included) turns its claimant keys
   into tags H(c)^K, K the product of one fresh scalar per party: its
   list travels the ring, each party raising it, and comes back to it in
   its own order (`mpc_lite.psi` query lap, without the helper mask).
2. Slots. The requester publishes its claimants' tags in a secret random
   order; slot s is position s. Each party finds which of its own tags
   are in the published list.
3. Shares. Each party builds, for every slot, the vector
   (claims in 12 months, amount claimed, distinct hospitals, earlier
   flags, 1) for a claimant it holds, or zeros, shares it additively and
   sends share p to party p. The last entry counts contributors.
4. Sums. Each party adds the shares it received per slot and sends its
   sum shares to the requester, which adds them up.
5. The requester refuses every sum with fewer than `min_parties`
   contributors (listed in `AggregateResult.refused`; scoring one raises
   `TooFewParties`) and decodes the rest.

What each party learns
----------------------
* The requester: for each of its claimants, the feature sums over all
  insurers holding it and how many insurers that is (not which).
* Every other party: which of *its own* claimants the requester is asking
  about (step 2 -- it has to, to put its features in the right slot), and
  the number of slots. It never sees another party's features: every share
  it receives is uniformly random.

What a deviating party can do
-----------------------------
A party can contribute false features or false sum shares and so shift
any sum by any amount; nothing here checks that. A party can probe: by
adding a guessed claimant to its own list in step 1 it learns whether the
requester asks about that claimant. `min_parties` is enforced by the
requester's own code: a requester that deviates and decodes a refused sum
learns the features of the few insurers holding that claimant. Enforcing
the floor against the requester needs a secure comparison on the shared
count, which this suite does not have. NOTE: these messages are not yet
sealed with `mpc_lite.transport` (the duplicate check's are); that is the
step to take before the parties run as separate services.
"""

from __future__ import annotations

import logging
import os
import secrets
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from mpc_lite.errors import InvalidInput, MpcError
from mpc_lite.group import blind_many, hash_to_group, random_scalar

__all__ = [
    "FEATURES",
    "FRACTION_BITS",
    "AggregateResult",
    "AggregationParty",
    "ClaimantFeatures",
    "FeatureSums",
    "TooFewParties",
    "aggregate_features",
    "decode",
    "encode",
    "reconstruct",
    "share",
]

logger = logging.getLogger(__name__)

FRACTION_BITS = 16
_SCALE = 1 << FRACTION_BITS
_MODULUS = 1 << 64
_MASK = _MODULUS - 1
_MAX_ABS = 1 << 40
"""Largest magnitude accepted for one input: 2^56 encoded, room for 2^7 parties."""

AGGREGATE_DOMAIN = b"mpc_lite/aggregate/v1 ristretto255_XMD:SHA-512_R255MAP_RO_"

FEATURES: dict[str, tuple[float, float]] = {
    "claims_12m": (0, 10_000),
    "amount_claimed": (0, 1_000_000_000),
    "distinct_hospitals": (0, 1_000),
    "earlier_flags": (0, 10_000),
}
"""Each feature's name and the closed range an input must lie in."""


class TooFewParties(MpcError):
    """Raised when a sum covers fewer contributing parties than required."""


def encode(
    value: float | int | Decimal, low: float = -_MAX_ABS, high: float = _MAX_ABS
) -> int:
    """`value` in fixed point (16 fractional bits) modulo 2^64.

    Raises `InvalidInput` when the value is not finite, lies outside
    `[low, high]`, or its magnitude exceeds 2^40.
    """
    try:
        number = Decimal(value) if not isinstance(value, Decimal) else value
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise InvalidInput("a value to encode must be a number") from exc
    if not number.is_finite():
        raise InvalidInput("a value to encode must be finite")
    if not (Decimal(low) <= number <= Decimal(high)) or abs(number) > _MAX_ABS:
        raise InvalidInput(f"a value to encode lies outside [{low}, {high}]")
    scaled = int((number * _SCALE).to_integral_value())
    return scaled & _MASK


def decode(encoded: int) -> float:
    """The signed fixed-point number an element of Z/2^64 stands for."""
    signed = encoded - _MODULUS if encoded >= 1 << 63 else encoded
    return signed / _SCALE


def _random_vector(length: int) -> array[int]:
    return array("Q", os.urandom(8 * length))


def share(values: Sequence[int], parties: int) -> list[list[int]]:
    """Split a vector of Z/2^64 elements into `parties` additive shares."""
    if parties < 1:
        raise InvalidInput("at least one share is needed")
    shares = [list(_random_vector(len(values))) for _ in range(parties - 1)]
    last = list(values)
    for other in shares:
        last = [(a - b) & _MASK for a, b in zip(last, other, strict=True)]
    shares.append(last)
    return shares


def reconstruct(shares: Sequence[Sequence[int]]) -> list[int]:
    """Add shares element-wise modulo 2^64."""
    if not shares:
        raise InvalidInput("nothing to reconstruct")
    total = list(shares[0])
    for other in shares[1:]:
        total = [(a + b) & _MASK for a, b in zip(total, other, strict=True)]
    return total


@dataclass(frozen=True)
class ClaimantFeatures:
    """One insurer's features of one claimant (see `FEATURES` for ranges)."""

    claims_12m: int
    amount_claimed: Decimal | float | int
    distinct_hospitals: int
    earlier_flags: int

    def encoded(self) -> list[int]:
        """The range-checked fixed-point vector, contributor count last."""
        values = [getattr(self, name) for name in FEATURES]
        out = []
        for name, value in zip(FEATURES, values, strict=True):
            low, high = FEATURES[name]
            try:
                out.append(encode(value, low, high))
            except InvalidInput as exc:
                raise InvalidInput(f"feature {name} is out of range") from exc
        out.append(encode(1))
        return out


@dataclass(frozen=True)
class FeatureSums:
    """Features of one claimant summed over every insurer holding it."""

    claims_12m: float
    amount_claimed: float
    distinct_hospitals: float
    earlier_flags: float
    contributors: int

    def vector(self) -> list[float]:
        return [getattr(self, name) for name in FEATURES]


@dataclass(frozen=True)
class AggregateResult:
    """What the requester learns: sums per claimant, and the refused ones."""

    sums: dict[bytes, FeatureSums]
    refused: list[bytes]


class AggregationParty:
    """One insurer's claimant features, keyed by `keys.claimant_key`."""

    def __init__(self, name: str, features: dict[bytes, ClaimantFeatures]) -> None:
        self.name = name
        self._features = dict(features)
        for row in self._features.values():
            row.encoded()


def _ring_tags(owner: int, points: list[bytes], keys: list[bytes]) -> list[bytes]:
    # Owner first, then the ring: H(c)^K, order kept (one message per hop).
    n = len(keys)
    for step in range(n):
        points = blind_many(points, keys[(owner + step) % n])
    return points


def aggregate_features(
    requester: str,
    claimants: list[bytes],
    parties: list[AggregationParty],
    *,
    min_parties: int = 3,
) -> AggregateResult:
    """Sum every insurer's features of the requester's `claimants`.

    `requester` names one of `parties`. Returns only what the requester
    learns (see the module docstring). Raises `InvalidInput` for a bad
    party list or `min_parties` below 2.
    """
    names = [party.name for party in parties]
    if requester not in names or len(set(names)) != len(names):
        raise InvalidInput("the requester must be one of distinct parties")
    if min_parties < 2:
        raise InvalidInput("min_parties must be at least 2")
    n = len(parties)
    width = len(FEATURES) + 1
    keys = [random_scalar() for _ in parties]

    # 1. tags, each party's list returned to it in its own order
    asked = list(dict.fromkeys(claimants))
    secrets.SystemRandom().shuffle(asked)
    r = names.index(requester)
    slot_tags = _ring_tags(r, [hash_to_group(AGGREGATE_DOMAIN, c) for c in asked], keys)
    slots = {tag: index for index, tag in enumerate(slot_tags)}

    # 2.-3. every party shares one vector per slot (zeros where it holds none)
    received = [[[0] * width for _ in asked] for _ in parties]
    for index, party in enumerate(parties):
        rows = list(party._features)
        tags = _ring_tags(
            index, [hash_to_group(AGGREGATE_DOMAIN, row) for row in rows], keys
        )
        vectors = [[0] * width for _ in asked]
        for row, tag in zip(rows, tags, strict=True):
            if tag in slots:
                vectors[slots[tag]] = party._features[row].encoded()
        flat = [value for vector in vectors for value in vector]
        for holder, part in enumerate(share(flat, n)):
            for slot in range(len(asked)):
                piece = part[slot * width : (slot + 1) * width]
                received[holder][slot] = reconstruct([received[holder][slot], piece])

    # 4. sum shares to the requester; 5. refuse thin sums, decode the rest
    result: dict[bytes, FeatureSums] = {}
    refused: list[bytes] = []
    for slot, claimant in enumerate(asked):
        total = reconstruct([received[holder][slot] for holder in range(n)])
        contributors = round(decode(total[-1]))
        if contributors < min_parties:
            refused.append(claimant)
            continue
        values = dict(zip(FEATURES, map(decode, total[:-1]), strict=True))
        result[claimant] = FeatureSums(**values, contributors=contributors)
    logger.debug(
        "aggregation for %s: %s claimants, %s refused",
        requester,
        len(asked),
        len(refused),
    )
    return AggregateResult(sums=result, refused=refused)
