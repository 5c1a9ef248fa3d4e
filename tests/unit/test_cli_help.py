"""Every command of the CLI teaches: its --help runs and shows an example (in-process, fast)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hvpatch.cli.main import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            out.extend(_commands(cmd, (*path, name)))
        else:
            out.append((*path, name))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def test_the_walk_finds_the_commands() -> None:
    assert ("rollout", "start") in COMMANDS and ("report", "compliance") in COMMANDS
    assert len(COMMANDS) > 45


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    r = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "Example" in r.output or "example" in r.output, f"{' '.join(command)}: no example"
