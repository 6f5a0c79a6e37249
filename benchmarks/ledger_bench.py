"""Ledger benchmark: batched appends, proofs at 1M entries, receipt checks.

Run: ``.venv/bin/python benchmarks/ledger_bench.py [--entries N] [--batch B]``.
Builds a fresh SQLite file log in a temporary folder (WAL journal,
synchronous=NORMAL, as a server would run it), then prints one table next to
the SHA-256 floor measured in the same run. Targets: >= 50,000 appends/s
batched; an inclusion proof at 1,000,000 entries under 1 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import SQLModel, create_engine

import ledger  # noqa: F401
from ledger.log import TransparencyLog
from ledger.note import CosignatureSigner, NoteSigner, add_signatures
from ledger.receipt import verify_receipt

ORIGIN = "bench.example/ledger"


def _record(n: int) -> dict[str, Any]:
    return {
        "type": "settlement",
        "v": 1,
        "settlement_id": f"s-{n:09d}",
        "claim_id": f"c-{n:09d}",
        "insurer": "ins-a",
        "amount_cents": 10_000 + n % 50_000,
        "currency": "EUR",
        "payment_hash": hashlib.sha256(n.to_bytes(8, "big")).hexdigest(),
        "at": "2025-03-01T10:00:00Z",
    }


def _per_call(func: Any, repeat: int) -> float:
    """Median seconds per call over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    engine = create_engine(f"sqlite:///{folder / 'ledger.db'}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    SQLModel.metadata.create_all(engine)
    signer = NoteSigner.generate(ORIGIN)
    log = TransparencyLog(engine, ORIGIN, signer)
    rows: list[tuple[str, str, str]] = []

    # SHA-256 floor: one leaf hash per entry, nothing else.
    payload = b"x" * 250
    count = 200_000
    start = time.perf_counter()
    for _ in range(count):
        hashlib.sha256(b"\x00" + payload).digest()
    floor = count / (time.perf_counter() - start)
    rows.append(("SHA-256 leaf hashes (floor)", f"{floor:,.0f} /s", "-"))

    # Batched appends. Wall time is the figure; the process (CPU) time is
    # printed too, since on a shared machine the two differ.
    elapsed = cpu = 0.0
    for first in range(0, args.entries, args.batch):
        last = min(first + args.batch, args.entries)
        records = [_record(n) for n in range(first, last)]
        keys = [f"settlement:s-{n:09d}" for n in range(first, last)]
        start, start_cpu = time.perf_counter(), time.process_time()
        log.append(records, keys)
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
    rate = args.entries / elapsed
    rows.append(
        (
            f"append, batches of {args.batch:,}",
            f"{rate:,.0f} /s ({elapsed:.1f} s)",
            "OK" if rate >= 50_000 else "below 50,000/s",
        )
    )
    rows.append(
        (
            "  same, per CPU second of this process",
            f"{args.entries / cpu:,.0f} /s ({cpu:.1f} s)",
            "-",
        )
    )

    # Idempotent re-append of one batch: nothing stored.
    records = [_record(n) for n in range(args.batch)]
    keys = [f"settlement:s-{n:09d}" for n in range(args.batch)]
    seconds = _per_call(lambda: log.append(records, keys), 3)
    rows.append(
        (f"re-append {args.batch:,} known keys", f"{seconds * 1e3:.1f} ms", "-")
    )

    size = log.size()
    rng = random.Random(7)
    indexes = [rng.randrange(size) for _ in range(args.samples)]
    incl = _per_call(lambda: log.inclusion_proof(indexes.pop(), size), args.samples)
    rows.append(
        (
            f"inclusion proof at {size:,}",
            f"{incl * 1e3:.3f} ms",
            "OK" if incl < 1e-3 else "above 1 ms",
        )
    )
    sizes = [rng.randrange(1, size) for _ in range(args.samples)]
    cons = _per_call(lambda: log.consistency_proof(sizes.pop(), size), args.samples)
    rows.append((f"consistency proof to {size:,}", f"{cons * 1e3:.3f} ms", "-"))
    root = _per_call(lambda: log.root(), 50)
    rows.append(("root of the whole log", f"{root * 1e3:.3f} ms", "-"))

    log.checkpoint()
    witnesses = [CosignatureSigner.generate(f"w{n}.example") for n in range(3)]
    receipt = log.receipt(size // 2)
    receipt["checkpoint"] = add_signatures(receipt["checkpoint"], witnesses)
    vkeys = [signer.vkey, *(w.vkey for w in witnesses)]
    check = _per_call(lambda: verify_receipt(receipt, vkeys, min_cosignatures=3), 200)
    rows.append(("verify receipt (log + 3 cosignatures)", f"{check * 1e3:.3f} ms", "-"))

    width = max(len(r[0]) for r in rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nledger benchmark, SQLite file in {folder}")
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} at the end of the run")
    print(f"{'measure':<{width}}  {'result':>24}  target")
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:>24}  {verdict}")


if __name__ == "__main__":
    main()
