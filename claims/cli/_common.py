"""What every `claims` sub-command shares: consoles, the global options, output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from claims.settings import Settings

__all__ = ["STATE", "Context", "console", "emit_json", "errors"]

console = Console()
errors = Console(stderr=True)


@dataclass
class Context:
    """The global options, set by the root callback before any command runs."""

    workspace: Path | None
    debug: bool

    def settings(self) -> Settings:
        return Settings.load(self.workspace)


STATE = Context(workspace=None, debug=False)


def emit_json(data: Any) -> None:
    """Print `data` as JSON on standard output (for `--json`)."""
    console.print_json(json.dumps(data, default=str))
