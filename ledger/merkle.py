"""RFC 9162 Merkle tree hashing, proof shapes and proof verification.

Pure functions, no I/O. Hashes are 32-byte SHA-256 values. A tree of ``size``
leaves is the RFC 9162 section 2.1.1 tree; its subtrees are addressed either
as half-open leaf ranges ``(start, end)`` or, when complete, as
``(level, index)`` nodes covering leaves ``index * 2**level`` up to
``(index + 1) * 2**level``.

Proof generation is split in two so that a store can answer it from stored
nodes: `inclusion_ranges` and `consistency_ranges` say which subtree hashes a
proof consists of, `range_nodes` which complete nodes make up one of them, and
`fold_nodes` hashes those nodes into the subtree hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from ledger.errors import (
    HashSizeError,
    ProofLengthError,
    RootMismatchError,
    TreeSizeError,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "consistency_proof",
    "consistency_ranges",
    "fold_nodes",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
#: The largest tree size accepted anywhere (it must fit a signed 64-bit column).
MAX_TREE_SIZE: Final = 2**63 - 1
#: RFC 9162 section 2.1.1: the hash of an empty tree is the hash of no bytes.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 section 2.1.1: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 section 2.1.1: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (RFC 9162 section 2.1.1) of the given leaf hashes.

    Runs in one pass with a stack of complete subtrees (at most 64 deep).
    """
    stack: list[tuple[int, bytes]] = []  # (number of leaves, hash)
    for value in leaf_hashes:
        count, current = 1, value
        while stack and stack[-1][0] == count:
            left_count, left = stack.pop()
            count, current = left_count + count, node_hash(left, current)
        stack.append((count, current))
    if not stack:
        return EMPTY_ROOT
    return fold_nodes([value for _, value in stack])


def fold_nodes(hashes: Sequence[bytes]) -> bytes:
    """Hash complete subtrees, largest (left-most) first, into their range's hash.

    The hash of a leaf range whose complete subtrees are ``h1, h2, ..., hk``
    (as `range_nodes` lists them) is ``H(h1, H(h2, ... H(hk-1, hk)))``.
    """
    if not hashes:
        raise ValueError("no subtree hashes to fold")
    current = hashes[-1]
    for value in reversed(hashes[:-1]):
        current = node_hash(value, current)
    return current


def range_nodes(start: int, end: int) -> list[tuple[int, int]]:
    """The complete ``(level, index)`` nodes a proof's leaf range consists of.

    Valid for the ranges `inclusion_ranges` and `consistency_ranges` return
    (their start is aligned to the largest power of two not above their
    length), listed left to right, largest first.
    """
    nodes: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def _split(count: int) -> int:
    """RFC 9162 section 2.1.1: the largest power of two smaller than ``count``."""
    return 1 << ((count - 1).bit_length() - 1)


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TreeSizeError(f"{name} must be an integer, not {type(value).__name__}")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise TreeSizeError(f"{name} {value} is outside 0..2^63-1")


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else "non-bytes"
        raise HashSizeError(f"{name} has {size} bytes, expected {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes] | None, needed: int, where: str) -> list[bytes]:
    hashes = list(proof or ())
    if len(hashes) != needed:
        raise ProofLengthError(
            f"proof has {len(hashes)} hashes, {where} needs {needed}"
        )
    for position, value in enumerate(hashes):
        _check_hash(f"proof hash {position}", value)
    return [bytes(value) for value in hashes]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the inclusion proof of ``index`` in ``size``.

    RFC 9162 section 2.1.3.1 (PATH), bottom-up as the proof lists them.
    """
    _check_size("tree size", size)
    _check_size("leaf index", index)
    if index >= size:
        raise TreeSizeError(f"leaf index {index} is not below tree size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the consistency proof from size1 to size2.

    RFC 9162 section 2.1.4.1 (SUBPROOF with b=true), bottom-up as the proof
    lists them. From size 0 or between equal sizes the proof is empty.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise TreeSizeError(f"size1 {size1} is larger than size2 {size2}")
    ranges: list[tuple[int, int]] = []
    if size1 == 0:
        return ranges
    start, end, remaining, whole_first = 0, size2, size1, True
    while remaining != end - start:
        middle = start + _split(end - start)
        if remaining <= middle - start:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            remaining -= middle - start
            start = middle
            whole_first = False
    if not whole_first:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The inclusion proof of ``index`` in the first ``size`` of ``leaf_hashes``.

    Computes every subtree from the leaves: for tests and small trees; the log
    answers proofs from stored nodes instead.
    """
    if size > len(leaf_hashes):
        raise TreeSizeError(f"tree size {size} exceeds the {len(leaf_hashes)} leaves")
    return [root(leaf_hashes[a:b]) for a, b in inclusion_ranges(index, size)]


def consistency_proof(
    leaf_hashes: Sequence[bytes], size1: int, size2: int
) -> list[bytes]:
    """The consistency proof between two prefixes of ``leaf_hashes``."""
    if size2 > len(leaf_hashes):
        raise TreeSizeError(f"size2 {size2} exceeds the {len(leaf_hashes)} leaves")
    return [root(leaf_hashes[a:b]) for a, b in consistency_ranges(size1, size2)]


def _mismatch(what: str, computed: bytes, expected: bytes, where: str) -> None:
    if computed != expected:
        raise RootMismatchError(
            f"{what} {computed.hex()[:16]}... computed from the proof does not "
            f"match the expected {bytes(expected).hex()[:16]}... ({where})"
        )


def verify_inclusion(
    leaf_hash: bytes,
    index: int,
    size: int,
    proof: Sequence[bytes] | None,
    root: bytes,
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree ``(size, root)``.

    RFC 9162 section 2.1.3.2. Returns nothing; raises a `ProofError`
    subclass naming what is wrong.
    """
    # Plan: 1. sizes and hash lengths; 2. proof length for this shape;
    # 3. the section 2.1.3.2 walk; 4. compare with the root.
    where = f"leaf {index} in a tree of size {size}"

    # 1.
    needed = len(inclusion_ranges(index, size))
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)

    # 2.
    hashes = _check_proof(proof, needed, where)

    # 3.
    fn, sn, current = index, size - 1, bytes(leaf_hash)
    for sibling in hashes:
        if sn == 0:
            raise ProofLengthError(f"proof is longer than the path of {where}")
        if fn & 1 or fn == sn:
            current = node_hash(sibling, current)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            current = node_hash(current, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofLengthError(f"proof is shorter than the path of {where}")

    # 4.
    _mismatch("root", current, root, where)


def verify_consistency(
    size1: int,
    size2: int,
    proof: Sequence[bytes] | None,
    root1: bytes,
    root2: bytes,
) -> None:
    """Check that the tree ``(size1, root1)`` is a prefix of ``(size2, root2)``.

    RFC 9162 section 2.1.4.2. Equal sizes need an empty proof and equal
    roots. From size 0 the proof is empty, as the C2SP tlog-witness protocol
    sends it, and root1 must be the empty tree's hash. Returns nothing;
    raises a `ProofError` subclass naming what is wrong.
    """
    # Plan: 1. sizes; 2. the trivial cases (equal sizes, size1 = 0);
    # 3. hash and proof lengths; 4. the section 2.1.4.2 walk; 5. both roots.
    where = f"from size {size1} to size {size2}"

    # 1.
    needed = len(consistency_ranges(size1, size2))

    # 2.
    if size1 == size2:
        _check_proof(proof, 0, f"consistency between equal sizes {size1}")
        if size1 == 0:
            _mismatch("empty tree root", EMPTY_ROOT, root1, where)
        _mismatch("root1", bytes(root1), root2, f"{where}, which must be equal")
        return
    if size1 == 0:
        _check_proof(proof, 0, f"consistency {where}")
        _check_hash("root2", root2)
        _mismatch("empty tree root", EMPTY_ROOT, root1, where)
        return

    # 3.
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    hashes = _check_proof(proof, needed, f"consistency {where}")

    # 4.
    if size1 & (size1 - 1) == 0:
        hashes.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = hashes[0]
    for sibling in hashes[1:]:
        if sn == 0:
            raise ProofLengthError(f"proof is longer than needed {where}")
        if fn & 1 or fn == sn:
            first = node_hash(sibling, first)
            second = node_hash(sibling, second)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofLengthError(f"proof is shorter than needed {where}")

    # 5.
    _mismatch("root1", first, root1, where)
    _mismatch("root2", second, root2, where)
