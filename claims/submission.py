"""Submitting a claim: the insurer's challenge, the claimant's presentation.

The claimant asks the insurer for a challenge, wraps the treatment credential
in a Verifiable Presentation signed by the holder key with that challenge and
the insurer's domain, adds consent to the joint fraud check, and submits.

The insurer's `receive` checks only what it must before storing anything: the
shape of the submission, and that the challenge named is one it issued, still
fresh, and never used before (a replayed submission is refused here). Whether
the presentation really carries that challenge, and everything about the
credential, is the flow's verify step: a claim that fails there is stored and
ends `rejected` with its reason, so the claimant can see why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from datetime import timedelta
from typing import Any

import rfc8785

from claims.consortium import Consortium
from claims.errors import ClaimsError
from claims.states import ClaimState
from claims.store import Challenge, Claim, ClaimEvent
from credentials.holder import present
from credentials.keys import Ed25519Key

__all__ = [
    "CHALLENGE_TTL",
    "SubmissionRefused",
    "issue_challenge",
    "make_submission",
    "receive",
]

logger = logging.getLogger(__name__)

CHALLENGE_TTL = timedelta(minutes=10)


class SubmissionRefused(ClaimsError):
    """Raised when an insurer refuses a submission before storing it."""


def issue_challenge(consortium: Consortium, insurer_id: str) -> dict[str, str]:
    """A fresh single-use challenge and the insurer's presentation domain."""
    insurer = consortium.member(insurer_id)
    if insurer.kind != "insurer" or insurer.domain is None:
        raise SubmissionRefused(f"{insurer_id} is not an insurer")
    now = consortium.clock()
    nonce = secrets.token_urlsafe(24)
    with consortium.store.session() as session:
        session.add(
            Challenge(
                nonce=nonce,
                insurer_id=insurer_id,
                issued_at=now,
                expires_at=now + CHALLENGE_TTL,
            )
        )
    return {
        "challenge": nonce,
        "domain": insurer.domain,
        "expires": (now + CHALLENGE_TTL).isoformat(),
    }


def make_submission(
    credential: dict[str, Any],
    holder: Ed25519Key,
    *,
    challenge: str,
    domain: str,
    signed_challenge: str | None = None,
    consent: bool = True,
    created: Any = None,
) -> dict[str, Any]:
    """The claimant's submission: a presentation bound to the insurer's challenge.

    Args:
        credential: the treatment credential from the claimant's wallet.
        holder: the claimant's wallet key (the credential's subject).
        challenge: the challenge the insurer issued for this submission.
        domain: the insurer's presentation domain.
        signed_challenge: the challenge actually put in the presentation's
            proof; omitted, `challenge`. Only tests and the demo's bad-input
            cases set it to something else.
        consent: whether the claimant consents to the joint fraud check.
        created: the proof's creation time; omitted, now.
    """
    from claims.store import utcnow

    presentation = present(
        [credential],
        holder,
        challenge=signed_challenge or challenge,
        domain=domain,
        created=created or utcnow(),
    )
    return {
        "challenge": challenge,
        "presentation": presentation,
        "consent": {"jointFraudCheck": consent},
    }


def _shape_error(submission: Any) -> str | None:
    if not isinstance(submission, dict):
        return "the submission is not a JSON object"
    if not isinstance(submission.get("challenge"), str):
        return "submission.challenge is missing or not a string"
    presentation = submission.get("presentation")
    if not isinstance(presentation, dict):
        return "submission.presentation is missing or not an object"
    if not isinstance(presentation.get("holder"), str):
        return "submission.presentation.holder is missing or not a string"
    consent = submission.get("consent")
    if not isinstance(consent, dict) or not isinstance(
        consent.get("jointFraudCheck"), bool
    ):
        return "submission.consent.jointFraudCheck is missing or not true/false"
    return None


def submission_hash(submission: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(submission)).hexdigest()


def receive(
    consortium: Consortium, insurer_id: str, submission: dict[str, Any]
) -> Claim:
    """Store a submission as a `submitted` claim, or refuse it.

    Raises `SubmissionRefused` (nothing stored) when the submission is not
    shaped like one, or names a challenge this insurer did not issue, that has
    expired, or that was already used.
    """
    # 1. The shape, before anything is looked up.
    problem = _shape_error(submission)
    if problem is not None:
        raise SubmissionRefused(problem)
    try:
        digest = submission_hash(submission)
    except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
        raise SubmissionRefused(
            "the submission cannot be canonicalised (RFC 8785)"
        ) from exc
    now = consortium.clock()

    with consortium.store.session() as session:
        # 2. The challenge: issued by this insurer, fresh, and unused.
        challenge = session.get(Challenge, submission["challenge"])
        if challenge is None or challenge.insurer_id != insurer_id:
            raise SubmissionRefused(f"the challenge was not issued by {insurer_id}")
        if challenge.used_at is not None:
            raise SubmissionRefused(
                "the challenge was already used: submissions cannot be replayed"
            )
        if challenge.expires_at < now:
            raise SubmissionRefused(
                "the challenge has expired", remedy="ask the insurer for a new one"
            )
        challenge.used_at = now
        session.add(challenge)

        # 3. The claim, as submitted.
        claim = Claim(
            id=str(uuid.uuid4()),
            insurer_id=insurer_id,
            state=ClaimState.SUBMITTED.value,
            claimant_did=submission["presentation"]["holder"],
            challenge=challenge.nonce,
            submission=json.dumps(submission, separators=(",", ":")),
            submission_hash=digest,
            submitted_at=now,
            updated_at=now,
        )
        session.add(claim)
        session.add(
            ClaimEvent(claim_id=claim.id, state=ClaimState.SUBMITTED.value, at=now)
        )
    logger.debug("insurer %s received claim %s", insurer_id, claim.id)
    return claim
