"""Party services: the joint fraud check between insurers over HTTP.

Each insurer runs a `PartyNode` behind its own web service, mounted with
`party_router(node)` (a FastAPI `APIRouter`); the nodes talk to each other
through `HttpTransport` (httpx). A coordinator, normally the requesting
insurer, drives one job with `RemoteJob`:

    POST /mpc/jobs                       start: the job spec (JSON)
    POST /mpc/jobs/{job}/send/{round}    the node seals and sends its messages
    POST /mpc/jobs/{job}/check/{round}   the node checks what it received
    POST /mpc/jobs/{job}/result          the node's own answer (owner only)
    POST /mpc/inbox                      a sealed protocol message (bytes)

Protocol messages are `mpc_lite.transport` envelopes: signed by the
sender's member key and bound to job id, round, sender and recipient; the
receiving session refuses a replayed, re-ordered or foreign one. Control
requests (the first four) carry `X-Mpc-Member` and `X-Mpc-Signature`, an
Ed25519 signature over `mpc_lite/control/v1`, the method, the path and the
body: a node obeys only members of its roster, and returns a result only
to itself (its own key), so a result never leaves the insurer that owns it.

A refused message or missing party comes back as HTTP 409 with the error
kind, message, party and round; `RemoteJob` raises the same
`ProtocolError` or `PartyUnavailable` the in-process run would. An
unreachable node raises `PartyUnavailable` naming it and the round.

NOTE: control requests are not replay-protected beyond "a job id starts
once"; a replayed send or check fails harmlessly (its streams are gone).
Use TLS between services: the envelopes are signed, not encrypted, and the
blinded tags and shares in them are only safe from the parties of the job
(as `mpc_lite.psi` and `mpc_lite.aggregate` state), not from an
eavesdropper who could combine them. Transport encryption is the
deployment's job.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from starlette.concurrency import run_in_threadpool

from mpc_lite.aggregate import AggregationSession
from mpc_lite.errors import InvalidInput, MpcError, PartyUnavailable, ProtocolError
from mpc_lite.fraud import ClaimInput, _Features, _ordinal
from mpc_lite.psi import Party, PsiSession
from mpc_lite.score import DEFAULT_MODEL, RiskModel
from mpc_lite.transport import SealedMessage, Transport

__all__ = [
    "HttpTransport",
    "JobSpec",
    "PartyNode",
    "RemoteJob",
    "fetch_result",
    "party_router",
]

logger = logging.getLogger(__name__)

_CONTROL_TAG = b"mpc_lite/control/v1\n"
_KINDS = ("duplicate", "score")


class HttpTransport(Transport):
    """Sends sealed messages to the recipient's party service over HTTP.

    `endpoints` maps member names to base URLs (the router's mount point).
    Received messages are handed in by the local party service through
    `deliver` and drained by `receive`. A refused connection, timeout or
    error status raises `PartyUnavailable` naming the recipient and round.
    """

    def __init__(
        self,
        endpoints: Mapping[str, str],
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._endpoints = dict(endpoints)
        self._client = client or httpx.Client(timeout=timeout)
        self._inbox: dict[str, list[SealedMessage]] = defaultdict(list)
        self._lock = threading.Lock()

    def send(self, message: SealedMessage) -> None:
        envelope = message.unverified_envelope()
        recipient, round_ = envelope.recipient, envelope.round
        url = self._endpoints.get(recipient)
        if url is None:
            raise PartyUnavailable(
                f"party {recipient!r} has no endpoint (round {round_})",
                party=recipient,
                round=round_,
            )
        try:
            response = self._client.post(
                f"{url}/mpc/inbox",
                content=message.to_bytes(),
                headers={"content-type": "application/octet-stream"},
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise PartyUnavailable(
                f"party {recipient!r} is unreachable (round {round_})",
                party=recipient,
                round=round_,
            ) from exc

    def close(self) -> None:
        """Close the HTTP client (also one passed in)."""
        self._client.close()

    def deliver(self, message: SealedMessage) -> None:
        """Queue a message that arrived for a local party."""
        recipient = message.unverified_envelope().recipient
        with self._lock:
            self._inbox[recipient].append(message)

    def receive(self, recipient: str) -> list[SealedMessage]:
        with self._lock:
            return self._inbox.pop(recipient, [])


@dataclass(frozen=True)
class JobSpec:
    """What a node needs to start its side of a job.

    `kind` is "duplicate" (`mpc_lite.psi`) or "score" (`mpc_lite.aggregate`
    and `mpc_lite.score`); `parties` the member names taking part; `batch`
    the claim ids this node asks about (empty for a node that only
    contributes); `as_of` an ISO date fixing every window end.
    """

    job_id: str
    kind: str
    parties: tuple[str, ...]
    batch: tuple[str, ...] = ()
    min_parties: int = 3
    as_of: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "job_id": self.job_id,
                "kind": self.kind,
                "parties": list(self.parties),
                "batch": list(self.batch),
                "min_parties": self.min_parties,
                "as_of": self.as_of,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> JobSpec:
        try:
            raw = json.loads(data)
            spec = cls(
                job_id=str(raw["job_id"]),
                kind=str(raw["kind"]),
                parties=tuple(str(p) for p in raw["parties"]),
                batch=tuple(str(c) for c in raw.get("batch", [])),
                min_parties=int(raw.get("min_parties", 3)),
                as_of=raw.get("as_of"),
            )
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise InvalidInput("the job spec is malformed") from exc
        if spec.kind not in _KINDS:
            raise InvalidInput(f"a job kind must be one of {list(_KINDS)}")
        return spec


class _Job:
    def __init__(
        self,
        spec: JobSpec,
        session: PsiSession | AggregationSession,
        transport: HttpTransport,
        claims: list[ClaimInput],
    ) -> None:
        self.spec = spec
        self.session = session
        self.transport = transport
        self.claims = claims
        self.lock = threading.Lock()


class PartyNode:
    """One insurer's side of every job: name, key, roster, peers, claims.

    `roster` maps every member name to its Ed25519 public key; `endpoints`
    maps member names to their service URLs; `holdings` returns the
    insurer's live claims when a job starts (a list is taken as is).
    `model` is the consortium's public risk model.
    """

    def __init__(
        self,
        name: str,
        signing_key: SigningKey,
        roster: Mapping[str, bytes],
        endpoints: Mapping[str, str],
        holdings: Callable[[], list[ClaimInput]] | list[ClaimInput],
        *,
        model: RiskModel = DEFAULT_MODEL,
        client: httpx.Client | None = None,
    ) -> None:
        if name not in roster:
            raise InvalidInput(f"party {name!r} is not in the roster")
        self.name = name
        self._key = signing_key
        self._roster = dict(roster)
        self._endpoints = dict(endpoints)
        self._holdings = holdings if callable(holdings) else (lambda: list(holdings))
        self._model = model
        self._client = client or httpx.Client(timeout=30.0)
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the node's HTTP client and forget every open job."""
        self._jobs.clear()
        self._client.close()

    # -- control -------------------------------------------------------------

    def authorise(self, member: str, signature: str, payload: bytes) -> str:
        """Return `member` if it signed `payload`; raise `ProtocolError` else."""
        key = self._roster.get(member)
        try:
            if key is None:
                raise ValueError("not a member")
            VerifyKey(key).verify(_CONTROL_TAG + payload, bytes.fromhex(signature))
        except (BadSignatureError, ValueError) as exc:
            raise ProtocolError(
                f"control request from {member!r} refused by {self.name!r}: "
                "not signed by a member",
                party=member,
                round=0,
            ) from exc
        return member

    def start(self, spec: JobSpec) -> None:
        """Open this node's session for `spec`."""
        roster = {
            name: self._roster[name] for name in spec.parties if name in self._roster
        }
        if len(roster) != len(spec.parties) or self.name not in roster:
            raise InvalidInput("the job's parties must be roster members, this one too")
        if any(n not in self._endpoints for n in spec.parties if n != self.name):
            raise InvalidInput("a party of the job has no endpoint here")
        claims = self._holdings()
        by_id = {claim.claim_id: claim for claim in claims}
        missing = [claim_id for claim_id in spec.batch if claim_id not in by_id]
        if missing:
            raise InvalidInput(f"{len(missing)} batch claim(s) are not held here")
        transport = HttpTransport(
            {n: self._endpoints[n] for n in spec.parties if n != self.name},
            client=self._client,
        )
        session: PsiSession | AggregationSession
        if spec.kind == "duplicate":
            party = Party(
                self.name,
                [c.treatment for c in claims],
                signing_key=self._key,
                queries=[by_id[claim_id].treatment for claim_id in spec.batch],
            )
            session = party.open_session(spec.job_id, roster)
        else:
            features = _Features(claims)
            fixed = _ordinal(spec.as_of) if spec.as_of else None
            batch = [by_id[claim_id] for claim_id in spec.batch]
            session = AggregationSession(
                self.name,
                self._key,
                spec.job_id,
                roster,
                claimants=features.claimants(),
                features=features,
                queries=[
                    (c.claimant, fixed or _ordinal(c.service_date)) for c in batch
                ],
                min_parties=spec.min_parties,
            )
        with self._lock:
            if spec.job_id in self._jobs:
                raise InvalidInput("the job has already started here")
            self._jobs[spec.job_id] = _Job(spec, session, transport, claims)
        logger.debug("%s started %s job %s", self.name, spec.kind, spec.job_id)

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise InvalidInput("no such job at this party")
        return job

    def send(self, job_id: str, round_: int) -> None:
        job = self._job(job_id)
        with job.lock:
            for message in job.session.outgoing(round_):
                job.transport.send(message)

    def check(self, job_id: str, round_: int) -> None:
        job = self._job(job_id)
        with job.lock:
            for message in job.transport.receive(self.name):
                job.session.accept(message)
            job.session.require_round(round_)

    def deliver(self, data: bytes) -> None:
        message = SealedMessage.from_bytes(data)
        job = self._job(message.unverified_envelope().job_id)
        job.transport.deliver(message)

    def result(self, job_id: str) -> dict[str, Any]:
        """This node's answer for its batch claims, by claim id."""
        job = self._job(job_id)
        with job.lock:
            if isinstance(job.session, PsiSession):
                flags = job.session.result()
                answer: dict[str, Any] = dict(zip(job.spec.batch, flags, strict=True))
            else:
                sums = job.session.result()
                fixed = _ordinal(job.spec.as_of) if job.spec.as_of else None
                by_claim = {c.claim_id: c for c in job.claims}
                answer = {}
                for claim_id in job.spec.batch:
                    claim = by_claim[claim_id]
                    query = (claim.claimant, fixed or _ordinal(claim.service_date))
                    found = sums[query]
                    risk = None if found is None else self._model.evaluate(found)
                    answer[claim_id] = {
                        "score": None if risk is None else risk.score,
                        "flagged": False if risk is None else risk.flagged,
                    }
            del self._jobs[job_id]
        return answer


def _error_response(exc: MpcError) -> HTTPException:
    detail = {
        "kind": type(exc).__name__,
        "message": str(exc),
        "party": getattr(exc, "party", None),
        "round": getattr(exc, "round", None),
    }
    return HTTPException(status_code=409, detail=detail)


def party_router(node: PartyNode) -> APIRouter:
    """The FastAPI routes of one party service (see the module docstring)."""
    router = APIRouter()

    async def control(request: Request) -> tuple[str, bytes]:
        body = await request.body()
        payload = f"{request.method} {request.url.path}\n".encode() + body
        member = request.headers.get("x-mpc-member", "")
        signature = request.headers.get("x-mpc-signature", "")
        try:
            node.authorise(member, signature, payload)
        except ProtocolError as exc:
            raise HTTPException(status_code=403, detail=str(exc)) from exc
        return member, body

    async def run(call: Callable[[], Any]) -> Any:
        try:
            return await run_in_threadpool(call)
        except MpcError as exc:
            raise _error_response(exc) from exc

    @router.post("/mpc/jobs")
    async def start(request: Request) -> dict[str, str]:
        _, body = await control(request)
        spec = await run(lambda: JobSpec.from_json(body))
        await run(lambda: node.start(spec))
        return {"job_id": spec.job_id}

    @router.post("/mpc/jobs/{job_id:path}/send/{round_}")
    async def send(job_id: str, round_: int, request: Request) -> dict[str, str]:
        await control(request)
        await run(lambda: node.send(job_id, round_))
        return {"status": "sent"}

    @router.post("/mpc/jobs/{job_id:path}/check/{round_}")
    async def check(job_id: str, round_: int, request: Request) -> dict[str, str]:
        await control(request)
        await run(lambda: node.check(job_id, round_))
        return {"status": "checked"}

    @router.post("/mpc/jobs/{job_id:path}/result")
    async def result(job_id: str, request: Request) -> dict[str, Any]:
        member, _ = await control(request)
        if member != node.name:
            raise HTTPException(
                status_code=403, detail="results go to their owner only"
            )
        answer: dict[str, Any] = await run(lambda: node.result(job_id))
        return answer

    @router.post("/mpc/inbox", status_code=202)
    async def inbox(request: Request) -> Response:
        body = await request.body()
        await run(lambda: node.deliver(body))
        return Response(status_code=202)

    return router


class RemoteJob:
    """Drive one job across party services, as member `member`.

    `endpoints` maps every party of `spec_for` to its service URL;
    `spec_for(name)` gives each party's `JobSpec` (the same job, with that
    party's own batch). Raises the `ProtocolError` / `PartyUnavailable` a
    node reports, naming party and round.
    """

    def __init__(
        self,
        endpoints: Mapping[str, str],
        specs: Mapping[str, JobSpec],
        *,
        member: str,
        signing_key: SigningKey,
        client: httpx.Client | None = None,
    ) -> None:
        kinds = {(spec.job_id, spec.kind, spec.parties) for spec in specs.values()}
        if len(kinds) != 1 or sorted(specs) != sorted(endpoints):
            raise InvalidInput("every party needs a spec of the same job")
        self._endpoints = dict(endpoints)
        self._specs = dict(specs)
        first = next(iter(specs.values()))
        self.job_id = first.job_id
        n = len(first.parties)
        self.rounds = n + 1 if first.kind == "duplicate" else n + 3
        self._member = member
        self._key = signing_key
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=60.0)

    def _post(self, name: str, path: str, body: bytes = b"") -> Any:
        payload = f"POST {path}\n".encode() + body
        signature = self._key.sign(_CONTROL_TAG + payload).signature.hex()
        try:
            response = self._client.post(
                self._endpoints[name] + path,
                content=body,
                headers={"x-mpc-member": self._member, "x-mpc-signature": signature},
            )
        except httpx.HTTPError as exc:
            step, _, number = path.rpartition("/")
            round_ = int(number) if number.isdigit() else None
            where = f"round {round_}" if round_ is not None else "control request"
            raise PartyUnavailable(
                f"party {name!r} is unreachable ({where})", party=name, round=round_
            ) from exc
        if response.status_code == 409:
            detail = response.json()["detail"]
            kind = ProtocolError if detail["kind"] == "ProtocolError" else None
            if kind is not None:
                raise ProtocolError(
                    detail["message"], party=detail["party"], round=detail["round"]
                )
            if detail["kind"] == "PartyUnavailable":
                raise PartyUnavailable(
                    detail["message"], party=detail["party"], round=detail["round"]
                )
            raise MpcError(f"party {name!r}: {detail['message']}")
        if response.status_code != 200:
            raise MpcError(f"party {name!r} answered HTTP {response.status_code}")
        return response.json()

    def close(self) -> None:
        """Close the HTTP client if this job created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> RemoteJob:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self) -> None:
        for name in sorted(self._specs):
            self._post(name, "/mpc/jobs", self._specs[name].to_json())

    def round(self, round_: int) -> None:
        """Every node sends its round-`round_` messages, then checks them."""
        for name in sorted(self._endpoints):
            self._post(name, f"/mpc/jobs/{self.job_id}/send/{round_}")
        for name in sorted(self._endpoints):
            self._post(name, f"/mpc/jobs/{self.job_id}/check/{round_}")

    def run(self) -> None:
        self.start()
        for round_ in range(1, self.rounds + 1):
            self.round(round_)

    def result(self) -> dict[str, Any]:
        """The coordinator's own node's answer (results go to their owner)."""
        answer: dict[str, Any] = self._post(
            self._member, f"/mpc/jobs/{self.job_id}/result"
        )
        return answer


def fetch_result(
    endpoint: str,
    job_id: str,
    *,
    member: str,
    signing_key: SigningKey,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """Ask member `member`'s own service for its answer to `job_id`."""
    with RemoteJob(
        {member: endpoint},
        {member: JobSpec(job_id, "duplicate", (member,))},
        member=member,
        signing_key=signing_key,
        client=client,
    ) as job:
        return job.result()
