"""Errors of the `ledger` package.

Every error the package raises on purpose derives from `LedgerError`.

    LedgerError
    ├── ProofError              a Merkle proof does not verify (RFC 9162 2.1.3, 2.1.4)
    │   ├── TreeSizeError       sizes or an index out of range, or out of order
    │   ├── ProofLengthError    a proof with too few or too many hashes
    │   ├── HashSizeError       a hash that is not 32 bytes
    │   └── RootMismatchError   the proof leads to another root than the one given
    ├── NoteError               a signed note that cannot be accepted (C2SP signed-note)
    │   ├── MalformedNote       the text breaks the note or checkpoint format
    │   ├── InvalidKey          a verifier key or key name that cannot be used
    │   ├── BadSignature        a signature from a known key does not verify
    │   └── UntrustedNote       no signature from a known key verifies
    ├── LogError                a request the log cannot serve
    │   ├── EntryNotFound       an index or size beyond the log
    │   ├── InvalidRecord       a record or key that cannot be appended
    │   ├── NotCheckpointed     no signed checkpoint covers the entry yet
    │   └── QuorumNotReached    fewer cosignatures than asked for
    ├── LedgerTampered          stored data disagrees with what it must be
    ├── ReceiptError            a receipt fails offline verification (`step` says where)
    └── WitnessError            a witness refuses to cosign
        ├── UnknownLog          a checkpoint from a log the witness does not follow
        │   └── NotSignedByLog  the origin is followed, its key did not sign
        ├── BadRequest          an add-checkpoint request that cannot be parsed
        ├── SizeConflict        the caller's idea of the witness state is stale
        ├── RollbackRefused     a checkpoint smaller than one already cosigned
        └── ForkDetected        same size, different root, or an inconsistent tree
            └── InconsistentProof  the consistency proof does not verify

The witness errors map to the C2SP tlog-witness status codes: UnknownLog
404, NotSignedByLog 403, BadRequest and RollbackRefused 400, SizeConflict
and ForkDetected 409, InconsistentProof 422 (see `ledger.service`).

Messages name origins, sizes, indices, key names and hashes, never key
material or the contents of a record.
"""

from __future__ import annotations

__all__ = [
    "BadSignature",
    "CheckpointError",
    "EntryNotFound",
    "BadRequest",
    "ForkDetected",
    "InconsistentProof",
    "HashSizeError",
    "InvalidKey",
    "InvalidRecord",
    "LedgerError",
    "LedgerTampered",
    "LogError",
    "MalformedNote",
    "NotCheckpointed",
    "NotSignedByLog",
    "NoteError",
    "ProofError",
    "ProofLengthError",
    "QuorumNotReached",
    "ReceiptError",
    "RollbackRefused",
    "RootMismatchError",
    "SizeConflict",
    "TreeSizeError",
    "UnknownLog",
    "UntrustedNote",
    "WitnessError",
]


class LedgerError(Exception):
    """Raised when anything in the ledger package fails on purpose."""


class ProofError(LedgerError):
    """Raised when a Merkle inclusion or consistency proof does not verify."""


class TreeSizeError(ProofError):
    """Raised when a size or index is out of range or sizes are out of order."""


class ProofLengthError(ProofError):
    """Raised when a proof has a different number of hashes than its shape needs."""


class HashSizeError(ProofError):
    """Raised when a leaf hash, root or proof hash is not 32 bytes long."""


class RootMismatchError(ProofError):
    """Raised when the root computed from a proof differs from the expected one."""


class NoteError(LedgerError):
    """Raised when a signed note cannot be accepted."""


class MalformedNote(NoteError):
    """Raised when a note or checkpoint body breaks its format."""


class InvalidKey(NoteError):
    """Raised when a verifier key, seed or key name cannot be used."""


class BadSignature(NoteError):
    """Raised when a signature line from a known key fails to verify."""


class UntrustedNote(NoteError):
    """Raised when no signature from a known key is present on a note."""


class LogError(LedgerError):
    """Raised when the transparency log cannot serve a request."""


class EntryNotFound(LogError):
    """Raised when an index or tree size lies beyond the current log."""


class InvalidRecord(LogError):
    """Raised when a record or its idempotency key cannot be appended."""


class NotCheckpointed(LogError):
    """Raised when no stored checkpoint covers the entry a receipt is asked for."""


class QuorumNotReached(LogError):
    """Raised when fewer witnesses cosigned a checkpoint than were required."""


class LedgerTampered(LedgerError):
    """Raised when stored entries, hashes or checkpoints disagree with each other."""


class CheckpointError(LedgerError):
    """Raised when a checkpoint note fails offline verification.

    `step` names the verification step that failed (``"keys"``,
    ``"checkpoint"``, ``"cosignatures"``); a receipt's own failure over its
    checkpoint is a `ReceiptError` with the same step.
    """

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"checkpoint {step} check failed: {reason}")
        self.step = step
        self.reason = reason


class ReceiptError(LedgerError):
    """Raised when a receipt fails offline verification.

    `step` names the verification step that failed (``"structure"``,
    ``"keys"``, ``"checkpoint"``, ``"cosignatures"``, ``"inclusion"``, and
    ``"anchor"`` from `ledger.anchor.verify_anchor`).
    """

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"receipt {step} check failed: {reason}")
        self.step = step
        self.reason = reason


class WitnessError(LedgerError):
    """Raised when a witness refuses to cosign a checkpoint."""


class UnknownLog(WitnessError):
    """Raised when a checkpoint comes from a log the witness does not follow."""


class SizeConflict(WitnessError):
    """Raised when the old size given differs from the size the witness holds.

    `known_size` is the size the witness last cosigned for that origin, so a
    caller can retry with a consistency proof from there (C2SP tlog-witness).
    """

    def __init__(self, message: str, known_size: int) -> None:
        super().__init__(message)
        self.known_size = known_size


class RollbackRefused(WitnessError):
    """Raised when a checkpoint is smaller than one the witness already cosigned."""


class ForkDetected(WitnessError):
    """Raised when a checkpoint is inconsistent with one the witness cosigned."""


class NotSignedByLog(UnknownLog):
    """Raised when the key followed for a checkpoint's origin did not sign it."""


class BadRequest(WitnessError):
    """Raised when an add-checkpoint request body breaks the tlog-witness format."""


class InconsistentProof(ForkDetected):
    """Raised when the consistency proof from the cosigned size does not verify."""
