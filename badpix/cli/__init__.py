"""The ``badpix`` command group.

Each subcommand lives in its own ``cmd_<name>.py`` module and is imported only when it runs, so
``badpix --help`` stays fast. A :class:`~badpix.exceptions.BadpixError` raised anywhere below a
command becomes one ``Error: ...`` line on stderr and exit code 1; usage errors exit with 2;
Ctrl-C exits with 1 ("Aborted!"). ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from badpix import __version__
from badpix.exceptions import BadpixError

# command name -> "module:attribute"; the order here is the order in ``badpix --help``.
COMMANDS: dict[str, str] = {
    # the main job, in data-flow order
    "make-mask": "badpix.cli.cmd_make_mask:make_mask_cmd",
    "rethreshold": "badpix.cli.cmd_make_mask:rethreshold_cmd",
    "inspect": "badpix.cli.cmd_inspect:inspect_mask",
    # mask tools
    "diff": "badpix.cli.cmd_tools:diff",
    "merge": "badpix.cli.cmd_tools:merge",
    "export": "badpix.cli.cmd_tools:export",
    # beyond one node
    "slurm": "badpix.cli.cmd_slurm:slurm",
    "assemble": "badpix.cli.cmd_make_mask:assemble_cmd",
    # synthetic data
    "simulate": "badpix.cli.cmd_simulate:simulate",
    "demo": "badpix.cli.cmd_demo:demo",
}


class BadpixGroup(click.Group):
    """A group that loads its commands lazily and maps badpix errors to clean exits."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BadpixError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(str(err)) from None
        except KeyboardInterrupt:
            raise click.Abort() from None


@click.group(cls=BadpixGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="badpix")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Robust bad-pixel masks for European XFEL detectors from dark runs.

    Typical use: ``badpix make-mask RUN_HIGH RUN_MED RUN_LOW -o mask.h5``, then
    ``badpix inspect mask.h5``. ``badpix demo`` runs the whole chain on a built-in
    synthetic dark run.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
