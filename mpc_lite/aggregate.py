"""Secure aggregation of claimant features: additive sharing modulo 2^64.

Numbers are fixed point with 16 fractional bits (`encode`), range-checked
before encoding so that a sum over many parties never wraps. A vector is
split into one additive share per party (`share`); any set of shares
short of all of them is indistinguishable from uniformly random (the
random shares are a ChaCha20 keystream under a fresh key from os.urandom,
so this holds as long as ChaCha20 is a secure stream cipher), and a party
holding one share of everybody's input learns nothing from it. Shares
are added as numpy uint64 vectors, whose arithmetic wraps modulo 2^64.

An `AggregationSession` is one party's side of a job: for each claimant a
requesting insurer asks about (a *query*: claimant key and window end), the
feature vectors every insurer holds for that claimant are summed, and only
the requester gets the sums. Any number of parties may ask in one job.
`aggregate_features` runs a job in process for fixed features.

Protocol (n parties in a ring sorted by name; fresh scalars per job)
--------------------------------------------------------------------
Rounds 1..n, tags. Every party's claimant list (its holdings and its
   queries) travels the ring, each hop raising it to that party's scalar,
   and comes back to its owner in its own order: H(c)^K, K the product of
   all n scalars, H the hash to group under `AGGREGATE_DOMAIN`.
Round n+1, slots. Every party sends every other party its queries' tags
   in a secret random order, each with its window end (a day ordinal, or 0
   for none); a party that asks nothing sends empty lists. The slots of
   the job are all parties' lists, in name order.
Round n+2, shares. For every slot, each party builds the vector (claims in
   12 months, amount claimed, distinct hospitals, earlier flags, 1) of the
   claimant when the slot's tag is one of its own tags, zeros otherwise;
   shares the whole vector additively and sends share p to party p. The
   last entry counts contributors.
Round n+3, sums. Each party adds the shares it holds and sends every
   requester its part of the sum; the requester adds the n parts up,
   refuses every sum with fewer than `min_parties` contributors (no sum
   for it; `aggregate_features` lists it in `AggregateResult.refused`,
   and scoring it raises `TooFewParties`) and decodes the rest.

Every message is an `mpc_lite.transport` envelope signed by the sender's
member key and bound to job, round, sender and recipient; a
`MessageGate` refuses a replayed, re-ordered, foreign or wrongly signed
one, and every tag is validated (`ProtocolError` naming sender and round).
Share words travel four to a 32-byte stream item (`pack_words`).

What each party learns (honest-but-curious, no collusion)
---------------------------------------------------------
* A requester: for each of its queries, the feature sums over all
  insurers holding that claimant and how many insurers that is (not
  which), or only that fewer than `min_parties` hold it. From the tags
  lap it learns nothing: its own list comes back blinded.
* Every party: which of *its own* claimants each requester asks about and
  with which window end (round n+1: it has to, to put its features in the
  right slot), and the number of queries of every requester. From the
  published tags it can also count how many queries of two requesters
  name the same claimant. It never sees another party's features: every
  share it receives is uniformly random.
* Every party sees the length of each claimant list passing through it
  (the number of claimants each party holds).

Epochs (`TagEpoch` kept across jobs)
------------------------------------
With fresh scalars every job blinds every party's whole claimant list:
work grows with the holdings, not with the batch. Kept in a `TagEpoch`,
each party's scalar is the same in every job, so a claimant's tag is
stable and each party laps only the claimants it has no tag for yet. What
that adds to the above, within one epoch: every party recognises a
claimant asked about again in a later job (by whichever requester), and
how many new claimants each party adds per job instead of how many it
holds. Tags of different epochs cannot be linked. A party may keep its
tags out of memory (any `ClaimantTags`; the claims flow keeps them in its
database); that changes none of this, as they never leave the party and
the scalar that links them lives in memory only.

What a deviating party can do
-----------------------------
A party can contribute false features or false sum shares and so shift
any sum by any amount; nothing here checks that (range checks bind only
honest inputs). A party can probe: by adding a guessed claimant to its own
list it learns whether a requester asks about that claimant. `min_parties`
is enforced by the requester's own code: a requester that deviates and
decodes a refused sum learns the features of the few insurers holding that
claimant; enforcing the floor against the requester needs a secure
comparison on the shared count, which this suite does not have. A party
that stops sending makes the job fail with `PartyUnavailable` naming it
and the round; nobody learns a partial sum.
"""

from __future__ import annotations

import logging
import os
import secrets
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms
from nacl.signing import SigningKey

from mpc_lite import audit
from mpc_lite.errors import InvalidInput, InvalidPoint, MpcError, ProtocolError
from mpc_lite.group import blind_many, hash_to_group, random_scalar, validate_point
from mpc_lite.psi import _shuffled, run_rounds
from mpc_lite.transport import (
    Envelope,
    InProcessTransport,
    MessageGate,
    SealedMessage,
    Transport,
    pack_words,
    unpack_words,
)

__all__ = [
    "FEATURES",
    "FRACTION_BITS",
    "AggregateResult",
    "AggregationParty",
    "AggregationSession",
    "ClaimantFeatures",
    "ClaimantTags",
    "FeatureSums",
    "MemoryClaimantTags",
    "TagEpoch",
    "TooFewParties",
    "aggregate_features",
    "decode",
    "encode",
    "reconstruct",
    "share",
    "share_words",
    "sum_words",
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


# Vectors of Z/2^64 are `array("Q")` words added as numpy uint64 views of
# the same memory: numpy's unsigned arithmetic wraps modulo 2^64, which is
# exactly the reduction the shares need, and no word becomes a Python int.
# Random share words are the ChaCha20 keystream (RFC 8439, through
# `cryptography`) under a key drawn from os.urandom for each call, made
# block by block while the block is in cache.

_BLOCK_WORDS = 1 << 17
"""Words per keystream block (1 MiB, within a core's L2 cache): each block
is generated, copied into its share and subtracted while it is hot. A
share of up to this many words is one block, so it is written once."""
_ZEROS = bytes(8 * _BLOCK_WORDS)
_MAX_RANDOM_BYTES = 1 << 38


def _words(values: Sequence[int]) -> array[int]:
    try:
        return array("Q", values)
    except (OverflowError, TypeError) as exc:
        raise InvalidInput("a share element must be an integer in [0, 2^64)") from exc


def _keystream() -> CipherContext:
    """A ChaCha20 keystream under a fresh key from os.urandom.

    The key serves one call only, so an all-zero nonce is safe.
    `cryptography`'s 16-byte ChaCha20 nonce is the 32-bit block counter
    followed by the 96-bit nonce of RFC 8439: one key gives at most 2^38
    bytes before the counter would wrap (`_MAX_RANDOM_BYTES`).
    """
    cipher = Cipher(algorithms.ChaCha20(os.urandom(32), bytes(16)), mode=None)
    return cipher.encryptor()


def share_words(values: Sequence[int], parties: int) -> list[array[int]]:
    """`share`, returning `array("Q")` vectors (no Python ints per element).

    Costs 8 * (parties - 1) * len(values) random bytes and
    (parties - 1) * len(values) word subtractions.
    """
    if parties < 1:
        raise InvalidInput("at least one share is needed")
    last = _words(values)  # a copy: the last share is computed in place
    count = len(last)
    if 8 * count * (parties - 1) > _MAX_RANDOM_BYTES:
        raise InvalidInput("too many share words for one keystream")
    randoms: list[array[int]] = [array("Q") for _ in range(parties - 1)]
    if randoms and count:
        stream = _keystream()
        block = bytearray(8 * min(count, _BLOCK_WORDS) + 64)
        block_words = np.frombuffer(block, dtype=np.uint64)
        remaining = np.frombuffer(last, dtype=np.uint64)
        zeros = memoryview(_ZEROS)
        for at in range(0, count, _BLOCK_WORDS):
            size = min(_BLOCK_WORDS, count - at)
            segment = remaining[at : at + size]
            random_words = block_words[:size]
            for part in randoms:
                # `update_into` wants 63 spare bytes after the output.
                stream.update_into(zeros[: 8 * size], block)
                part.frombytes(memoryview(block)[: 8 * size])
                np.subtract(segment, random_words, out=segment)
    return [*randoms, last]


def sum_words(shares: Sequence[Sequence[int]]) -> array[int]:
    """`reconstruct`, returning an `array("Q")` vector.

    Costs (len(shares) - 1) * len(shares[0]) word additions.
    """
    if not shares:
        raise InvalidInput("nothing to reconstruct")
    count = len(shares[0])
    if any(len(part) != count for part in shares):
        raise InvalidInput("shares must have the same length")
    words = [
        part if isinstance(part, array) and part.typecode == "Q" else _words(part)
        for part in shares
    ]
    total = array("Q", words[0])
    running = np.frombuffer(total, dtype=np.uint64)
    for part in words[1:]:
        np.add(running, np.frombuffer(part, dtype=np.uint64), out=running)
    return total


def share(values: Sequence[int], parties: int) -> list[list[int]]:
    """Split a vector of Z/2^64 elements into `parties` additive shares.

    The first `parties - 1` shares are random words (ChaCha20 under a fresh
    key from os.urandom, so indistinguishable from uniform to anyone who
    cannot break ChaCha20); the last is the vector minus their sum, so any
    `parties - 1` of them are independent of the vector. Raises
    `InvalidInput` for an element outside [0, 2^64).
    """
    return [part.tolist() for part in share_words(values, parties)]


def reconstruct(shares: Sequence[Sequence[int]]) -> list[int]:
    """Add shares element-wise modulo 2^64."""
    return sum_words(shares).tolist()


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


FeatureSource = Callable[[Sequence["Query"]], "list[ClaimantFeatures | None]"]
"""A party's features for each (claimant key, window end day ordinal) asked.

One answer per query, in order: None when the party does not hold the
claimant at all; a window end of 0 means "no window" (the features as the
party holds them). A job asks once, for all the slots of its own claimants,
so a source that reads a database makes one pass per job.
"""


class AggregationParty:
    """One insurer's fixed claimant features, keyed by `keys.claimant_key`.

    The simple form for callers whose features do not depend on a window;
    `mpc_lite.fraud` builds windowed features from claims instead.
    `signing_key` signs the party's messages (fresh when omitted).
    """

    def __init__(
        self,
        name: str,
        features: dict[bytes, ClaimantFeatures],
        *,
        signing_key: SigningKey | None = None,
    ) -> None:
        self.name = name
        self._features = dict(features)
        self.signing_key = signing_key or SigningKey.generate()
        for row in self._features.values():
            row.encoded()

    def claimants(self) -> list[bytes]:
        return list(self._features)

    def features(self, queries: Sequence[Query]) -> list[ClaimantFeatures | None]:
        return [self._features.get(claimant) for claimant, _ in queries]


Query = tuple[bytes, int]
"""A claimant key and the day ordinal its window ends on (0: no window)."""

_WIDTH = len(FEATURES) + 1
_MAX_ORDINAL = date.max.toordinal()


class ClaimantTags(Protocol):
    """Where a party keeps its claimants' tags within an epoch (`TagEpoch`).

    `MemoryClaimantTags` keeps them in memory; a deployment whose epochs
    outgrow memory keeps them in its database (`flows.epoch_store`).
    """

    def learn(self, claimants: Sequence[bytes], tags: Sequence[bytes]) -> None:
        """Record each claimant's tag (the lists are in the same order)."""
        ...

    def tags_of(self, claimants: Sequence[bytes]) -> dict[bytes, bytes]:
        """The tags of those of `claimants` that have one, by claimant."""
        ...

    def owners_of(self, tags: Sequence[bytes]) -> dict[bytes, bytes]:
        """The claimants of those of `tags` that are the party's, by tag."""
        ...


class MemoryClaimantTags:
    """`ClaimantTags` in two dictionaries."""

    def __init__(self) -> None:
        self._tags: dict[bytes, bytes] = {}
        self._owners: dict[bytes, bytes] = {}

    def learn(self, claimants: Sequence[bytes], tags: Sequence[bytes]) -> None:
        for claimant, tag in zip(claimants, tags, strict=True):
            self._tags[claimant] = tag
            self._owners[tag] = claimant

    def tags_of(self, claimants: Sequence[bytes]) -> dict[bytes, bytes]:
        return {c: self._tags[c] for c in claimants if c in self._tags}

    def owners_of(self, tags: Sequence[bytes]) -> dict[bytes, bytes]:
        return {t: self._owners[t] for t in tags if t in self._owners}


class TagEpoch:
    """One party's aggregation scalar and the claimant tags it already has.

    A fresh `TagEpoch` per job (the default of `AggregationSession`) gives
    fresh-key tags. Kept across jobs, every party's scalar stays the same,
    so a claimant's tag under K is the same in every job of the epoch: a
    party puts each of its claimants through the tags lap once per epoch,
    and a job costs what its new claimants cost. The price is linkage
    within the epoch (see "Epochs" in the module docstring); start a new
    epoch on the same schedule as `mpc_lite.incremental`. Nothing here
    leaves the party. The tags are kept in `tags` (in memory when omitted);
    the scalar lives in memory only, so tags kept on disk link to nothing
    once the epoch is dropped.
    """

    def __init__(self, tags: ClaimantTags | None = None) -> None:
        self.key = random_scalar()
        self.tags: ClaimantTags = MemoryClaimantTags() if tags is None else tags


class AggregationSession:
    """One party's state in one aggregation job (a round-driven machine).

    Every party passes the claimant keys it holds (`claimants`), how to
    read its features (`features`) and, when it asks, its `queries`. The
    job has n+3 rounds for n parties (see the module docstring); messages
    are sealed with `signing_key` and checked by a `MessageGate`, so a
    replayed, re-ordered, foreign or malformed message raises
    `ProtocolError` naming the claimed sender and round. With `epoch` the
    party's scalar and earlier tags are the epoch's, and only claimants it
    has no tag for yet travel the tags lap (every party of a job must then
    use an epoch of the same generation).
    """

    def __init__(
        self,
        name: str,
        signing_key: SigningKey,
        job_id: str,
        roster: dict[str, bytes],
        *,
        claimants: list[bytes],
        features: FeatureSource,
        queries: list[Query] | None = None,
        min_parties: int = 3,
        epoch: TagEpoch | None = None,
    ) -> None:
        names = sorted(roster)
        if name not in roster:
            raise InvalidInput(f"party {name!r} is not in the job's roster")
        if min_parties < 2:
            raise InvalidInput("min_parties must be at least 2")
        self._me, self._names, self._n = name, names, len(names)
        self._signing_key, self._job_id = signing_key, job_id
        self._features, self._min_parties = features, min_parties
        self.rounds = self._n + 3
        at = names.index(name)
        self._index = at
        self._next, self._prev = names[(at + 1) % self._n], names[at - 1]
        self._epoch = epoch if epoch is not None else TagEpoch()
        self._key = self._epoch.key
        self._queries = _shuffled(list(dict.fromkeys(queries or [])))
        for _, end in self._queries:
            if not 0 <= end <= _MAX_ORDINAL:
                raise InvalidInput("a window end must be a day ordinal or 0")
        asked = [claimant for claimant, _ in self._queries]
        mine = list(dict.fromkeys([*claimants, *asked]))
        known = self._epoch.tags.tags_of(mine)
        # Only claimants without a tag in the epoch travel the ring.
        self._claimants = [c for c in mine if c not in known]
        self._points = [hash_to_group(AGGREGATE_DOMAIN, c) for c in self._claimants]
        expected = {other: [self._n + 1, self._n + 2, self._n + 3] for other in names}
        expected.pop(name)
        expected.setdefault(self._prev, [])
        expected[self._prev] = [*range(1, self._n + 1), *expected[self._prev]]
        if self._prev == name:
            raise InvalidInput("an aggregation needs at least two parties")
        self._gate = MessageGate(name, job_id, roster, expected)
        self._received: dict[tuple[str, str], list[bytes]] = {}
        self._slots: dict[str, list[bytes]] = {}
        self._windows: dict[str, list[int]] = {}
        self._own_sums: list[int] = []

    def input_commitment(self) -> str:
        """Salted commitment to the claimant set (see `mpc_lite.audit`).

        The salt is drawn per session and kept in it only. In an epoch the
        commitment covers the claimants this job added; the epoch's input set
        is the union over its jobs.
        """
        salt = getattr(self, "_commit_salt", None) or secrets.token_bytes(32)
        self._commit_salt = salt
        return audit.commit_inputs(self._points, salt)

    # -- sending -------------------------------------------------------------

    def _seal(
        self, recipient: str, round_: int, streams: dict[str, list[bytes]]
    ) -> SealedMessage:
        envelope = Envelope(self._job_id, round_, self._me, recipient, streams)
        return envelope.seal(self._signing_key)

    def outgoing(self, round_: int) -> list[SealedMessage]:
        """Compute and seal every message this party sends in `round_`."""
        n = self._n
        if 1 <= round_ <= n:
            origin = self._names[(self._index - (round_ - 1)) % n]
            points = (
                self._points if round_ == 1 else self._take(self._prev, f"tag/{origin}")
            )
            blinded = blind_many(points, self._key)
            return [self._seal(self._next, round_, {f"tag/{origin}": blinded})]
        others = [other for other in self._names if other != self._me]
        if round_ == n + 1:
            published = self._publish()
            return [self._seal(other, round_, published) for other in others]
        if round_ == n + 2:
            shares = self._shares()
            return [
                self._seal(other, round_, {"share": pack_words(shares[other])})
                for other in others
            ]
        if round_ == n + 3:
            segments = self._sum_segments()
            return [
                self._seal(other, round_, {"sum": pack_words(segments[other])})
                for other in others
            ]
        return []

    def _publish(self) -> dict[str, list[bytes]]:
        # Round n+1: my tags came back under every key; publish my slots.
        tags = self._take(self._prev, f"tag/{self._me}")
        self._epoch.tags.learn(self._claimants, tags)
        asked = [claimant for claimant, _ in self._queries]
        by_claimant = self._epoch.tags.tags_of(asked)
        self._slots[self._me] = [by_claimant[c] for c in asked]
        self._windows[self._me] = [end for _, end in self._queries]
        return {
            "slots": self._slots[self._me],
            "windows": pack_words(self._windows[self._me]),
        }

    def _shares(self) -> dict[str, list[int]]:
        # Round n+2: one vector per slot of every requester, shared out.
        slots = [
            (tag, end)
            for name in self._names
            for tag, end in zip(self._slots[name], self._windows[name], strict=True)
        ]
        owners = self._epoch.tags.owners_of([tag for tag, _ in slots])
        mine = [
            (i, (owners[tag], end))
            for i, (tag, end) in enumerate(slots)
            if tag in owners
        ]
        rows: list[ClaimantFeatures | None] = [None] * len(slots)
        answers = self._features([query for _, query in mine]) if mine else []
        for (i, _), row in zip(mine, answers, strict=True):
            rows[i] = row
        zeros = [0] * _WIDTH
        flat: list[int] = []
        for row in rows:
            flat.extend(zeros if row is None else row.encoded())
        parts = share(flat, self._n)
        self._share_in: list[list[int]] = [parts[self._index]]
        return {name: parts[i] for i, name in enumerate(self._names)}

    def _sum_segments(self) -> dict[str, list[int]]:
        # Round n+3: add the shares per slot, return each requester its part.
        for other in self._names:
            if other != self._me:
                self._share_in.append(self._words.pop(other))
        total = reconstruct(self._share_in)
        segments: dict[str, list[int]] = {}
        at = 0
        for name in self._names:
            width = len(self._slots[name]) * _WIDTH
            segments[name] = total[at : at + width]
            at += width
        self._own_sums = segments[self._me]
        return segments

    def _take(self, sender: str, stream: str) -> list[bytes]:
        try:
            return self._received.pop((sender, stream))
        except KeyError:
            raise MpcError(
                f"party {self._me!r}: stream {stream} from {sender!r} has not arrived"
            ) from None

    # -- receiving -----------------------------------------------------------

    def accept(self, message: SealedMessage) -> None:
        """Check one received message and keep its contents.

        Raises `ProtocolError` naming the claimed sender and round when the
        gate refuses it or its streams are not what the round carries.
        """
        envelope = self._gate.admit(message)
        sender, round_, streams = envelope.sender, envelope.round, envelope.streams
        n = self._n

        def refuse(reason: str) -> ProtocolError:
            return self._gate.refusal(envelope, reason)

        if round_ <= n:
            origin = self._names[(self._index - round_) % n]
            wanted = {f"tag/{origin}"}
        else:
            wanted = [{"slots", "windows"}, {"share"}, {"sum"}][round_ - n - 1]
        if set(streams) != wanted:
            raise refuse("it does not carry the streams this round expects")
        if round_ <= n or round_ == n + 1:
            name = next(iter(wanted)) if round_ <= n else "slots"
            for index, point in enumerate(streams[name]):
                try:
                    validate_point(point)
                except InvalidPoint as exc:
                    raise refuse(f"element {index} of {name} is invalid") from exc
        try:
            if round_ == n and len(streams[f"tag/{self._me}"]) != len(self._points):
                raise refuse("the tags came back with a different length")
            if round_ < n:
                self._received[(sender, f"tag/{origin}")] = streams[f"tag/{origin}"]
            elif round_ == n:
                self._received[(sender, f"tag/{self._me}")] = streams[f"tag/{self._me}"]
            elif round_ == n + 1:
                slots = streams["slots"]
                windows = unpack_words(streams["windows"], len(slots))
                if any(end > _MAX_ORDINAL for end in windows):
                    raise refuse("a window end is not a day ordinal")
                self._slots[sender], self._windows[sender] = slots, windows
            elif round_ == n + 2:
                if len(self._slots) != n:
                    raise refuse("it arrived before every party published")
                count = sum(map(len, self._slots.values())) * _WIDTH
                self._words = getattr(self, "_words", {})
                self._words[sender] = unpack_words(streams["share"], count)
            else:
                count = len(self._slots[self._me]) * _WIDTH
                self._sum_in = getattr(self, "_sum_in", [])
                self._sum_in.append(unpack_words(streams["sum"], count))
        except ValueError as exc:
            raise refuse("its words do not match the slots") from exc
        logger.debug(
            "%s accepted round %s from %s (%s streams)",
            self._me,
            round_,
            sender,
            len(streams),
        )

    def require_round(self, round_: int) -> None:
        """Raise `PartyUnavailable` naming a sender whose round message is missing."""
        self._gate.require_round(round_)

    def result(self) -> dict[Query, FeatureSums | None]:
        """The requester's sums per query; None where `min_parties` refused it."""
        total = reconstruct([self._own_sums, *getattr(self, "_sum_in", [])])
        answer: dict[Query, FeatureSums | None] = {}
        for slot, query in enumerate(self._queries):
            vector = total[slot * _WIDTH : (slot + 1) * _WIDTH]
            contributors = round(decode(vector[-1]))
            if contributors < self._min_parties:
                answer[query] = None
                continue
            values = dict(zip(FEATURES, map(decode, vector[:-1]), strict=True))
            answer[query] = FeatureSums(**values, contributors=contributors)
        refused = sum(1 for sums in answer.values() if sums is None)
        logger.debug(
            "%s: aggregation %s gave %s sums, %s refused",
            self._me,
            self._job_id,
            len(answer) - refused,
            refused,
        )
        return answer


def aggregate_features(
    requester: str,
    claimants: list[bytes],
    parties: list[AggregationParty],
    *,
    min_parties: int = 3,
    transport: Transport | None = None,
    job_id: str | None = None,
) -> AggregateResult:
    """Sum every insurer's features of the requester's `claimants`.

    `requester` names one of `parties`. Runs the signed protocol of the
    module docstring in process (over `transport`, an `InProcessTransport`
    by default) and returns only what the requester learns. Raises
    `InvalidInput` for a bad party list or `min_parties` below 2, and
    `ProtocolError` / `PartyUnavailable` when a message is refused or
    missing.
    """
    names = [party.name for party in parties]
    if requester not in names or len(set(names)) != len(names):
        raise InvalidInput("the requester must be one of distinct parties")
    if min_parties < 2:
        raise InvalidInput("min_parties must be at least 2")
    job_id = job_id or secrets.token_hex(16)
    roster = {party.name: bytes(party.signing_key.verify_key) for party in parties}
    sessions = {
        party.name: AggregationSession(
            party.name,
            party.signing_key,
            job_id,
            roster,
            claimants=party.claimants(),
            features=party.features,
            queries=[(c, 0) for c in claimants] if party.name == requester else [],
            min_parties=min_parties,
        )
        for party in parties
    }
    run_rounds(sessions, transport or InProcessTransport())
    answer = sessions[requester].result()
    sums = {c: s for (c, _), s in answer.items() if s is not None}
    refused = [c for (c, _), s in answer.items() if s is None]
    return AggregateResult(sums=sums, refused=refused)
