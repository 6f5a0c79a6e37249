"""Alembic's migrations build the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from claims.store import Store

REPO = Path(__file__).resolve().parents[2]


def _schema(engine: sa.Engine) -> dict[str, object]:
    """Tables with their columns, keys and indexes, as the database reports them."""
    inspector = sa.inspect(engine)
    schema: dict[str, object] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        schema[table] = {
            "columns": [
                (c["name"], type(c["type"]).__name__, c["nullable"])
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"])
                for u in inspector.get_unique_constraints(table)
            ),
        }
    return schema


def _config(url: str) -> Config:
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("script_location", str(REPO / "alembic"))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(_config(url), revision)


def _schema_at(url: str) -> dict[str, object]:
    engine = sa.create_engine(url)
    try:
        return _schema(engine)
    finally:
        engine.dispose()


def _version(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        version = [row[0] for row in rows]
    engine.dispose()
    return version


def test_upgrade_head_gives_the_models_schema(database_url: str) -> None:
    _upgrade(database_url)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn), SQLModel.metadata
        )
    migrated = _schema(engine)
    engine.dispose()
    assert differences == [], "add an Alembic revision for these model changes"

    # The same tables, columns and keys as `create_all` makes on a second database.
    fresh_url = (
        database_url.replace("claims.db", "fresh.db")
        if database_url.startswith("sqlite")
        else None
    )
    if fresh_url is not None:
        store = Store(fresh_url)
        assert _schema(store.engine) == migrated
        store.engine.dispose()


def test_upgrade_head_on_a_migrated_database_changes_nothing(database_url: str) -> None:
    _upgrade(database_url)
    _upgrade(database_url)
    store = Store(database_url)  # create_all finds every table already there
    head = ScriptDirectory.from_config(_config(database_url)).get_current_head()
    assert head == "0002"
    assert _version(database_url) == [head]
    store.engine.dispose()


def test_the_epoch_tables_come_and_go_without_touching_the_rest(
    database_url: str,
) -> None:
    _upgrade(database_url, "0001")
    before = _schema_at(database_url)
    assert "epoch_tag" not in before
    _upgrade(database_url)
    after = _schema_at(database_url)
    added = sorted(set(after) - set(before))
    assert added == ["check_epoch", "epoch_claim", "epoch_claimant", "epoch_tag"]
    assert {name: after[name] for name in before} == before

    command.downgrade(_config(database_url), "0001")
    assert _schema_at(database_url) == before
    assert _version(database_url) == ["0001"]
