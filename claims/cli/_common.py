"""What every `claims` sub-command shares: consoles, the global options, output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from claims.settings import Settings

__all__ = ["STATE", "Context", "console", "emit_json", "errors"]

# No emoji: Rich would turn the ":key:" of every did:key into a key symbol.
console = Console(emoji=False)
errors = Console(stderr=True, emoji=False)


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
