"""What every `claims` sub-command shares: consoles, the global options, output."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from claims.errors import ConfigError, NotFound
from claims.settings import Settings

if TYPE_CHECKING:
    from claims.consortium import Consortium

__all__ = [
    "STATE",
    "check_member_id",
    "Context",
    "console",
    "emit_json",
    "errors",
    "open_consortium",
    "read_passphrase",
    "require_file",
    "require_store",
]

# No emoji: Rich would turn the ":key:" of every did:key into a key symbol.
# No markup either: a table cell or line holding a reviewer's note, a FHIR
# display or a credential id with "[/]" in it would raise MarkupError. The
# few lines styled on purpose pass `markup=True` and escape what they quote.
console = Console(emoji=False, markup=False)
errors = Console(stderr=True, emoji=False, markup=False)


@dataclass
class Context:
    """The global options, set by the root callback before any command runs."""

    workspace: Path | None
    debug: bool

    def settings(self) -> Settings:
        return Settings.load(self.workspace)


STATE = Context(workspace=None, debug=False)


def require_store() -> Settings:
    """The settings of a workspace that has a store; `NotFound` otherwise."""
    settings = STATE.settings()
    store = settings.sqlite_file
    if store is None or store.exists():
        return settings
    if store == settings.workspace / "claims.db":
        raise NotFound(
            f"no store in {settings.workspace}",
            remedy="run `claims demo` first, or `claims --workspace DIR ...`",
        )
    raise NotFound(
        f"no store at {store}, where CLAIMS_DATABASE_URL points",
        remedy="check CLAIMS_DATABASE_URL",
    )


def open_consortium() -> Consortium:
    """The consortium of the workspace named by the global options."""
    from claims.consortium import Consortium

    require_store()
    return Consortium.open(STATE.workspace)


def emit_json(data: Any) -> None:
    """Print `data` as JSON on standard output (for `--json`)."""
    console.print_json(json.dumps(data, default=str))


_MEMBER_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_member_id(value: str) -> str:
    """A new member's id, which becomes a DNS label of its domain
    (`ID.hospitals.example`): lower-case letters, digits and inner hyphens,
    at most 63. Anything else is a usage error."""
    if not _MEMBER_ID.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r} cannot name a member: use lower-case letters, digits and"
            " hyphens (not first or last), at most 63"
        )
    return value


def require_file(path: Path, what: str = "file") -> None:
    """`NotFound` when `path` does not exist; `ConfigError` when it is not a
    regular file (a folder, a device such as /dev/zero, a FIFO)."""
    if not path.exists():
        raise NotFound(f"no {what} {path}")
    if not path.is_file():
        raise ConfigError(f"{path} is not a regular file", remedy=f"give a {what}")


def interactive() -> bool:
    """Whether a person can be asked: standard input is a terminal."""
    return sys.stdin.isatty()


def read_passphrase(what: str, variable: str, *, confirm: bool = False) -> str:
    """A passphrase from `$variable`, else asked for in the terminal.

    Without a terminal there is nobody to ask, and reading one from a pipe
    would echo nothing and warn; the error names the variable instead.
    """
    value = os.environ.get(variable)
    if value:
        return value
    if not interactive():
        empty = variable in os.environ
        raise ConfigError(
            f"the {what} needs a passphrase and there is no terminal to ask for it",
            remedy=f"{variable} is set but empty; set it to the passphrase"
            if empty
            else f"set {variable}",
        )
    entered: str = typer.prompt(
        what + " passphrase", hide_input=True, confirmation_prompt=confirm
    )
    return entered
