"""CLAIMS_DATABASE_URL as users write it (claims.settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from claims.errors import ConfigError
from claims.settings import Settings


def _load(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> Settings:
    monkeypatch.setenv("CLAIMS_DATABASE_URL", url)
    return Settings.load(tmp_path)


def test_postgresql_alone_means_psycopg_3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SQLAlchemy would load psycopg2 for it, which is not installed (exit 70)."""
    settings = _load(monkeypatch, "postgresql://u:pw@db.example:5433/claims", tmp_path)
    assert settings.database_url == "postgresql+psycopg://u:pw@db.example:5433/claims"
    assert settings.sqlite_file is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u:secret-pw@h/db", "CLAIMS_DATABASE_URL names mysql"),
        ("postgresql+psycopg2://u:secret-pw@h/db", "names postgresql+psycopg2"),
        ("mssql://u:secret-pw@h", "CLAIMS_DATABASE_URL names mssql"),
        ("secret-pw at the office", "CLAIMS_DATABASE_URL is not a database URL"),
        ("postgresql://u:secret-pw@h:port/db", "is not a database URL"),
        ("postgresql://u:secret-pw@[::1/db", "is not a database URL"),
        ("sqlite://", "names an in-memory SQLite database"),
        ("sqlite:///:memory:", "names an in-memory SQLite database"),
    ],
)
def test_other_databases_are_refused_without_repeating_the_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, said: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(monkeypatch, url, tmp_path)
    assert said in str(refused.value)
    assert "secret-pw" not in str(refused.value)
    assert "sqlite:///" in str(refused.value.remedy)


def test_the_sqlite_file_is_where_the_url_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere" / "store.db"
    assert _load(monkeypatch, f"sqlite:///{elsewhere}", tmp_path).sqlite_file == (
        elsewhere
    )
    uri = f"sqlite:///file:{elsewhere}?mode=ro&uri=true"
    assert _load(monkeypatch, uri, tmp_path).sqlite_file == elsewhere
    monkeypatch.delenv("CLAIMS_DATABASE_URL")
    assert Settings.load(tmp_path).sqlite_file == tmp_path / "claims.db"
