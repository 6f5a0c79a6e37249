"""The checks STYLE.md asks of every change, run with the tests so CI holds them.

ruff (lint and format, settings in pyproject.toml) over the whole checkout,
and mypy strict over the five packages (`[tool.mypy]`). Each runs in a
subprocess from the repository root; a failure shows the tool's own report.
The tools' versions are pinned in the `test` extra, so a new release cannot
fail CI on code that did not change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_the_checkout_passes(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (
        f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
    )
