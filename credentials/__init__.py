"""Verifiable treatment credentials: issue, hold, present, verify.

Standards: W3C VC Data Model 2.0, VC Data Integrity 1.0 with the
`eddsa-jcs-2022` cryptosuite (Ed25519 over RFC 8785 JCS), did:key (Ed25519,
Multikey), and Bitstring Status List v1.0 for revocation and suspension.

Roles have their own modules: `issuer.issue_credential` (hospital),
`holder.present` (claimant), `verifier.verify_presentation` (insurer), and
`report.check_document` (every check of one document, for people); the
building blocks are `keys`, `key_file` (keys sealed with a passphrase),
`did_key`, `data_integrity`, `status_list`, `registry`, `validate` and
`parse`. Errors are in `credentials.errors`.
"""
