"""A verification report: every check of a credential or presentation, by name.

`verify_presentation` stops at the first failure, which is what an insurer
paying a claim needs. A person looking at one document wants to see every
check instead: `check_document` runs each of them and records it as
`passed`, `failed`, `undetermined` (it could not be checked, so it is not
valid either) or `skipped` (the caller asked not to run it), with the reason.
The report is `ok` only when nothing failed or stayed undetermined.

Checks, in order: `data_model` (VC Data Model 2.0 structure), `signature`
(every Data Integrity proof, signed by the issuer or holder it names),
`issuer_trusted` (accredited in the registry when it signed and now),
`validity` (validFrom/validUntil against the clock, with skew), `status`
(Bitstring Status List entries), `holder_binding` (every subject is the
presenter) and `challenge` (the presentation proof carries the verifier's
challenge and domain). The last two apply to presentations only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from credentials._codec import parse_datetime
from credentials.data_integrity import verify_proof
from credentials.errors import CredentialError, ProofError, VerificationError
from credentials.rdfc import PinnedContexts
from credentials.registry import TrustedIssuers
from credentials.validate import validate_credential, validate_presentation
from credentials.verifier import _check_status, _issuer_id, _signed_at

__all__ = ["CHECKS", "Check", "Outcome", "VerificationReport", "check_document"]

Outcome = Literal["passed", "failed", "undetermined", "skipped"]
CHECKS = (
    "data_model",
    "signature",
    "issuer_trusted",
    "validity",
    "status",
    "holder_binding",
    "challenge",
)
_RANK = {"skipped": 0, "passed": 1, "undetermined": 2, "failed": 3}


@dataclass(frozen=True)
class Check:
    """One check's outcome and why."""

    name: str
    outcome: Outcome
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"check": self.name, "outcome": self.outcome, "reason": self.reason}


@dataclass
class VerificationReport:
    """Every check of one document; `ok` when none failed or stayed undetermined."""

    kind: Literal["credential", "presentation"]
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.outcome in ("passed", "skipped") for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "checks": [check.to_dict() for check in self.checks],
        }


def check_document(
    document: Any,
    *,
    now: datetime,
    skew: timedelta = timedelta(minutes=5),
    issuers: TrustedIssuers | None = None,
    status_lists: Callable[[str], dict[str, Any]] | None = None,
    challenge: str | None = None,
    domain: str | None = None,
    contexts: PinnedContexts | None = None,
) -> VerificationReport:
    """Run every check on a credential or presentation and report each.

    `issuers=None` skips `issuer_trusted`, `status_lists=None` skips
    `status` (for documents from outside the consortium). For a
    presentation, `challenge` is undetermined unless both `challenge` and
    `domain` are given. Never raises for a bad document: that is a report.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    is_vp = isinstance(document, dict) and "VerifiablePresentation" in _as_list(
        document.get("type")
    )
    report = VerificationReport("presentation" if is_vp else "credential")

    # 1. Structure first: nothing else is read from a malformed document.
    problems = (
        validate_presentation(document) if is_vp else validate_credential(document)
    )
    if problems:
        report.checks.append(Check("data_model", "failed", "; ".join(problems)))
        report.checks += [
            Check(name, "undetermined", "the document is malformed")
            for name in CHECKS[1:]
            if is_vp or name not in ("holder_binding", "challenge")
        ]
        return report
    report.checks.append(Check("data_model", "passed"))

    # 2. Each credential's own checks; a presentation merges them.
    if is_vp:
        credentials = _as_list(document.get("verifiableCredential"))
        presentation_checks = _presentation_checks(document, challenge, domain)
    else:
        credentials, presentation_checks = [document], {}
    per_credential = [
        _credential_checks(
            credential, now, skew, issuers, status_lists, contexts, document
        )
        for credential in credentials
    ]
    for name in CHECKS[1:]:
        found: list[Check] = []
        if name in presentation_checks:
            found.append(presentation_checks[name])
        for position, checks in enumerate(per_credential):
            if name in checks:
                check = checks[name]
                reason = (
                    f"credential {position}: {check.reason}"
                    if is_vp and check.reason
                    else check.reason
                )
                found.append(Check(name, check.outcome, reason))
        if found:
            report.checks.append(_worst(name, found))
    return report


def _presentation_checks(
    vp: dict[str, Any], challenge: str | None, domain: str | None
) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    holder = vp.get("holder")
    try:
        signer = verify_proof(vp, expected_purpose="authentication")
    except ProofError as exc:
        checks["signature"] = Check("signature", "failed", f"presentation: {exc}")
        checks["challenge"] = Check(
            "challenge", "undetermined", "the presentation proof does not verify"
        )
        return checks
    if signer != holder:
        checks["signature"] = Check(
            "signature", "failed", f"presentation is signed by {signer}, not its holder"
        )
    else:
        checks["signature"] = Check("signature", "passed")
    if challenge is None or domain is None:
        checks["challenge"] = Check(
            "challenge", "undetermined", "no challenge and domain to compare with"
        )
        return checks
    try:
        verify_proof(
            vp, expected_purpose="authentication", challenge=challenge, domain=domain
        )
        checks["challenge"] = Check("challenge", "passed")
    except ProofError as exc:
        checks["challenge"] = Check("challenge", "failed", f"{exc.reason}: {exc}")
    return checks


def _credential_checks(
    credential: dict[str, Any],
    now: datetime,
    skew: timedelta,
    issuers: TrustedIssuers | None,
    status_lists: Callable[[str], dict[str, Any]] | None,
    contexts: PinnedContexts | None,
    outer: dict[str, Any],
) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    issuer = _issuer_id(credential)

    # Signature by the issuer it names. An issuer that is not a DID (such as
    # the W3C vectors' https URL) cannot be tied to the signing key here; that
    # tie is part of trust, so it is waived only when trust is skipped.
    try:
        signer = verify_proof(
            credential, expected_purpose="assertionMethod", contexts=contexts
        )
        if signer == issuer:
            checks["signature"] = Check("signature", "passed")
        elif issuers is None and not issuer.startswith("did:"):
            checks["signature"] = Check(
                "signature",
                "passed",
                f"signed by {signer}; issuer {issuer} is not a DID, so the key's"
                " tie to it is left to the trust check (skipped)",
            )
        else:
            checks["signature"] = Check(
                "signature", "failed", f"signed by {signer}, not {issuer}"
            )
    except ProofError as exc:
        checks["signature"] = Check("signature", "failed", str(exc))

    # Issuer accredited when it signed and now.
    if issuers is None:
        checks["issuer_trusted"] = Check("issuer_trusted", "skipped", "not asked")
    else:
        try:
            issuers.check(issuer, _signed_at(credential) or now)
            issuers.check(issuer, now)
            checks["issuer_trusted"] = Check("issuer_trusted", "passed")
        except (CredentialError, ValueError) as exc:
            checks["issuer_trusted"] = Check("issuer_trusted", "failed", str(exc))

    # Validity window (VC Data Model 2.0 section 4.9) with the skew.
    if "validFrom" in credential and parse_datetime(credential["validFrom"]) > (
        now + skew
    ):
        checks["validity"] = Check("validity", "failed", "not_yet_valid")
    elif "validUntil" in credential and parse_datetime(credential["validUntil"]) < (
        now - skew
    ):
        checks["validity"] = Check("validity", "failed", "expired")
    else:
        checks["validity"] = Check("validity", "passed")

    # Status entries (Bitstring Status List v1.0 section 3.3).
    entries = _as_list(credential.get("credentialStatus"))
    if status_lists is None:
        checks["status"] = Check("status", "skipped", "not asked")
    elif not entries:
        checks["status"] = Check("status", "passed", "no status entry")
    else:
        cache: dict[tuple[str, str], Any] = {}
        checks["status"] = Check("status", "passed")
        for position, entry in enumerate(entries):
            try:
                _check_status(
                    entry,
                    f"status entry {position}",
                    issuer,
                    status_lists,
                    now,
                    skew,
                    cache,
                )
            except VerificationError as exc:
                outcome: Outcome = (
                    "undetermined" if exc.reason == "status_undetermined" else "failed"
                )
                checks["status"] = Check("status", outcome, f"{exc.reason}: {exc}")
                break

    # Holder binding: only a presentation has a holder to bind to.
    if outer is not credential:
        holder = outer.get("holder")
        subjects = _as_list(credential["credentialSubject"])
        checks["holder_binding"] = (
            Check("holder_binding", "passed")
            if all(subject.get("id") == holder for subject in subjects)
            else Check("holder_binding", "failed", "a subject is not the presenter")
        )
    return checks


def _worst(name: str, found: list[Check]) -> Check:
    worst = max(found, key=lambda check: _RANK[check.outcome])
    return Check(name, worst.outcome, worst.reason)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
