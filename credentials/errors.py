"""Errors of the `credentials` package.

Every error the package raises on purpose derives from `CredentialError`.
Verification failures share one base, `VerificationError`, whose `reason` is a
machine-readable code from `REASONS`; the other classes say what else went
wrong.

    CredentialError
    ├── InvalidDid              a DID that breaks a did:key rule (`rule` says which)
    ├── InvalidKey              key material of the wrong size or encoding
    ├── KeyFileError            a sealed key file that cannot be opened
    ├── MalformedDocument       JSON or a document that cannot be used as given
    ├── StatusListError         a status list that cannot be decoded or is full
    └── VerificationError       a check failed (`reason` in `REASONS`)
        ├── ProofError          a Data Integrity proof does not verify
        │   ├── UnsupportedCryptosuite  a proof type or cryptosuite we do not run
        │   ├── ProofContextMismatch    proof @context not a prefix of the document's
        │   └── InvalidProofValue       proofValue not multibase or wrong length
        └── UntrustedIssuer     an issuer not accredited at the time asked

Messages name identifiers (DIDs, credential ids, list URLs, indices), never
keys or the patient data a credential carries.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "REASONS",
    "CredentialError",
    "InvalidDid",
    "InvalidKey",
    "KeyFileError",
    "InvalidProofValue",
    "MalformedDocument",
    "ProofContextMismatch",
    "ProofError",
    "StatusListError",
    "UnsupportedCryptosuite",
    "UntrustedIssuer",
    "VerificationError",
]

REASONS: Final[frozenset[str]] = frozenset(
    {
        "malformed",
        "bad_presentation_proof",
        "wrong_challenge",
        "wrong_domain",
        "bad_credential_proof",
        "untrusted_issuer",
        "not_yet_valid",
        "expired",
        "revoked",
        "suspended",
        "status_undetermined",
        "holder_not_subject",
    }
)
"""Every value `VerificationError.reason` can take."""


class CredentialError(Exception):
    """Base of every error the credentials package raises on purpose."""


class InvalidDid(CredentialError):
    """Raised when a DID breaks a rule of the DID syntax or the did:key method.

    `rule` names the rule: `not_a_did`, `unsupported_method`, `not_multibase`,
    `bad_encoding`, `wrong_key_length`, `unsupported_key_type` or
    `invalid_public_key`.
    """

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(f"{message} [{rule}]")
        self.rule = rule


class InvalidKey(CredentialError):
    """Raised when key material has the wrong length or encoding."""


class KeyFileError(CredentialError):
    """Raised when a sealed key file is damaged or its passphrase is wrong."""


class MalformedDocument(CredentialError):
    """Raised when JSON input or a document's structure cannot be used."""


class StatusListError(CredentialError):
    """Raised when a status list cannot be decoded, is too short, or is full."""


class VerificationError(CredentialError):
    """Raised when a presentation, credential or proof fails verification.

    `reason` is one of `REASONS`; the message says what failed and where.
    """

    default_reason: str = "malformed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        reason = self.default_reason if reason is None else reason
        if reason not in REASONS:
            raise ValueError(f"unknown verification reason {reason!r}")
        self.reason = reason


class ProofError(VerificationError):
    """Raised when a Data Integrity proof is missing, malformed or does not verify."""

    default_reason = "bad_credential_proof"


class UnsupportedCryptosuite(ProofError):
    """Raised when a proof's type or cryptosuite is not one this package runs."""


class ProofContextMismatch(ProofError):
    """Raised when a proof's @context is not a prefix of the document's @context."""


class InvalidProofValue(ProofError):
    """Raised when a proofValue is not base58btc multibase or not 64 bytes."""


class UntrustedIssuer(VerificationError):
    """Raised when an issuer is not accredited in the registry at the time asked."""

    default_reason = "untrusted_issuer"
