"""The verifier role: an insurer checks a presentation before paying a claim.

`verify_presentation` returns the verified credentials or raises one
`VerificationError` whose `reason` says which check failed (see
`credentials.errors.REASONS`). Nothing is reported valid that could not be
checked: a status list that cannot be fetched, parsed or trusted makes the
result `status_undetermined`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from credentials._codec import parse_datetime
from credentials.data_integrity import verify_proof
from credentials.errors import (
    ProofError,
    StatusListError,
    UntrustedIssuer,
    VerificationError,
)
from credentials.registry import TrustedIssuers
from credentials.status_list import MIN_LENGTH, PURPOSES, StatusList, StatusListCache
from credentials.validate import validate_credential, validate_presentation

__all__ = ["verify_presentation"]

logger = logging.getLogger(__name__)

StatusListFetcher = Callable[[str], dict[str, Any]]


def verify_presentation(
    vp: dict[str, Any],
    *,
    challenge: str,
    domain: str,
    issuers: TrustedIssuers,
    status_lists: StatusListFetcher,
    now: datetime,
    skew: timedelta = timedelta(minutes=5),
) -> list[dict[str, Any]]:
    """The credentials of `vp`, once every check below has passed.

    `status_lists(url)` returns the status list credential published at
    `url` or raises any exception; a `StatusListCache` there also keeps each
    list once checked, for the next presentation of the same batch to reuse
    (a list is otherwise checked once per call). `now` is the verifier's
    clock (aware) and `skew` the tolerance applied to validity windows. Raises
    `VerificationError` (or its subclasses `ProofError`, `UntrustedIssuer`)
    with `reason` set. A credential without `credentialStatus` has no status
    to check and is not refused for it: policy on that belongs to the caller.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    # Plan:
    # 1. Shape: the presentation is a well-formed VC Data Model 2.0 document
    #    with a holder DID and credential objects (malformed).
    # 2. Presentation proof: authentication by the holder's own key, bound to
    #    this challenge and domain (bad_presentation_proof, wrong_challenge,
    #    wrong_domain).
    # 3. Each credential: (a) proof by its issuer (bad_credential_proof), then
    #    its structure (malformed): the proof first, so that any change to a
    #    signed credential reads as tampering;
    #    (b) issuer accredited when it signed and now (untrusted_issuer);
    #    (c) validity window (not_yet_valid, expired); (d) subject is the
    #    holder (holder_not_subject); (e) status entries against their signed
    #    lists (revoked, suspended, status_undetermined).
    # 4. Return copies of the verified credentials.

    # 1.
    problems = validate_presentation(vp, include_credentials=False)
    if problems:
        raise VerificationError(
            "presentation is malformed: " + "; ".join(problems), reason="malformed"
        )
    holder = vp.get("holder")
    if not isinstance(holder, str) or not holder.startswith("did:"):
        raise VerificationError("presentation has no holder DID", reason="malformed")
    credentials = vp.get("verifiableCredential")
    credentials = credentials if isinstance(credentials, list) else [credentials]
    if not credentials or credentials == [None]:
        raise VerificationError("presentation holds no credential", reason="malformed")

    # 2.
    try:
        signer = verify_proof(
            vp, expected_purpose="authentication", challenge=challenge, domain=domain
        )
    except ProofError as exc:
        reason = exc.reason
        if reason not in ("wrong_challenge", "wrong_domain"):
            reason = "bad_presentation_proof"
        raise type(exc)(f"presentation proof: {exc}", reason=reason) from exc
    if signer != holder:
        raise ProofError(
            f"presentation is signed by {signer}, not by its holder {holder}",
            reason="bad_presentation_proof",
        )

    # 3.
    cache: dict[tuple[str, str], _VerifiedList | str] = {}
    for position, credential in enumerate(credentials):
        where = f"credential {position} ({credential.get('id', 'no id')})"

        # 3a.
        try:
            credential_signer = verify_proof(
                credential, expected_purpose="assertionMethod"
            )
        except ProofError as exc:
            raise type(exc)(f"{where}: {exc}", reason="bad_credential_proof") from exc
        problems = validate_credential(credential)
        if problems:
            raise VerificationError(
                f"{where} is malformed: " + "; ".join(problems), reason="malformed"
            )
        issuer = _issuer_id(credential)
        if credential_signer != issuer:
            raise ProofError(
                f"{where} is signed by {credential_signer}, not by its issuer {issuer}",
                reason="bad_credential_proof",
            )

        # 3b.
        try:
            issuers.check(issuer, _signed_at(credential) or now)
            issuers.check(issuer, now)
        except UntrustedIssuer as exc:
            raise UntrustedIssuer(f"{where}: {exc}") from exc

        # 3c.
        if (
            "validFrom" in credential
            and parse_datetime(credential["validFrom"]) > now + skew
        ):
            raise VerificationError(f"{where} is not valid yet", reason="not_yet_valid")
        if (
            "validUntil" in credential
            and parse_datetime(credential["validUntil"]) < now - skew
        ):
            raise VerificationError(f"{where} has expired", reason="expired")

        # 3d.
        subjects = credential["credentialSubject"]
        for subject in subjects if isinstance(subjects, list) else [subjects]:
            if subject.get("id") != holder:
                raise VerificationError(
                    f"{where}: its subject is not the presenter {holder}",
                    reason="holder_not_subject",
                )

        # 3e.
        for entry_position, entry in enumerate(
            _as_list(credential.get("credentialStatus"))
        ):
            _check_status(
                entry,
                f"{where} status entry {entry_position}",
                issuer,
                status_lists,
                now,
                skew,
                cache,
            )
        logger.debug("verified %s from %s", where, issuer)

    # 4.
    return copy.deepcopy(credentials)


def _check_status(
    entry: dict[str, Any],
    where: str,
    issuer: str,
    status_lists: StatusListFetcher,
    now: datetime,
    skew: timedelta,
    cache: dict[tuple[str, str], _VerifiedList | str],
) -> None:
    """Bitstring Status List v1.0 section 3.3 (Validate Algorithm) for one entry."""
    # 1. The entry: a supported type and purpose, a decimal index, a URL.
    if not isinstance(entry, dict) or entry.get("type") != "BitstringStatusListEntry":
        raise VerificationError(
            f"{where} is not a BitstringStatusListEntry", reason="status_undetermined"
        )
    purpose = entry.get("statusPurpose")
    if purpose not in PURPOSES:
        raise VerificationError(
            f"{where} has unsupported statusPurpose {purpose!r}",
            reason="status_undetermined",
        )
    index_text = entry.get("statusListIndex")
    url = entry.get("statusListCredential")
    if not (
        isinstance(index_text, str) and index_text.isascii() and index_text.isdigit()
    ):
        raise VerificationError(
            f"{where} statusListIndex is not a decimal string", reason="malformed"
        )
    if not isinstance(url, str) or not url:
        raise VerificationError(
            f"{where} has no statusListCredential", reason="malformed"
        )
    if entry.get("statusSize", 1) != 1:
        raise VerificationError(f"{where} statusSize is not 1", reason="malformed")

    # 2. The list: fetched, signed by the credential's issuer, current, decoded
    # (cached per call: one fetch per list however many entries point at it;
    # across calls when the fetcher is a `StatusListCache`).
    if (url, issuer) not in cache:
        cache[url, issuer] = _checked_list(url, issuer, status_lists, now, skew)
    loaded = cache[url, issuer]
    if isinstance(loaded, str):
        raise VerificationError(f"{where}: {loaded}", reason="status_undetermined")

    # 3. The bit, for this purpose, within the list.
    index = int(index_text)
    if purpose not in loaded.purposes:
        raise VerificationError(
            f"{where}: status list {url} is not a {purpose} list",
            reason="status_undetermined",
        )
    if index >= loaded.bits.length:
        raise VerificationError(
            f"{where}: index {index} is beyond the end of status list {url}",
            reason="status_undetermined",
        )
    if loaded.bits.get(index):
        reason = "revoked" if purpose == "revocation" else "suspended"
        raise VerificationError(
            f"{where}: {reason} in status list {url}", reason=reason
        )


@dataclass(frozen=True)
class _VerifiedList:
    purposes: frozenset[str]
    bits: StatusList


def _checked_list(
    url: str,
    issuer: str,
    status_lists: StatusListFetcher,
    now: datetime,
    skew: timedelta,
) -> _VerifiedList | str:
    """`_load_list`, or the message of its failure; kept when it succeeds and
    the fetcher is a `StatusListCache` (failures never are)."""
    kept = status_lists.verified if isinstance(status_lists, StatusListCache) else None
    key = (url, issuer, now, skew)
    if kept is not None and key in kept:
        found: _VerifiedList = kept[key]
        return found
    try:
        loaded = _load_list(url, issuer, status_lists, now, skew)
    except VerificationError as exc:
        return str(exc)
    if kept is not None:
        kept[key] = loaded
    return loaded


def _load_list(
    url: str,
    issuer: str,
    status_lists: StatusListFetcher,
    now: datetime,
    skew: timedelta,
) -> _VerifiedList:
    """The verified list published at `url`; `VerificationError` says why not."""

    def fail(message: str) -> VerificationError:
        return VerificationError(
            f"status list {url} {message}", reason="status_undetermined"
        )

    # 1. Fetch: any exception of the fetcher means "could not be checked".
    try:
        document = status_lists(url)
    except Exception as exc:  # noqa: BLE001 - every failure is undetermined
        raise fail(f"could not be retrieved ({type(exc).__name__})") from exc
    if not isinstance(document, dict) or validate_credential(document):
        raise fail("is not a well-formed credential")
    if "BitstringStatusListCredential" not in _as_list(document.get("type")):
        raise fail("is not a BitstringStatusListCredential")
    if document.get("id") not in (None, url):
        raise fail("carries the id of another list")

    # 2. Signed by the issuer of the credential it speaks about.
    try:
        signer = verify_proof(document, expected_purpose="assertionMethod")
    except ProofError as exc:
        raise fail(f"has a bad proof ({exc})") from exc
    if signer != issuer or _issuer_id(document) != issuer:
        raise fail(f"is not issued and signed by {issuer}")

    # 3. Current (section 3.3: the list's own validity period).
    if "validFrom" in document and parse_datetime(document["validFrom"]) > now + skew:
        raise fail("is not valid yet")
    if "validUntil" in document and parse_datetime(document["validUntil"]) < now - skew:
        raise fail("has expired")

    # 4. Decoded, and at least the minimum length (section 2.2).
    subject = document.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("type") != "BitstringStatusList":
        raise fail("has no BitstringStatusList subject")
    try:
        bits = StatusList.decode(str(subject.get("encodedList", "")))
    except StatusListError as exc:
        raise fail(f"cannot be decoded ({exc})") from exc
    if bits.length < MIN_LENGTH:
        raise fail(f"is shorter than the minimum {MIN_LENGTH} entries")
    purposes = frozenset(
        p for p in _as_list(subject.get("statusPurpose")) if isinstance(p, str)
    )
    return _VerifiedList(purposes, bits)


def _issuer_id(credential: dict[str, Any]) -> str:
    issuer = credential["issuer"]
    return str(issuer["id"] if isinstance(issuer, dict) else issuer)


def _signed_at(credential: dict[str, Any]) -> datetime | None:
    for proof in _as_list(credential.get("proof")):
        if isinstance(proof, dict) and proof.get("proofPurpose") == "assertionMethod":
            created = proof.get("created")
            return None if created is None else parse_datetime(created)
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
