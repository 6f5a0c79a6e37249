"""Member keys at rest: sealed under the workspace passphrase, owner-only files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from claims.errors import ConfigError
from claims.keys import PASSPHRASE_ENV, KeyStore, passphrase_from_env


def _store(folder: Path, passphrase: str) -> KeyStore:
    return KeyStore(folder, lambda: passphrase)


def test_a_key_round_trips_and_its_file_is_owner_only(tmp_path: Path) -> None:
    key = _store(tmp_path, "correct horse").create("hospital-a")
    path = tmp_path / "hospital-a.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "kdf.json").stat().st_mode) == 0o600
    reopened = _store(tmp_path, "correct horse").load("hospital-a")
    assert reopened.did == key.did


def test_the_file_holds_neither_the_seed_nor_the_passphrase(tmp_path: Path) -> None:
    key = _store(tmp_path, "correct horse").create("hospital-a")
    text = (tmp_path / "hospital-a.key").read_text(encoding="utf-8")
    assert key.seed.hex() not in text
    assert "correct horse" not in text
    assert "correct horse" not in (tmp_path / "kdf.json").read_text(encoding="utf-8")


def test_a_wrong_passphrase_is_refused_without_echoing_it(tmp_path: Path) -> None:
    _store(tmp_path, "correct horse").create("hospital-a")
    with pytest.raises(ConfigError, match="passphrase does not open") as info:
        _store(tmp_path, "battery staple").load("hospital-a")
    assert "battery staple" not in str(info.value)


def test_a_changed_key_file_is_refused(tmp_path: Path) -> None:
    _store(tmp_path, "pw").create("hospital-a")
    path = tmp_path / "hospital-a.key"
    text = path.read_text(encoding="utf-8")
    sealed_at = text.index('"sealed": "') + len('"sealed": "')
    flipped = "A" if text[sealed_at + 5] != "A" else "B"
    path.write_text(text[: sealed_at + 5] + flipped + text[sealed_at + 6 :], "utf-8")
    with pytest.raises(ConfigError, match="does not open"):
        _store(tmp_path, "pw").load("hospital-a")


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    store = _store(tmp_path, "pw")
    store.create("hospital-a")
    with pytest.raises(ConfigError, match="already exists"):
        store.create("hospital-a")


def test_without_a_passphrase_or_terminal_the_store_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with pytest.raises(ConfigError, match="need a passphrase"):
        KeyStore(tmp_path, passphrase_from_env()).create("hospital-a")


def test_the_passphrase_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "from-env")
    key = KeyStore(tmp_path).create("hospital-a")
    assert _store(tmp_path, "from-env").load("hospital-a").did == key.did


def test_a_wrong_passphrase_cannot_seal_a_new_key_into_the_workspace(
    tmp_path: Path,
) -> None:
    _store(tmp_path, "correct horse").create("hospital-a")
    with pytest.raises(ConfigError, match="passphrase does not open the keys"):
        _store(tmp_path, "battery staple").create("insurer-4")
    assert not (tmp_path / "insurer-4.key").exists()
