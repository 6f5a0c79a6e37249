"""`claims insurer serve`: the gateway, and the flow that processes what it receives.

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
   server, if one was started, is ended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from claims.consortium import Consortium
from claims.errors import ConfigError

__all__ = ["ServeOptions", "serve"]

logger = logging.getLogger(__name__)

SERVER_START_TIMEOUT = 90.0


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


def serve(consortium: Consortium, options: ServeOptions) -> None:
    """Run the gateway (and the flow) until interrupted."""
    import uvicorn

    from claims.gateway.app import create_app

    app = create_app(consortium, options.insurer_id)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning"
    )
    server = uvicorn.Server(config)
    runner = _FlowRunner(consortium.settings.workspace, options)
    if options.flow:
        runner.start()
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn raises the signal again once it has shut down; stopping on
        # Ctrl-C is what was asked for, not a failure.
        pass
    finally:
        if options.flow:
            runner.stop()


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
        self.runner.add_flow(
            process_claims,
            name=self.options.insurer_id,
            interval=self.options.interval,
            parameters={
                "workspace": str(self.workspace),
                "insurer_id": self.options.insurer_id,
            },
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        self.loop.run_until_complete(self.runner.start())

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
