"""Structural validation of VC Data Model 2.0 documents, separate from proofs.

`validate_credential` and `validate_presentation` list every violation they
find (an empty list means the document is well formed); they check shape,
not signatures, trust or time. Messages name the property, never its value
beyond identifiers.
"""

from __future__ import annotations

import re
from typing import Any

from credentials._codec import parse_datetime

__all__ = ["V2_CONTEXT", "validate_credential", "validate_presentation"]

V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"

# RFC 3986 section 3.1: a URL starts with a scheme and a colon.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def validate_credential(doc: Any) -> list[str]:
    """Every VC Data Model 2.0 violation in a credential, in document order."""
    if not isinstance(doc, dict):
        return ["credential is not a JSON object"]
    problems = _contexts(doc) + _identifier(doc, "id")

    # VC DM 2.0 section 4.5 Types.
    problems += _types(doc, "VerifiableCredential")

    # Section 4.7 Issuer: a URL, or an object whose id is a URL.
    issuer = doc.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    if issuer is None:
        problems.append("issuer is missing")
    elif not _is_url(issuer_id):
        problems.append("issuer is not a URL or an object with a URL id")

    # Section 4.8 Credential Subject: one or more non-empty objects.
    subjects = doc.get("credentialSubject")
    if subjects is None:
        problems.append("credentialSubject is missing")
    else:
        entries = subjects if isinstance(subjects, list) else [subjects]
        if not entries:
            problems.append("credentialSubject is an empty list")
        for i, subject in enumerate(entries):
            where = (
                f"credentialSubject[{i}]"
                if isinstance(subjects, list)
                else ("credentialSubject")
            )
            if not isinstance(subject, dict) or not subject:
                problems.append(f"{where} is not a non-empty object")
            else:
                problems += _identifier(subject, "id", where)

    # Section 4.9 Validity Period: dateTimeStamps, validFrom not after validUntil.
    problems += _validity(doc)

    # Section 4.10 Status: objects with a type and, if present, a URL id.
    status = doc.get("credentialStatus")
    if status is not None:
        entries = status if isinstance(status, list) else [status]
        for i, entry in enumerate(entries):
            where = (
                f"credentialStatus[{i}]"
                if isinstance(status, list)
                else ("credentialStatus")
            )
            if not isinstance(entry, dict):
                problems.append(f"{where} is not an object")
                continue
            if not _type_values(entry.get("type")):
                problems.append(f"{where} has no type")
            problems += _identifier(entry, "id", where)
    return problems


def validate_presentation(doc: Any, *, include_credentials: bool = True) -> list[str]:
    """Every VC Data Model 2.0 (section 4.13) violation in a presentation.

    With `include_credentials` (the default) the violations of each embedded
    credential follow, prefixed by its position; without it only the
    presentation itself is checked and its credentials need only be objects.
    """
    if not isinstance(doc, dict):
        return ["presentation is not a JSON object"]
    problems = _contexts(doc) + _identifier(doc, "id")
    problems += _types(doc, "VerifiablePresentation")
    if "holder" in doc:
        holder = doc["holder"]
        holder_id = holder.get("id") if isinstance(holder, dict) else holder
        if not _is_url(holder_id):
            problems.append("holder is not a URL or an object with a URL id")
    credentials = doc.get("verifiableCredential", [])
    entries = credentials if isinstance(credentials, list) else [credentials]
    for i, credential in enumerate(entries):
        if not include_credentials:
            if not isinstance(credential, dict):
                problems.append(f"verifiableCredential[{i}] is not an object")
            continue
        problems += [
            f"verifiableCredential[{i}]: {problem}"
            for problem in validate_credential(credential)
        ]
    return problems


def _contexts(doc: dict[str, Any]) -> list[str]:
    """Section 4.3 Contexts: a list whose first item is the v2 base context."""
    contexts = doc.get("@context")
    if not isinstance(contexts, list) or not contexts:
        return ["@context is missing or not a non-empty list"]
    problems = []
    if contexts[0] != V2_CONTEXT:
        problems.append(f"@context must start with {V2_CONTEXT}")
    for i, context in enumerate(contexts[1:], start=1):
        if not (isinstance(context, dict) or _is_url(context)):
            problems.append(f"@context[{i}] is neither a URL nor an object")
    return problems


def _types(doc: dict[str, Any], required: str) -> list[str]:
    """Section 4.5 Types: `type` holds `required`, all values strings."""
    values = _type_values(doc.get("type"))
    if values is None:
        return ["type is missing or not a string or list of strings"]
    if required not in values:
        return [f"type does not include {required}"]
    return []


def _validity(doc: dict[str, Any]) -> list[str]:
    problems = []
    moments = {}
    for name in ("validFrom", "validUntil"):
        if name in doc:
            try:
                moments[name] = parse_datetime(doc[name])
            except ValueError:
                problems.append(f"{name} is not an XML Schema dateTimeStamp")
    if len(moments) == 2 and moments["validFrom"] > moments["validUntil"]:
        problems.append("validFrom is later than validUntil")
    return problems


def _identifier(doc: dict[str, Any], name: str, where: str = "") -> list[str]:
    """Section 4.4 Identifiers: an `id`, when present, is a URL."""
    if name in doc and not _is_url(doc[name]):
        return [f"{where + '.' if where else ''}{name} is not a URL"]
    return []


def _type_values(value: Any) -> list[str] | None:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(item, str) and item for item in values):
        return None
    return values


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and _URL.fullmatch(value) is not None
