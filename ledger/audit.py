"""A full audit of a stored log that reports every finding, not only the first.

`audit` reads a log's entries, stored leaf hashes, stored subtree hashes,
checkpoints and witness states once, and compares them with what they must
be:

1. each entry's RFC 9162 leaf hash against the stored leaf hash of its
   index: a difference is classified as a changed, deleted, inserted or
   reordered entry, named by entry index;
2. every stored subtree hash against its children;
3. the root recomputed from the entries at every checkpoint size against
   the checkpoint (a signed checkpoint that the entries contradict while a
   larger one agrees is a fork: the two are not consistent), and at the
   log's size against the stored tree;
4. every checkpoint's log signature and every cosignature by a trusted
   witness, and the quorum of cosignatures;
5. every witness state kept in the same database (the size and root each
   witness last cosigned) against the recomputed roots.

The stored leaf hashes are the reference an entry is compared with; when
an attacker rewrote entries and hashes alike, only the signed checkpoints
and witness states disagree, and the finding names the range of entries
between the last checkpoint that matches and the first that does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import merkle
from ledger._tables import (
    LedgerCheckpoint,
    LedgerEntry,
    LedgerNode,
    LedgerWitnessState,
)
from ledger.errors import BadSignature, LedgerError, NoteError
from ledger.note import (
    Checkpoint,
    NoteVerifier,
    unverified_signers,
    verify_note,
)

if TYPE_CHECKING:
    from ledger.log import TransparencyLog

__all__ = ["Finding", "audit"]

logger = logging.getLogger(__name__)

_CHUNK: Final = 8192
_ENTRY_KINDS: Final = frozenset({"changed", "deleted", "inserted", "reordered"})
#: Mismatching indexes kept for classification; a larger shift is summarised.
_MAX_MISMATCHES: Final = 100_000

_entry_t: sa.Table = LedgerEntry.__table__  # type: ignore[attr-defined]
_node_t: sa.Table = LedgerNode.__table__  # type: ignore[attr-defined]
_checkpoint_t: sa.Table = LedgerCheckpoint.__table__  # type: ignore[attr-defined]
_state_t: sa.Table = LedgerWitnessState.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Finding:
    """One thing the audit found wrong.

    ``kind`` is one of ``changed``, ``deleted``, ``inserted``, ``reordered``
    (entries), ``node`` (a stored subtree hash), ``size`` (the recorded
    size), ``checkpoint`` (a bad signature or body), ``fork`` (a signed
    checkpoint the entries contradict), ``cosignature``, ``quorum`` and
    ``witness`` (a witness state the entries contradict). ``index`` is the
    first entry index concerned, or None when no entry is named.
    """

    kind: str
    index: int | None
    message: str

    def __str__(self) -> str:
        return self.message


def audit(
    log: TransparencyLog,
    cosigner_vkeys: Sequence[str] = (),
    *,
    quorum: int = 0,
) -> list[Finding]:
    """Audit ``log`` and return every finding (an empty list: all is well).

    ``cosigner_vkeys`` are the trusted witness keys (type 0x04); each of
    their lines on a checkpoint must verify, and at least ``quorum`` must be
    present on every checkpoint. Lines from other keys are ignored.
    """
    witnesses = [NoteVerifier.from_vkey(vkey) for vkey in cosigner_vkeys]
    with log.engine.connect() as conn:
        auditor = _Auditor(log, conn, witnesses, quorum)
        auditor.run()
    logger.debug("log %s: audit found %d problems", log.origin, len(auditor.found))
    return auditor.found


class _Auditor:
    def __init__(
        self,
        log: TransparencyLog,
        conn: Connection,
        witnesses: list[NoteVerifier],
        quorum: int,
    ) -> None:
        self.log = log
        self.conn = conn
        self.witnesses = witnesses
        self.quorum = quorum
        self.where = f"log {log.origin}"
        self.found: list[Finding] = []

    def add(self, kind: str, index: int | None, message: str) -> None:
        self.found.append(Finding(kind, index, f"{self.where}: {message}"))

    def run(self) -> None:
        size = self.log.size()
        checkpoints = self._checkpoints()
        states = self._witness_states()
        sizes = {s for s, _ in checkpoints} | {s for _, s, _ in states} | {size}
        roots = self._entries(size, sorted(sizes))
        self._nodes(size)
        self._check_checkpoints(checkpoints, roots, size)
        self._check_witness_states(states, roots, size)
        if not self.found and roots.get(size) is not None:
            try:
                stored = self.log.root(size)
            except LedgerError as exc:
                self.add("node", None, f"the stored tree gives no root: {exc}")
            else:
                if stored != roots[size]:
                    self.add(
                        "node",
                        None,
                        f"the stored tree's root at size {size} is not the root "
                        "of the entries",
                    )

    # 1. entries against stored leaf hashes ---------------------------------

    def _rows(
        self, table: sa.Table, column: str, start: int, end: int, level: bool
    ) -> dict[int, bytes]:
        where = [
            table.c.log_id == self.log.log_id,
            table.c.idx >= start,
            table.c.idx < end,
        ]
        if level:
            where.append(table.c.level == 0)
        query = sa.select(table.c.idx, table.c[column]).where(*where)
        return {int(row[0]): bytes(row[1]) for row in self.conn.execute(query)}

    def _max_index(self) -> int:
        entry_max = self.conn.execute(
            sa.select(sa.func.max(_entry_t.c.idx)).where(
                _entry_t.c.log_id == self.log.log_id
            )
        ).scalar_one()
        node_max = self.conn.execute(
            sa.select(sa.func.max(_node_t.c.idx)).where(
                _node_t.c.log_id == self.log.log_id, _node_t.c.level == 0
            )
        ).scalar_one()
        found = [int(value) for value in (entry_max, node_max) if value is not None]
        return max(found, default=-1)

    def _entries(self, size: int, sizes: list[int]) -> dict[int, bytes | None]:
        """Compare leaves; return the root of the entries at each of ``sizes``.

        A size past a missing entry gets None (no root can be computed).
        """
        roots: dict[int, bytes | None] = {}
        wanted = iter(sizes)
        next_size = next(wanted, None)
        stack: list[tuple[int, bytes]] = []
        count = 0  # leaves folded into the stack so far, in index order
        broken = False
        mismatched: dict[int, tuple[bytes | None, bytes | None]] = {}
        overflow = 0
        last = max(self._max_index(), size - 1)
        for start in range(0, last + 1, _CHUNK):
            end = min(start + _CHUNK, last + 1)
            entries = {
                i: merkle.leaf_hash(data)
                for i, data in self._rows(_entry_t, "data", start, end, False).items()
            }
            leaves = self._rows(_node_t, "hash", start, end, True)
            for index in range(start, end):
                entry, leaf = entries.get(index), leaves.get(index)
                if entry != leaf:
                    if len(mismatched) < _MAX_MISMATCHES:
                        mismatched[index] = (entry, leaf)
                    else:
                        overflow += 1
                if index >= size:
                    continue
                while next_size is not None and next_size == count:
                    roots[next_size] = None if broken else _fold(stack)
                    next_size = next(wanted, None)
                if entry is None or broken:
                    broken = True
                    count += 1
                    continue
                width, value = 1, entry
                while stack and stack[-1][0] == width:
                    left_width, left = stack.pop()
                    width, value = left_width + width, merkle.node_hash(left, value)
                stack.append((width, value))
                count += 1
        while next_size is not None:
            roots[next_size] = None if broken or next_size > count else _fold(stack)
            next_size = next(wanted, None)
        self._classify(mismatched, size)
        if overflow:
            self.add(
                "changed",
                None,
                f"{overflow} more entries differ from their stored leaf hashes",
            )
        return roots

    def _classify(
        self, mismatched: dict[int, tuple[bytes | None, bytes | None]], size: int
    ) -> None:
        """Name each mismatch as a changed, deleted, inserted or moved entry."""
        entry_at = {i: e for i, (e, _) in mismatched.items() if e is not None}
        leaf_at = {i: leaf for i, (_, leaf) in mismatched.items() if leaf is not None}
        where_leaf = {leaf: i for i, leaf in leaf_at.items()}
        done: set[int] = set()
        for index in sorted(mismatched):
            if index in done:
                continue
            entry, leaf = mismatched[index]
            other = where_leaf.get(entry) if entry is not None else None
            # two entries swapped
            swapped = other is not None and _same(leaf, entry_at.get(other))
            if other is not None and other != index and swapped:
                done.update((index, other))
                self.add(
                    "reordered",
                    index,
                    f"entries {index} and {other} were swapped",
                )
                continue
            # entries shifted down by one from here: one was deleted
            if entry is not None and where_leaf.get(entry) == index + 1:
                run = _run(index, lambda i: _same(entry_at.get(i), leaf_at.get(i + 1)))
                done.update(range(index, run + 2))
                self.add(
                    "deleted",
                    index,
                    f"entry {index} was deleted; entries {index + 1}..{run + 1} "
                    "were moved down by one",
                )
                continue
            # entries shifted up by one from here: one was inserted
            if _same(entry_at.get(index + 1), leaf):
                run = _run(index, lambda i: _same(entry_at.get(i + 1), leaf_at.get(i)))
                done.update(range(index, run + 2))
                self.add(
                    "inserted",
                    index,
                    f"an entry was inserted at index {index}; entries "
                    f"{index}..{run} were moved up by one",
                )
                continue
            if other is not None and other != index:
                done.update((index, other))
                self.add(
                    "reordered",
                    index,
                    f"entries {index} and {other} are out of order: entry {index} "
                    f"holds the record stored as entry {other}",
                )
                continue
            done.add(index)
            if entry is None:
                self.add("deleted", index, f"entry {index} was deleted")
            elif leaf is None and index >= size:
                self.add(
                    "inserted",
                    index,
                    f"entry {index} was inserted beyond the log size {size}",
                )
            elif leaf is None:
                message = f"the stored leaf hash of entry {index} is gone"
                self.add("node", index, message)
            else:
                self.add(
                    "changed",
                    index,
                    f"entry {index} was changed: it does not match its stored "
                    "leaf hash",
                )

    # 2. stored subtree hashes ----------------------------------------------

    def _nodes(self, size: int) -> None:
        level = 1
        while size >> level:
            count = size >> level
            for start in range(0, count, _CHUNK):
                end = min(start + _CHUNK, count)
                children = self._level(level - 1, 2 * start, 2 * end)
                stored = self._level(level, start, end)
                for index in range(start, end):
                    left = children.get(2 * index)
                    right = children.get(2 * index + 1)
                    value = stored.get(index)
                    if value is None:
                        self.add(
                            "node",
                            index << level,
                            f"stored node (level {level}, index {index}) is missing",
                        )
                    elif left is not None and right is not None:
                        if merkle.node_hash(left, right) != value:
                            self.add(
                                "node",
                                index << level,
                                f"stored node (level {level}, index {index}) "
                                "does not match its children",
                            )
            level += 1

    def _level(self, level: int, start: int, end: int) -> dict[int, bytes]:
        query = sa.select(_node_t.c.idx, _node_t.c.hash).where(
            _node_t.c.log_id == self.log.log_id,
            _node_t.c.level == level,
            _node_t.c.idx >= start,
            _node_t.c.idx < end,
        )
        return {int(row.idx): bytes(row.hash) for row in self.conn.execute(query)}

    # 3.-4. checkpoints and cosignatures ------------------------------------

    def _checkpoints(self) -> list[tuple[int, str]]:
        rows = self.conn.execute(
            sa.select(_checkpoint_t.c.size, _checkpoint_t.c.note)
            .where(_checkpoint_t.c.log_id == self.log.log_id)
            .order_by(_checkpoint_t.c.size)
        ).all()
        return [(int(row.size), str(row.note)) for row in rows]

    def _check_checkpoints(
        self,
        checkpoints: list[tuple[int, str]],
        roots: dict[int, bytes | None],
        log_size: int,
    ) -> None:
        log_key = self.log.verifier
        good: list[int] = []
        bad: list[tuple[int, bytes, bytes]] = []
        for size, note in checkpoints:
            body = self._checkpoint_body(size, note, log_key)
            if body is None:
                continue
            self._check_cosignatures(size, note, log_key)
            recomputed = roots.get(size)
            if size > log_size:
                self.add(
                    "deleted",
                    log_size,
                    f"checkpoint at size {size} is beyond the log size {log_size}: "
                    f"entries {log_size}..{size - 1} were removed",
                )
            elif recomputed is None:
                self.add(
                    "checkpoint",
                    None,
                    f"checkpoint at size {size} cannot be checked: entries are "
                    "missing below it",
                )
            elif recomputed == body.root_hash:
                good.append(size)
            else:
                bad.append((size, body.root_hash, recomputed))
        altered = [
            f.index
            for f in self.found
            if f.kind in _ENTRY_KINDS and f.index is not None
        ]
        for size, root_hash, recomputed in bad:
            below = max((s for s in good if s < size), default=0)
            first = min((i for i in altered if i < size), default=None)
            if first is not None:
                self.add(
                    "checkpoint",
                    first,
                    f"checkpoint at size {size} does not match the entries, "
                    f"which were altered below it (first at entry {first})",
                )
                continue
            above = [s for s in good if s > size]
            detail = (
                f"; it is not consistent with the checkpoint at size {above[0]}, "
                "which the entries match: the log was forked"
                if above
                else "; the stored log and the signed checkpoint have forked"
            )
            self.add(
                "fork",
                below,
                f"checkpoint at size {size} has root {root_hash.hex()[:16]}..., the "
                f"entries give {recomputed.hex()[:16]}...: entries "
                f"{below}..{size - 1} differ from what was signed{detail}",
            )

    def _checkpoint_body(
        self, size: int, note: str, log_key: NoteVerifier
    ) -> Checkpoint | None:
        try:
            body = Checkpoint.from_text(verify_note(note, [log_key]).text)
        except NoteError as exc:
            self.add("checkpoint", None, f"checkpoint at size {size}: {exc}")
            return None
        if body.origin != self.log.origin or body.size != size:
            self.add(
                "checkpoint",
                None,
                f"checkpoint stored at size {size} names origin {body.origin!r} "
                f"and size {body.size}",
            )
            return None
        return body

    def _check_cosignatures(self, size: int, note: str, log_key: NoteVerifier) -> None:
        present = set(unverified_signers(note))
        valid = 0
        for witness in self.witnesses:
            if (witness.name, witness.key_id) not in present:
                continue
            try:
                verify_note(note, [log_key, witness])
            except BadSignature:
                self.add(
                    "cosignature",
                    None,
                    f"checkpoint at size {size}: the cosignature by {witness.name} "
                    "does not verify",
                )
                continue
            valid += 1
        if valid < self.quorum:
            self.add(
                "quorum",
                None,
                f"checkpoint at size {size} has {valid} valid cosignatures, "
                f"{self.quorum} required",
            )

    # 5. witness states -----------------------------------------------------

    def _witness_states(self) -> list[tuple[str, int, bytes]]:
        rows = self.conn.execute(
            sa.select(_state_t.c.witness, _state_t.c.size, _state_t.c.root_hash).where(
                _state_t.c.origin == self.log.origin
            )
        ).all()
        return [(str(r.witness), int(r.size), bytes(r.root_hash)) for r in rows]

    def _check_witness_states(
        self,
        states: list[tuple[str, int, bytes]],
        roots: dict[int, bytes | None],
        log_size: int,
    ) -> None:
        for witness, size, root_hash in states:
            if size > log_size:
                self.add(
                    "witness",
                    log_size,
                    f"witness {witness} cosigned size {size}, beyond the log "
                    f"size {log_size}: entries {log_size}..{size - 1} were removed",
                )
                continue
            recomputed = roots.get(size)
            if recomputed is not None and recomputed != root_hash:
                self.add(
                    "witness",
                    None,
                    f"witness {witness} cosigned size {size} with another root "
                    "than the entries give",
                )


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    if not stack:
        return merkle.EMPTY_ROOT
    return merkle.fold_nodes([value for _, value in stack])


def _run(start: int, holds: Callable[[int], bool]) -> int:
    """The last index from ``start`` on for which ``holds(index)`` is true."""
    index = start
    while holds(index + 1):
        index += 1
    return index


def _same(value: bytes | None, other: bytes | None) -> bool:
    return value is not None and value == other
