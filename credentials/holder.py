"""The holder role: a claimant presents credentials to one insurer."""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from typing import Any

from credentials.data_integrity import add_proof
from credentials.errors import MalformedDocument
from credentials.keys import Ed25519Key
from credentials.validate import V2_CONTEXT

__all__ = ["present"]

logger = logging.getLogger(__name__)


def present(
    credentials: list[dict[str, Any]],
    key: Ed25519Key,
    *,
    challenge: str,
    domain: str,
    created: datetime,
) -> dict[str, Any]:
    """A Verifiable Presentation (VC Data Model 2.0 section 4.13) of `credentials`.

    `holder` is `key.did`; the proof (purpose `authentication`) binds the
    presentation to the insurer's `challenge` and `domain` so it cannot be
    replayed elsewhere (Data Integrity section 2.1 on challenge and domain).
    Raises `MalformedDocument` for an empty list or an empty challenge/domain.
    """
    if not credentials:
        raise MalformedDocument("a presentation needs at least one credential")
    if not challenge or not domain:
        raise MalformedDocument("a presentation needs a challenge and a domain")
    presentation = {
        "@context": [V2_CONTEXT],
        "type": ["VerifiablePresentation"],
        "holder": key.did,
        "verifiableCredential": copy.deepcopy(list(credentials)),
    }
    logger.debug("presenting %d credential(s) as %s", len(credentials), key.did)
    return add_proof(
        presentation,
        key,
        proof_purpose="authentication",
        created=created,
        challenge=challenge,
        domain=domain,
    )
