"""`claims demo` never touches data that is not its own, and reports bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from claims.demo import DemoOptions, run_demo
from claims.errors import ConfigError, NotFound


def test_the_demo_refuses_a_workspace_that_holds_other_data(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    precious = workspace / "claims.db"
    precious.write_bytes(b"not the demo's")
    with pytest.raises(ConfigError, match="already holds data that is not a demo's"):
        run_demo(DemoOptions(out=tmp_path / "out", workspace=workspace, prefect=False))
    assert precious.read_bytes() == b"not the demo's"


def test_a_folder_without_claims_is_refused_before_the_workspace_is_touched(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "fhir"
    empty.mkdir()
    workspace = tmp_path / "ws"
    with pytest.raises(ConfigError, match="no FHIR Claims found in"):
        run_demo(DemoOptions(fhir=empty, out=tmp_path / "out", workspace=workspace))
    assert not workspace.exists()


def test_a_missing_folder_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="is not a folder of FHIR bundles"):
        run_demo(DemoOptions(fhir=tmp_path / "missing", workspace=tmp_path / "ws"))


def test_the_demo_can_run_twice_in_its_own_workspace(tmp_path: Path) -> None:
    options = DemoOptions(
        out=tmp_path / "out", workspace=tmp_path / "ws", prefect=False
    )
    first = run_demo(options)
    second = run_demo(options)
    assert first["claims"] == second["claims"]
    assert second["duplicates_caught"] == second["duplicates_injected"] == 5
