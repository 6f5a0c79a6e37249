"""Every help text reaches the terminal as written.

Typer renders help through Rich markup: `[default: the id]` read as a style
tag vanished (leaving a stray " ."), and `did:key:z6Mk` became a key emoji.
This walks every command and checks that each option's help, each argument's
help and each paragraph of a command's own help appear in its `--help` word for word.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from claims.cli.main import app
from tests.claims._text import flat

runner = CliRunner()


def _commands(
    group: Any, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, group)]
    if hasattr(group, "list_commands"):  # a group (Typer vendors its own click)
        context = group.context_class(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None, name
            found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _expected(command: Any) -> list[str]:
    texts = (command.help or "").split("\n\n")
    texts += [getattr(param, "help", None) or "" for param in command.params]
    return [flat(text.replace("\\[", "[")) for text in texts if text]


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "claims" for p, _ in COMMANDS]
)
def test_help_shows_every_text_as_written(path: tuple[str, ...], command: Any) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    shown = flat(result.output)
    for text in _expected(command):
        assert text in shown, text


def test_the_walk_reaches_the_commands_that_went_wrong() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "demo", "hospital issue", "insurer enrol", "wallet present"} <= paths
