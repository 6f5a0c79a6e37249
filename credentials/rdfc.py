"""eddsa-rdfc-2022 verification over pinned, offline JSON-LD contexts.

W3C Data Integrity EdDSA Cryptosuites v1.0 section 3.2: the document and the
proof configuration are canonicalised to N-Quads with RDF Dataset
Canonicalization (RDFC-1.0), hashed with SHA-256, and verified with Ed25519
exactly as for eddsa-jcs-2022. Canonicalisation runs in pyld (an optional
dependency: `pip install pyld`) with a document loader that serves only the
contexts it was given and refuses every other URL, so verification never
touches the network (VC Data Model 2.0 section B.1 asks implementations to
treat the base context as already retrieved and pinned by hash).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from credentials.errors import MalformedDocument, ProofError

__all__ = ["KNOWN_CONTEXT_SHA256", "PinnedContexts", "canonical_nquads"]

logger = logging.getLogger(__name__)

KNOWN_CONTEXT_SHA256: Mapping[str, str] = {
    "https://www.w3.org/ns/credentials/v2": (
        "59955ced6697d61e03f2b2556febe5308ab16842846f5b586d7f1f7adec92734"
    ),
    "https://www.w3.org/ns/credentials/examples/v2": (
        "57393fbc69d6efb9b9b5dc9cb6b9880b0944360abfe2eaf459c9e58cf2279d7c"
    ),
}
"""SHA-256 of the published bytes of contexts we know (w3c/vc-data-model)."""


class PinnedContexts:
    """JSON-LD contexts held in memory, each checked against a pinned hash.

    `documents` maps a context URL to its exact published bytes. A URL in
    `KNOWN_CONTEXT_SHA256` must match that hash; any other URL must come
    with its own hash in `sha256`. Raises `MalformedDocument` otherwise.
    """

    def __init__(
        self,
        documents: Mapping[str, bytes],
        sha256: Mapping[str, str] | None = None,
    ) -> None:
        expected = {**KNOWN_CONTEXT_SHA256, **(sha256 or {})}
        self._documents: dict[str, Any] = {}
        for url, data in documents.items():
            digest = hashlib.sha256(data).hexdigest()
            if url not in expected:
                raise MalformedDocument(f"context {url} has no pinned SHA-256")
            if digest != expected[url]:
                raise MalformedDocument(
                    f"context {url} has SHA-256 {digest}, pinned {expected[url]}"
                )
            try:
                self._documents[url] = json.loads(data)
            except ValueError as exc:
                raise MalformedDocument(f"context {url} is not JSON") from exc

    @property
    def urls(self) -> frozenset[str]:
        return frozenset(self._documents)

    def load(self, url: str, options: Any = None) -> dict[str, Any]:
        """A pyld document loader: pinned contexts only, never the network."""
        if url not in self._documents:
            logger.debug("refused to load unpinned context %s", url)
            raise _UnpinnedContext(f"context {url} is not pinned; refusing to fetch it")
        return {
            "contextUrl": None,
            "documentUrl": url,
            "document": self._documents[url],
        }


class _UnpinnedContext(Exception):
    """Raised inside pyld's loader; surfaces as a ProofError from our API."""


def canonical_nquads(document: dict[str, Any], contexts: PinnedContexts) -> bytes:
    """RDFC-1.0 canonical N-Quads of a JSON-LD document (vc-di-eddsa 3.2.3).

    Raises `ProofError` if pyld is missing, a context is not pinned, or the
    document is not valid JSON-LD.
    """
    try:
        from pyld import jsonld  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ProofError("eddsa-rdfc-2022 needs pyld installed") from exc
    try:
        nquads = jsonld.normalize(
            document,
            {
                "algorithm": "URDNA2015",
                "format": "application/n-quads",
                "documentLoader": contexts.load,
                "safe": True,
            },
        )
    except Exception as exc:  # noqa: BLE001 - pyld raises many kinds
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, _UnpinnedContext):
            cause = getattr(cause, "cause", None) or cause.__cause__
        detail = str(cause) if cause is not None else type(exc).__name__
        raise ProofError(
            f"document cannot be canonicalised with RDFC-1.0: {detail}"
        ) from exc
    if not isinstance(nquads, str):
        raise ProofError("RDFC-1.0 canonicalisation did not produce N-Quads")
    return nquads.encode("utf-8")


def hash_data(
    document: dict[str, Any], options: dict[str, Any], contexts: PinnedContexts
) -> bytes:
    """vc-di-eddsa section 3.2.4: SHA-256 of the canonical proof configuration
    followed by SHA-256 of the canonical document."""
    proof_hash = hashlib.sha256(canonical_nquads(options, contexts)).digest()
    document_hash = hashlib.sha256(canonical_nquads(document, contexts)).digest()
    return proof_hash + document_hash
