"""`claims insurer serve`: keys checked before it starts, failures in one line, SIGTERM.

Regressions from a user's report: with a wrong `CLAIMS_KEY_PASSPHRASE` the
command started anyway (accepting claims no flow run could process, with a
Prefect traceback every few seconds), and SIGTERM left its Prefect server
running where Ctrl-C did not.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa

from claims.gateway import serve as serve_module
from claims.keys import PASSPHRASE_ENV
from claims.settings import Settings

CLAIMS = str(Path(sys.executable).parent / "claims")


@pytest.fixture
def workspace(demo_workspace: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(demo_workspace, copy)
    return copy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_until_exit(
    workspace: Path, env: dict[str, str], timeout: float = 60
) -> tuple[int, str]:
    """Run `claims insurer serve`, expecting it to exit by itself.

    Should it start serving instead, it is stopped with Ctrl-C (which ends
    its Prefect server too) and the test fails on the exit code.
    """
    process = subprocess.Popen(
        [CLAIMS, "-w", str(workspace), "insurer", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"serve started instead of refusing: {output}")
    return process.returncode, " ".join(output.split())  # Rich wraps lines


def test_a_wrong_passphrase_is_refused_before_anything_starts(
    workspace: Path,
) -> None:
    env = {**os.environ, PASSPHRASE_ENV: "not the workspace passphrase"}
    code, output = _serve_until_exit(workspace, env)
    assert code == 1
    assert (
        f"error: the passphrase does not open the keys in {workspace / 'keys'}"
        in output
    )
    assert f"what to do: check {PASSPHRASE_ENV}" in output
    assert "flow on" not in output
    assert "not the workspace passphrase" not in output
    assert not (workspace / "prefect").exists()


def test_a_missing_ledger_key_is_refused_before_anything_starts(
    workspace: Path,
) -> None:
    (workspace / "keys" / "ledger.key").unlink()
    code, output = _serve_until_exit(workspace, dict(os.environ))
    assert code == 1
    assert f"error: key file {workspace / 'keys' / 'ledger.key'} is missing" in output
    assert "flow on" not in output
    assert not (workspace / "keys" / "ledger.key").exists()
    assert not (workspace / "prefect").exists()


# -- SIGTERM ---------------------------------------------------------------------


@pytest.fixture
def sigterm_guard() -> Iterator[list[int]]:
    """A SIGTERM handler that records instead of ending the test process."""
    caught: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: caught.append(1))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_raises_in_the_main_thread_until_clean_up_starts(
    sigterm_guard: list[int],
) -> None:
    with pytest.raises(serve_module._Terminated):
        with serve_module._sigterm_raises():
            signal.raise_signal(signal.SIGTERM)
    with serve_module._sigterm_raises() as stopping:
        stopping.set()
        signal.raise_signal(signal.SIGTERM)  # ignored: clean-up is under way
    assert sigterm_guard == []
    signal.raise_signal(signal.SIGTERM)  # the previous handler is back
    assert sigterm_guard == [1]


# -- a failed flow run, in one line ---------------------------------------------


class _FakeClient:
    def __init__(self, tasks: list[Any]) -> None:
        self.tasks = tasks

    async def read_task_runs(self, **_filters: Any) -> list[Any]:
        return self.tasks


def _state(kind: str, message: str | None) -> Any:
    from prefect.client.schemas.objects import StateType

    return SimpleNamespace(type=StateType(kind), message=message)


def _line(tasks: list[Any], run_state: Any) -> str:
    run = SimpleNamespace(id=uuid4(), name="brave-otter", state=run_state)
    return asyncio.run(serve_module._failure_line(_FakeClient(tasks), run))


def test_a_failed_step_is_named_with_its_error() -> None:
    task = SimpleNamespace(
        name="joint-check-3e5",
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
        state=_state(
            "FAILED",
            "Task run encountered an exception MissingKey: key file k is missing",
        ),
    )
    failed_run = _state("FAILED", "Flow run encountered an exception: MissingKey")
    assert _line([task], failed_run) == (
        "flow run 'brave-otter' failed at step joint-check:"
        " MissingKey: key file k is missing"
    )


def test_a_run_that_failed_outside_its_steps_or_crashed_says_so() -> None:
    failed = _state(
        "FAILED", "Flow run encountered an exception: OperationalError: locked"
    )
    assert (
        _line([], failed) == "flow run 'brave-otter' failed: OperationalError: locked"
    )
    crashed = _state("CRASHED", "Process exited with status code: -9.")
    assert _line([], crashed) == (
        "flow run 'brave-otter' crashed: Process exited with status code: -9."
    )
    assert _line([], _state("FAILED", None)) == (
        "flow run 'brave-otter' failed: no reason given"
    )


# -- the whole command -------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _prefect_server(pid: int) -> tuple[int, int] | None:
    """The local Prefect server `pid` started: its process id and port."""
    for child in _children(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in argv and b"--port" in argv:
            return child, int(argv[argv.index(b"--port") + 1])
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition: Any, deadline: float, what: str) -> Any:
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen in time")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_failed_run_is_one_line_and_sigterm_ends_the_prefect_server(
    workspace: Path, tmp_path: Path
) -> None:
    """Serve with the flow; make a run fail; SIGTERM; nothing left running.

    A generous deadline bounds the waits (a local Prefect server starts in
    half a minute or so); nothing here times anything.
    """
    port = _free_port()
    log_path = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    deadline = time.monotonic() + 240
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                CLAIMS, "-w", str(workspace), "insurer", "serve",
                "--port", str(port), "--interval", "2",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server: tuple[int, int] | None = None
    try:
        _wait(
            lambda: _healthy(f"http://127.0.0.1:{port}/ledger/keys"),
            deadline,
            "the gateway answering",
        )
        server = _wait(
            lambda: _prefect_server(process.pid), deadline, "the Prefect server"
        )
        _wait(
            lambda: _healthy(f"http://127.0.0.1:{server[1]}/api/health"),
            deadline,
            "the Prefect server answering",
        )

        # A claim back in the queue, and the key its intake signs with gone.
        (workspace / "keys" / "ledger.key").unlink()
        engine = sa.create_engine(Settings.load(workspace).database_url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE claim SET state = 'submitted' WHERE id = (SELECT id"
                    " FROM claim WHERE insurer_id = 'insurer-1' LIMIT 1)"
                )
            )
        engine.dispose()
        _wait(
            lambda: "failed at step intake" in log_path.read_text(),
            deadline,
            "a failed run reported",
        )

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if server is not None and _alive(server[0]):
            os.kill(server[0], signal.SIGKILL)  # ours: do not leave it behind
            pytest.fail("SIGTERM left the Prefect server running")
    output = log_path.read_text()
    assert process.returncode == 0, output
    assert server is not None
    assert "Traceback" not in output
    reported = [line for line in output.splitlines() if "failed at step" in line]
    assert reported[0].startswith("flow run '")
    assert reported[0].endswith(
        f"failed at step intake: MissingKey: key file"
        f" {workspace / 'keys' / 'ledger.key'} is missing; the keys folder must be"
        " the one the workspace was made with"
    )
