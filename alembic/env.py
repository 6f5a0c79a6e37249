"""Alembic environment: the claims store's models, on the configured database.

The URL is, in order: `-x url=...` on the command line, the
`sqlalchemy.url` a caller set on the config (tests do), then
`claims.settings.Settings` (`$CLAIMS_DATABASE_URL`, else the workspace's
SQLite file).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import claims.store  # noqa: F401  (registers every table on SQLModel.metadata)
from claims.settings import Settings

config = context.config
target_metadata = SQLModel.metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Render the store's own column types as the plain types they store."""
    if type_ == "type" and isinstance(obj, claims.store.UTCDateTime):
        return "sa.DateTime()"
    return False


def _url() -> str:
    given = context.get_x_argument(as_dictionary=True).get("url")
    return (
        given
        or config.get_main_option("sqlalchemy.url")
        or (Settings.load().database_url)
    )


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
