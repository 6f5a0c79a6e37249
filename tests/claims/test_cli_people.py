"""`claims submit`, `claims track` and `claims insurer serve`, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from claims.cli import app
from claims.errors import NotFound
from claims.gateway import GatewayClient
from tests.claims._text import flat
from tests.claims.test_gateway import People, make_people

CLAIMS = str(Path(sys.executable).parent / "claims")
FINAL = {"settled", "denied", "in_review", "rejected"}


@pytest.fixture(autouse=True)
def _key_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace keys are sealed: give this module's workspaces a passphrase."""
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "people-tests-passphrase")


@pytest.fixture
def people(tmp_path: Path) -> People:
    return make_people(tmp_path / "ws")


def _credential_file(people: People, folder: Path, number: int = 0) -> Path:
    path = folder / f"credential-{number}.json"
    path.write_text(json.dumps(people.credentials[people.alice.did][number]))
    return path


def _workspace(people: People) -> Path:
    return people.consortium.settings.workspace


def _alice_key_file(people: People) -> str:
    """Alice's holder key as `--key-file` takes it: the seed in hex."""
    path = _workspace(people).parent / "alice.seed"
    path.write_text(people.alice.seed.hex() + "\n")
    return str(path)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def test_submit_embedded_then_track_once_as_json(
    people: People, tmp_path: Path
) -> None:
    ws = str(_workspace(people))
    key = _alice_key_file(people)
    credential = _credential_file(people, tmp_path)
    submitted = _invoke(
        "-w", ws, "submit", str(credential), "--insurer", "insurer-1",
        "--key-file", key, "--json",
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    claim = json.loads(submitted.output)
    assert claim["state"] == "submitted"

    from flows.process import run_steps

    run_steps(people.consortium)
    tracked = _invoke("-w", ws, "track", "--key-file", key, "--json")
    assert tracked.exit_code == 0, tracked.output
    views = json.loads(tracked.output)
    assert [v["id"] for v in views] == [claim["id"]]
    assert views[0]["state"] == "settled"
    assert views[0]["receipt_check"] == "verified"


def test_submit_needs_exactly_one_destination(people: People, tmp_path: Path) -> None:
    credential = str(_credential_file(people, tmp_path))
    result = _invoke(
        "-w", str(_workspace(people)), "submit", credential,
        "--key-file", _alice_key_file(people),
    )  # fmt: skip
    assert result.exit_code == 2  # a usage mistake
    assert "Invalid value for '--insurer-url' / '--insurer'" in flat(result.output)
    assert "say where to submit with exactly one of them" in flat(result.output)


def test_submit_of_a_missing_credential_is_not_found(people: People) -> None:
    result = _invoke(
        "-w", str(_workspace(people)), "submit", "nowhere.json",
        "--insurer", "insurer-1",
    )  # fmt: skip
    assert isinstance(result.exception, NotFound)


def test_an_unreachable_gateway_exits_1_with_a_remedy(
    people: People, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            CLAIMS, "-w", str(_workspace(people)),
            "submit", str(_credential_file(people, tmp_path)),
            "--insurer-url", f"http://127.0.0.1:{_free_port()}",
            "--key-file", _alice_key_file(people),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "did not answer" in done.stderr
    assert "claims insurer serve" in done.stderr
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(url: str, process: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited early"
        try:
            if httpx.get(f"{url}/ledger/keys", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    pytest.fail("the gateway did not come up")


def test_serve_processes_a_claim_submitted_over_http_without_a_person(
    people: People, tmp_path: Path
) -> None:
    """`claims insurer serve` with its flow: a claim submitted over HTTP settles.

    A generous deadline bounds the wait; nothing here times anything.
    """
    ws = str(_workspace(people))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    server = subprocess.Popen(
        [
            CLAIMS, "-w", ws, "insurer", "serve",
            "--port", str(port), "--interval", "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        _wait_for(url, server, deadline)
        key = _alice_key_file(people)
        submitted = subprocess.run(
            [
                CLAIMS, "-w", ws, "submit",
                str(_credential_file(people, tmp_path)), "--insurer-url", url,
                "--key-file", key, "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        claim_id = json.loads(submitted.stdout)["id"]
        with GatewayClient(url, people.alice) as client:
            state = "submitted"
            while time.monotonic() < deadline and state not in FINAL:
                time.sleep(1)
                state = client.claim(claim_id)["state"]
            view = client.claim(claim_id)
        assert view["state"] == "settled"
        assert [e["state"] for e in view["timeline"]] == [
            "submitted", "verified", "scored", "adjudicated", "approved", "settled",
        ]  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert server.returncode == 0, output
    assert "Traceback" not in output
