"""The issuer role: a hospital signs a credential about a treatment."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from credentials._codec import format_datetime
from credentials.data_integrity import add_proof
from credentials.errors import MalformedDocument
from credentials.keys import Ed25519Key
from credentials.validate import V2_CONTEXT, validate_credential

__all__ = ["issue_credential"]

logger = logging.getLogger(__name__)


def issue_credential(
    key: Ed25519Key,
    *,
    credential_id: str,
    subject: dict[str, Any],
    valid_from: datetime,
    valid_until: datetime | None,
    status: dict[str, Any] | None,
    types: Sequence[str] = ("VerifiableCredential", "TreatmentCredential"),
    created: datetime | None = None,
) -> dict[str, Any]:
    """A VC Data Model 2.0 credential by `key.did`, secured with eddsa-jcs-2022.

    `subject` becomes `credentialSubject` (its `id` should be the holder's
    DID: verifiers require the presenter to be the subject); `status` is a
    `credentialStatus` entry such as `status_list.status_entry(...)`. The
    proof's `created` defaults to `valid_from`. Raises `MalformedDocument`
    if the result would not be a well-formed credential (the message lists
    the violations, not the subject's data).
    """
    credential: dict[str, Any] = {
        "@context": [V2_CONTEXT],
        "id": credential_id,
        "type": list(types),
        "issuer": key.did,
        "validFrom": format_datetime(valid_from),
    }
    if valid_until is not None:
        credential["validUntil"] = format_datetime(valid_until)
    credential["credentialSubject"] = subject
    if status is not None:
        credential["credentialStatus"] = status

    problems = validate_credential(credential)
    if problems:
        raise MalformedDocument(
            f"credential {credential_id} is not well formed: " + "; ".join(problems)
        )
    logger.debug("issuing %s by %s", credential_id, key.did)
    return add_proof(
        credential,
        key,
        proof_purpose="assertionMethod",
        created=valid_from if created is None else created,
    )
