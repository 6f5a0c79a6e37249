"""Private duplicate detection: n-party Diffie-Hellman PSI over ristretto255.

`duplicate_check` tells every party, for each of its elements, whether at
least one *other* party holds the same element. Elements are byte strings,
normally `mpc_lite.keys.treatment_key` encodings. A party's repeats of its
own element never count: each party de-duplicates its input before the
protocol and maps the answers back to every position.

Protocol (semi-honest; one independent sub-protocol per checking party t)
--------------------------------------------------------------------------
Names are sorted into a ring. For each checking party t, every party p
draws a fresh scalar k_p (for this job and this t only) and the party h
after t in the ring ("t's helper") also draws z. Write H for
`hash_to_group` under the PSI domain and K for the product of all k_p.
Each hop below is one message; its sender raises every element to its
scalar (and shuffles, where marked) before sending.

1. Query (rounds 1..n): t puts its unique elements in a secret random
   order, sends H(x)^k_t to h; h raises to k_h*z, and the list travels the
   ring back to t, order kept. t ends with H(x)^(K*z), in its own order.
2. References (rounds 1..n-1): each other party j sends H(y)^k_j, shuffled,
   along the ring (skipping t), every hop raising and shuffling; t applies
   k_t last. t then holds each other party's set as H(y)^K.
3. Merge (round n): t joins the reference sets, drops repeats, shuffles,
   and sends the union to h.
4. Unmask (round n+1): h raises the union to z, shuffles, returns it.
   t's element x is a duplicate iff H(x)^(K*z) is in that set.

Every element is raised by every party's scalar before anyone compares it,
so no party ever holds an element, or H of one, of another party. A party
given `queries` runs step 1 on those only; all its elements still serve
as references in step 2 of the others' checks.

What each party learns (honest-but-curious parties, no collusion)
-----------------------------------------------------------------
* The checking party t: its own answer (one bit per element) and, from the
  labelled reference sets of step 2, the size of each other party's
  de-duplicated set and of every intersection among the *other* parties'
  sets (how many elements j and l share; not which). It does not learn
  which party holds its duplicates, nor how many do: its own elements are
  only ever compared, under z, with the shuffled union.
* t's helper h: the number of t's de-duplicated queries and the size of
  the union of the other parties' sets. It never sees t's elements under
  all keys.
* Every other party: the sizes of the lists passing through it.
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
identity point. Nothing here proves that a party raised to its scalar,
shuffled, or used its real input: a malicious party can make answers wrong
(drop or substitute tags, answer with another list) and can probe for
chosen elements by adding them to its own input, as in any PSI. A party
that stops answering makes the job fail with `PartyUnavailable` naming it.

Keys: all scalars are drawn per job and per checking party and forgotten
with the job, so tags from different jobs cannot be linked.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from nacl.signing import SigningKey

from mpc_lite import audit
from mpc_lite.errors import (
    InvalidInput,
    InvalidPoint,
    MpcError,
    PartyUnavailable,
    ProtocolError,
)
from mpc_lite.group import (
    blind_many,
    hash_to_group,
    invert_scalar,
    multiply_scalars,
    random_scalar,
)
from mpc_lite.group import validate_point as _validate
from mpc_lite.transport import Envelope, InProcessTransport, SealedMessage, Transport

__all__ = ["PSI_DOMAIN", "EpochState", "Party", "PsiSession", "duplicate_check"]

logger = logging.getLogger(__name__)

PSI_DOMAIN = b"mpc_lite/psi/v1 ristretto255_XMD:SHA-512_R255MAP_RO_"
"""Domain separation tag of the hash to group used for PSI elements."""

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_shuffler = secrets.SystemRandom()
_T = TypeVar("_T")


def _shuffled(items: list[_T]) -> list[_T]:
    _shuffler.shuffle(items)
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


def _plan(names: list[str]) -> list[_Hop]:
    """Every message of the protocol (see the module docstring), by round."""
    n = len(names)
    hops: list[_Hop] = []
    for target in names:
        ring = _ring_from(names, target)
        helper = ring[1]
        query_route = [*ring, target]
        for index in range(n):
            hops.append(
                _Hop(
                    index + 1,
                    query_route[index],
                    query_route[index + 1],
                    f"query/{target}",
                )
            )
        for origin in ring[1:]:
            middle = [p for p in _ring_from(names, origin) if p not in (origin, target)]
            route = [origin, *middle, target]
            for index in range(len(route) - 1):
                hops.append(
                    _Hop(
                        index + 1,
                        route[index],
                        route[index + 1],
                        f"ref/{target}/{origin}",
                    )
                )
        hops.append(_Hop(n, target, helper, f"merge/{target}"))
        hops.append(_Hop(n + 1, helper, target, f"merge/{target}"))
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
    serve as references for the other parties' checks, and cost the party
    no query lap. `signing_key` (Ed25519) signs the party's protocol
    messages; a fresh one is generated when omitted. Raises `InvalidInput`
    for a name outside `[A-Za-z0-9._-]{1,64}` or an element that is not bytes.
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

    def __len__(self) -> int:
        return len(self._elements)

    def _unique_points(self) -> dict[bytes, bytes]:
        """Unique elements mapped to their hash-to-group points (cached)."""
        if self._hashed is None:
            self._hashed = {
                element: hash_to_group(PSI_DOMAIN, element)
                for element in dict.fromkeys(self._elements)
            }
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
    ) -> PsiSession:
        """Start this party's side of one job with the given members.

        With `epoch` (see `mpc_lite.incremental`) the job uses the epoch's
        long-lived scalars and checks against, then extends, its history.
        """
        return PsiSession(self, job_id, roster, epoch=epoch)


@dataclass
class EpochState:
    """One party's long-lived secrets and history for incremental checks.

    `keys` holds one scalar per checking party, `mask` the helper scalar z
    for the party this one helps; `history` the fully blinded tags (under
    K*z) of every element other parties have contributed to this party's
    checks so far. None of it ever leaves the party.
    """

    keys: dict[str, bytes]
    mask: bytes
    history: set[bytes]

    @classmethod
    def generate(cls, names: list[str]) -> EpochState:
        return cls({name: random_scalar() for name in names}, random_scalar(), set())


class PsiSession:
    """One party's state in one duplicate-check job (a round-driven machine).

    `outgoing(r)` returns the sealed messages the party sends in round r;
    `accept(message)` checks and stores one received message; `result()`
    gives the party's answer once the last round is in.
    """

    def __init__(
        self,
        party: Party,
        job_id: str,
        roster: dict[str, bytes],
        *,
        epoch: EpochState | None = None,
    ) -> None:
        names = sorted(roster)
        if party.name not in roster:
            raise InvalidInput(f"party {party.name!r} is not in the job's roster")
        self._party = party
        self._me = party.name
        self._job_id = job_id
        self._roster = dict(roster)
        self._names = names
        self.rounds = len(names) + 1
        self._hops = _plan(names)
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
        helped = _ring_from(names, self._me)[-1]
        self._mask = epoch.mask
        self._helped = helped  # the checking party this party helps
        self._received: dict[str, list[bytes]] = {}
        self._accepted: set[tuple[str, int]] = set()
        self._expected: dict[str, list[int]] = {}
        for hop in self._hops:
            if hop.recipient == self._me:
                rounds = self._expected.setdefault(hop.sender, [])
                if hop.round not in rounds:
                    rounds.append(hop.round)
        for rounds in self._expected.values():
            rounds.sort()
        hashed = party._unique_points()
        self._references = list(hashed.values())
        self._unique = list(dict.fromkeys(party._queries))
        self._order = _shuffled(list(range(len(self._unique))))
        self._points = [hashed[self._unique[i]] for i in self._order]

    # -- sending -------------------------------------------------------------

    def outgoing(self, round_: int) -> list[SealedMessage]:
        """Compute and seal every message this party sends in `round_`."""
        by_recipient: dict[str, dict[str, list[bytes]]] = {}
        for hop in self._hops:
            if hop.sender == self._me and hop.round == round_:
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
        key = self._keys[target]
        if kind == "query":
            if hop.round == 1:
                if self._rerandomiser is not None:
                    key = multiply_scalars(key, self._rerandomiser)
                return blind_many(self._points, key)
            if self._helped == target and hop.round == 2:
                key = multiply_scalars(key, self._mask)
            return blind_many(self._take(hop.stream), key)
        if kind == "ref":
            if rest[0] == self._me:
                return _shuffled(blind_many(self._references, key))
            return _shuffled(blind_many(self._take(hop.stream), key))
        if target == self._me:
            union: set[bytes] = set()
            for origin in self._names:
                if origin != self._me:
                    union.update(
                        blind_many(self._take(f"ref/{self._me}/{origin}"), key)
                    )
            return _shuffled(list(union))
        return _shuffled(blind_many(self._take(hop.stream), self._mask))

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
        # 1. signed by the member it claims to come from; 2. this job, this
        # recipient; 3. not seen before, and the sender's next round; 4. the
        # streams the plan names, every point a valid non-identity element.
        envelope = message.open(self._roster)
        sender, round_ = envelope.sender, envelope.round

        def refuse(reason: str) -> ProtocolError:
            return ProtocolError(
                f"message from {sender!r} in round {round_} refused by "
                f"{self._me!r}: {reason}",
                party=sender,
                round=round_,
            )

        # 2.
        if envelope.job_id != self._job_id:
            raise refuse("it belongs to another job")
        if envelope.recipient != self._me:
            raise refuse("it is addressed to another party")

        # 3.
        if (sender, round_) in self._accepted:
            raise refuse("replayed")
        pending = self._expected.get(sender, [])
        if not pending:
            raise refuse("no further message is expected from this sender")
        if round_ != pending[0]:
            raise refuse(f"out of order (expected round {pending[0]})")

        # 4.
        wanted = {
            hop.stream
            for hop in self._hops
            if hop.round == round_
            and hop.sender == sender
            and hop.recipient == self._me
        }
        if set(envelope.streams) != wanted:
            raise refuse("it does not carry the streams this round expects")
        for stream, points in envelope.streams.items():
            for index, point in enumerate(points):
                try:
                    _validate(point)
                except InvalidPoint as exc:
                    raise refuse(f"element {index} of {stream} is invalid") from exc
        if len(envelope.streams.get(f"query/{self._me}", self._points)) != len(
            self._points
        ):
            raise refuse("the query came back with a different length")

        pending.pop(0)
        self._accepted.add((sender, round_))
        self._received.update(envelope.streams)
        logger.debug(
            "%s accepted round %s from %s (%s streams)",
            self._me,
            round_,
            sender,
            len(envelope.streams),
        )

    def require_round(self, round_: int) -> None:
        """Raise `PartyUnavailable` naming a sender whose round message is missing."""
        for sender, pending in sorted(self._expected.items()):
            if pending and pending[0] <= round_:
                raise PartyUnavailable(
                    f"party {sender!r} sent no message in round {pending[0]} "
                    f"to {self._me!r}",
                    party=sender,
                    round=pending[0],
                )

    def result(self) -> list[bool]:
        """For each of the party's queries, in input order: held elsewhere?"""
        query = self._take(f"query/{self._me}")
        if self._rerandomiser is not None:
            inverse = invert_scalar(self._rerandomiser)
            query = blind_many(query, inverse)
        union = self._epoch.history
        union.update(self._take(f"merge/{self._me}"))
        by_unique = [False] * len(self._unique)
        for position, tag in zip(self._order, query, strict=True):
            by_unique[position] = tag in union
        answer = dict(zip(self._unique, by_unique, strict=True))
        return [answer[element] for element in self._party._queries]


def duplicate_check(
    parties: list[Party],
    transport: Transport | None = None,
    *,
    job_id: str | None = None,
) -> dict[str, list[bool]]:
    """Run one duplicate check among `parties` (see the module docstring).

    Returns, per party name, one flag per query of that party (per element
    unless the party was given `queries`) in input order: True when at least
    one other party holds the same element. In a
    deployment each party learns only its own list; this in-process driver
    runs all parties and so returns all lists. `transport` defaults to an
    `InProcessTransport`; `job_id` defaults to a random one. Raises
    `ProtocolError` when a party refuses a message and `PartyUnavailable`
    when a party does not take part.
    """
    names = [party.name for party in parties]
    if len(parties) < 2:
        raise InvalidInput("a duplicate check needs at least two parties")
    if len(set(names)) != len(names):
        raise InvalidInput("two parties share a name")
    transport = transport or InProcessTransport()
    job_id = job_id or secrets.token_hex(16)
    roster = {party.name: party.verify_key for party in parties}
    sessions = {party.name: party.open_session(job_id, roster) for party in parties}
    logger.debug("duplicate check %s: %s parties", job_id, len(names))
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
