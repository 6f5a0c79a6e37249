"""The joint fraud check of one batch: duplicates, risk scores, audit records.

`joint_fraud_check` is the one call the claims flow makes. Every insurer of
the consortium is a `Member` holding all its own live claims as
`ClaimInput` rows; `batch` names, per requesting insurer, the claims it
wants checked. One call runs two signed jobs among all members:

1. a duplicate check (`mpc_lite.psi`) over every member's treatment keys:
   a batch claim is a duplicate when another member holds the same
   treatment;
2. a secure aggregation (`mpc_lite.aggregate`) of claimant features, then
   the logistic score (`mpc_lite.score`) at each requester.

Features of one claimant at one member, for a window of 365 days that ends
on the claim's service date (or on `as_of` for every claim when given),
both ends included:

* `claims_12m`: how many of the member's claims of the claimant fall in
  the window (a requester's own batch claim counts);
* `amount_claimed`: their billed amounts summed, in currency units;
* `distinct_hospitals`: how many different hospital DIDs billed them;
* `earlier_flags`: the member's claims of the claimant with
  `fraud_flag` set whose service date is before the window's end (all
  time, not only 12 months; a flag on the same day, such as the claim's
  own duplicate, does not count).

Claimants are matched by blinded tags of `keys.claimant_key` (the
hospital-asserted patient identifier). A member counts as a contributor
for a claimant when it holds any claim of it; a sum over fewer than
`min_parties` contributors (the requester included) is refused and the
claim gets no score (`score is None`, `flagged` False).

What each party learns
----------------------
Everything `mpc_lite.psi` and `mpc_lite.aggregate` state, plus: with
per-claim windows (no `as_of`), a member holding a claimant the requester
asks about learns the window end, which is the service date of the
requester's claim. Pass `as_of` to publish one date for the whole batch
instead. The duplicate check queries only batch claims, so a requester's
helper learns the batch size, not the holdings. Only the requester learns
its claims' scores and flags; the in-process driver holds every party,
and returns only the requesters' claims.

What a deviating member can do
------------------------------
As in `mpc_lite.psi` and `mpc_lite.aggregate`: make another member's
answers wrong (false duplicates, shifted scores) by lying about its own
claims or shares; learn whether a guessed treatment or claimant is in a
batch by adding it to its holdings. It cannot forge another member's
messages; any refused or missing message ends the call with
`ProtocolError` or `PartyUnavailable` naming party and round, and no
verdict is returned (the flow should leave the batch `pending` and retry
with a new `job_id`).
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from nacl.signing import SigningKey

from mpc_lite import audit
from mpc_lite.aggregate import (
    AggregationSession,
    ClaimantFeatures,
    ClaimantTags,
    Query,
    TagEpoch,
)
from mpc_lite.errors import InvalidInput
from mpc_lite.psi import Party, run_rounds
from mpc_lite.score import DEFAULT_MODEL, RiskModel
from mpc_lite.transport import InProcessTransport, Transport

__all__ = [
    "WINDOW_DAYS",
    "ClaimIndex",
    "ClaimInput",
    "ClaimVerdict",
    "JointResult",
    "Member",
    "ScoringEpoch",
    "aggregation_job_record",
    "claimant_features",
    "joint_fraud_check",
]

logger = logging.getLogger(__name__)

WINDOW_DAYS = 365
"""The feature window: the 365 days ending on the window's end day."""


@dataclass(frozen=True)
class ClaimInput:
    """One claim as the joint check sees it (never leaves its insurer).

    `treatment` is `keys.treatment_key(...)` and `claimant` is
    `keys.claimant_key(patient identifier)`; `hospital` is the issuing
    hospital's DID, `service_date` an ISO date `YYYY-MM-DD`, `amount` the
    billed total in currency units; `fraud_flag` marks a claim earlier
    found to be a duplicate or flagged.
    """

    claim_id: str
    treatment: bytes
    claimant: bytes
    hospital: str
    service_date: str
    amount: Decimal | int | float
    fraud_flag: bool = False


@dataclass
class Member:
    """One insurer: its name, its Ed25519 signing key, all its live claims."""

    name: str
    signing_key: SigningKey
    holdings: list[ClaimInput] = field(default_factory=list)


@dataclass(frozen=True)
class ClaimVerdict:
    """The requester's answer for one of its batch claims."""

    claim_id: str
    duplicate: bool | None
    """Another member holds the same treatment (None: not checked)."""
    score: float | None
    """The model's probability; None when `min_parties` refused the sum."""
    flagged: bool
    """`score` is at or over the model's threshold (False without a score)."""
    contributors: int
    """Members holding the claimant (0 when refused: the count is not shown)."""


@dataclass(frozen=True)
class JointResult:
    """Verdicts by claim id and the ledger records of the two jobs."""

    verdicts: dict[str, ClaimVerdict]
    records: list[dict[str, Any]]


class ClaimIndex(Protocol):
    """Where a member keeps its claims for the features (`ScoringEpoch`).

    `_Features` keeps them in memory; a deployment whose epochs outgrow
    memory keeps them in its database (`flows.epoch_store`). Either way it
    is a `mpc_lite.aggregate.FeatureSource`.
    """

    def add(self, claims: Sequence[ClaimInput]) -> list[bytes]:
        """Hold `claims` (one whose id is held is skipped); the claimants of
        those added, in order."""
        ...

    def flag(self, claim_ids: Sequence[str]) -> None:
        """Mark held claims as found fraudulent (unknown ids are ignored)."""
        ...

    def __call__(self, queries: Sequence[Query]) -> list[ClaimantFeatures | None]: ...


class _Features:
    """One member's claims indexed by claimant, in memory (a `ClaimIndex`)."""

    def __init__(self, holdings: Iterable[ClaimInput] = ()) -> None:
        self._rows: dict[bytes, list[list[Any]]] = defaultdict(list)
        self._by_id: dict[str, list[Any]] = {}
        self.add(list(holdings))

    def add(self, claims: Sequence[ClaimInput]) -> list[bytes]:
        added = []
        for claim in claims:
            if claim.claim_id in self._by_id:
                continue
            row = [
                _ordinal(claim.service_date),
                Decimal(claim.amount),
                sys.intern(claim.hospital),  # a few hospitals, many claims
                claim.fraud_flag,
            ]
            self._rows[claim.claimant].append(row)
            self._by_id[claim.claim_id] = row
            added.append(claim.claimant)
        return added

    def flag(self, claim_ids: Sequence[str]) -> None:
        for claim_id in claim_ids:
            row = self._by_id.get(claim_id)
            if row is not None:
                row[3] = True

    def claimants(self) -> list[bytes]:
        return list(self._rows)

    def __call__(self, queries: Sequence[Query]) -> list[ClaimantFeatures | None]:
        return [claimant_features(self._rows.get(c, []), end) for c, end in queries]


def claimant_features(
    rows: Sequence[Sequence[Any]], window_end: int
) -> ClaimantFeatures | None:
    """The features of one claimant's claims at one member (None: it has none).

    `rows` are (service day ordinal, amount, hospital, fraud flag), as a
    `ClaimIndex` keeps them; the window is the module docstring's.
    """
    if not rows:
        return None
    start = window_end - WINDOW_DAYS + 1
    inside = [row for row in rows if start <= row[0] <= window_end]
    return ClaimantFeatures(
        claims_12m=len(inside),
        amount_claimed=sum((Decimal(row[1]) for row in inside), Decimal(0)),
        distinct_hospitals=len({row[2] for row in inside}),
        earlier_flags=sum(1 for row in rows if row[3] and row[0] < window_end),
    )


def _ordinal(service_date: str) -> int:
    try:
        return date.fromisoformat(service_date[:10]).toordinal()
    except (TypeError, ValueError) as exc:
        raise InvalidInput("service_date must be an ISO date YYYY-MM-DD") from exc


def aggregation_job_record(
    job_id: str,
    parties: list[str],
    commitments: Mapping[str, str],
    scored: Mapping[str, list[bool]],
) -> dict[str, Any]:
    """The ledger record of one scoring job (like `audit.job_record`).

    `scored` maps each party to one flag per claim it asked about (True:
    flagged); the result hash is salted and the salt discarded.
    """
    record = audit.job_record(job_id, parties, commitments, scored)
    record["type"] = "mpc_lite.risk_score"
    return record


def joint_fraud_check(
    members: list[Member],
    batch: Mapping[str, list[ClaimInput]],
    *,
    job_id: str,
    transport: Transport | None = None,
    min_parties: int = 3,
    model: RiskModel = DEFAULT_MODEL,
    as_of: date | None = None,
    duplicates: bool = True,
) -> JointResult:
    """Check `batch` against every member's claims; see the module docstring.

    `members`: every insurer taking part (at least two, distinct names),
    each with all its live claims. `batch`: requesting member name to the
    claims it asks about (each is added to the member's holdings if not
    already there, matched by `claim_id`). `job_id`: a fresh id per
    attempt; the two jobs run as `<job_id>/dup` and `<job_id>/score`.
    `transport` defaults to an `InProcessTransport`; `as_of` fixes one
    window end for every claim. `duplicates=False` skips the duplicate
    check (for a caller that runs `mpc_lite.incremental` itself):
    `ClaimVerdict.duplicate` is then None and only the score record is
    returned. Returns a `ClaimVerdict` per batch claim
    and the two job records (`mpc_lite.duplicate_check` and
    `mpc_lite.risk_score`) for the ledger. Raises `InvalidInput` for bad
    members or claims, `ProtocolError` / `PartyUnavailable` (naming party
    and round) when a message is refused or a party drops out.
    """
    # 1. members and their holdings, batch claims included
    names = [member.name for member in members]
    if len(members) < 2 or len(set(names)) != len(names):
        raise InvalidInput("a joint check needs at least two distinctly named members")
    unknown = sorted(set(batch) - set(names))
    if unknown:
        raise InvalidInput(f"batch names {len(unknown)} party(ies) not in members")
    holdings: dict[str, list[ClaimInput]] = {}
    for member in members:
        rows = list(member.holdings)
        known = {claim.claim_id for claim in rows}
        rows.extend(c for c in batch.get(member.name, []) if c.claim_id not in known)
        holdings[member.name] = rows
    transport = transport or InProcessTransport()
    keys = {member.name: member.signing_key for member in members}
    roster = {name: bytes(key.verify_key) for name, key in keys.items()}
    fixed_end = as_of.toordinal() if as_of is not None else None

    # 2. duplicate check over every member's treatments
    records: list[dict[str, Any]] = []
    found = None
    if duplicates:
        found = _duplicates(
            names, holdings, batch, keys, roster, f"{job_id}/dup", transport
        )
        records.append(found[1])

    # 3. secure aggregation of claimant features, scored at each requester
    features = {name: _Features(holdings[name]) for name in names}
    verdicts, score_record = _score(
        keys,
        batch,
        features,
        {name: features[name].claimants() for name in names},
        job_id=f"{job_id}/score",
        transport=transport,
        min_parties=min_parties,
        model=model,
        window_end=fixed_end,
        duplicates=found[0] if found is not None else None,
    )
    logger.debug(
        "joint check %s: %s members, %s batch claims, %s flagged",
        job_id,
        len(names),
        len(verdicts),
        sum(1 for v in verdicts.values() if v.flagged),
    )
    return JointResult(verdicts=verdicts, records=[*records, score_record])


def _score(
    keys: Mapping[str, SigningKey],
    batch: Mapping[str, list[ClaimInput]],
    features: Mapping[str, ClaimIndex],
    claimants: Mapping[str, list[bytes]],
    *,
    job_id: str,
    transport: Transport,
    min_parties: int,
    model: RiskModel,
    window_end: int | None = None,
    duplicates: Mapping[str, list[bool]] | None = None,
    epochs: Mapping[str, TagEpoch] | None = None,
) -> tuple[dict[str, ClaimVerdict], dict[str, Any]]:
    """One aggregation job among `keys`' members, scored at each requester.

    `claimants` lists, per member, the claimant keys to put through the
    tags lap (all it holds; with `epochs`, those it may not have a tag for
    yet). Returns a verdict per batch claim and the job's ledger record.
    """
    names = sorted(keys)
    roster = {name: bytes(key.verify_key) for name, key in keys.items()}
    queries: dict[str, list[Query]] = {name: [] for name in names}
    for name, claims in batch.items():
        queries[name] = [
            (c.claimant, window_end or _ordinal(c.service_date)) for c in claims
        ]
    aggregation = {
        name: AggregationSession(
            name,
            keys[name],
            job_id,
            roster,
            claimants=claimants[name],
            features=features[name],
            queries=queries[name],
            min_parties=min_parties,
            epoch=None if epochs is None else epochs[name],
        )
        for name in names
    }
    run_rounds(aggregation, transport)

    verdicts: dict[str, ClaimVerdict] = {}
    scored: dict[str, list[bool]] = {name: [] for name in names}
    for name, claims in batch.items():
        answers = aggregation[name].result()
        hits = duplicates[name] if duplicates is not None else [None] * len(claims)
        for claim, hit, query in zip(claims, hits, queries[name], strict=True):
            sums = answers[query]
            risk = None if sums is None else model.evaluate(sums)
            verdicts[claim.claim_id] = ClaimVerdict(
                claim_id=claim.claim_id,
                duplicate=hit,
                score=None if risk is None else risk.score,
                flagged=False if risk is None else risk.flagged,
                contributors=0 if risk is None else risk.contributors,
            )
            scored[name].append(verdicts[claim.claim_id].flagged)
    record = aggregation_job_record(
        job_id,
        names,
        {name: aggregation[name].input_commitment() for name in names},
        scored,
    )
    return verdicts, record


class ScoringEpoch:
    """Risk scores for batch after batch, at the cost of each batch.

    `joint_fraud_check` indexes every member's whole holdings and blinds
    every claimant again in each call, so a run of many batches grows with
    the square of its claims. An epoch keeps, per member, the index of its
    claims (`add`, and `flag` for a claim later found fraudulent) and a
    `mpc_lite.aggregate.TagEpoch`, so a `score` call laps only claimants
    new to the epoch and reads features from the kept index. What the
    stable tags add to the leakage is in `mpc_lite.aggregate` ("Epochs");
    start a new epoch on the schedule `mpc_lite.incremental` gives.

    The in-process driver holds every member's state, as
    `joint_fraud_check` does; in a deployment each member keeps its own.
    `indexes` and `tags` give, per member, where it keeps its claims and
    its claimants' tags (in memory for a member not named).
    """

    def __init__(
        self,
        members: Mapping[str, SigningKey],
        *,
        transport: Transport | None = None,
        min_parties: int = 3,
        model: RiskModel = DEFAULT_MODEL,
        indexes: Mapping[str, ClaimIndex] | None = None,
        tags: Mapping[str, ClaimantTags] | None = None,
    ) -> None:
        if len(members) < 2:
            raise InvalidInput("a scoring epoch needs at least two members")
        if min_parties < 2:
            raise InvalidInput("min_parties must be at least 2")
        self._keys = dict(members)
        indexes, tags = indexes or {}, tags or {}
        self._features: dict[str, ClaimIndex] = {
            name: indexes.get(name) or _Features() for name in members
        }
        self._tags = {name: TagEpoch(tags.get(name)) for name in members}
        self._fresh: dict[str, list[bytes]] = {name: [] for name in members}
        self._transport = transport or InProcessTransport()
        self._min_parties = min_parties
        self._model = model

    def add(self, name: str, claims: list[ClaimInput]) -> None:
        """Hold `claims` as `name`'s (a claim id already held is skipped)."""
        if name not in self._features:
            raise InvalidInput("claims added for a party outside the epoch")
        self._fresh[name].extend(self._features[name].add(claims))

    def flag(self, name: str, claim_ids: Sequence[str]) -> None:
        """Count `name`'s claims `claim_ids` among their claimants' earlier flags."""
        self._features[name].flag(claim_ids)

    def score(
        self, batch: Mapping[str, list[ClaimInput]], *, job_id: str
    ) -> JointResult:
        """Score `batch` (requester to its claims, added if new) like
        `joint_fraud_check(duplicates=False)`; one `mpc_lite.risk_score`
        record. On `ProtocolError` / `PartyUnavailable` nothing is lost:
        the next call laps what this one could not.
        """
        unknown = sorted(set(batch) - set(self._keys))
        if unknown:
            raise InvalidInput(f"batch names {len(unknown)} party(ies) not in members")
        # A caller that added the batch already (the claims flow does) pays
        # one lookup per claim here for nothing.
        for name, claims in batch.items():
            self.add(name, claims)
        verdicts, record = _score(
            self._keys,
            batch,
            self._features,
            self._fresh,
            job_id=job_id,
            transport=self._transport,
            min_parties=self._min_parties,
            model=self._model,
            epochs=self._tags,
        )
        self._fresh = {name: [] for name in self._keys}
        return JointResult(verdicts=verdicts, records=[record])


def _duplicates(
    names: list[str],
    holdings: dict[str, list[ClaimInput]],
    batch: Mapping[str, list[ClaimInput]],
    keys: dict[str, SigningKey],
    roster: dict[str, bytes],
    dup_job: str,
    transport: Transport,
) -> tuple[dict[str, list[bool]], dict[str, Any]]:
    """One `mpc_lite.psi` job: flags per batch claim, and its job record."""
    parties = {
        name: Party(
            name,
            [c.treatment for c in holdings[name]],
            signing_key=keys[name],
            queries=[c.treatment for c in batch.get(name, [])],
        )
        for name in names
    }
    askers = [name for name in names if batch.get(name)]
    sessions = {
        name: party.open_session(dup_job, roster, askers=askers)
        for name, party in parties.items()
    }
    run_rounds(sessions, transport)
    duplicates = {name: sessions[name].result() for name in names}
    dup_record = audit.job_record(
        dup_job,
        names,
        {name: party.input_commitment() for name, party in parties.items()},
        duplicates,
    )
    return duplicates, dup_record
