"""A witness: cosigns a log's checkpoints only while the log stays append-only.

Follows the C2SP tlog-witness ``add-checkpoint`` rules in process: the
caller sends the checkpoint note, the size it believes the witness last
cosigned (``old_size``) and a consistency proof from there. The witness

1. checks the log's signature with the key it follows for that origin;
2. refuses a stale ``old_size`` (`SizeConflict`, carrying the known size);
3. refuses a smaller tree (`RollbackRefused`) and, at the same size, a
   different root (`ForkDetected`);
4. checks the RFC 9162 consistency proof (failure is `ForkDetected`);
5. records the new (size, root) with a compare-and-set, then
6. returns a C2SP tlog-cosignature type 0x04 signature line.

State lives in a `WitnessStateStore`: the ``ledger_witness_state`` table
(`SqlWitnessState`) or a JSON file replaced atomically (`FileWitnessState`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from ledger import merkle
from ledger._tables import LedgerWitnessState
from ledger.errors import (
    BadRequest,
    ForkDetected,
    InconsistentProof,
    NoteError,
    NotSignedByLog,
    ProofError,
    RollbackRefused,
    SizeConflict,
    UnknownLog,
    WitnessError,
)
from ledger.note import (
    ED25519_TYPE,
    Checkpoint,
    CosignatureSigner,
    NoteVerifier,
    unverified_text,
    verify_note,
)

__all__ = [
    "MAX_PROOF_LINES",
    "SIZE_MEDIA_TYPE",
    "CheckpointWitness",
    "FileWitnessState",
    "SqlWitnessState",
    "Witness",
    "WitnessStateStore",
    "format_add_checkpoint",
    "parse_add_checkpoint",
]

logger = logging.getLogger(__name__)

_state_t: sa.Table = LedgerWitnessState.__table__  # type: ignore[attr-defined]

#: C2SP tlog-witness: a client sends at most 63 consistency proof lines.
MAX_PROOF_LINES = 63
#: C2SP tlog-witness: the media type of a 409 answer (the cosigned size).
SIZE_MEDIA_TYPE = "text/x.tlog.size"


class CheckpointWitness(Protocol):
    """What `TransparencyLog.cosign` needs of a witness, local or remote."""

    name: str

    @property
    def vkey(self) -> str:
        """The witness's cosigner verifier key (type 0x04)."""
        ...

    def known_size(self, origin: str) -> int:
        """The size last cosigned for ``origin``, as far as the caller knows."""
        ...

    def add_checkpoint(
        self, note: str, old_size: int, proof: Sequence[bytes] = ()
    ) -> str:
        """Cosign ``note`` or raise a `WitnessError`; returns the line."""
        ...


class WitnessStateStore(Protocol):
    """Where a witness keeps the last (size, root) it cosigned per origin."""

    def get(self, witness: str, origin: str) -> tuple[int, bytes] | None:
        """The last cosigned (size, root) of ``origin``, or None."""
        ...

    def compare_and_set(
        self,
        witness: str,
        origin: str,
        old: tuple[int, bytes] | None,
        new: tuple[int, bytes],
    ) -> bool:
        """Store ``new`` only if the current state is still ``old``."""
        ...


class SqlWitnessState:
    """Witness state in the ``ledger_witness_state`` table (one row per origin)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        SQLModel.metadata.create_all(engine, tables=[_state_t])

    def get(self, witness: str, origin: str) -> tuple[int, bytes] | None:
        query = sa.select(_state_t.c.size, _state_t.c.root_hash).where(
            _state_t.c.witness == witness, _state_t.c.origin == origin
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row.size), bytes(row.root_hash))

    def compare_and_set(
        self,
        witness: str,
        origin: str,
        old: tuple[int, bytes] | None,
        new: tuple[int, bytes],
    ) -> bool:
        now = datetime.now(UTC).replace(tzinfo=None)
        values = {"size": new[0], "root_hash": new[1], "updated_at": now}
        try:
            with self.engine.begin() as conn:
                if old is None:
                    conn.execute(
                        sa.insert(_state_t).values(
                            witness=witness, origin=origin, **values
                        )
                    )
                    return True
                result = conn.execute(
                    sa.update(_state_t)
                    .where(
                        _state_t.c.witness == witness,
                        _state_t.c.origin == origin,
                        _state_t.c.size == old[0],
                        _state_t.c.root_hash == old[1],
                    )
                    .values(**values)
                )
                return result.rowcount == 1
        except sa.exc.IntegrityError:
            return False


class FileWitnessState:
    """Witness state in a JSON file, replaced atomically on every update.

    The file is written to a temporary file in the same folder, flushed to
    disk and renamed over the old one, so a crash leaves either state.
    Updates are serialised within one process only; two processes must not
    share one file.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, list[object]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise WitnessError(f"witness state file {self.path} is unreadable") from exc
        if not isinstance(data, dict):
            raise WitnessError(f"witness state file {self.path} is not an object")
        return data

    def get(self, witness: str, origin: str) -> tuple[int, bytes] | None:
        entry = self._load().get(witness, {}).get(origin)
        if entry is None:
            return None
        size, root = entry
        return int(str(size)), base64.b64decode(str(root))

    def compare_and_set(
        self,
        witness: str,
        origin: str,
        old: tuple[int, bytes] | None,
        new: tuple[int, bytes],
    ) -> bool:
        with self._lock:
            if self.get(witness, origin) != old:
                return False
            data = self._load()
            encoded = base64.b64encode(new[1]).decode("ascii")
            data.setdefault(witness, {})[origin] = [new[0], encoded]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                dir=self.path.parent, prefix=self.path.name, suffix=".tmp"
            )
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    json.dump(data, stream, sort_keys=True)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            return True


class Witness:
    """A witness named ``name`` with a 32-byte Ed25519 ``seed`` (keep it secret).

    ``logs`` are the verifier keys (type 0x01) of the logs it follows; a
    log's key name is taken as its origin unless `follow` is given one.
    ``clock`` gives the POSIX time written into each cosignature.
    """

    def __init__(
        self,
        name: str,
        seed: bytes,
        state_store: WitnessStateStore,
        *,
        logs: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = CosignatureSigner(name, seed, clock=clock)
        self.name = name
        self.state = state_store
        self._logs: dict[str, NoteVerifier] = {}
        for vkey in logs:
            self.follow(vkey)

    @property
    def vkey(self) -> str:
        """The witness's verifier key (type 0x04), for clients' trust lists."""
        return self.signer.vkey

    def follow(self, log_vkey: str, origin: str | None = None) -> None:
        """Start following the log whose checkpoints ``log_vkey`` signs."""
        verifier = NoteVerifier.from_vkey(log_vkey)
        if verifier.signature_type != ED25519_TYPE:
            raise UnknownLog(f"log key {verifier.name} is not an Ed25519 note key")
        self._logs[origin or verifier.name] = verifier

    def known_size(self, origin: str) -> int:
        """The tree size this witness last cosigned for ``origin`` (0 if none)."""
        state = self.state.get(self.name, origin)
        return 0 if state is None else state[0]

    def add_checkpoint(
        self, note: str, old_size: int, proof: Sequence[bytes] = ()
    ) -> str:
        """Cosign ``note`` if it extends what was cosigned before.

        Returns the cosignature line (ending in a newline) to append to the
        note; raises a `WitnessError` subclass when it refuses.
        """
        # 1.
        checkpoint, text = self._verified_checkpoint(note)
        origin = checkpoint.origin
        state = self.state.get(self.name, origin)
        known_size, known_root = state if state else (0, merkle.EMPTY_ROOT)
        where = f"witness {self.name}, log {origin}"

        # 2.
        if old_size > checkpoint.size:
            raise RollbackRefused(
                f"{where}: checkpoint size {checkpoint.size} is smaller than the "
                f"old size {old_size}"
            )
        if old_size != known_size:
            raise SizeConflict(
                f"{where}: old size {old_size} given, last cosigned size is "
                f"{known_size}",
                known_size,
            )

        # 3.
        if checkpoint.size < known_size:
            raise RollbackRefused(
                f"{where}: size {checkpoint.size} is smaller than the cosigned "
                f"size {known_size}"
            )
        if checkpoint.size == known_size and checkpoint.root_hash != known_root:
            raise ForkDetected(
                f"{where}: size {known_size} was cosigned with root "
                f"{known_root.hex()[:16]}..., now offered with "
                f"{checkpoint.root_hash.hex()[:16]}..."
            )

        # 4.
        try:
            merkle.verify_consistency(
                known_size,
                checkpoint.size,
                list(proof),
                known_root,
                checkpoint.root_hash,
            )
        except ProofError as exc:
            raise InconsistentProof(
                f"{where}: size {checkpoint.size} is not consistent with "
                f"cosigned size {known_size}: {exc}"
            ) from exc

        # 5.
        new = (checkpoint.size, checkpoint.root_hash)
        if not self.state.compare_and_set(self.name, origin, state, new):
            latest = self.known_size(origin)
            raise SizeConflict(
                f"{where}: state changed concurrently to size {latest}", latest
            )

        # 6.
        signature = self.signer.sign(text.encode("utf-8"))
        data = self.signer.key_id.to_bytes(4, "big") + signature
        logger.debug("%s cosigned size %d", where, checkpoint.size)
        return f"\u2014 {self.name} {base64.b64encode(data).decode('ascii')}\n"

    def _verified_checkpoint(self, note: str) -> tuple[Checkpoint, str]:
        """C2SP tlog-witness: an unknown origin first (404), then its key (403)."""
        try:
            origin = Checkpoint.from_text(unverified_text(note)).origin
        except NoteError as exc:
            raise BadRequest(f"witness {self.name}: {exc}") from exc
        expected = self._logs.get(origin)
        if expected is None:
            raise UnknownLog(f"witness {self.name} does not follow log {origin}")
        try:
            opened = verify_note(note, [expected])
            checkpoint = Checkpoint.from_text(opened.text)
        except NoteError as exc:
            raise NotSignedByLog(
                f"witness {self.name}: checkpoint not signed by a followed log: {exc}"
            ) from exc
        return checkpoint, opened.text


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The body of a C2SP tlog-witness ``add-checkpoint`` request."""
    lines = [f"old {old_size}\n"]
    lines.extend(base64.b64encode(value).decode("ascii") + "\n" for value in proof)
    return ("".join(lines) + "\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], str]:
    """Split an ``add-checkpoint`` body into old size, proof hashes and note.

    C2SP tlog-witness section "add-checkpoint": an ``old <size>`` line, at
    most 63 base64 hash lines, an empty line, then the checkpoint note.
    Raises `BadRequest` naming what is wrong.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not UTF-8") from exc
    head, separator, note = text.partition("\n\n")
    if not separator:
        raise BadRequest("request has no empty line before the checkpoint")
    first, *hash_lines = head.split("\n")
    size_text = first.removeprefix("old ")
    if (
        first == size_text
        or not size_text.isascii()
        or not size_text.isdigit()
        or (size_text != "0" and size_text.startswith("0"))
        or len(size_text) > 19
    ):
        raise BadRequest("first line is not 'old <decimal size>'")
    old_size = int(size_text)
    if old_size > 2**63 - 1:
        raise BadRequest(f"old size {old_size} is beyond 2^63-1")
    if len(hash_lines) > MAX_PROOF_LINES:
        raise BadRequest(
            f"request has {len(hash_lines)} proof lines, at most {MAX_PROOF_LINES}"
        )
    proof: list[bytes] = []
    for number, line in enumerate(hash_lines, start=1):
        try:
            value = base64.b64decode(line.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise BadRequest(f"proof line {number} is not base64") from exc
        if len(value) != merkle.HASH_SIZE or base64.b64encode(value).decode() != line:
            raise BadRequest(f"proof line {number} is not a base64 32-byte hash")
        proof.append(value)
    return old_size, proof, note
