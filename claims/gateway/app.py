"""The insurer's gateway: claimants sign in, submit claims and follow them.

    POST /auth/challenge          a sign-in nonce for a did:key
    POST /auth/token              a bearer token for a signed nonce
    POST /challenges              a submission challenge (claimant signed in)
    POST /claims                  a submission: {challenge, presentation, consent}
    GET  /claims                  my claims at this insurer
    GET  /claims/{id}             one claim, with its timeline
    GET  /claims/{id}/receipt     the ledger receipt of a settled claim
    GET  /claims/{id}/claim-response   the FHIR ClaimResponse, once priced
    GET  /ledger/keys             the consortium's ledger trust file

Every refusal is a 4xx with `{"error": code, "detail": message}`. A claimant
sees only claims whose presentation they signed: another's claim id answers
404, exactly like an unknown one, so ids cannot be probed. The outcome of the
joint fraud check is never shown: a flagged claim reads as "in review".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claims.consortium import Consortium
from claims.errors import ClaimsError, NotFound
from claims.gateway._auth import Authority
from claims.gateway.errors import GatewayError
from claims.states import ClaimState
from claims.store import Claim, ClaimEvent, Settlement, from_cents
from claims.submission import SubmissionRefused, issue_challenge, receive
from credentials.data_integrity import verify_proof
from credentials.errors import CredentialError
from ledger.errors import LedgerError

__all__ = ["BODY_LIMIT", "TOKEN_TTL", "ClaimView", "claim_view", "create_app"]

logger = logging.getLogger(__name__)

BODY_LIMIT = 1024 * 1024
"""Largest request body accepted, in bytes (1 MiB)."""

TOKEN_TTL = timedelta(minutes=15)

IN_REVIEW_NOTE = "a person at the insurer is reviewing this claim"


# -- request and response bodies ---------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignInRequest(_Strict):
    did: StrictStr = Field(max_length=200, description="The claimant's did:key.")


class SignInChallenge(BaseModel):
    nonce: str
    audience: str = Field(description="The insurer's domain, signed into the message.")
    message: str = Field(
        description="What to sign (UTF-8): tag, audience, DID and nonce, one a line."
    )
    expires: datetime


class TokenRequest(_Strict):
    did: StrictStr = Field(max_length=200)
    nonce: StrictStr = Field(max_length=200)
    signature: StrictStr = Field(
        max_length=200,
        description="Ed25519 over the message: multibase (z or u) or base64.",
    )


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires: datetime
    did: str


class SubmissionChallenge(BaseModel):
    challenge: str
    domain: str
    expires: str


class Consent(_Strict):
    jointFraudCheck: StrictBool  # noqa: N815 - the submission's JSON name


class Submission(BaseModel):
    challenge: StrictStr = Field(max_length=200)
    presentation: dict[str, Any]
    consent: Consent


class TimelineEntry(BaseModel):
    state: str
    at: datetime
    reason: str | None = None


class ClaimView(BaseModel):
    id: str
    insurer: str
    state: str
    in_review: bool = Field(description="A person decides; the reason stays private.")
    reason: str | None = None
    currency: str | None = None
    billed: str | None = Field(None, description="Decimal amount, as text.")
    payable: str | None = None
    submitted_at: datetime
    updated_at: datetime
    settled_at: datetime | None = None
    receipt: bool = Field(description="Whether GET .../receipt has one to give.")
    timeline: list[TimelineEntry] | None = None


class ErrorBody(BaseModel):
    error: str
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422)
}


# -- body limit --------------------------------------------------------------


class _BodyLimit:
    """Read each request body before the app does; refuse one over `limit`."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        response = _error(
            413, "body_too_large", f"the request body is over {self.limit} bytes"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(response.body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


_bearer = HTTPBearer(auto_error=False, description="From POST /auth/token.")


def _claimant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The DID the request's bearer token was issued to (401 otherwise)."""
    if credentials is None or not credentials.credentials.strip():
        raise GatewayError(
            401, "no_token", "sign in first: send Authorization: Bearer <token>"
        )
    authority: Authority = request.app.state.authority
    return authority.subject(credentials.credentials.strip())


Claimant = Annotated[str, Depends(_claimant)]


# -- the app -----------------------------------------------------------------


def create_app(
    consortium: Consortium,
    insurer_id: str,
    *,
    extra_routers: Iterable[APIRouter] = (),
    token_ttl: timedelta = TOKEN_TTL,
    body_limit: int = BODY_LIMIT,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The gateway of `insurer_id` over one workspace.

    Args:
        consortium: the workspace the claims are stored in.
        insurer_id: the insurer this gateway speaks for.
        extra_routers: more routes to mount (party or witness endpoints).
        token_ttl: how long a sign-in token is good for.
        body_limit: the largest request body, in bytes.
        clock: "now" for sign-in and token expiry; omitted, the consortium's.

    Raises `ConfigError` or `NotFound` when `insurer_id` is not an insurer.
    """
    insurer = consortium.member(insurer_id)
    if insurer.kind != "insurer" or insurer.domain is None:
        raise NotFound(f"{insurer_id} is not an insurer")
    authority = Authority(
        insurer.domain, clock or consortium.clock, token_ttl=token_ttl
    )
    app = FastAPI(
        title=f"{insurer.name} claims gateway",
        version="1",
        description=__doc__,
        responses=_ERRORS,
    )
    app.state.consortium = consortium
    app.state.insurer_id = insurer_id
    app.state.authority = authority
    app.add_middleware(_BodyLimit, limit=body_limit)
    _install_error_handlers(app)

    # -- sign-in ---------------------------------------------------------

    @app.post("/auth/challenge", tags=["sign-in"])
    def sign_in_challenge(body: SignInRequest) -> SignInChallenge:
        """A single-use nonce to sign with the key of `did`."""
        from claims.gateway._auth import login_message

        nonce, expires = authority.challenge(body.did)
        message = login_message(authority.audience, body.did, nonce).decode()
        return SignInChallenge(
            nonce=nonce, audience=authority.audience, message=message, expires=expires
        )

    @app.post("/auth/token", tags=["sign-in"])
    def sign_in(body: TokenRequest) -> Token:
        """A short-lived bearer token, once the signed nonce verifies."""
        token, expires = authority.token(body.did, body.nonce, body.signature)
        logger.debug("signed in %s", body.did)
        return Token(access_token=token, expires=expires, did=body.did)

    # -- claims ----------------------------------------------------------

    @app.post("/challenges", tags=["claims"])
    def submission_challenge(did: Claimant) -> SubmissionChallenge:
        """A challenge to bind the next presentation to (single use)."""
        return SubmissionChallenge(**issue_challenge(consortium, insurer_id))

    @app.post("/claims", status_code=201, tags=["claims"])
    def submit(body: Submission, did: Claimant) -> ClaimView:
        """Submit a claim: a presentation signed by the signed-in claimant."""
        submission = body.model_dump()
        presentation = submission["presentation"]
        if presentation.get("holder") != did:
            raise GatewayError(
                403,
                "not_your_presentation",
                "the presentation's holder is not the signed-in claimant",
            )
        try:
            signer = verify_proof(presentation, expected_purpose="authentication")
        except Exception as exc:  # noqa: BLE001 - untrusted input, any fault
            raise GatewayError(
                400, "bad_presentation_proof", f"the presentation proof: {exc}"
            ) from exc
        if signer != did:
            raise GatewayError(
                403,
                "not_your_presentation",
                "the presentation is signed by someone other than the claimant",
            )
        claim = receive(consortium, insurer_id, submission)
        return claim_view(consortium, claim, timeline=True)

    @app.get("/claims", tags=["claims"])
    def my_claims(
        did: Claimant,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[ClaimView]:
        """My claims at this insurer, newest first."""
        with Session(consortium.store.engine) as session:
            claims = session.exec(
                select(Claim)
                .where(Claim.insurer_id == insurer_id, Claim.claimant_did == did)
                .order_by(Claim.submitted_at.desc())  # type: ignore[attr-defined]
                .limit(limit)
            ).all()
            return [claim_view(consortium, claim) for claim in claims]

    @app.get("/claims/{claim_id}", tags=["claims"])
    def one_claim(claim_id: str, did: Claimant) -> ClaimView:
        """One of my claims, with the time of each state it went through."""
        claim = _mine(consortium, insurer_id, claim_id, did)
        return claim_view(consortium, claim, timeline=True)

    @app.get("/claims/{claim_id}/receipt", tags=["claims"])
    def receipt(claim_id: str, did: Claimant) -> dict[str, Any]:
        """The ledger receipt of a settled claim (verify it offline)."""
        claim = _mine(consortium, insurer_id, claim_id, did)
        with Session(consortium.store.engine) as session:
            row = session.exec(
                select(Settlement).where(Settlement.claim_id == claim.id)
            ).first()
        if row is None:
            raise GatewayError(
                404, "no_receipt", f"claim {claim.id} is {claim.state}, not settled"
            )
        try:
            return consortium.ledger.receipt(row.ledger_index)
        except LedgerError as exc:
            raise GatewayError(
                404, "receipt_not_ready", "the settlement is not checkpointed yet"
            ) from exc

    @app.get("/claims/{claim_id}/claim-response", tags=["claims"])
    def claim_response(claim_id: str, did: Claimant) -> dict[str, Any]:
        """The FHIR R4 ClaimResponse, once the claim is priced."""
        claim = _mine(consortium, insurer_id, claim_id, did)
        if claim.claim_response is None:
            raise GatewayError(
                404, "no_claim_response", f"claim {claim.id} is not priced yet"
            )
        data: dict[str, Any] = json.loads(claim.claim_response)
        return data

    @app.get("/ledger/keys", tags=["ledger"])
    def ledger_keys() -> dict[str, Any]:
        """The ledger trust file: log and witness keys and the quorum.

        Fetched from the gateway it is only as trustworthy as the gateway;
        an auditor takes it from the consortium instead.
        """
        return consortium.trust_file()

    for router in extra_routers:
        app.include_router(router)
    return app


def _mine(consortium: Consortium, insurer_id: str, claim_id: str, did: str) -> Claim:
    with Session(consortium.store.engine) as session:
        claim = session.get(Claim, claim_id)
    if claim is None or claim.insurer_id != insurer_id or claim.claimant_did != did:
        raise GatewayError(404, "claim_not_found", "no such claim of yours here")
    return claim


def _public_reason(state: str, reason: str | None) -> str | None:
    """The reason a claimant may read: a review's reason stays with the insurer."""
    if state == ClaimState.IN_REVIEW.value:
        return IN_REVIEW_NOTE
    return reason


def claim_view(
    consortium: Consortium,
    claim: Claim,
    *,
    timeline: bool = False,
) -> ClaimView:
    """A claim as its claimant may see it (see the module docstring)."""

    def money(value: int | None) -> str | None:
        return None if value is None else str(from_cents(value))

    events: list[ClaimEvent] | None = None
    if timeline:
        with Session(consortium.store.engine) as session:
            events = consortium.store.events(session, claim.id)
    return ClaimView(
        id=claim.id,
        insurer=claim.insurer_id,
        state=claim.state,
        in_review=claim.state == ClaimState.IN_REVIEW.value,
        reason=_public_reason(claim.state, claim.reason),
        currency=claim.currency,
        billed=money(claim.billed_cents),
        payable=money(claim.payable_cents),
        submitted_at=claim.submitted_at,
        updated_at=claim.updated_at,
        settled_at=claim.settled_at,
        receipt=claim.state == ClaimState.SETTLED.value,
        timeline=None
        if events is None
        else [
            TimelineEntry(
                state=e.state, at=e.at, reason=_public_reason(e.state, e.reason)
            )
            for e in events
        ],
    )


# -- errors ------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    """Every refusal as `{"error", "detail"}`; nothing of ours becomes a 500."""

    @app.exception_handler(GatewayError)
    async def gateway_error(_request: Request, exc: GatewayError) -> JSONResponse:
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(SubmissionRefused)
    async def refused(_request: Request, exc: SubmissionRefused) -> JSONResponse:
        return _error(400, "submission_refused", str(exc))

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(ClaimsError)
    async def claims_error(_request: Request, exc: ClaimsError) -> JSONResponse:
        return _error(400, "refused", str(exc))

    @app.exception_handler(CredentialError)
    async def credential_error(_request: Request, exc: CredentialError) -> JSONResponse:
        return _error(400, "bad_credential", str(exc))

    @app.exception_handler(OperationalError)
    async def busy(_request: Request, exc: OperationalError) -> JSONResponse:
        # A locked or unreachable database: nothing was stored, try again.
        logger.debug("store busy: %s", type(exc.orig).__name__)
        response = _error(503, "busy", "the claims store is busy; try again shortly")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return _error(400, "malformed_json", "the request body is not valid JSON")
        detail = "; ".join(
            f"{'.'.join(str(part) for part in p.get('loc', ()))}: {p.get('msg')}"
            for p in problems[:5]
        )
        return _error(422, "invalid_request", detail or "the request is not valid")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(
        _request: Request, exc: StarletteHTTPException
    ) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return _error(exc.status_code, code, str(exc.detail))
