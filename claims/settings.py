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

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from claims.errors import ConfigError

__all__ = ["Settings", "quiet_prefect", "sqlite_file"]

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
        given = os.environ.get("CLAIMS_DATABASE_URL")
        url = _supported(given) if given else f"sqlite:///{folder}/claims.db"
        return cls(workspace=folder, database_url=url)

    @property
    def sqlite_file(self) -> Path | None:
        """The store's file when it is SQLite on disk; None otherwise."""
        return sqlite_file(self.database_url)

    @property
    def keys_dir(self) -> Path:
        return self.workspace / "keys"

    @property
    def status_dir(self) -> Path:
        return self.workspace / "status"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite database URL names (a `file:` URI's too); None for
    another database or SQLite in memory."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or name in (None, "", ":memory:"):
        return None
    return Path(name.removeprefix("file:"))  # `file:` with `?uri=true`


def _supported(given: str) -> str:
    """`CLAIMS_DATABASE_URL` checked: SQLite, or PostgreSQL through psycopg 3.

    `postgresql://` alone means psycopg 3 here (SQLAlchemy would reach for
    psycopg2, which is not installed). Errors never repeat the URL: it may
    hold a password.
    """
    remedy = "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
    try:
        url = make_url(given)
        url.port  # noqa: B018 - read now: a port that is no number raises here
    except (ArgumentError, ValueError):
        raise ConfigError(
            "CLAIMS_DATABASE_URL is not a database URL", remedy=remedy
        ) from None
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql") or url.drivername not in (
        "sqlite",
        "sqlite+pysqlite",
        "postgresql+psycopg",
    ):
        raise ConfigError(
            f"CLAIMS_DATABASE_URL names {url.drivername}; the claims store runs on"
            " SQLite or on PostgreSQL through psycopg",
            remedy=remedy,
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigError(
            "CLAIMS_DATABASE_URL names an in-memory SQLite database: nothing"
            " would be kept",
            remedy=remedy,
        )
    return url.render_as_string(hide_password=False)


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
