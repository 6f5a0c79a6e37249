"""The `claims` command line: one Typer tree, one module per command group."""

from claims.cli.main import app, main

__all__ = ["app", "main"]
