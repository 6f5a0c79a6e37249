"""End-to-end benchmark: the demo over a folder of FHIR bundles.

    python benchmarks/end_to_end.py [--fhir DIR] [--runs N] [--no-prefect]

Reports claims per second, the wall time of each step as the flow saw it, the
time of each step's own work, and the orchestration overhead (flow wall time
minus the steps' own work, plus the flow's start-up). Defaults to the shared
Synthea bundles beside the checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="claims-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "ERROR")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fhir", type=Path, default=REPO.parent / "shared/data/synthea_r4"
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-prefect", action="store_true")
    args = parser.parse_args()

    from claims.demo import DemoOptions, run_demo

    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            summary = run_demo(
                DemoOptions(
                    fhir=args.fhir,
                    out=Path(tmp) / "out",
                    workspace=Path(tmp) / "ws",
                    prefect=not args.no_prefect,
                )
            )
            total = time.perf_counter() - started
        claims = summary["claims"]
        flow = summary["flow_seconds"]
        work = summary["step_work_seconds"]
        steps = summary["step_seconds"]
        print(f"run {run}: {claims} claims, demo total {total:.2f}s")
        print(f"  flow {flow:.3f}s -> {claims / flow:.0f} claims/s through the flow")
        print(f"  {'step':<12} {'wall s':>8} {'work s':>8} {'claims/s':>9}")
        for name, wall in steps.items():
            rate = claims / work[name] if work[name] else float("inf")
            print(f"  {name:<12} {wall:>8.3f} {work[name]:>8.3f} {rate:>9.0f}")
        overhead = flow - sum(work.values())
        print(
            f"  orchestration overhead {overhead:.3f}s"
            f" ({overhead / flow:.0%} of the flow)"
        )
        print(f"  set-up, issuance and submission {summary['setup_seconds']:.3f}s")


if __name__ == "__main__":
    main()
