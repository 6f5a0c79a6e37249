"""eddsa-rdfc-2022 verification with pyld over pinned, offline contexts."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from credentials._codec import decode_base58btc
from credentials.data_integrity import verify_proof
from credentials.errors import MalformedDocument, ProofError, UnsupportedCryptosuite
from credentials.keys import Ed25519Key
from credentials.rdfc import PinnedContexts, canonical_nquads, hash_data

pytest.importorskip("pyld")

V2 = "https://www.w3.org/ns/credentials/v2"
EXAMPLES = "https://www.w3.org/ns/credentials/examples/v2"


@pytest.fixture(scope="module")
def contexts(vc_vectors: Path) -> PinnedContexts:
    """w3c/vc-data-model contexts/credentials/{v2,examples/v2}, pinned by hash."""
    folder = vc_vectors / "jsonld-contexts/vc-data-model/contexts/credentials"
    return PinnedContexts(
        {
            V2: (folder / "v2").read_bytes(),
            EXAMPLES: (folder / "examples/v2").read_bytes(),
        }
    )


@pytest.fixture(scope="module")
def rdfc_dir(vc_vectors: Path) -> Path:
    return vc_vectors / "vc-di-eddsa/eddsa-rdfc-2022"


def test_w3c_eddsa_rdfc_2022_vector_reproduces(
    vc_vectors: Path, rdfc_dir: Path, contexts: PinnedContexts
) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-rdfc-2022/*DataInt* with keyPair.json
    and unsigned.json: canonical N-Quads, hashes and signature."""
    unsigned = json.loads((vc_vectors / "vc-di-eddsa/unsigned.json").read_text())
    options = json.loads((rdfc_dir / "proofConfigDataInt.json").read_text())
    canon_doc = canonical_nquads(unsigned, contexts)
    canon_proof = canonical_nquads(options, contexts)
    assert canon_doc.decode() == (rdfc_dir / "canonDocDataInt.txt").read_text()
    assert canon_proof.decode() == (rdfc_dir / "proofCanonDataInt.txt").read_text()
    combined = hash_data(unsigned, options, contexts)
    assert combined[32:].hex() == (rdfc_dir / "docHashDataInt.txt").read_text().strip()
    assert (
        combined[:32].hex() == (rdfc_dir / "proofHashDataInt.txt").read_text().strip()
    )
    assert combined.hex() == (rdfc_dir / "combinedHashDataInt.txt").read_text().strip()

    pair = json.loads((vc_vectors / "vc-di-eddsa/keyPair.json").read_text())
    key = Ed25519Key.from_private_multibase(pair["privateKeyMultibase"])
    signature = key.sign(combined)
    assert signature.hex() == (rdfc_dir / "sigHexDataInt.txt").read_text().strip()
    signed = json.loads((rdfc_dir / "signedDataInt.json").read_text())
    assert decode_base58btc(signed["proof"]["proofValue"]) == signature


@pytest.fixture
def signed(rdfc_dir: Path) -> dict[str, Any]:
    return json.loads((rdfc_dir / "signedDataInt.json").read_text())


def test_w3c_signed_rdfc_vector_verifies(
    signed: dict[str, Any], contexts: PinnedContexts
) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-rdfc-2022/signedDataInt.json."""
    did = verify_proof(signed, expected_purpose="assertionMethod", contexts=contexts)
    assert did == "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"


def test_rdfc_tampering_is_detected(
    signed: dict[str, Any], contexts: PinnedContexts
) -> None:
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["alumniOf"] = "Another School"
    with pytest.raises(ProofError, match="does not verify"):
        verify_proof(tampered, expected_purpose="assertionMethod", contexts=contexts)


def test_rdfc_without_contexts_is_unsupported(signed: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedCryptosuite, match="needs pinned JSON-LD contexts"):
        verify_proof(signed, expected_purpose="assertionMethod")


def test_unpinned_context_is_never_fetched(
    vc_vectors: Path, contexts: PinnedContexts
) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-rdfc-2022/employ/signedDataInt.json
    needs https://w3id.org/citizenship/v4rc1, which is not pinned here."""
    employ = json.loads(
        (
            vc_vectors / "vc-di-eddsa/eddsa-rdfc-2022/employ/signedDataInt.json"
        ).read_text()
    )
    with pytest.raises(ProofError, match="citizenship/v4rc1 is not pinned"):
        verify_proof(employ, expected_purpose="assertionMethod", contexts=contexts)


def test_pinned_context_with_the_wrong_bytes_is_refused() -> None:
    with pytest.raises(MalformedDocument, match="credentials/v2 has SHA-256"):
        PinnedContexts({V2: b'{"@context": {}}'})


def test_context_without_a_pin_is_refused() -> None:
    data = b'{"@context": {"@vocab": "https://x.example#"}}'
    with pytest.raises(MalformedDocument, match="has no pinned SHA-256"):
        PinnedContexts({"https://x.example/v1": data})
    pinned = PinnedContexts(
        {"https://x.example/v1": data},
        sha256={"https://x.example/v1": hashlib.sha256(data).hexdigest()},
    )
    assert pinned.urls == {"https://x.example/v1"}
