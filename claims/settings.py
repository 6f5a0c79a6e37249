"""Where the engine keeps its state, and how Prefect is told to behave.

Everything lives in one workspace folder (by default `./claims-workspace`,
or `$CLAIMS_WORKSPACE`): the SQLite store, member keys, published status
lists, and Prefect's own home. `CLAIMS_DATABASE_URL` points the store at
another database (PostgreSQL, say) with the same models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "quiet_prefect"]

DEFAULT_WORKSPACE = "claims-workspace"


@dataclass(frozen=True)
class Settings:
    """Resolved locations for one workspace."""

    workspace: Path
    database_url: str

    @classmethod
    def load(cls, workspace: Path | str | None = None) -> Settings:
        """Resolve settings: the argument, then the environment, then defaults.

        Args:
            workspace: the workspace folder; omitted, `$CLAIMS_WORKSPACE` or
                `./claims-workspace` is used.
        """
        folder = Path(
            workspace or os.environ.get("CLAIMS_WORKSPACE") or DEFAULT_WORKSPACE
        ).resolve()
        url = os.environ.get("CLAIMS_DATABASE_URL") or f"sqlite:///{folder}/claims.db"
        return cls(workspace=folder, database_url=url)

    @property
    def keys_dir(self) -> Path:
        return self.workspace / "keys"

    @property
    def status_dir(self) -> Path:
        return self.workspace / "status"


def quiet_prefect(*, debug: bool = False, home: Path | None = None) -> None:
    """Set Prefect's environment before it is imported.

    Prefect reads its settings when first imported, so the CLI calls this
    first. Values the user has set are kept.

    Args:
        debug: when true, Prefect logs at INFO as usual; otherwise only
            its warnings and errors reach the terminal, and none from flow
            and task runs (whose failures the caller reports itself).
        home: Prefect's home folder (its local database); omitted, Prefect's
            own default (`~/.prefect`) is kept.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if debug else "ERROR")
    os.environ.setdefault("PREFECT_LOGGING_INTERNAL_LEVEL", "ERROR")
    if not debug:
        # A failed flow or task run logs its traceback at ERROR through these
        # two loggers; the CLI reports the failure in one line of its own.
        for runs in ("FLOW_RUNS", "TASK_RUNS"):
            os.environ.setdefault(
                f"PREFECT_LOGGING_LOGGERS_PREFECT_{runs}_LEVEL", "CRITICAL"
            )
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_UI_ENABLED", "false")
    # The local server can take longer than Prefect's 20 s to start on a busy
    # two-core machine; waiting beats failing the run.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if home is not None:
        os.environ.setdefault("PREFECT_HOME", str(home))
