"""`claims vc`: check Verifiable Credentials (filled in by the credentials issue)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(root: typer.Typer) -> None:
    """Add this group's commands to the root command."""
