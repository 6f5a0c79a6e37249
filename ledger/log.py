"""The append-only transparency log, stored in the claims database.

Entries are JSON records stored as their RFC 8785 canonical bytes; the leaf
hash of an entry is the RFC 9162 leaf hash of those bytes. Every complete
subtree hash is stored as a node ``(level, index)`` when its last leaf is
appended, so a root or a proof reads O(log n) nodes in one query and never
rehashes leaves. Checkpoints are C2SP tlog-checkpoint bodies in signed
notes; witnesses' cosignatures are added to the stored note.

Queries use SQLAlchemy Core only (no dialect-specific SQL), so the same
code runs on SQLite and PostgreSQL. Appends to one log are serialised by
locking its ``ledger_log`` row (``SELECT ... FOR UPDATE``; SQLite takes the
database write lock instead).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from ledger import merkle
from ledger._canonical import canonical_bytes
from ledger._sql import (
    bulk_insert,
    existing_keys_qmark,
    existing_keys_sql,
    node_lookup_sql,
)
from ledger._tables import (
    LedgerCheckpoint,
    LedgerEntry,
    LedgerLog,
    LedgerNode,
    ledger_tables,
)
from ledger.errors import (
    EntryNotFound,
    InvalidRecord,
    LedgerError,
    LedgerTampered,
    NotCheckpointed,
    NoteError,
    ProofError,
    QuorumNotReached,
    SizeConflict,
    WitnessError,
)
from ledger.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    add_signature_lines,
    sign_note,
    unverified_signers,
    verify_note,
)
from ledger.receipt import RECEIPT_FORMAT

if TYPE_CHECKING:
    from ledger.audit import Finding
    from ledger.witness import CheckpointWitness

__all__ = ["TransparencyLog"]

logger = logging.getLogger(__name__)

_KEY_CHUNK: Final = 400
_VERIFY_CHUNK: Final = 8192
_ENTRY_COLUMNS: Final = ("log_id", "idx", "entry_key", "data")
_NODE_COLUMNS: Final = ("log_id", "level", "idx", "hash")

_log_t: sa.Table = LedgerLog.__table__  # type: ignore[attr-defined]
_entry_t: sa.Table = LedgerEntry.__table__  # type: ignore[attr-defined]
_node_t: sa.Table = LedgerNode.__table__  # type: ignore[attr-defined]
_checkpoint_t: sa.Table = LedgerCheckpoint.__table__  # type: ignore[attr-defined]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _frontier(size: int) -> list[tuple[int, int]]:
    """The complete nodes on the right border of a tree: one per set bit."""
    return merkle.range_nodes(0, size)


class TransparencyLog:
    """An RFC 9162 Merkle log named ``origin``, signed by ``signer``.

    ``engine`` is the claims store's SQLAlchemy engine; the ledger tables
    are created on it if missing. The signer's key name should equal the
    origin (C2SP tlog-checkpoint section "Signatures").
    """

    def __init__(
        self, engine: Engine, origin: str, signer: NoteSigner | NoteVerifier
    ) -> None:
        Checkpoint(origin, 0, merkle.EMPTY_ROOT)  # validates the origin line
        self.engine = engine
        self.origin = origin
        self.signer = signer
        self.verifier = signer.verifier() if isinstance(signer, NoteSigner) else signer
        """The log key's public half: what reading and auditing need."""
        SQLModel.metadata.create_all(engine, tables=ledger_tables())
        self._log_id = self._ensure_log_row()

    # -- set-up ------------------------------------------------------------

    def _ensure_log_row(self) -> int:
        query = sa.select(_log_t.c.id).where(_log_t.c.origin == self.origin)
        with self.engine.begin() as conn:
            found = conn.execute(query).scalar_one_or_none()
            if found is not None:
                return int(found)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(_log_t).values(origin=self.origin, size=0))
        except sa.exc.IntegrityError:
            logger.debug("log %s was created concurrently", self.origin)
        with self.engine.begin() as conn:
            return int(conn.execute(query).scalar_one())

    @property
    def log_id(self) -> int:
        """The row id of this log in ``ledger_log`` (every ledger row carries it)."""
        return self._log_id

    # -- reading -----------------------------------------------------------

    def size(self) -> int:
        """The number of entries in the log."""
        with self.engine.connect() as conn:
            return self._size(conn)

    def _size(self, conn: Connection, *, lock: bool = False) -> int:
        query = sa.select(_log_t.c.size).where(_log_t.c.id == self._log_id)
        if lock:
            query = query.with_for_update()
        return int(conn.execute(query).scalar_one())

    def _check_size(self, conn: Connection, size: int, what: str = "tree size") -> None:
        current = self._size(conn)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise EntryNotFound(f"{what} {size!r} is not a non-negative integer")
        if size > current:
            raise EntryNotFound(
                f"{what} {size} is beyond log {self.origin} of size {current}"
            )

    def _nodes(
        self, conn: Connection, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        params: dict[str, int] = {"log_id": self._log_id}
        for n, (level, index) in enumerate(wanted):
            params[f"l{n}"], params[f"i{n}"] = level, index
        rows = conn.execute(node_lookup_sql(len(wanted)), params)
        found = {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}
        missing = [key for key in wanted if key not in found]
        if missing:
            level, index = missing[0]
            raise LedgerTampered(
                f"log {self.origin}: stored node (level {level}, index {index}) "
                f"is missing ({len(missing)} missing in all)"
            )
        return found

    def _range_hashes(
        self, conn: Connection, ranges: Sequence[tuple[int, int]]
    ) -> list[bytes]:
        """Hashes of leaf ranges, read from stored nodes in one query."""
        plans = [merkle.range_nodes(start, end) for start, end in ranges]
        nodes = self._nodes(conn, (key for plan in plans for key in plan))
        return [merkle.fold_nodes([nodes[key] for key in plan]) for plan in plans]

    def _root(self, conn: Connection, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        return self._range_hashes(conn, [(0, size)])[0]

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root hash at ``size`` (default: the current size)."""
        with self.engine.connect() as conn:
            if size is None:
                size = self._size(conn)
            self._check_size(conn, size)
            return self._root(conn, size)

    def entry(self, index: int) -> dict[str, Any]:
        """The record stored at ``index``."""
        query = sa.select(_entry_t.c.data).where(
            _entry_t.c.log_id == self._log_id, _entry_t.c.idx == index
        )
        with self.engine.connect() as conn:
            data = conn.execute(query).scalar_one_or_none()
        if data is None:
            raise EntryNotFound(f"log {self.origin} has no entry {index}")
        return dict(json.loads(bytes(data)))

    def index_for_key(self, key: str) -> int | None:
        """The index of the entry appended with idempotency key ``key``, if any."""
        query = sa.select(_entry_t.c.idx).where(
            _entry_t.c.entry_key == key, _entry_t.c.log_id == self._log_id
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else int(found)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 section 2.1.3.1 inclusion proof of ``index`` in ``size``."""
        with self.engine.connect() as conn:
            if size is None:
                size = self._size(conn)
            self._check_size(conn, size)
            try:
                ranges = merkle.inclusion_ranges(index, size)
            except ProofError as exc:
                raise EntryNotFound(f"log {self.origin}: {exc}") from exc
            return self._range_hashes(conn, ranges)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 9162 section 2.1.4.1 consistency proof from ``size1`` to ``size2``."""
        with self.engine.connect() as conn:
            if size2 is None:
                size2 = self._size(conn)
            self._check_size(conn, size2, "size2")
            try:
                ranges = merkle.consistency_ranges(size1, size2)
            except ProofError as exc:
                raise EntryNotFound(f"log {self.origin}: {exc}") from exc
            return self._range_hashes(conn, ranges)

    # -- appending ---------------------------------------------------------

    def append(self, records: list[dict[str, Any]], keys: list[str]) -> list[int]:
        """Append records in one transaction and return their indexes.

        ``keys[i]`` is the idempotency key of ``records[i]`` (an id, never
        patient data). A key already in the log, or earlier in the same
        batch, returns the index it has and stores nothing; the record given
        with it again is not compared with the stored one.
        """
        # Plan: 1. check keys and record types; 2. lock the log row, find
        # keys already present, canonicalise and hash the new records; 3. the
        # complete subtrees they finish; 4. insert entries and nodes, bump
        # the size.

        # 1.
        if len(records) != len(keys):
            raise InvalidRecord(f"{len(records)} records but {len(keys)} keys given")
        for position, key in enumerate(keys):
            if not isinstance(key, str) or not key or len(key) > 255:
                raise InvalidRecord(f"key {position} must be a string of 1-255 chars")
        if not records:
            return []
        for position, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidRecord(f"record {position} must be a dict")

        with self.engine.begin() as conn:
            # 2.
            size = self._size(conn, lock=True)
            known = self._existing_keys(conn, keys)
            indexes: list[int] = []
            new_entries: list[tuple[int, int, str, bytes]] = []
            new_leaves: list[bytes] = []
            log_id, sha256 = self._log_id, hashlib.sha256
            for key, record in zip(keys, records, strict=True):
                if key in known:
                    indexes.append(known[key])
                    continue
                # only new records are canonicalised: a retry costs a lookup
                data = canonical_bytes(record)
                index = size + len(new_entries)
                known[key] = index
                indexes.append(index)
                new_entries.append((log_id, index, key, data))
                # RFC 9162 section 2.1.1 leaf hash, inlined (`merkle.leaf_hash`)
                new_leaves.append(sha256(b"\x00" + data).digest())
            if not new_entries:
                return indexes

            # 3.
            new_nodes = self._new_nodes(conn, size, new_leaves)

            # 4.
            bulk_insert(conn, "ledger_entry", _ENTRY_COLUMNS, new_entries)
            bulk_insert(conn, "ledger_node", _NODE_COLUMNS, new_nodes)
            conn.execute(
                sa.update(_log_t)
                .where(_log_t.c.id == self._log_id)
                .values(size=size + len(new_entries))
            )
        logger.debug(
            "log %s: appended %d entries, size now %d",
            self.origin,
            len(new_entries),
            size + len(new_entries),
        )
        return indexes

    def _existing_keys(self, conn: Connection, keys: Sequence[str]) -> dict[str, int]:
        unique = sorted(set(keys))
        found: dict[str, int] = {}
        qmark = conn.dialect.paramstyle == "qmark"
        for start in range(0, len(unique), _KEY_CHUNK):
            chunk = unique[start : start + _KEY_CHUNK]
            if qmark:  # SQLite: skip SQLAlchemy's named-parameter processing
                rows = conn.exec_driver_sql(
                    existing_keys_qmark(len(chunk)), tuple(chunk)
                )
            else:
                params = {f"k{n}": key for n, key in enumerate(chunk)}
                rows = conn.execute(existing_keys_sql(len(chunk)), params)
            for log_id, key, index in rows:
                if log_id == self._log_id:
                    found[str(key)] = int(index)
        return found

    def _new_nodes(
        self, conn: Connection, size: int, leaves: Sequence[bytes]
    ) -> list[tuple[int, int, int, bytes]]:
        """Level-0 nodes for ``leaves`` and every complete subtree they finish."""
        border = _frontier(size)
        stored = self._nodes(conn, border)
        stack = [(level, index, stored[(level, index)]) for level, index in border]
        log_id, sha256 = self._log_id, hashlib.sha256
        rows: list[tuple[int, int, int, bytes]] = []
        add, push, pop = rows.append, stack.append, stack.pop
        for offset, leaf in enumerate(leaves):
            level, index, value = 0, size + offset, leaf
            add((log_id, 0, index, value))
            while stack and stack[-1][0] == level:
                left = pop()[2]
                level, index = level + 1, index >> 1
                # RFC 9162 section 2.1.1 node hash, inlined (`merkle.node_hash`)
                value = sha256(b"\x01" + left + value).digest()
                add((log_id, level, index, value))
            push((level, index, value))
        return rows

    # -- checkpoints -------------------------------------------------------

    def checkpoint(self) -> str:
        """Sign, store and return a checkpoint note of the current tree.

        If the latest stored checkpoint already has the current size, that
        note (with any cosignatures) is returned instead of a new one.
        """
        with self.engine.begin() as conn:
            size = self._size(conn, lock=True)
            latest = self._latest(conn)
            if latest is not None and latest[0] == size:
                return latest[1]
            root_hash = self._root(conn, size)
            body = Checkpoint(self.origin, size, root_hash).to_text()
            if not isinstance(self.signer, NoteSigner):
                raise LedgerError(
                    f"log {self.origin} is open for reading only: signing a"
                    " checkpoint needs the log's private key"
                )
            note = sign_note(body, [self.signer])
            conn.execute(
                sa.insert(_checkpoint_t).values(
                    log_id=self._log_id,
                    size=size,
                    root_hash=root_hash,
                    note=note,
                    created_at=datetime.now(UTC).replace(tzinfo=None),
                )
            )
        logger.debug("log %s: signed checkpoint at size %d", self.origin, size)
        return note

    def _latest(self, conn: Connection) -> tuple[int, str] | None:
        row = conn.execute(
            sa.select(_checkpoint_t.c.size, _checkpoint_t.c.note)
            .where(_checkpoint_t.c.log_id == self._log_id)
            .order_by(_checkpoint_t.c.size.desc())
            .limit(1)
        ).first()
        return None if row is None else (int(row.size), str(row.note))

    def latest_checkpoint(self) -> str | None:
        """The note of the largest stored checkpoint, with its cosignatures."""
        with self.engine.connect() as conn:
            latest = self._latest(conn)
        return None if latest is None else latest[1]

    def checkpoint_at(self, size: int) -> str | None:
        """The stored checkpoint note of tree size ``size``, if one was signed."""
        query = sa.select(_checkpoint_t.c.note).where(
            _checkpoint_t.c.log_id == self._log_id, _checkpoint_t.c.size == size
        )
        with self.engine.connect() as conn:
            note = conn.execute(query).scalar_one_or_none()
        return None if note is None else str(note)

    def _store_note(self, size: int, note: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(_checkpoint_t)
                .where(
                    _checkpoint_t.c.log_id == self._log_id,
                    _checkpoint_t.c.size == size,
                )
                .values(note=note)
            )

    def cosign(self, witnesses: Sequence[CheckpointWitness], k: int) -> str:
        """Ask ``witnesses`` to cosign the latest checkpoint; need ``k`` of them.

        Each witness gets a consistency proof from the size it last cosigned
        (C2SP tlog-witness); the cosignatures collected are stored on the
        checkpoint note, which is returned. Raises `QuorumNotReached` (after
        storing what was collected) when fewer than ``k`` witnesses cosigned.
        """
        note = self.latest_checkpoint()
        if note is None:
            note = self.checkpoint()
        body = Checkpoint.from_text(verify_note(note, [self.verifier]).text)
        lines: list[str] = []
        refused: list[str] = []
        for witness in witnesses:
            old_size = witness.known_size(self.origin)
            try:
                try:
                    proof = self.consistency_proof(old_size, body.size)
                    lines.append(witness.add_checkpoint(note, old_size, proof))
                except SizeConflict as exc:
                    # C2SP tlog-witness: retry once from the size it reported
                    # (a remote witness's size is only learned this way).
                    proof = self.consistency_proof(exc.known_size, body.size)
                    lines.append(witness.add_checkpoint(note, exc.known_size, proof))
            except (WitnessError, EntryNotFound) as exc:
                logger.debug("witness %s refused: %s", witness.name, exc)
                refused.append(f"{witness.name} ({exc})")
        if lines:
            note = add_signature_lines(note, lines)
            self._store_note(body.size, note)
        if len(lines) < k:
            raise QuorumNotReached(
                f"checkpoint {self.origin} at size {body.size} has {len(lines)} of "
                f"{k} required cosignatures; refused by: {'; '.join(refused) or '-'}"
            )
        return note

    # -- receipts ----------------------------------------------------------

    def receipt(self, index: int) -> dict[str, Any]:
        """A self-contained, offline-verifiable receipt for entry ``index``.

        Built against the latest stored checkpoint, which must cover the
        entry (call `checkpoint` after appending). Verify it with
        `ledger.receipt.verify_receipt`.
        """
        note = self.latest_checkpoint()
        if note is None:
            raise NotCheckpointed(f"log {self.origin} has no checkpoint yet")
        body = Checkpoint.from_text(verify_note(note, [self.verifier]).text)
        if index >= body.size:
            raise NotCheckpointed(
                f"entry {index} is not covered by the latest checkpoint of "
                f"log {self.origin} (size {body.size}); sign a new checkpoint"
            )
        record = self.entry(index)
        proof = self.inclusion_proof(index, body.size)
        return {
            "format": RECEIPT_FORMAT,
            "origin": self.origin,
            "leaf_index": index,
            "tree_size": body.size,
            "entry": record,
            "inclusion_proof": [_b64(value) for value in proof],
            "checkpoint": note,
            "signers": _note_signers(note, self.verifier),
        }

    # -- auditing ----------------------------------------------------------

    def verify(self) -> None:
        """Recompute every stored hash and check every stored checkpoint.

        Level 0 nodes are recomputed from the entries' stored bytes, each
        higher level from the level below; then every checkpoint's signature
        (by this log's signer), origin and root are checked against the
        verified nodes. Raises `LedgerTampered` naming the first difference.
        """
        with self.engine.connect() as conn:
            size = self._size(conn)
            self._verify_leaves(conn, size)
            level = 1
            while size >> level:
                self._verify_level(conn, size, level)
                level += 1
            self._verify_no_extra_nodes(conn, size)
            self._verify_checkpoints(conn, size)
        logger.debug("log %s: verified %d entries", self.origin, size)

    def audit(
        self, cosigner_vkeys: Sequence[str] = (), *, quorum: int = 0
    ) -> list[Finding]:
        """Every finding of a full audit (see `ledger.audit.audit`); [] if sound."""
        from ledger.audit import audit

        return audit(self, cosigner_vkeys, quorum=quorum)

    def _chunks(self, count: int) -> Iterator[tuple[int, int]]:
        for start in range(0, count, _VERIFY_CHUNK):
            yield start, min(start + _VERIFY_CHUNK, count)

    def _node_rows(
        self, conn: Connection, level: int, start: int, end: int
    ) -> list[bytes]:
        rows = conn.execute(
            sa.select(_node_t.c.idx, _node_t.c.hash)
            .where(
                _node_t.c.log_id == self._log_id,
                _node_t.c.level == level,
                _node_t.c.idx >= start,
                _node_t.c.idx < end,
            )
            .order_by(_node_t.c.idx)
        ).all()
        _check_contiguous(self.origin, f"nodes of level {level}", rows, start, end)
        return [bytes(row.hash) for row in rows]

    def _verify_leaves(self, conn: Connection, size: int) -> None:
        total = conn.execute(
            sa.select(sa.func.count()).where(_entry_t.c.log_id == self._log_id)
        ).scalar_one()
        if total != size:
            raise LedgerTampered(
                f"log {self.origin} records size {size} but stores {total} entries"
            )
        for start, end in self._chunks(size):
            rows = conn.execute(
                sa.select(_entry_t.c.idx, _entry_t.c.data)
                .where(
                    _entry_t.c.log_id == self._log_id,
                    _entry_t.c.idx >= start,
                    _entry_t.c.idx < end,
                )
                .order_by(_entry_t.c.idx)
            ).all()
            _check_contiguous(self.origin, "entries", rows, start, end)
            stored = self._node_rows(conn, 0, start, end)
            for offset, (row, value) in enumerate(zip(rows, stored, strict=True)):
                if merkle.leaf_hash(bytes(row.data)) != value:
                    raise LedgerTampered(
                        f"log {self.origin}: entry {start + offset} does not match "
                        f"its stored leaf hash (level 0, index {start + offset})"
                    )

    def _verify_level(self, conn: Connection, size: int, level: int) -> None:
        count = size >> level
        for start, end in self._chunks(count):
            children = self._node_rows(conn, level - 1, 2 * start, 2 * end)
            stored = self._node_rows(conn, level, start, end)
            for offset, value in enumerate(stored):
                left, right = children[2 * offset], children[2 * offset + 1]
                if merkle.node_hash(left, right) != value:
                    raise LedgerTampered(
                        f"log {self.origin}: stored node (level {level}, index "
                        f"{start + offset}) does not match its children"
                    )

    def _verify_no_extra_nodes(self, conn: Connection, size: int) -> None:
        expected = sum(size >> level for level in range(size.bit_length()))
        total = conn.execute(
            sa.select(sa.func.count()).where(_node_t.c.log_id == self._log_id)
        ).scalar_one()
        if total != expected:
            raise LedgerTampered(
                f"log {self.origin} stores {total} nodes, a tree of size {size} "
                f"has {expected}"
            )

    def _verify_checkpoints(self, conn: Connection, size: int) -> None:
        verifier = self.verifier
        rows = conn.execute(
            sa.select(
                _checkpoint_t.c.size, _checkpoint_t.c.root_hash, _checkpoint_t.c.note
            )
            .where(_checkpoint_t.c.log_id == self._log_id)
            .order_by(_checkpoint_t.c.size)
        ).all()
        for row in rows:
            where = f"log {self.origin}: checkpoint at size {row.size}"
            try:
                body = Checkpoint.from_text(verify_note(str(row.note), [verifier]).text)
            except NoteError as exc:
                raise LedgerTampered(f"{where} does not verify: {exc}") from exc
            if body.origin != self.origin or body.size != row.size:
                raise LedgerTampered(f"{where} names another origin or size")
            if row.size > size:
                raise LedgerTampered(f"{where} is beyond the log size {size}")
            recomputed = self._root(conn, int(row.size))
            if body.root_hash != recomputed or bytes(row.root_hash) != recomputed:
                raise LedgerTampered(
                    f"{where} has root {body.root_hash.hex()[:16]}..., the entries "
                    f"give {recomputed.hex()[:16]}..."
                )


def _check_contiguous(
    origin: str, what: str, rows: Sequence[Any], start: int, end: int
) -> None:
    indexes = [int(row.idx) for row in rows]
    if indexes != list(range(start, end)):
        missing = sorted(set(range(start, end)) - set(indexes))
        first = missing[0] if missing else indexes[0]
        raise LedgerTampered(
            f"log {origin}: {what} {start}..{end - 1} are not contiguous "
            f"(first gap or extra at index {first})"
        )


def _note_signers(note: str, log: NoteVerifier) -> list[dict[str, str]]:
    """Names, key IDs and roles of a note's signature lines (not verified)."""
    log_key = (log.name, log.key_id)
    return [
        {
            "name": name,
            "key_id": f"{key_id:08x}",
            "role": "log" if (name, key_id) == log_key else "cosigner",
        }
        for name, key_id in unverified_signers(note)
    ]
