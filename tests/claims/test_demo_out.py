"""`claims demo --out DIR` writes only into a folder that is new, empty or its own.

Regression: the demo removed DIR/receipts/mine.json and overwrote
DIR/summary.json of a folder it had not written, and `--out README.md` ran
the whole demo and then crashed with NotADirectoryError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from claims.demo import OUT_MARKER, DemoOptions, run_demo
from claims.errors import ConfigError


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "tests-only")


def _options(tmp_path: Path, out: Path) -> DemoOptions:
    return DemoOptions(out=out, workspace=tmp_path / "ws", prefect=False)


def _marker(out: Path, files: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {"made_by": "claims demo", "files": files}
    (out / OUT_MARKER).write_text(json.dumps(data))


def test_an_existing_file_as_out_is_refused_before_the_run(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("mine")
    with pytest.raises(ConfigError) as caught:
        run_demo(_options(tmp_path, readme))
    assert str(caught.value) == f"--out {readme} is a file, not a folder"
    assert caught.value.remedy == "give a new or empty folder: `claims demo --out DIR`"
    assert readme.read_text() == "mine"
    assert not (tmp_path / "ws").exists()


def test_a_file_on_the_way_to_out_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("mine")
    with pytest.raises(ConfigError, match=r"README\.md \(in --out\) is a file"):
        run_demo(_options(tmp_path, readme / "out"))
    assert not (tmp_path / "ws").exists()


def test_a_folder_the_demo_did_not_write_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    (out / "receipts").mkdir(parents=True)
    (out / "receipts" / "mine.json").write_text("{}")
    (out / "summary.json").write_text("my summary")
    with pytest.raises(ConfigError) as caught:
        run_demo(_options(tmp_path, out))
    assert str(caught.value) == (
        f"--out folder {out} holds files that `claims demo` did not write"
    )
    assert (out / "receipts" / "mine.json").read_text() == "{}"
    assert (out / "summary.json").read_text() == "my summary"
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        (["receipts/a.json"], "summary.json", "holds a summary.json that"),
        (["../elsewhere.json"], None, f"its {OUT_MARKER} lists files the demo"),
        ("not a list", None, f"its {OUT_MARKER} lists files the demo"),
    ],
    ids=["a summary it did not write", "a path outside", "not a list"],
)
def test_a_marked_folder_is_refused_when_the_marker_does_not_cover_it(
    tmp_path: Path, files: list[str], extra: str | None, message: str
) -> None:
    out = tmp_path / "out"
    _marker(out, files)
    if extra:
        (out / extra).write_text("mine")
    with pytest.raises(ConfigError, match=message):
        run_demo(_options(tmp_path, out))
    assert extra is None or (out / extra).read_text() == "mine"


def test_an_unreadable_marker_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / OUT_MARKER).write_text("[" * 2000)
    with pytest.raises(ConfigError, match=f"its {OUT_MARKER} cannot be read"):
        run_demo(_options(tmp_path, out))


def test_a_second_run_replaces_only_the_demos_own_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_demo(_options(tmp_path, out))
    listed = json.loads((out / OUT_MARKER).read_text())["files"]
    first_receipts = sorted(p.name for p in (out / "receipts").iterdir())
    assert len(first_receipts) == first["settled"]
    assert sorted(listed) == sorted(
        ["summary.json", "ledger-keys.json"]
        + [f"receipts/{name}" for name in first_receipts]
    )
    (out / "receipts" / "mine.json").write_text("{}")
    (out / "notes.txt").write_text("mine")

    second = run_demo(_options(tmp_path, out))
    receipts = {p.name for p in (out / "receipts").iterdir()}
    assert "mine.json" in receipts
    assert (out / "receipts" / "mine.json").read_text() == "{}"
    assert (out / "notes.txt").read_text() == "mine"
    # The first run's receipts are gone (its claim ids are not the second's).
    assert not receipts & set(first_receipts)
    assert len(receipts) == second["settled"] + 1
    written = json.loads((out / "summary.json").read_text())
    assert written["ledger_root"] == second["ledger_root"] != first["ledger_root"]
    assert (
        "receipts/mine.json" not in json.loads((out / OUT_MARKER).read_text())["files"]
    )


def test_the_command_refuses_a_file_as_out_with_exit_1(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("mine")
    script = Path(sys.executable).parent / "claims"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "claims"]
    result = subprocess.run(
        [*command, "-w", "ws", "demo", "--out", "README.md"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "400"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "error: --out README.md is a file, not a folder" in result.stderr
    assert "NotADirectoryError" not in result.stderr
    assert not (tmp_path / "ws").exists()
