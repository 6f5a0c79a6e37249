"""Data Integrity proofs with the `eddsa-jcs-2022` cryptosuite.

Implements W3C VC Data Integrity 1.0 (section 4.2 Add Proof, 4.4 Verify
Proof, 2.1.2 proof sets and 2.1.3 proof chains) with the algorithms of W3C
Data Integrity EdDSA Cryptosuites v1.0 section 3.3 (eddsa-jcs-2022): the
document and the proof configuration are each canonicalised with RFC 8785
(JCS), hashed with SHA-256, and the two hashes (proof configuration first)
are signed with Ed25519. Verification methods are resolved through did:key
only. `eddsa-rdfc-2022` proofs (section 3.2) are verified too when the
caller passes pinned JSON-LD contexts (`credentials.rdfc.PinnedContexts`);
canonicalisation then runs in pyld, offline.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
from datetime import datetime
from typing import Any

import rfc8785
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from credentials._codec import (
    decode_base58btc,
    encode_base58btc,
    format_datetime,
    parse_datetime,
)
from credentials._jcs import dumps as _jcs_dumps
from credentials.did_key import public_key_from_did, resolve
from credentials.errors import (
    InvalidDid,
    InvalidProofValue,
    MalformedDocument,
    ProofContextMismatch,
    ProofError,
    UnsupportedCryptosuite,
)
from credentials.keys import Ed25519Key
from credentials.rdfc import PinnedContexts
from credentials.rdfc import hash_data as _rdfc_hash_data

__all__ = [
    "CRYPTOSUITE",
    "PROOF_TYPE",
    "add_proof",
    "canonicalize",
    "verify_proof",
    "verify_proof_set",
]

logger = logging.getLogger(__name__)

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
_RDFC_CRYPTOSUITE = "eddsa-rdfc-2022"
_SIGNATURE_LENGTH = 64
# Verification relationships a signing proof may name (CID 1.0 section 2.3).
_PURPOSES = frozenset(
    {
        "assertionMethod",
        "authentication",
        "capabilityInvocation",
        "capabilityDelegation",
    }
)


def canonicalize(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value; `MalformedDocument` if JCS refuses it."""
    try:
        return _jcs_dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        # The library's message may quote the offending value: name its kind only.
        raise MalformedDocument(
            f"document cannot be canonicalised ({type(exc).__name__})"
        ) from exc


def add_proof(
    document: dict[str, Any],
    key: Ed25519Key,
    *,
    proof_purpose: str,
    created: datetime,
    challenge: str | None = None,
    domain: str | None = None,
    proof_id: str | None = None,
    previous_proof: str | None = None,
) -> dict[str, Any]:
    """A copy of `document` secured with one more eddsa-jcs-2022 proof.

    Data Integrity section 4.2 (Add Proof) with vc-di-eddsa section 3.3.1.
    A document that already has a proof gets a proof set (section 2.1.2):
    the new proof signs the document without its existing proofs and is
    appended to them. With `previous_proof` (the `id` of an existing proof)
    the new proof joins a proof chain (section 2.1.3): it signs the document
    together with that proof. `proof_id` gives the new proof an `id` so a
    later proof can chain to it. Raises `MalformedDocument` if the document
    cannot be canonicalised or `previous_proof` names no existing proof, and
    `ValueError` for a naive `created`.
    """
    if proof_purpose not in _PURPOSES:
        raise ValueError(f"unknown proof purpose {proof_purpose!r}")
    unsecured = {name: value for name, value in document.items() if name != "proof"}
    existing = _as_list(document.get("proof"))
    options: dict[str, Any] = {} if proof_id is None else {"id": proof_id}
    options |= {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": format_datetime(created),
        "verificationMethod": key.verification_method,
        "proofPurpose": proof_purpose,
    }
    if challenge is not None:
        options["challenge"] = challenge
    if domain is not None:
        options["domain"] = domain
    signed_over = unsecured
    if previous_proof is not None:
        chained = [
            p for p in existing if isinstance(p, dict) and p.get("id") == previous_proof
        ]
        if len(chained) != 1:
            raise MalformedDocument(
                f"no single existing proof has id {previous_proof!r}"
            )
        options["previousProof"] = previous_proof
        signed_over = {**unsecured, "proof": chained[0]}

    # vc-di-eddsa section 3.3.5 Proof Configuration: the proof carries the
    # document's @context so that the two are bound together.
    if "@context" in unsecured:
        options["@context"] = copy.deepcopy(unsecured["@context"])
    hash_data = _hash_data(signed_over, options)
    proof = {**options, "proofValue": encode_base58btc(key.sign(hash_data))}

    secured = copy.deepcopy(unsecured)
    if not existing:
        secured["proof"] = proof
    else:
        secured["proof"] = [*copy.deepcopy(existing), proof]
    logger.debug("added %s proof by %s", proof_purpose, key.did)
    return secured


def verify_proof(
    document: dict[str, Any],
    *,
    expected_purpose: str,
    challenge: str | None = None,
    domain: str | None = None,
    contexts: PinnedContexts | None = None,
) -> str:
    """The DID that signed `document` for `expected_purpose`, once verified.

    Every proof of a proof set must verify; the DID returned is that of the
    first proof with `expected_purpose`. When `challenge` or `domain` is
    given, that proof must carry the same value (Data Integrity section 4.4
    steps on challenge and domain). `contexts` enables eddsa-rdfc-2022
    proofs; without it they raise `UnsupportedCryptosuite`. Raises
    `ProofError` (reason `wrong_challenge` or `wrong_domain` for those two
    checks).
    """
    return verify_proof_set(
        document,
        expected_purpose=expected_purpose,
        challenge=challenge,
        domain=domain,
        contexts=contexts,
    )[0]


def verify_proof_set(
    document: dict[str, Any],
    *,
    expected_purpose: str,
    challenge: str | None = None,
    domain: str | None = None,
    contexts: PinnedContexts | None = None,
) -> list[str]:
    """The DIDs of all proofs with `expected_purpose`, in order, once every proof
    of the document has verified (Data Integrity section 4.5). Raises `ProofError`.
    """
    # Plan: 1. find the proofs; 2. verify each against the document without
    # proofs (plus the proofs it chains to); 3. pick those for the purpose and
    # check challenge and domain on them.

    # 1.
    if not isinstance(document, dict) or "proof" not in document:
        raise ProofError("document has no proof")
    proofs = _as_list(document["proof"])
    if not proofs or not all(isinstance(proof, dict) for proof in proofs):
        raise ProofError("document's proof is not an object or a list of objects")
    unsecured = {name: value for name, value in document.items() if name != "proof"}

    # 2.
    signers: list[tuple[dict[str, Any], str]] = []
    for position, proof in enumerate(proofs):
        secured = _with_previous_proofs(unsecured, proof, proofs, position)
        signers.append((proof, _verify_one(secured, proof, position, contexts)))

    # 3.
    chosen = [
        (proof, did)
        for proof, did in signers
        if proof.get("proofPurpose") == expected_purpose
    ]
    if not chosen:
        raise ProofError(f"no proof has the purpose {expected_purpose!r}")
    for proof, did in chosen:
        if challenge is not None and proof.get("challenge") != challenge:
            raise ProofError(
                f"proof by {did} does not carry the expected challenge",
                reason="wrong_challenge",
            )
        if domain is not None and domain not in _as_list(proof.get("domain")):
            raise ProofError(
                f"proof by {did} does not carry the expected domain {domain!r}",
                reason="wrong_domain",
            )
    return [did for _, did in chosen]


def _verify_one(
    document: dict[str, Any],
    proof: dict[str, Any],
    position: int,
    contexts: PinnedContexts | None,
) -> str:
    """Verify one proof over `document` (which has no `proof`); its signer's DID."""
    where = f"proof {position}"

    # 1. Suite (vc-di-eddsa section 3.3.2 step on type and cryptosuite).
    if proof.get("type") != PROOF_TYPE:
        raise UnsupportedCryptosuite(
            f"{where} has type {proof.get('type')!r}, not {PROOF_TYPE!r}"
        )
    suite = proof.get("cryptosuite")
    if suite not in (CRYPTOSUITE, _RDFC_CRYPTOSUITE):
        raise UnsupportedCryptosuite(f"{where} uses unsupported cryptosuite {suite!r}")
    if suite == _RDFC_CRYPTOSUITE and contexts is None:
        raise UnsupportedCryptosuite(
            f"{where} uses {suite!r}, which needs pinned JSON-LD contexts"
        )

    # 2. proofValue: base58btc multibase of a 64-byte Ed25519 signature.
    value = proof.get("proofValue")
    try:
        signature = decode_base58btc(value) if isinstance(value, str) else b""
    except ValueError as exc:
        raise InvalidProofValue(
            f"{where} proofValue is not base58btc multibase"
        ) from exc
    if len(signature) != _SIGNATURE_LENGTH:
        raise InvalidProofValue(
            f"{where} signature has {len(signature)} bytes, not {_SIGNATURE_LENGTH}"
        )
    options = {name: value for name, value in proof.items() if name != "proofValue"}
    if "created" in options:
        try:
            parse_datetime(options["created"])
        except ValueError as exc:
            raise ProofError(f"{where} created is not a dateTimeStamp") from exc

    # 3. The proof's @context must be the document's (section 3.3.2 step 4).
    # NOTE: the spec accepts a proof @context that is only a prefix of the
    # document's and then signs over the shorter list; we demand equality so
    # nobody can append a context to a signed document unnoticed.
    if "@context" in options and options["@context"] != document.get("@context"):
        raise ProofContextMismatch(f"{where} @context differs from the document's")
    # Proof Configuration (sections 3.3.5 and 3.2.5) gives the configuration
    # the document's @context whether or not the proof repeats it.
    if "@context" in document:
        options["@context"] = document["@context"]

    # 4. Verification method: a did:key whose document authorises the purpose.
    did, verify_key = _verification_key(options, where)

    # 5. Hash and verify (sections 3.3.3-3.3.4 and 3.3.7; 3.2.3-3.2.4 for rdfc).
    if suite == _RDFC_CRYPTOSUITE and contexts is not None:
        hash_data = _rdfc_hash_data(document, options, contexts)
    else:
        try:
            hash_data = _hash_data(document, options)
        except MalformedDocument as exc:
            raise ProofError(f"{where}: {exc}") from exc
    try:
        verify_key.verify(hash_data, signature)
    except BadSignatureError as exc:
        raise ProofError(f"{where} signature by {did} does not verify") from exc
    logger.debug("verified %s by %s", where, did)
    return did


def _verification_key(options: dict[str, Any], where: str) -> tuple[str, VerifyKey]:
    """Resolve the proof's verification method (CID 1.0 section 3.3): the DID
    document must list it, be its controller, and authorise the proof purpose.
    """
    method = options.get("verificationMethod")
    purpose = options.get("proofPurpose")
    if not isinstance(method, str) or "#" not in method:
        raise ProofError(f"{where} verificationMethod is not a DID URL with a fragment")
    if purpose not in _PURPOSES:
        raise ProofError(f"{where} has unknown proofPurpose {purpose!r}")
    try:
        return _resolved_key(method, purpose)
    except ProofError as exc:
        raise ProofError(f"{where} {exc}") from exc


@functools.lru_cache(maxsize=4096)
def _resolved_key(method: str, purpose: str) -> tuple[str, VerifyKey]:
    """`_verification_key` for one method and purpose, memoised: a did:key's
    document is a pure function of the DID, and verifiers meet the same few
    issuers again and again. Failures raise and so are never cached."""
    did = method.split("#", 1)[0]
    try:
        did_document = resolve(did, enable_encryption_key_derivation=False)
        public_key = public_key_from_did(did)
    except InvalidDid as exc:
        raise ProofError(f"verificationMethod cannot be resolved: {exc}") from exc
    listed = [
        entry
        for entry in did_document["verificationMethod"]
        if entry["id"] == method and entry["controller"] == did_document["id"]
    ]
    if not listed:
        raise ProofError(f"verification method {method} is not in {did}'s document")
    authorised = [
        entry if isinstance(entry, str) else entry.get("id")
        for entry in did_document.get(purpose, [])
    ]
    if method not in authorised:
        raise ProofError(f"key {method} is not authorised for {purpose}")
    return did, VerifyKey(public_key)


def _hash_data(document: dict[str, Any], options: dict[str, Any]) -> bytes:
    """vc-di-eddsa section 3.3.4 Hashing: SHA-256(JCS(proof config)) followed by
    SHA-256(JCS(document))."""
    proof_hash = hashlib.sha256(canonicalize(options)).digest()
    document_hash = hashlib.sha256(canonicalize(document)).digest()
    return proof_hash + document_hash


def _with_previous_proofs(
    unsecured: dict[str, Any],
    proof: dict[str, Any],
    proofs: list[Any],
    position: int,
) -> dict[str, Any]:
    """The document a proof signed: with the proofs it chains to (Data Integrity
    section 4.5 on `previousProof`), otherwise without any proof."""
    previous = proof.get("previousProof")
    if previous is None:
        return unsecured
    wanted = _as_list(previous)
    others = [p for i, p in enumerate(proofs) if i != position]
    found = [p for p in others if p.get("id") in wanted]
    if not all(isinstance(w, str) for w in wanted) or len(found) != len(wanted):
        raise ProofError(f"proof {position} chains to a previousProof that is missing")
    chained = found[0] if len(found) == 1 else found
    return {**unsecured, "proof": chained}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
