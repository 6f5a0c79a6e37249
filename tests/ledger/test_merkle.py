"""RFC 9162 hashing and proofs, against the transparency-dev/merkle vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger import merkle
from ledger.errors import (
    HashSizeError,
    ProofError,
    ProofLengthError,
    RootMismatchError,
    TreeSizeError,
)

LEAVES = [merkle.leaf_hash(bytes([n, n + 1, n + 2])) for n in range(70)]
ZERO = bytes(32)


def _probe_files(vectors_dir: Path, kind: str) -> list[Path]:
    base = vectors_dir / "ledger" / "transparency-dev-merkle" / "testdata" / kind
    files = sorted(base.rglob("*.json"))
    assert len(files) > 40
    return files


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(value) for value in values or []]


def _outcome(call: Any) -> bool:
    try:
        call()
    except ProofError:
        return True
    return False


def test_inclusion_probe_files_pass_and_negative_ones_fail(vectors_dir: Path) -> None:
    """transparency-dev/merkle testdata/inclusion/**.json (wantErr semantics of
    proof/verify_test.go)."""
    wrong = []
    for path in _probe_files(vectors_dir, "inclusion"):
        case = json.loads(path.read_text())
        failed = _outcome(
            lambda c=case: merkle.verify_inclusion(
                base64.b64decode(c["leafHash"]),
                c["leafIdx"],
                c["treeSize"],
                _b64_list(c["proof"]),
                base64.b64decode(c["root"]),
            )
        )
        if failed != case["wantErr"]:
            wrong.append(path.name)
    assert wrong == []


def test_consistency_probe_files_pass_and_negative_ones_fail(
    vectors_dir: Path,
) -> None:
    """transparency-dev/merkle testdata/consistency/**.json."""
    wrong = []
    for path in _probe_files(vectors_dir, "consistency"):
        case = json.loads(path.read_text())
        failed = _outcome(
            lambda c=case: merkle.verify_consistency(
                c["size1"],
                c["size2"],
                _b64_list(c["proof"]),
                base64.b64decode(c["root1"]),
                base64.b64decode(c["root2"]),
            )
        )
        if failed != case["wantErr"]:
            wrong.append(path.name)
    assert wrong == []


def test_reference_tree_roots_reproduce(vectors_dir: Path) -> None:
    """rfc6962-reference-tree.json, from transparency-dev/merkle
    cmd/proofgen/main.go."""
    data = json.loads(
        (vectors_dir / "ledger" / "rfc6962-reference-tree.json").read_text()
    )
    hashes = [merkle.leaf_hash(bytes.fromhex(leaf)) for leaf in data["leaves_hex"]]
    for size, expected in enumerate(data["roots_hex"], start=1):
        assert merkle.root(hashes[:size]).hex() == expected


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert merkle.root([]).hex().startswith("e3b0c442")


def test_generated_proofs_verify_for_every_shape_up_to_70() -> None:
    for size in range(1, 71):
        root = merkle.root(LEAVES[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(LEAVES, index, size)
            merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
        for size1 in range(size + 1):
            proof = merkle.consistency_proof(LEAVES, size1, size)
            merkle.verify_consistency(
                size1, size, proof, merkle.root(LEAVES[:size1]), root
            )


def test_index_at_or_beyond_size_is_refused() -> None:
    with pytest.raises(TreeSizeError, match="leaf index 5 is not below tree size 5"):
        merkle.verify_inclusion(LEAVES[0], 5, 5, [], ZERO)


def test_sizes_beyond_2_63_are_refused() -> None:
    with pytest.raises(TreeSizeError, match=r"tree size 9223372036854775808 .*2\^63"):
        merkle.verify_inclusion(LEAVES[0], 0, 2**63, [], ZERO)
    with pytest.raises(TreeSizeError, match=r"size2 .* is outside"):
        merkle.verify_consistency(1, 2**64, [ZERO], ZERO, ZERO)


def test_truncated_and_padded_inclusion_proofs_say_how_many_hashes() -> None:
    proof = merkle.inclusion_proof(LEAVES, 3, 8)
    root = merkle.root(LEAVES[:8])
    with pytest.raises(ProofLengthError, match="proof has 2 hashes, leaf 3 .* needs 3"):
        merkle.verify_inclusion(LEAVES[3], 3, 8, proof[:-1], root)
    with pytest.raises(ProofLengthError, match="proof has 4 hashes"):
        merkle.verify_inclusion(LEAVES[3], 3, 8, [*proof, ZERO], root)


def test_short_hash_in_proof_is_named() -> None:
    proof = merkle.inclusion_proof(LEAVES, 0, 4)
    proof[1] = proof[1][:31]
    with pytest.raises(HashSizeError, match="proof hash 1 has 31 bytes"):
        merkle.verify_inclusion(LEAVES[0], 0, 4, proof, merkle.root(LEAVES[:4]))


def test_wrong_leaf_gives_root_mismatch() -> None:
    proof = merkle.inclusion_proof(LEAVES, 2, 7)
    with pytest.raises(RootMismatchError, match="leaf 2 in a tree of size 7"):
        merkle.verify_inclusion(LEAVES[3], 2, 7, proof, merkle.root(LEAVES[:7]))


def test_consistency_size_order_and_padding_are_checked() -> None:
    root5, root9 = merkle.root(LEAVES[:5]), merkle.root(LEAVES[:9])
    proof = merkle.consistency_proof(LEAVES, 5, 9)
    with pytest.raises(TreeSizeError, match="size1 9 is larger than size2 5"):
        merkle.verify_consistency(9, 5, proof, root9, root5)
    with pytest.raises(ProofLengthError, match="consistency from size 5 to size 9"):
        merkle.verify_consistency(5, 9, proof[:-1], root5, root9)
    with pytest.raises(RootMismatchError, match="root2"):
        merkle.verify_consistency(5, 9, proof, root5, merkle.root(LEAVES[:8]))


def test_consistency_from_empty_tree_takes_an_empty_proof() -> None:
    """C2SP tlog-witness sends no proof when the old size is 0."""
    merkle.verify_consistency(0, 9, [], merkle.EMPTY_ROOT, merkle.root(LEAVES[:9]))
    with pytest.raises(ProofLengthError, match="proof has 1 hashes"):
        merkle.verify_consistency(0, 9, [ZERO], merkle.EMPTY_ROOT, ZERO)
    with pytest.raises(RootMismatchError, match="empty tree root"):
        merkle.verify_consistency(0, 9, [], ZERO, ZERO)


def test_equal_sizes_need_equal_roots() -> None:
    merkle.verify_consistency(4, 4, [], LEAVES[0], LEAVES[0])
    with pytest.raises(RootMismatchError, match="must be equal"):
        merkle.verify_consistency(4, 4, [], LEAVES[0], LEAVES[1])


def test_proof_ranges_need_log_many_nodes() -> None:
    size = 1_000_003
    ranges = merkle.inclusion_ranges(123_456, size)
    nodes = [n for start, end in ranges for n in merkle.range_nodes(start, end)]
    assert len(ranges) == 20
    assert len(nodes) <= 2 * size.bit_length()
