"""Tests for the command group itself: version, help, error mapping."""

import click
import pytest
from click.testing import CliRunner

import badpix
from badpix.cli import COMMANDS, main
from badpix.exceptions import RunError


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert badpix.__version__ in result.output


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2


@click.command()
def _fails() -> None:
    raise RunError("/nowhere is not a run directory")


def test_badpix_error_becomes_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMMANDS, "fails", f"{__name__}:_fails")
    result = CliRunner().invoke(main, ["fails"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: /nowhere is not a run directory"
    assert "Traceback" not in result.output


def test_debug_shows_the_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMMANDS, "fails", f"{__name__}:_fails")
    result = CliRunner().invoke(main, ["--debug", "fails"])
    assert result.exit_code == 1
    assert isinstance(result.exception, RunError)
