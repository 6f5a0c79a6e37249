"""A workspace whose keys folder is missing or wrong never gets new keys on the fly.

Regression for a user's report: on a demo workspace with `keys/` deleted,
`claims ledger verify` made a new `kdf.json`, ledger and witness keys, and
`claims review approve` signed a ledger entry with them. A key already in use
must be refused when its file is gone, and nothing written; keys are still
made when a workspace is set up or a member is added.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from claims.cli.main import app
from claims.consortium import Consortium
from claims.demo import example_policy
from claims.errors import ConfigError, NotFound
from claims.keys import MissingKey
from claims.settings import Settings

FOLDER_MESSAGE = "the keys folder must be the one the workspace was made with"


@pytest.fixture
def workspace(demo_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the demo workspace (keys intact)."""
    copy = tmp_path / "ws"
    shutil.copytree(demo_workspace, copy)
    return copy


@pytest.fixture
def keyless(workspace: Path) -> Path:
    """The copy with its `keys/` folder deleted."""
    shutil.rmtree(workspace / "keys")
    return workspace


def _ledger_size(folder: Path) -> int:
    engine = sa.create_engine(Settings.load(folder).database_url)
    with engine.connect() as conn:
        size = conn.execute(sa.text("SELECT size FROM ledger_log")).scalar_one()
    engine.dispose()
    return int(size)


def _claim_in_review(folder: Path) -> str:
    engine = sa.create_engine(Settings.load(folder).database_url)
    with engine.connect() as conn:
        claim_id = conn.execute(
            sa.text("SELECT id FROM claim WHERE state = 'in_review' LIMIT 1")
        ).scalar_one()
    engine.dispose()
    return str(claim_id)


def _key_files(folder: Path) -> list[str]:
    keys = folder / "keys"
    return sorted(p.name for p in keys.iterdir()) if keys.exists() else []


def _invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output, result.exception


# -- the reported commands ----------------------------------------------------


def test_ledger_verify_without_the_keys_folder_refuses_and_writes_no_key(
    keyless: Path,
) -> None:
    code, _, error = _invoke("-w", str(keyless), "ledger", "verify")
    assert code != 0
    assert isinstance(error, MissingKey)
    assert str(error) == (
        f"key file {keyless / 'keys' / 'ledger.key'} is missing; {FOLDER_MESSAGE}"
    )
    assert error.remedy is not None and str(keyless / "keys") in error.remedy
    assert _key_files(keyless) == []


def _state(folder: Path, claim_id: str) -> str:
    engine = sa.create_engine(Settings.load(folder).database_url)
    with engine.connect() as conn:
        state = conn.execute(
            sa.text("SELECT state FROM claim WHERE id = :id"), {"id": claim_id}
        ).scalar_one()
    engine.dispose()
    return str(state)


@pytest.mark.parametrize("decision", [["approve"], ["deny", "--reason", "no"]])
def test_a_review_decision_without_the_keys_folder_changes_nothing(
    keyless: Path, decision: list[str]
) -> None:
    size = _ledger_size(keyless)
    claim_id = _claim_in_review(keyless)
    code, _, error = _invoke(
        "-w", str(keyless), "review", decision[0], claim_id, *decision[1:]
    )
    assert code != 0
    assert isinstance(error, MissingKey)
    assert "ledger.key is missing" in str(error)
    assert _key_files(keyless) == []
    assert _ledger_size(keyless) == size
    assert _state(keyless, claim_id) == "in_review"


def test_the_cli_prints_the_missing_file_and_exits_1(keyless: Path) -> None:
    """Through the real entry point: message, remedy, exit code, no traceback."""
    import subprocess
    import sys

    claims = str(Path(sys.executable).parent / "claims")
    done = subprocess.run(
        [claims, "-w", str(keyless), "ledger", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    text = " ".join(done.stderr.split())  # Rich wraps long lines
    assert f"error: key file {keyless / 'keys' / 'ledger.key'} is missing;" in text
    assert FOLDER_MESSAGE in text
    assert "Traceback" not in done.stderr
    assert _key_files(keyless) == []


# -- each kind of key -----------------------------------------------------------


def test_a_stored_members_key_is_never_made_again(keyless: Path) -> None:
    consortium = Consortium(Settings.load(keyless))
    with pytest.raises(MissingKey, match=r"insurer-1\.key is missing"):
        consortium.key("insurer-1")
    with pytest.raises(MissingKey, match=r"insurer-1\.key is missing"):
        consortium.add_insurer("insurer-1", "Insurer 1", example_policy(1))
    with pytest.raises(MissingKey, match=r"insurer-1\.key is missing"):
        consortium.add_member("insurer-1", "insurer", "Insurer 1")
    assert _key_files(keyless) == []


def test_an_unknown_member_is_not_found_rather_than_missing(keyless: Path) -> None:
    consortium = Consortium(Settings.load(keyless))
    with pytest.raises(NotFound, match="no member with id 'nobody'"):
        consortium.key("nobody")


def test_a_deleted_witness_key_is_refused_once_the_ledger_is_in_use(
    workspace: Path,
) -> None:
    (workspace / "keys" / "witness-insurer-2.key").unlink()
    consortium = Consortium(Settings.load(workspace))
    with pytest.raises(MissingKey, match=r"witness-insurer-2\.key is missing"):
        consortium.witnesses()
    with pytest.raises(MissingKey, match=r"witness-insurer-2\.key is missing"):
        consortium.finalise_ledger()
    assert not (workspace / "keys" / "witness-insurer-2.key").exists()


def test_a_missing_kdf_file_beside_sealed_keys_is_refused_not_remade(
    workspace: Path,
) -> None:
    """A new salt would open none of the keys: say the file is missing."""
    (workspace / "keys" / "kdf.json").unlink()
    consortium = Consortium(Settings.load(workspace))
    with pytest.raises(MissingKey, match=r"kdf\.json is missing"):
        consortium.key("insurer-1")
    assert not (workspace / "keys" / "kdf.json").exists()


def test_a_key_file_from_another_workspace_is_refused_for_a_stored_member(
    workspace: Path, tmp_path: Path
) -> None:
    other = Consortium(Settings.load(tmp_path / "other"))
    other.add_member("insurer-1", "insurer", "Someone else")
    for name in ("kdf.json", "insurer-1.key"):
        shutil.copy(tmp_path / "other" / "keys" / name, workspace / "keys" / name)
    consortium = Consortium(Settings.load(workspace))
    with pytest.raises(ConfigError, match="holds another key than member"):
        consortium.add_member("insurer-1", "insurer", "Insurer 1")


# -- keys are still made where they should be ---------------------------------


def test_set_up_and_new_members_still_make_their_keys(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    consortium = Consortium(Settings.load(folder))
    for name in ("ins-a", "ins-b"):
        consortium.add_member(name, "insurer", name.upper())
    assert _key_files(folder) == [
        "ins-a.key",
        "ins-b.key",
        "kdf.json",
        "witness-ins-a.key",
        "witness-ins-b.key",
    ]
    consortium.ledger.append([{"type": "test", "v": 1}], ["test:1"])
    consortium.finalise_ledger()
    assert "ledger.key" in _key_files(folder)

    # A member added once the ledger is in use gets its keys, and cosigns.
    consortium.add_member("ins-c", "insurer", "INS-C")
    consortium.ledger.append([{"type": "test", "v": 2}], ["test:2"])
    note = consortium.finalise_ledger()
    assert {"ins-c.key", "witness-ins-c.key"} <= set(_key_files(folder))
    assert "\u2014 ins-c/witness " in note  # its cosignature line

    # Adding an existing member again changes nothing and makes no key.
    before = _key_files(folder)
    member, key = consortium.add_member("ins-a", "insurer", "INS-A")
    assert member.did == key.did
    assert _key_files(folder) == before


def test_a_fresh_workspace_whose_ledger_is_empty_may_make_the_ledger_key(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ws"
    Consortium(Settings.load(folder)).add_member("ins-a", "insurer", "INS-A")
    (folder / "keys" / "witness-ins-a.key").unlink()
    consortium = Consortium(Settings.load(folder))
    assert len(consortium.witnesses()) == 1  # nothing was signed yet
    assert {"ledger.key", "witness-ins-a.key"} <= set(_key_files(folder))
