"""The databases the store, ledger and flow tests run on: SQLite and PostgreSQL.

PostgreSQL tests need a server: `.ci/pg.py start` runs a throwaway one and
prints `CLAIMS_TEST_POSTGRES_URL` (`.ci/run` does this). Without the URL they
are skipped with that reason, unless `CLAIMS_REQUIRE_POSTGRES=1` (set by
`.ci/run`) turns the skip into a failure. Each test gets a database of its
own, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

POSTGRES_URL = "CLAIMS_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_URL)
    if url:
        return url
    if os.environ.get("CLAIMS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{POSTGRES_URL} is not set but CLAIMS_REQUIRE_POSTGRES=1")
    return None


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of `admin_url`, dropped afterwards."""
    name = f"claims_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(admin_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; skipped when no server is given."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL} (see .ci/pg.py)")
    with fresh_database(admin_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/claims.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(autouse=True)
def key_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace keys are sealed under a passphrase; worker processes inherit it."""
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "tests-flows-passphrase")
