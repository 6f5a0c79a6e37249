"""End-to-end scale benchmark: synthetic claims through the whole flow.

    .venv/bin/python benchmarks/scale_bench.py [--sizes 1000,10000,100000]
        [--databases sqlite,postgresql] [--prefect] [--json OUT]

For each size and database, two child processes run one after the other:
the first fills a fresh database with `claims.synth.populate` (claims shaped
like ../shared/data/synthea_r4, 1 % cross-insurer duplicates), the second
takes every claim through the flow's steps in batches (`flows.process`;
with --prefect as the real Prefect flow). Each child reports its wall time
and its peak resident memory (`ru_maxrss`), so the figures of one run never
include another's. PostgreSQL runs use `$CLAIMS_TEST_POSTGRES_URL` when set,
else a throwaway server from .ci/pg.py.

Printed: claims per second, seconds per step, peak memory of the flow (taken
before the audit) and of the whole child after `ledger.verify()` reads every
entry ("audit MB"), and each figure per claim relative to the smallest size
(1.00 = linear growth).

The same machine has run this 2.4 times faster on one day than on another,
so each run also times two fixed pieces of work before its first size and
after its last ("machine" in the output): one ristretto255 scalar
multiplication (the joint check's unit of work) and a pure-Python loop (the
verify and adjudicate steps' kind of work). Figures from different days
compare only after dividing by these.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLAIMS_SHARED_DIR", REPO.parent / "shared"))

CHILD_SYNTH = """
import json, resource, sys, time
from pathlib import Path
from claims.consortium import Consortium
from claims.settings import Settings
from claims.synth import Shapes, populate
workspace, count, fhir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
start = time.perf_counter()
shapes = Shapes.from_fhir(fhir)
read = time.perf_counter() - start
consortium = Consortium(Settings.load(workspace))
start = time.perf_counter()
made = populate(consortium, shapes, count, duplicates=count // 100)
consortium.ledger.size(); consortium.witnesses()
print(json.dumps({"read_fhir_s": read, "synth_s": time.perf_counter() - start,
    "claims": made.claims, "duplicates": made.duplicates,
    "synth_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_FLOW = """
import json, resource, sys, time
from claims.settings import quiet_prefect
quiet_prefect()
from claims.consortium import Consortium
from claims.settings import Settings
workspace, prefect = sys.argv[1], sys.argv[2] == "1"
start = time.perf_counter()
if prefect:
    from flows.process import process_claims
    report = process_claims(workspace)
else:
    from flows.process import run_steps
    report = run_steps(Consortium(Settings.load(workspace)))
flow = time.perf_counter() - start
# Peak memory of the flow alone: the audit below reads the whole ledger.
flow_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
consortium = Consortium(Settings.load(workspace))
start = time.perf_counter()
consortium.ledger.verify()
verify = time.perf_counter() - start
print(json.dumps({"flow_s": flow, "work": report["work"], "counts": report["counts"],
    "batches": report["batches"], "ledger_size": consortium.ledger.size(),
    "ledger_verify_s": verify, "flow_rss_mb": flow_rss,
    "audit_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _machine() -> dict[str, float]:
    """Median time of a ristretto255 scalar multiplication (µs) and of a
    pure-Python loop of a million additions (ms), over five tries."""
    import statistics

    import rbcl  # type: ignore[import-untyped]

    scalar = bytes(rbcl.crypto_core_ristretto255_scalar_random())
    point = bytes(rbcl.crypto_core_ristretto255_from_hash(bytes(range(64))))
    multiplications, loops = [], []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(1000):
            rbcl.crypto_scalarmult_ristretto255(scalar, point)
        multiplications.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        loops.append((time.perf_counter() - start) * 1e3)
    return {
        "scalarmult_us": round(statistics.median(multiplications), 1),
        "python_loop_ms": round(statistics.median(loops), 1),
    }


def _child(code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _postgres() -> tuple[str, Path | None]:
    url = os.environ.get("CLAIMS_TEST_POSTGRES_URL")
    if url:
        return url, None
    out = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "pg.py"), "start"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines()
    )
    return values["CLAIMS_TEST_POSTGRES_URL"].strip("'"), Path(
        values["CLAIMS_PG_DIR"].strip("'")
    )


def _fresh_pg_database(admin_url: str) -> str:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"claims_bench_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(False)


def run_one(
    count: int, database: str, prefect: bool, pg_admin: str | None
) -> dict[str, Any]:
    workspace = Path(tempfile.mkdtemp(prefix=f"scale-{database}-{count}-"))
    env = {k: v for k, v in os.environ.items() if k != "CLAIMS_DATABASE_URL"}
    env["PREFECT_HOME"] = str(workspace / "prefect")
    env.setdefault("CLAIMS_KEY_PASSPHRASE", "scale-bench-passphrase")
    if database == "postgresql":
        assert pg_admin is not None
        env["CLAIMS_DATABASE_URL"] = _fresh_pg_database(pg_admin)
    fhir = SHARED / "data" / "synthea_r4"
    synth = _child(CHILD_SYNTH, [str(workspace), str(count), str(fhir)], env)
    flow = _child(CHILD_FLOW, [str(workspace), "1" if prefect else "0"], env)
    return {"claims": count, "database": database, **synth, **flow}


def _table(results: list[dict[str, Any]]) -> str:
    steps = ["intake", "verify", "joint_check", "adjudicate", "settle"]
    head = (
        f"{'db':<10} {'claims':>7} {'synth s':>8} {'flow s':>8} {'claims/s':>9} "
        + " ".join(f"{s[:9]:>9}" for s in steps)
        + f" {'synth MB':>9} {'flow MB':>8} {'audit MB':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['database']:<10} {r['claims']:>7} {r['synth_s']:>8.1f} "
            f"{r['flow_s']:>8.1f} {r['claims'] / r['flow_s']:>9.0f} "
            + " ".join(f"{r['work'][s]:>9.2f}" for s in steps)
            + f" {r['synth_rss_mb']:>9.0f} {r['flow_rss_mb']:>8.0f}"
            + f" {r.get('audit_rss_mb', float('nan')):>9.0f}"
        )
    lines.append("")
    lines.append(
        "growth: seconds per claim relative to the smallest size (1.00 = linear)"
    )
    for database in sorted({r["database"] for r in results}):
        rows = [r for r in results if r["database"] == database]
        base = rows[0]
        for r in rows[1:]:
            ratio = {
                s: (r["work"][s] / r["claims"]) / (base["work"][s] / base["claims"])
                for s in steps
            }
            flow = (r["flow_s"] / r["claims"]) / (base["flow_s"] / base["claims"])
            memory = r["flow_rss_mb"] / base["flow_rss_mb"]
            lines.append(
                f"{database:<10} {base['claims']}->{r['claims']}: flow {flow:.2f}, "
                + ", ".join(f"{s} {v:.2f}" for s, v in ratio.items())
                + f"; flow peak memory x{memory:.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--prefect", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    databases = args.databases.split(",")
    pg_admin, pg_dir = (None, None)
    if "postgresql" in databases:
        pg_admin, pg_dir = _postgres()
    results: list[dict[str, Any]] = []
    machine = {"before": _machine()}
    print(f"machine before: {machine['before']}", flush=True)

    def save() -> None:
        if args.json:
            args.json.write_text(
                json.dumps({"machine": machine, "runs": results}, indent=2)
            )

    try:
        for database in databases:
            for count in sizes:
                started = time.perf_counter()
                result = run_one(count, database, args.prefect, pg_admin)
                results.append(result)
                print(
                    f"{database} {count}: flow {result['flow_s']:.1f}s "
                    f"({time.perf_counter() - started:.0f}s with set-up)",
                    flush=True,
                )
                save()
    finally:
        if pg_dir is not None:
            subprocess.run(
                [sys.executable, str(REPO / ".ci" / "pg.py"), "stop", str(pg_dir)],
                check=False,
            )
    machine["after"] = _machine()
    save()
    print(_table(results))
    for when, figures in machine.items():
        print(
            f"machine {when}: ristretto255 scalar multiplication "
            f"{figures['scalarmult_us']} µs, a million Python additions "
            f"{figures['python_loop_ms']} ms"
        )


if __name__ == "__main__":
    main()
