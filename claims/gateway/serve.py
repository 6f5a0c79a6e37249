"""`claims insurer serve`: the gateway, and the flow that processes what it receives.

0. Before anything starts, the keys the flow signs with are opened: a wrong
   passphrase or a missing key file is refused here, not in every flow run.
1. The gateway runs under uvicorn in the main thread (it owns Ctrl-C).
2. Unless asked not to, the `process_claims` flow is served as a Prefect
   deployment of this insurer, scheduled every few seconds, by a Prefect
   runner in a thread of its own; each scheduled run takes every submitted
   claim of the insurer to its final state.
3. Scheduling needs a Prefect server (Prefect's ephemeral API runs no
   scheduler). With `PREFECT_API_URL` set, that server is used; without it a
   local one is started for the lifetime of the command, its database in the
   workspace's `prefect/` folder.
4. When uvicorn stops (Ctrl-C, SIGTERM), the runner is stopped and the local
   server, if one was started, is ended. uvicorn raises the signal again once
   it has shut down; SIGTERM's default action would end the process there,
   before that clean-up, so `serve` handles SIGTERM itself while it runs.
5. A failed flow run is reported in one line: its name, the step that failed
   and the error (`_failure_line`, read from the Prefect API). Unless
   `debug` is set, Prefect's own flow-run and task-run logs are kept below
   CRITICAL, so its tracebacks stay off the console (and out of the Prefect
   server's log store; the run's state message still holds the error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import UUID

import httpx

from claims.consortium import Consortium
from claims.errors import ConfigError

__all__ = ["ServeOptions", "serve"]

logger = logging.getLogger(__name__)

SERVER_START_TIMEOUT = 90.0

_QUIET_RUN_LOGS = {
    # Prefect reads `PREFECT_LOGGING_<path>_<to>_<key>` over its logging.yml.
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "CRITICAL",
}


@dataclass
class ServeOptions:
    """What `claims insurer serve` was asked to do."""

    insurer_id: str = "insurer-1"
    host: str = "127.0.0.1"
    port: int = 8000
    flow: bool = True
    """Serve the processing flow too; off, only the gateway."""
    interval: float = 5.0
    """Seconds between scheduled flow runs."""
    debug: bool = False
    """Leave Prefect's flow-run logs, tracebacks included, on the console."""
    on_failure: Callable[[str], None] | None = None
    """Told one line per failed flow run; omitted, the line is logged as a
    warning."""


class _Terminated(Exception):
    """Raised in the main thread on SIGTERM, so that `serve` cleans up."""


def serve(consortium: Consortium, options: ServeOptions) -> None:
    """Run the gateway (and the flow) until interrupted by Ctrl-C or SIGTERM.

    Raises `ConfigError` (`claims.keys.MissingKey` among them) before
    starting anything when the passphrase does not open the workspace's keys
    or a key the flow signs with is missing.
    """
    import uvicorn

    from claims.gateway.app import create_app

    # 0. The keys, before anything listens or runs.
    consortium.check_keys(options.insurer_id)

    app = create_app(consortium, options.insurer_id)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning"
    )
    server = uvicorn.Server(config)
    if not options.debug:
        for name, value in _QUIET_RUN_LOGS.items():
            os.environ.setdefault(name, value)
    runner = _FlowRunner(consortium.settings.workspace, options)
    with _sigterm_raises() as stopping:
        try:
            if options.flow:
                runner.start()
            server.run()
        except (KeyboardInterrupt, _Terminated):
            # uvicorn raises the signal again once it has shut down; stopping
            # on Ctrl-C or SIGTERM is what was asked for, not a failure.
            pass
        finally:
            stopping.set()
            if options.flow:
                runner.stop()


@contextmanager
def _sigterm_raises() -> Iterator[threading.Event]:
    """Turn SIGTERM into `_Terminated` in the main thread, until stopping.

    Yields the event the caller sets when it starts cleaning up; a SIGTERM
    after that (or after the first) is ignored, so it cannot cut the clean-up
    short. Signal handlers belong to the main thread: elsewhere only the
    event is yielded.
    """
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return

    def handle(_signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            logger.debug("SIGTERM while stopping: ignored")
            return
        stopping.set()
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGTERM, previous)


class _FlowRunner:
    """A Prefect runner serving the flow's deployment, in a thread of its own.

    The thread first finds its Prefect API (starting a local server when none
    is configured), so the gateway answers while that server starts.
    """

    def __init__(self, workspace: Path, options: ServeOptions) -> None:
        self.workspace = workspace
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self._run, name="claims-flow-runner", daemon=True
        )
        self.runner: Any = None
        self.stopping = threading.Event()
        self.children: list[subprocess.Popen[bytes]] = []

    def _run(self) -> None:
        try:
            with _prefect_api(self.workspace, self.stopping, self.children) as api_url:
                logger.debug("serving the flow against Prefect at %s", api_url)
                if not self.stopping.is_set():
                    self._serve()
        except Exception:  # noqa: BLE001 - the gateway keeps serving
            logger.exception("the flow runner stopped")

    def _serve(self) -> None:
        from prefect.runner import Runner
        from prefect.types.entrypoint import EntrypointType

        from flows.process import process_claims

        asyncio.set_event_loop(self.loop)
        self.runner = Runner(
            name=f"claims-{self.options.insurer_id}", pause_on_shutdown=False, limit=1
        )
        deployment_id = self.runner.add_flow(
            process_claims,
            name=self.options.insurer_id,
            interval=self.options.interval,
            parameters={
                "workspace": str(self.workspace),
                "insurer_id": self.options.insurer_id,
            },
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        self.loop.run_until_complete(self._run_and_watch(deployment_id))

    async def _run_and_watch(self, deployment_id: UUID) -> None:
        watcher = asyncio.ensure_future(self._watch(deployment_id))
        try:
            await self.runner.start()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, deployment_id: UUID) -> None:
        """Report each failed or crashed run of the deployment once."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterEndTime,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        since = datetime.now(UTC)
        reported: deque[UUID] = deque(maxlen=256)
        report = self.options.on_failure or _log_failure
        async with get_client() as client:
            while not self.stopping.is_set():
                await asyncio.sleep(min(self.options.interval, 5.0))
                try:
                    runs = await client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(
                            deployment_id=FlowRunFilterDeploymentId(
                                any_=[deployment_id]
                            ),
                            state=FlowRunFilterState(
                                type=FlowRunFilterStateType(
                                    any_=[StateType.FAILED, StateType.CRASHED]
                                )
                            ),
                            end_time=FlowRunFilterEndTime.model_validate(
                                {"after_": since}  # converted to Prefect's type
                            ),
                        ),
                        limit=50,
                    )
                    for run in sorted(runs, key=lambda r: r.end_time or since):
                        # a run ended by this command stopping is no failure
                        if run.id not in reported and not self.stopping.is_set():
                            reported.append(run.id)
                            report(await _failure_line(client, run))
                        since = max(since, run.end_time or since)
                except Exception:  # noqa: BLE001 - reporting must not stop the runner
                    logger.debug("could not read failed flow runs", exc_info=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        runner = self.runner
        if runner is not None and getattr(runner, "started", False):
            future = asyncio.run_coroutine_threadsafe(runner.astop(), self.loop)
            try:
                future.result(timeout=15)
            except Exception:  # noqa: BLE001 - stopping anyway
                logger.debug("the flow runner did not stop cleanly")
        self.thread.join(timeout=30)
        for child in self.children:  # the thread did not get to end it
            if child.poll() is None:
                child.kill()
                child.wait()


async def _failure_line(client: Any, run: Any) -> str:
    """One line for a failed flow run: which step failed, and why.

    The step is the failed task run's name without Prefect's suffix; the
    reason is the state message without Prefect's preamble. A run that
    failed outside every step, or crashed, is reported with its own message.
    """
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    tasks = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(
                type=TaskRunFilterStateType(any_=[StateType.FAILED])
            )
        ),
    )
    if tasks:
        first = min(
            tasks, key=lambda t: t.start_time or datetime.max.replace(tzinfo=UTC)
        )
        step = first.name.rsplit("-", 1)[0] if "-" in first.name else first.name
        what, state = f"failed at step {step}", first.state
    else:
        state = run.state
        crashed = state is not None and state.type == StateType.CRASHED
        what = "crashed" if crashed else "failed"
    message = (state.message if state is not None else None) or "no reason given"
    reason = message.split("encountered an exception", 1)[-1].lstrip(": ").strip()
    return f"flow run {run.name!r} {what}: {reason}"


def _log_failure(line: str) -> None:
    logger.warning("%s", line)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _prefect_api(
    workspace: Path,
    stopping: threading.Event,
    children: list[subprocess.Popen[bytes]],
) -> Iterator[str]:
    """The Prefect API to serve against: the configured one, or a local server."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = workspace / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "ERROR"),
        }
    )
    log = (home / "server.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    children.append(process)
    try:
        _wait_healthy(url, process, stopping)
        os.environ["PREFECT_API_URL"] = url
        os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_healthy(
    url: str, process: subprocess.Popen[bytes], stopping: threading.Event
) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline and not stopping.is_set():
        if process.poll() is not None:
            raise ConfigError(
                f"the local Prefect server exited with code {process.returncode}",
                remedy="see prefect/server.log in the workspace, or set"
                " PREFECT_API_URL to a running server",
            )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    if stopping.is_set():
        return
    raise ConfigError(
        f"the local Prefect server did not start within {SERVER_START_TIMEOUT:.0f}s",
        remedy="set PREFECT_API_URL to a running Prefect server",
    )
