"""Throughput of treatment credentials on one core, next to its floor.

Measures, in one run and one process (single-threaded):

- issue: `issue_credential` of a treatment credential (JCS twice, SHA-256
  twice, one Ed25519 signature, structural validation);
- verify credential: `verify_proof` of that credential (did:key resolution,
  JCS twice, one Ed25519 verification);
- verify presentation: `verify_presentation` of a one-credential
  presentation with revocation and suspension lists (four Ed25519
  verifications and two 16 KiB status list inflations per call);
- floor: one Ed25519 verification plus RFC 8785 canonicalisation of the same
  document, the least any eddsa-jcs-2022 verifier must do; canonicalised with
  the package's own JCS (its fast path), and for reference with the
  pure-Python `rfc8785` package.

The target (issue 3): verifying at least 5,000 treatment credentials per
second on one core, and at least half the floor rate.

Run: `.venv/bin/python benchmarks/credentials_bench.py [--seconds 1.0]`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rfc8785  # noqa: E402
from nacl.signing import VerifyKey  # noqa: E402

from credentials.data_integrity import canonicalize, verify_proof  # noqa: E402
from credentials.holder import present  # noqa: E402
from credentials.issuer import issue_credential  # noqa: E402
from credentials.keys import Ed25519Key  # noqa: E402
from credentials.registry import TrustedIssuers  # noqa: E402
from credentials.status_list import (  # noqa: E402
    StatusList,
    status_entry,
    status_list_credential,
)
from credentials.verifier import verify_presentation  # noqa: E402

ISSUED = datetime(2025, 2, 1, tzinfo=UTC)
NOW = datetime(2025, 3, 1, tzinfo=UTC)
REVOCATION = "https://hospital.example/status/revocation/1"
SUSPENSION = "https://hospital.example/status/suspension/1"


def subject(holder: str) -> dict[str, Any]:
    """A synthetic treatment subject shaped like `Treatment.to_subject()`."""
    lines = [
        {
            "sequence": i,
            "system": "http://snomed.info/sct",
            "code": str(100000 + i),
            "display": f"Procedure {i}",
            "amount": f"{40 + i}.00",
        }
        for i in range(1, 6)
    ]
    return {
        "id": holder,
        "treatment": {
            "invoice": "INV-1",
            "encounter": "enc-1",
            "patient_ref": "MRN-1",
            "provider": "org-1",
            "provider_name": "General Hospital",
            "claim_type": "institutional",
            "start": "2025-01-30T08:00:00+01:00",
            "end": "2025-01-30T10:00:00+01:00",
            "currency": "EUR",
            "lines": lines,
            "diagnoses": ["http://snomed.info/sct|44054006"],
            "total": "215.00",
        },
    }


def rate(action: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(operations per second, microseconds per operation) over `seconds`.

    Time is this process's CPU time (`time.process_time`): the benchmark is
    single-threaded, so that is time on one core, and other programs sharing
    the machine do not count against it (they still cost some cache).
    """
    action()  # warm up
    count = 0
    start = time.process_time()
    while True:
        for _ in range(20):
            action()
        count += 20
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return count / elapsed, elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="time per measurement"
    )
    seconds = parser.parse_args().seconds

    hospital = Ed25519Key.from_seed(bytes(range(32)))
    patient = Ed25519Key.from_seed(bytes(range(1, 33)))
    registry = TrustedIssuers()
    registry.add(hospital.did, "General Hospital", ISSUED - timedelta(days=1))
    revocation, suspension = StatusList.new(), StatusList.new()
    rng = random.Random(1)
    index = revocation.allocate(rng)
    lists = {
        REVOCATION: status_list_credential(
            hospital, REVOCATION, revocation, "revocation", ISSUED
        ),
        SUSPENSION: status_list_credential(
            hospital, SUSPENSION, suspension, "suspension", ISSUED
        ),
    }
    status = [
        status_entry(REVOCATION, index, "revocation"),
        status_entry(SUSPENSION, index, "suspension"),
    ]
    claims = subject(patient.did)

    def issue() -> dict[str, Any]:
        return issue_credential(
            hospital,
            credential_id="urn:uuid:bench",
            subject=claims,
            valid_from=ISSUED,
            valid_until=ISSUED + timedelta(days=365),
            status=status,
        )

    credential = issue()
    vp = present([credential], patient, challenge="c", domain="d", created=NOW)
    unsecured = {k: v for k, v in credential.items() if k != "proof"}
    signature = hospital.sign(b"x" * 64)
    verify_key = VerifyKey(hospital.public_key)

    def floor() -> None:
        canonicalize(unsecured)
        verify_key.verify(b"x" * 64, signature)

    def reference_floor() -> None:
        rfc8785.dumps(unsecured)
        verify_key.verify(b"x" * 64, signature)

    def verify_vp() -> None:
        verify_presentation(
            vp,
            challenge="c",
            domain="d",
            issuers=registry,
            status_lists=lists.__getitem__,
            now=NOW,
        )

    rows = [
        ("floor: Ed25519 verify + JCS", rate(floor, seconds)),
        ("  (floor with rfc8785 JCS)", rate(reference_floor, seconds)),
        ("issue credential", rate(issue, seconds)),
        (
            "verify credential proof",
            rate(
                lambda: verify_proof(credential, expected_purpose="assertionMethod"),
                seconds,
            ),
        ),
        ("verify presentation (full)", rate(verify_vp, seconds)),
    ]
    floor_rate = rows[0][1][0]
    size = len(rfc8785.dumps(unsecured))
    print(
        f"credential: {size} bytes canonical; one core, {seconds:.1f} s of CPU"
        " time per row"
    )
    print(f"{'operation':<30} {'ops/s':>10} {'us/op':>9} {'x floor':>8}")
    for name, (ops, micros) in rows:
        print(f"{name:<30} {ops:>10,.0f} {micros:>9.1f} {floor_rate / ops:>8.1f}")
    verify_rate = rows[3][1][0]
    met = verify_rate >= 5000 and verify_rate >= floor_rate / 2
    print(
        f"target (verify >= 5,000/s and >= half the floor): "
        f"{verify_rate:,.0f}/s, {verify_rate / floor_rate:.2f} of the floor: "
        f"{'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
