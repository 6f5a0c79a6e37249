"""Two worker processes on one database and one queue: every claim once.

Each worker runs the flow's steps (`flows.process.run_steps`) over the same
workspace in small batches, at the same time. Afterwards no claim has gone
through any state twice, each settled claim has one settlement row and one
settlement ledger record, every duplicate pair is caught, and the ledger
verifies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.demo import example_bundles
from claims.settings import Settings
from claims.store import CheckEpoch, Claim, ClaimEvent, Settlement
from claims.synth import Shapes, populate

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import json, sys
from claims.consortium import Consortium
from claims.settings import Settings
from flows.process import run_steps
report = run_steps(Consortium(Settings.load(sys.argv[1])), batch_size=int(sys.argv[2]))
print(json.dumps({"batches": report["batches"], "counts": report["counts"]}))
"""


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "Error" in line]
    return lines[-1][:300] if lines else ""


def _workers(workspace: Path, url: str, count: int, batch: int) -> list[dict]:
    env = {**os.environ, "CLAIMS_DATABASE_URL": url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(workspace), str(batch)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, _error_line(err)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def test_two_workers_never_process_a_claim_twice(
    database_url: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CLAIMS_DATABASE_URL", database_url)
    workspace = tmp_path / "ws"
    consortium = Consortium(Settings.load(workspace))
    made = populate(
        consortium, Shapes.from_fhir(example_bundles()), 240, duplicates=12, workers=1
    )
    # Keys every worker must share exist before they start.
    consortium.ledger.size()
    consortium.witnesses()

    reports = _workers(workspace, database_url, 2, batch=15)

    assert all(report["batches"] > 0 for report in reports), reports
    assert sum(report["counts"]["batch"] for report in reports) == made.claims
    with Session(consortium.store.engine) as session:
        claims = {c.id: c for c in session.exec(select(Claim))}
        events = Counter(session.exec(select(ClaimEvent.claim_id, ClaimEvent.state)))
        settlements = Counter(session.exec(select(Settlement.claim_id)))
        epochs = session.exec(select(CheckEpoch.id)).all()
    assert epochs == [], "a worker's joint-check epoch outlived its run"
    assert max(events.values()) == 1, "a claim went through a state twice"
    assert {c.state for c in claims.values()} <= {"settled", "denied", "in_review"}
    settled = {i for i, c in claims.items() if c.state == "settled"}
    assert set(settlements) == settled and max(settlements.values()) == 1
    ledger = consortium.ledger
    ledger.verify()
    settled_records = Counter(
        ledger.entry(i)["claim_id"]
        for i in range(ledger.size())
        if ledger.entry(i)["type"] == "settlement"
    )
    assert set(settled_records) == settled and max(settled_records.values()) == 1
    for first, second in made.duplicate_pairs:
        assert claims[first].duplicate or claims[second].duplicate
    consortium.store.engine.dispose()
