"""Adjudication throughput: claims per second on one core, intake excluded.

Reads the Synthea bundles of `../shared/data/synthea_r4` (or the folder named
by `CLAIMS_SHARED_DIR`) once, then adjudicates every claim under each shipped
example policy, in service order with accumulators carried forward, for
several rounds. Only `adjudicate` is timed; intake is not. A second figure
adds the FHIR ClaimResponse each claim gets (`to_claim_response`), as the
flow's adjudicate step writes one per claim.

    .venv/bin/python benchmarks/adjudication_bench.py [--rounds N]

Target: 2,000 claims per second or more.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from claims.adjudication import InMemoryAccumulators, adjudicate, to_claim_response
from claims.fhir_intake import load_directory
from claims.policy import Policy

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLAIMS_SHARED_DIR", REPO.parent / "shared"))
EXAMPLES = REPO / "claims" / "examples"
TARGET = 2_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    intake = load_directory(SHARED / "data" / "synthea_r4")
    treatments = sorted((t for _, t in intake.treatments), key=lambda t: t.start)
    policies = [Policy.from_toml(EXAMPLES / f"insurer-{n}.toml") for n in (1, 2, 3)]

    count = 0
    elapsed = 0.0
    for _ in range(args.rounds):
        for policy in policies:
            store = InMemoryAccumulators()
            started = time.perf_counter()
            for treatment in treatments:
                store.put(adjudicate(treatment, policy, store).accumulator)
            elapsed += time.perf_counter() - started
            count += len(treatments)
    rate = count / elapsed
    verdict = "meets" if rate >= TARGET else "misses"
    print(
        f"{count} adjudications of {len(treatments)} Synthea claims in "
        f"{elapsed:.3f} s: {rate:,.0f} claims/s on one core ({verdict} {TARGET:,})"
    )

    # The same with a ClaimResponse per claim.
    created = datetime(2026, 1, 1, tzinfo=UTC)
    count, elapsed = 0, 0.0
    for _ in range(max(1, args.rounds // 4)):
        for policy in policies:
            store = InMemoryAccumulators()
            started = time.perf_counter()
            for treatment in treatments:
                result = adjudicate(treatment, policy, store)
                store.put(result.accumulator)
                to_claim_response(
                    treatment, result, insurer="i", claim_ref="c", created=created
                )
            elapsed += time.perf_counter() - started
            count += len(treatments)
    print(f"with a ClaimResponse each: {count / elapsed:,.0f} claims/s on one core")


if __name__ == "__main__":
    main()
