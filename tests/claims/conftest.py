"""Fixtures shared by the payer-core tests: one demo run, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from claims.consortium import Consortium
from claims.demo import DemoOptions, run_demo
from claims.settings import Settings


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo run (inline steps, no Prefect); tests work on copies of it."""
    root = tmp_path_factory.mktemp("payer-demo")
    run_demo(DemoOptions(out=root / "out", workspace=root / "ws", prefect=False))
    return root / "ws"


@pytest.fixture
def consortium(demo_workspace: Path, tmp_path: Path) -> Consortium:
    """A private copy of the demo workspace: a test may change it freely."""
    copy = tmp_path / "ws"
    shutil.copytree(demo_workspace, copy)
    return Consortium(Settings.load(copy))
