"""The gateway under a bounded load on loopback, with its flow served.

1. Build a workspace: three insurers, the example hospitals, `--claimants`
   claimants enrolled at insurer-1, and `--submissions` treatment credentials
   (the example treatments with fresh invoice numbers) spread over them.
2. Start `claims insurer serve` (gateway and flow) on a free port.
3. `--workers` threads, each a signed-in claimant client, submit all the
   credentials: a challenge, then the submission. Reported: submissions per
   second, and the latency of POST /claims and of the whole submission
   (challenge + signing + POST) at p50/p95.
4. Wait (bounded) until every claim reaches a final state; reported: the
   submitted-to-settled turnaround p50/p95 from the store's own times.

Run: .venv/bin/python benchmarks/gateway_bench.py --submissions 2000 --workers 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, select

# The benchmark's own throwaway workspace seals its member keys with this
# passphrase (the served child process inherits it).
os.environ.setdefault("CLAIMS_KEY_PASSPHRASE", "gateway-benchmark-only")

from claims.consortium import Consortium
from claims.demo import example_bundles, example_policy
from claims.fhir_intake import load_directory
from claims.gateway import GatewayClient
from claims.hospital import issue_treatment_credential, publish_status_list
from claims.settings import Settings
from claims.store import Claim
from claims.submission import make_submission

FINAL = {"settled", "denied", "in_review", "rejected"}


def _pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def build(folder: Path, submissions: int, claimants: int) -> tuple[Consortium, list]:
    consortium = Consortium(Settings.load(folder))
    for number in (1, 2, 3):
        consortium.add_insurer(
            f"insurer-{number}", f"Insurer {number}", example_policy(number)
        )
    treatments = [t for _, t in load_directory(example_bundles()).treatments]
    for treatment in treatments:
        consortium.add_hospital(treatment.provider, treatment.provider_name or "H")
    keys = []
    for number in range(claimants):
        key = consortium.add_member(f"claimant-{number}", "claimant", "C")[1]
        consortium.enrol("insurer-1", key.did, date(2000, 1, 1))
        keys.append(key)
    work = []
    for number in range(submissions):
        treatment = dataclasses.replace(
            treatments[number % len(treatments)], invoice=f"bench-{number}"
        )
        key = keys[number % claimants]
        credential = issue_treatment_credential(
            consortium, treatment.provider, treatment, key.did
        )
        work.append((key, credential))
    for provider in {t.provider for t in treatments}:
        publish_status_list(consortium, provider)
    return consortium, work


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--claimants", type=int, default=200)
    parser.add_argument("--interval", type=float, default=3.0)
    parser.add_argument("--deadline", type=float, default=900.0)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="gateway-bench-")) / "ws"
    started = time.perf_counter()
    consortium, work = build(folder, args.submissions, args.claimants)
    print(f"setup: {len(work)} credentials in {time.perf_counter() - started:.1f}s")

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    claims_cmd = str(Path(sys.executable).parent / "claims")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    server = subprocess.Popen(
        [claims_cmd, "-w", str(folder), "insurer", "serve", "--port", str(port),
         "--interval", str(args.interval)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ledger/keys", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        report = _load(url, work, args.workers)
        report.update(_turnaround(consortium, len(work), args.deadline))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    report.update(
        submissions=len(work), workers=args.workers, flow_interval_s=args.interval
    )
    print(json.dumps(report, indent=2))


def _load(url: str, work: list, workers: int) -> dict[str, Any]:
    post_ms: list[float] = []
    whole_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    shares = [work[i::workers] for i in range(workers)]

    def run(share: list) -> None:
        clients: dict[str, GatewayClient] = {}
        http = httpx.Client(base_url=url, timeout=60)
        for key, credential in share:
            client = clients.get(key.did)
            if client is None:
                client = clients[key.did] = GatewayClient(url, key, http=http)
            begin = time.perf_counter()
            try:
                challenge = client._call("POST", "/challenges")
                submission = make_submission(
                    credential,
                    key,
                    challenge=challenge["challenge"],
                    domain=challenge["domain"],
                )
                sent = time.perf_counter()
                client._call("POST", "/claims", json=submission)
                done = time.perf_counter()
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(type(exc).__name__ + ": " + str(exc)[:80])
                continue
            with lock:
                post_ms.append((done - sent) * 1000)
                whole_ms.append((done - begin) * 1000)
        http.close()

    # Each claimant signs in on its first submission (two more requests);
    # that time is part of the load.
    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "accepted": len(post_ms),
        "errors": len(errors),
        "first_errors": errors[:3],
        "load_seconds": round(elapsed, 2),
        "submissions_per_s": round(len(post_ms) / elapsed, 1),
        "post_claims_ms_p50": round(_pct(post_ms, 50), 1),
        "post_claims_ms_p95": round(_pct(post_ms, 95), 1),
        "submission_ms_p50": round(_pct(whole_ms, 50), 1),
        "submission_ms_p95": round(_pct(whole_ms, 95), 1),
    }


def _turnaround(consortium: Consortium, expected: int, limit: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    claims: list[Claim] = []
    while time.monotonic() < deadline:
        with Session(consortium.store.engine) as session:
            claims = list(session.exec(select(Claim)))
        if len(claims) >= expected and all(c.state in FINAL for c in claims):
            break
        time.sleep(1)
    states: dict[str, int] = {}
    for claim in claims:
        states[claim.state] = states.get(claim.state, 0) + 1
    turnaround = sorted(
        (c.settled_at - c.submitted_at).total_seconds()
        for c in claims
        if c.settled_at is not None
    )
    return {
        "states": states,
        "settled": len(turnaround),
        "turnaround_s_p50": round(_pct(turnaround, 50), 2),
        "turnaround_s_p95": round(_pct(turnaround, 95), 2),
    }


if __name__ == "__main__":
    main()
