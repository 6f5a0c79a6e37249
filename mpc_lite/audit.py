"""What a joint computation leaves on the ledger: commitments and hashes.

A job record names the job and its parties, carries each party's salted
commitment to its input set and a salted hash of the result. It never
carries an element, a key (canonical encoding) or a hash-to-group point in
the clear: a party's commitment is SHA-256 over a 32-byte secret salt and
its sorted hash-to-group points, so it binds the party to its inputs and,
while the salt stays with the party, says nothing a dictionary could undo.
To open a commitment the party reveals its salt and inputs to an auditor.

The result hash is salted too: results are short lists of booleans that
could otherwise be guessed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mpc_lite.errors import InvalidInput

__all__ = ["commit_inputs", "hash_result", "job_record"]

_COMMIT_TAG = b"mpc_lite/commit/v1"
_RESULT_TAG = b"mpc_lite/result/v1"
_SALT_BYTES = 32


def _check_salt(salt: bytes) -> None:
    if not isinstance(salt, bytes) or len(salt) != _SALT_BYTES:
        raise InvalidInput(f"a salt must be {_SALT_BYTES} bytes")


def commit_inputs(points: Iterable[bytes], salt: bytes) -> str:
    """Hex SHA-256 commitment to a set of hash-to-group points.

    The points are de-duplicated and sorted, so the commitment depends on
    the set only, not on the order the party holds its claims in.
    """
    _check_salt(salt)
    unique = sorted(set(points))
    digest = hashlib.sha256(_COMMIT_TAG)
    digest.update(salt)
    digest.update(len(unique).to_bytes(8, "big"))
    for point in unique:
        digest.update(point)
    return digest.hexdigest()


def hash_result(result: Mapping[str, Sequence[bool]], salt: bytes) -> str:
    """Hex SHA-256 over the salt and the result, parties in name order."""
    _check_salt(salt)
    digest = hashlib.sha256(_RESULT_TAG)
    digest.update(salt)
    for name in sorted(result):
        encoded = name.encode("utf-8")
        flags = bytes(1 if flag else 0 for flag in result[name])
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(len(flags).to_bytes(8, "big") + flags)
    return digest.hexdigest()


def job_record(
    job_id: str,
    parties: Sequence[str],
    commitments: Mapping[str, str],
    result: Mapping[str, Sequence[bool]],
    *,
    salt: bytes | None = None,
) -> dict[str, Any]:
    """The ledger record of one duplicate check.

    `commitments` maps every party to its `Party.input_commitment()`.
    `salt` (32 bytes) salts the result hash; keep it (never log it) to be
    able to open the hash later. Omitted, a fresh salt is drawn and
    discarded, and the hash can only show that records differ.
    Raises `InvalidInput` when the commitments or results do not cover
    exactly the parties.
    """
    names = sorted(parties)
    if len(set(names)) != len(names):
        raise InvalidInput("a party is listed twice")
    if sorted(commitments) != names:
        raise InvalidInput("commitments must name exactly the job's parties")
    if sorted(result) != names:
        raise InvalidInput("the result must name exactly the job's parties")
    result_salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    return {
        "type": "mpc_lite.duplicate_check",
        "version": 1,
        "job_id": job_id,
        "parties": names,
        "commitments": {name: commitments[name] for name in names},
        "result_hash": hash_result(result, result_salt),
    }
