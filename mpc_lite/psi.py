"""Private duplicate detection: n-party Diffie-Hellman PSI over ristretto255.

`duplicate_check` tells every party that asks, for each element it asks
about, whether at least one *other* party holds the same element. Elements
are byte strings, normally `mpc_lite.keys.treatment_key` encodings. A
party's repeats of its own element never count: each party de-duplicates
its input before the protocol and maps the answers back to every position.

Protocol (semi-honest; one independent sub-protocol per checking party t)
--------------------------------------------------------------------------
Names are sorted into a ring. A party *asks* when it has queries (all its
elements, unless it was given `queries`). Every party that asks is a
checking party t with a sub-protocol of its own; a party that asks
nothing has none, but its elements still serve as references in the
others' sub-protocols. (In an `mpc_lite.incremental` epoch every member is
a checking party; see there.) For each t, every party p uses a scalar k_p
for this job and this t only; with three or more parties the party h after
t in the ring ("t's helper") also uses a mask z. Write H for
`hash_to_group` under the PSI domain and K for the product of all k_p.
Each hop below is one message; its sender has raised every element to its
scalar (and shuffled, where marked).

1. Query (rounds 1..n): t puts its unique queries in a secret random
   order and sends H(x)^k_t to the next party; the list travels the ring
   back to t, order kept, every party raising it (h by k_h*z when n >= 3).
   t ends with H(x)^(K*z), or H(x)^K when n = 2, in its own order.
2. References (rounds 1..n-1): each other party j sends H(y)^k_j for all
   its unique elements, shuffled, along the ring (skipping t), every hop
   raising and shuffling; t raises what arrives to k_t and so holds each
   other party's set as H(y)^K.
3. Two parties: t's element x is held by the other party iff H(x)^K is
   among those references. Two rounds; each query and each reference is
   raised twice, as in two-party Diffie-Hellman PSI (openmined-psi too).
   Three or more, merge (round n): t joins the reference sets, drops
   repeats, shuffles, and sends the union to h. Unmask (round n+1): h
   raises the union to z, shuffles, returns it; x is a duplicate iff
   H(x)^(K*z) is in that set.

The mask keeps t from learning *which* other party holds its duplicate: t
knows which reference list came from whom, so its queries may only meet
the unlabelled union, and only after h has raised it to z. With one other
party there is nothing to hide, so `_plan` has no mask and no merge when
n = 2. Every element is raised by every party's scalar before anyone
compares it, so no party ever holds an element, or H of one, of another
party.

What each party learns (honest-but-curious parties, no collusion)
-----------------------------------------------------------------
* Every party: which parties ask (each must know which messages to
  expect, so the job names them) and the sizes of the lists passing
  through it.
* Two parties. The checking party t: for each of its queries, whether the
  other party holds it (the intersection with its queries, as in any
  two-party PSI), and the size of the other party's de-duplicated set.
  The other party: the number of t's de-duplicated queries. These are
  what openmined-psi's client and server learn.
* Three or more. The checking party t: its own answer (one bit per
  query) and, from the labelled reference sets of step 2, the size of
  each other party's de-duplicated set and of every intersection among
  the *other* parties' sets (how many elements j and l share; not which).
  It does not learn which party holds its duplicates, nor how many do:
  its queries only ever meet, under z, the shuffled union.
  t's helper h: the number of t's de-duplicated queries and the size of
  the union of the other parties' sets. It never sees t's elements under
  all keys.
* Nobody learns a set-element's position: reference lists are shuffled at
  every hop, and t's query order is a secret permutation.

The intersection sizes among other parties are the price of comparing
blinded tags: whoever puts two parties' tag sets side by side sees how
many tags they share. Removing that leak needs shuffling under encryption
(a verifiable mix-net) or generic MPC, which this lightweight suite does not
do.

What a deviating party can do
-----------------------------
Messages are signed with each member's Ed25519 key and bound to the job,
round, sender and recipient; a recipient refuses (`ProtocolError`, naming
the claimed sender and the round) anything unsigned, signed by a non-member
or by the wrong member, from another job, addressed elsewhere, replayed,
out of round order, carrying unexpected streams, or carrying an invalid or
identity point. Every received point is validated: a list the recipient
raises next is validated by that multiplication
(`mpc_lite.group.blind_received`), a list it only compares by
`validate_point`. Nothing here proves that a party raised to its scalar,
shuffled, or used its real input: a malicious party can make answers wrong
(drop or substitute tags, answer with another list) and can probe for
chosen elements by adding them to its own input, as in any PSI. A party
that stops answering makes the job fail with `PartyUnavailable` naming it.

Keys: all scalars are drawn per job and per checking party and forgotten
with the job, so tags from different jobs cannot be linked.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
from nacl.signing import SigningKey

from mpc_lite import audit
from mpc_lite.errors import (
    InvalidInput,
    InvalidPoint,
    MpcError,
    ProtocolError,
)
from mpc_lite.group import (
    blind_many,
    blind_received,
    hash_many,
    invert_scalar,
    multiply_scalars,
    random_scalar,
)
from mpc_lite.group import validate_point as _validate
from mpc_lite.transport import (
    Envelope,
    InProcessTransport,
    MessageGate,
    SealedMessage,
    Transport,
)

__all__ = [
    "PSI_DOMAIN",
    "EpochState",
    "MemoryTagSet",
    "Party",
    "PsiSession",
    "TagSet",
    "duplicate_check",
]

logger = logging.getLogger(__name__)

PSI_DOMAIN = b"mpc_lite/psi/v1 ristretto255_XMD:SHA-512_R255MAP_RO_"
"""Domain separation tag of the hash to group used for PSI elements."""

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_T = TypeVar("_T")


def _shuffled(items: list[_T]) -> list[_T]:
    """Put `items` in a uniformly random order, in place, and return them.

    The order sorts 64-bit keys from os.urandom: uniform whenever the keys
    differ, and two of n keys collide with probability below n^2 / 2^65.
    One call to os.urandom and a numpy sort instead of one draw per item.
    """
    if len(items) > 1:
        keys = np.frombuffer(os.urandom(8 * len(items)), dtype=np.uint64)
        order: list[int] = np.argsort(keys).tolist()
        items[:] = [items[index] for index in order]
    return items


@dataclass(frozen=True)
class _Hop:
    round: int
    sender: str
    recipient: str
    stream: str


def _ring_from(names: list[str], start: str) -> list[str]:
    at = names.index(start)
    return names[at:] + names[:at]


def _masked(names: list[str]) -> bool:
    """Whether the helper's mask z and the merge run: from three parties on.

    z hides *which* other party holds a duplicate; with one other party
    there is nothing to hide (see the module docstring).
    """
    return len(names) >= 3


def _plan(
    names: list[str], askers: Collection[str], checkers: Collection[str]
) -> list[_Hop]:
    """Every message of the protocol (see the module docstring), by round.

    Each party in `checkers` receives the others' reference lists (and,
    from three parties on, runs the merge with its helper); each in
    `askers`, a subset of `checkers`, also sends its queries round the ring.
    """
    n = len(names)
    hops: list[_Hop] = []
    for target in names:
        if target not in checkers:
            continue
        ring = _ring_from(names, target)
        if target in askers:
            route = [*ring, target]
            hops.extend(
                _Hop(index + 1, route[index], route[index + 1], f"query/{target}")
                for index in range(n)
            )
        for origin in ring[1:]:
            middle = [p for p in _ring_from(names, origin) if p not in (origin, target)]
            route = [origin, *middle, target]
            hops.extend(
                _Hop(
                    index + 1,
                    route[index],
                    route[index + 1],
                    f"ref/{target}/{origin}",
                )
                for index in range(len(route) - 1)
            )
        if _masked(names):
            hops.append(_Hop(n, target, ring[1], f"merge/{target}"))
            hops.append(_Hop(n + 1, ring[1], target, f"merge/{target}"))
    return hops


class _Session(Protocol):
    rounds: int

    def outgoing(self, round_: int) -> list[SealedMessage]: ...

    def accept(self, message: SealedMessage) -> None: ...

    def require_round(self, round_: int) -> None: ...


class Party:
    """One insurer in a duplicate check: its name, elements and signing key.

    `elements` are the byte strings to match (normally treatment keys); they
    never leave the party. `queries` (a sub-list of `elements`, all of them
    when omitted) are the ones the party wants answers for: the others only
    serve as references for the other parties' checks. A party whose
    queries are empty asks nothing and has no sub-protocol of its own.
    `signing_key` (Ed25519) signs the party's protocol messages; a fresh
    one is generated when omitted. Raises `InvalidInput` for a name outside
    `[A-Za-z0-9._-]{1,64}` or an element that is not bytes.
    """

    def __init__(
        self,
        name: str,
        elements: list[bytes],
        *,
        signing_key: SigningKey | None = None,
        queries: list[bytes] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInput("a party name must match [A-Za-z0-9._-]{1,64}")
        if not all(isinstance(element, bytes) for element in elements):
            raise InvalidInput(f"party {name!r}: every element must be bytes")
        self.name = name
        self._elements = list(elements)
        self._queries = self._elements if queries is None else list(queries)
        if not set(self._queries) <= set(self._elements):
            raise InvalidInput(f"party {name!r}: every query must be an element")
        self._signing_key = signing_key or SigningKey.generate()
        self._commit_salt = secrets.token_bytes(32)
        self._hashed: dict[bytes, bytes] | None = None

    @property
    def verify_key(self) -> bytes:
        """The party's Ed25519 public key, as the job roster lists it."""
        return bytes(self._signing_key.verify_key)

    @property
    def asks(self) -> bool:
        """Whether the party has queries (and so a sub-protocol of its own)."""
        return bool(self._queries)

    def __len__(self) -> int:
        return len(self._elements)

    def _unique_points(self) -> dict[bytes, bytes]:
        """Unique elements mapped to their hash-to-group points (cached)."""
        if self._hashed is None:
            unique = list(dict.fromkeys(self._elements))
            points = hash_many(PSI_DOMAIN, unique)
            self._hashed = dict(zip(unique, points, strict=True))
        return self._hashed

    def input_commitment(self) -> str:
        """Salted commitment to this party's input set (see `mpc_lite.audit`)."""
        return audit.commit_inputs(self._unique_points().values(), self._commit_salt)

    def open_session(
        self,
        job_id: str,
        roster: dict[str, bytes],
        *,
        epoch: EpochState | None = None,
        askers: Collection[str] | None = None,
    ) -> PsiSession:
        """Start this party's side of one job with the given members.

        `askers` names the parties of the job that ask (have queries); every
        party of the job must be given the same. When omitted every member
        counts as asking, and one with no queries sends an empty query lap.
        With `epoch` (see `mpc_lite.incremental`) the job uses the epoch's
        long-lived scalars and checks against, then extends, its history;
        every member is then a checking party, asking or not, so that its
        history takes in the others' new elements.
        """
        return PsiSession(self, job_id, roster, epoch=epoch, askers=askers)


class TagSet(Protocol):
    """Where a party keeps the tags it checks against (`EpochState.history`).

    `MemoryTagSet` keeps them in memory; a deployment whose epochs outgrow
    memory keeps them in its database (`flows.epoch_store`).
    """

    def update(self, tags: Iterable[bytes]) -> None:
        """Add `tags` (one already held is ignored)."""
        ...

    def contains(self, tags: Sequence[bytes]) -> list[bool]:
        """For each of `tags`, in order: is it held?"""
        ...

    def __len__(self) -> int: ...


class MemoryTagSet(set[bytes]):
    """A `TagSet` in memory: a set that answers for a list at once."""

    def contains(self, tags: Sequence[bytes]) -> list[bool]:
        return [tag in self for tag in tags]


@dataclass
class EpochState:
    """One party's long-lived secrets and history for incremental checks.

    `keys` holds one scalar per checking party, `mask` the helper scalar z
    for the party this one helps (unused with two members); `history` the
    fully blinded tags (under K*z, or K with two members) of every element
    other parties have contributed to this party's checks so far. None of
    it ever leaves the party. The scalars live in memory only, so once they
    are dropped a history kept on disk links to nothing.
    """

    keys: dict[str, bytes]
    mask: bytes
    history: TagSet

    @classmethod
    def generate(cls, names: list[str], history: TagSet | None = None) -> EpochState:
        """Fresh scalars for `names`, and `history` (empty, in memory by default)."""
        return cls(
            {name: random_scalar() for name in names},
            random_scalar(),
            MemoryTagSet() if history is None else history,
        )


class PsiSession:
    """One party's state in one duplicate-check job (a round-driven machine).

    `outgoing(r)` returns the sealed messages the party sends in round r;
    `accept(message)` checks and stores one received message (raising
    right away every list the party raises next); `result()` gives the
    party's answer once the last round is in. `rounds` is the job's last
    round: n+1 for n >= 3 parties and 2 for two (fewer when nobody asks).
    """

    def __init__(
        self,
        party: Party,
        job_id: str,
        roster: dict[str, bytes],
        *,
        epoch: EpochState | None = None,
        askers: Collection[str] | None = None,
    ) -> None:
        names = sorted(roster)
        me = party.name
        if me not in roster:
            raise InvalidInput(f"party {me!r} is not in the job's roster")
        asking = set(names) if askers is None else set(askers)
        if not asking <= set(names):
            raise InvalidInput("every party that asks must be in the job's roster")
        if party.asks and me not in asking:
            raise InvalidInput(f"party {me!r} has queries but is not listed as asking")
        self._party = party
        self._me = me
        self._job_id = job_id
        self._names = names
        self._masked = _masked(names)
        self._asks = me in asking
        checking = asking if epoch is None else set(names)
        self._hops = _plan(names, asking, checking)
        self.rounds = max((hop.round for hop in self._hops), default=0)
        if epoch is None:
            epoch = EpochState.generate(names)
            self._rerandomiser: bytes | None = None
        else:
            # Long-lived keys: a fresh factor r on the query keeps the
            # relays from recognising an element queried twice; t removes
            # it at the end.
            self._rerandomiser = random_scalar()
        if sorted(epoch.keys) != names:
            raise InvalidInput("the epoch's keys do not match the job's roster")
        self._epoch = epoch
        self._keys = epoch.keys
        self._mask = epoch.mask

        self._sends: dict[int, list[_Hop]] = {}
        self._wanted: dict[tuple[str, int], set[str]] = {}
        expected: dict[str, set[int]] = {}
        for hop in self._hops:
            if hop.sender == me:
                self._sends.setdefault(hop.round, []).append(hop)
            if hop.recipient == me:
                self._wanted.setdefault((hop.sender, hop.round), set()).add(hop.stream)
                expected.setdefault(hop.sender, set()).add(hop.round)
        self._gate = MessageGate(
            me, job_id, roster, {sender: sorted(r) for sender, r in expected.items()}
        )

        self._received: dict[str, list[bytes]] = {}  # raised, to pass on
        self._query_tags: list[bytes] | None = None  # my queries, under all keys
        self._under_k: set[bytes] = set()  # the others' references, under K
        self._unmasked: set[bytes] = set()  # their union under K*z (n >= 3)
        hashed = party._unique_points()
        self._references = list(hashed.values())
        self._unique = list(dict.fromkeys(party._queries))
        self._order = _shuffled(list(range(len(self._unique))))
        self._points = [hashed[self._unique[i]] for i in self._order]

    # -- sending -------------------------------------------------------------

    def outgoing(self, round_: int) -> list[SealedMessage]:
        """Compute and seal every message this party sends in `round_`."""
        by_recipient: dict[str, dict[str, list[bytes]]] = {}
        for hop in self._sends.get(round_, []):
            streams = by_recipient.setdefault(hop.recipient, {})
            streams[hop.stream] = self._payload(hop)
        return [
            Envelope(self._job_id, round_, self._me, recipient, streams).seal(
                self._party._signing_key
            )
            for recipient, streams in sorted(by_recipient.items())
        ]

    def _payload(self, hop: _Hop) -> list[bytes]:
        kind, target, *rest = hop.stream.split("/")
        if kind == "query" and hop.round == 1:
            key = self._keys[target]
            if self._rerandomiser is not None:
                key = multiply_scalars(key, self._rerandomiser)
            return blind_many(self._points, key)
        if kind == "ref" and rest[0] == self._me:
            return _shuffled(blind_many(self._references, self._keys[target]))
        if kind == "merge" and target == self._me:
            return _shuffled(list(self._under_k))
        # A relay (or t's helper): the list was raised when it arrived.
        passed_on = self._take(hop.stream)
        return passed_on if kind == "query" else _shuffled(passed_on)

    def _take(self, stream: str) -> list[bytes]:
        try:
            return self._received.pop(stream)
        except KeyError:
            raise MpcError(
                f"party {self._me!r}: stream {stream} has not arrived"
            ) from None

    # -- receiving -----------------------------------------------------------

    def accept(self, message: SealedMessage) -> None:
        """Check one received message and keep its contents.

        Raises `ProtocolError` (naming the claimed sender and round) when the
        message is not for this job and party, not signed by a member, a
        replay, out of order, or carries unexpected streams or bad points.
        """
        # 1-3. signed by the member it claims to come from, for this job and
        # this party, not seen before, the sender's next round (the gate);
        # 4. the streams the plan names, the query back at its full length;
        # 5. every point a valid non-identity element (checked as it is
        # raised, or on its own where it is only compared).
        envelope = self._gate.admit(message)
        sender, round_ = envelope.sender, envelope.round

        def refuse(reason: str) -> ProtocolError:
            return self._gate.refusal(envelope, reason)

        # 4.
        streams = envelope.streams
        if set(streams) != self._wanted.get((sender, round_), set()):
            raise refuse("it does not carry the streams this round expects")
        mine = streams.get(f"query/{self._me}")
        if mine is not None and len(mine) != len(self._points):
            raise refuse("the query came back with a different length")

        # 5.
        for stream, points in sorted(streams.items()):
            try:
                self._absorb(stream, sender, points)
            except InvalidPoint as exc:
                raise refuse(
                    f"element {_first_invalid(points)} of {stream} is invalid"
                ) from exc

        logger.debug(
            "%s accepted round %s from %s (%s streams)",
            self._me,
            round_,
            sender,
            len(streams),
        )

    def _absorb(self, stream: str, sender: str, points: list[bytes]) -> None:
        """Validate and keep one received stream, raised where the plan says so."""
        kind, target, *_ = stream.split("/")
        if target != self._me:
            # A relay raises to its key for t; t's helper also to z, on the
            # query's first hop and on the merge.
            if kind == "merge":
                scalar = self._mask
            elif kind == "query" and sender == target and self._masked:
                scalar = multiply_scalars(self._keys[target], self._mask)
            else:
                scalar = self._keys[target]
            self._received[stream] = blind_received(points, scalar)
        elif kind == "query":
            if self._rerandomiser is not None:
                inverse = invert_scalar(self._rerandomiser)
                self._query_tags = blind_received(points, inverse)
            else:
                self._query_tags = [_validate(point) for point in points]
        elif kind == "ref":
            self._under_k.update(blind_received(points, self._keys[self._me]))
        else:
            self._unmasked.update(_validate(point) for point in points)

    def require_round(self, round_: int) -> None:
        """Raise `PartyUnavailable` naming a sender whose round message is missing."""
        self._gate.require_round(round_)

    def result(self) -> list[bool]:
        """For each of the party's queries, in input order: held elsewhere?

        Call once, after the last round; the references that arrived join
        the epoch's history (a fresh job's history is its own).
        """
        if not self._gate.finished():
            raise MpcError(f"party {self._me!r}: the job has not finished")
        union = self._epoch.history
        union.update(self._unmasked if self._masked else self._under_k)
        if not self._asks:
            return []
        query = self._query_tags
        if query is None:
            raise MpcError(f"party {self._me!r}: the query has not come back")
        by_unique = [False] * len(self._unique)
        for position, hit in zip(self._order, union.contains(query), strict=True):
            by_unique[position] = hit
        answer = dict(zip(self._unique, by_unique, strict=True))
        return [answer[element] for element in self._party._queries]


def _first_invalid(points: list[bytes]) -> int:
    """The index of the first point `validate_point` refuses (-1: none)."""
    for index, point in enumerate(points):
        try:
            _validate(point)
        except InvalidPoint:
            return index
    return -1


def duplicate_check(
    parties: list[Party],
    transport: Transport | None = None,
    *,
    job_id: str | None = None,
) -> dict[str, list[bool]]:
    """Run one duplicate check among `parties` (see the module docstring).

    Returns, per party name, one flag per query of that party (per element
    unless the party was given `queries`; none for a party that asks
    nothing) in input order: True when at least one other party holds the
    same element. In a deployment each party learns only its own list;
    this in-process driver runs all parties and so returns all lists.
    `transport` defaults to an `InProcessTransport`; `job_id` defaults to a
    random one. Raises `ProtocolError` when a party refuses a message and
    `PartyUnavailable` when a party does not take part.
    """
    names = [party.name for party in parties]
    if len(parties) < 2:
        raise InvalidInput("a duplicate check needs at least two parties")
    if len(set(names)) != len(names):
        raise InvalidInput("two parties share a name")
    transport = transport or InProcessTransport()
    job_id = job_id or secrets.token_hex(16)
    roster = {party.name: party.verify_key for party in parties}
    askers = [party.name for party in parties if party.asks]
    sessions = {
        party.name: party.open_session(job_id, roster, askers=askers)
        for party in parties
    }
    logger.debug(
        "duplicate check %s: %s parties, %s asking", job_id, len(names), len(askers)
    )
    run_rounds(sessions, transport)
    return {name: sessions[name].result() for name in names}


def run_rounds(sessions: Mapping[str, _Session], transport: Transport) -> None:
    """Drive in-process sessions through every round over `transport`.

    Works for any session with `rounds`, `outgoing`, `accept` and
    `require_round` (`PsiSession`, `mpc_lite.aggregate.AggregationSession`).
    """
    names = sorted(sessions)
    for round_ in range(1, max(s.rounds for s in sessions.values()) + 1):
        for name in names:
            for message in sessions[name].outgoing(round_):
                transport.send(message)
        for name in names:
            for message in transport.receive(name):
                sessions[name].accept(message)
        for name in names:
            sessions[name].require_round(round_)
