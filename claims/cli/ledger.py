"""`claims ledger`: offline checks (from `ledger.cli`) and workspace commands."""

from __future__ import annotations

import typer

from ledger.cli import app as ledger_app

__all__ = ["register"]


def register(root: typer.Typer) -> None:
    """Add `claims ledger ...` to the root command."""
    root.add_typer(ledger_app, name="ledger", help="Verify receipts and checkpoints.")
