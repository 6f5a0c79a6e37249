"""A real Prefect server on PostgreSQL, a process work pool and two workers.

It needs a PostgreSQL server (`CLAIMS_TEST_POSTGRES_URL`, as `.ci/run` gives;
skipped without one, a failure under `CLAIMS_REQUIRE_POSTGRES=1`) and takes
about 25 s: a server, two workers and their flow-run processes start. It
follows the README's "Running at scale"
section: the server keeps its own state in one PostgreSQL database, the
claims in another; two deployment runs, picked up by two workers, share one
queue.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.demo import example_bundles
from claims.settings import Settings
from claims.store import Claim, ClaimEvent, Settlement
from claims.synth import Shapes, populate
from tests.flows.conftest import fresh_database, postgres_admin_url

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(api: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail("the Prefect server did not become healthy in time")


def test_two_workers_of_a_work_pool_share_one_queue(tmp_path: Path) -> None:
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("needs CLAIMS_TEST_POSTGRES_URL")
    with fresh_database(admin) as prefect_db, fresh_database(admin) as claims_db:
        port = _free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_API_URL": api,
            "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db.replace(
                "+psycopg", "+asyncpg"
            ),
            "CLAIMS_DATABASE_URL": claims_db,
        }
        workspace = tmp_path / "ws"
        os.environ["CLAIMS_DATABASE_URL"] = claims_db
        try:
            consortium = Consortium(Settings.load(workspace))
            made = populate(
                consortium, Shapes.from_fhir(example_bundles()), 120, duplicates=6
            )
            consortium.ledger.size()
            consortium.witnesses()
        finally:
            os.environ.pop("CLAIMS_DATABASE_URL", None)

        procs: list[subprocess.Popen[bytes]] = []

        def spawn(*args: str) -> None:
            procs.append(
                subprocess.Popen(
                    [PREFECT, *args],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

        def run(*args: str) -> str:
            done = subprocess.run(
                args, cwd=REPO, env=env, capture_output=True, text=True, check=True
            )
            return done.stdout

        try:
            spawn("server", "start", "--host", "127.0.0.1", "--port", str(port))
            _wait_healthy(api, time.monotonic() + 180)
            run(PREFECT, "work-pool", "create", "claims", "--type", "process")
            run(sys.executable, "-m", "flows.deploy", "--workspace", str(workspace))
            for n in (1, 2):
                spawn(
                    "worker",
                    "start",
                    "--pool",
                    "claims",
                    "--limit",
                    "1",
                    "--name",
                    f"worker-{n}",
                )
            for _ in (1, 2):
                run(
                    PREFECT,
                    "deployment",
                    "run",
                    "process-claims/claims",
                    "--param",
                    "batch_size=10",
                )
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with Session(consortium.store.engine) as session:
                    waiting = session.exec(
                        select(Claim.id).where(
                            Claim.state.in_(  # type: ignore[attr-defined]
                                ["submitted", "verified", "scored", "approved"]
                            )
                        )
                    ).all()
                if not waiting:
                    break
                time.sleep(2)
            else:
                pytest.fail("the workers did not finish the queue in time")
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)

        with Session(consortium.store.engine) as session:
            events = Counter(
                session.exec(select(ClaimEvent.claim_id, ClaimEvent.state))
            )
            settled = session.exec(
                select(Claim.id).where(Claim.state == "settled")
            ).all()
            settlements = Counter(session.exec(select(Settlement.claim_id)))
        assert max(events.values()) == 1
        assert set(settlements) == set(settled) and max(settlements.values()) == 1
        assert made.claims == 120
        consortium.ledger.verify()
        consortium.store.engine.dispose()
