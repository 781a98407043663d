"""``badpix inspect MASK``: summary, JSON, validation and a picture of a mask file."""

from __future__ import annotations

import json
import sys

import click

from badpix.atomic import atomic_output, check_output_path


@click.command("inspect")
@click.argument("mask", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON (schema: docs/inspect-json.md).")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False),
              help="Write a PNG: detector coloured by reason, histograms, bad % per cell.")
@click.option("--geometry", type=click.Path(exists=True, dir_okay=False),
              help="CrystFEL geometry for --plot (default: extra-geom's example geometry; "
                   "a plain module grid for detectors without one).")
@click.option("--check", is_flag=True,
              help="Validate the file; print one line per problem and exit 1 if any.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1),
              help="Rows of each worst-first table.")
@click.option("--classical-sigma", default=5.0, show_default=True, type=click.FloatRange(0),
              help="n of the classical median ± n·std cut compared with badpix.")
@click.option("--force", is_flag=True, help="Overwrite the --plot file.")
def inspect_mask(mask: str, as_json: bool, plot_file: str | None, geometry: str | None,
                 check: bool, top: int, classical_sigma: float, force: bool) -> None:
    """Summarise a badpix mask file MASK: provenance, bad pixels per module, ASIC, reason
    bit and memory cell, robust versus classical statistics.

    Examples: ``badpix inspect mask.h5 --top 5``, ``badpix inspect mask.h5 --json``,
    ``badpix inspect mask.h5 --plot mask.png``, ``badpix inspect mask.h5 --check``.
    """
    from badpix.inspection import check_mask, format_summary, summarize
    from badpix.masktools import open_mask

    if plot_file:
        check_output_path(plot_file, force=force)  # refuse before the work
    with open_mask(mask) as m:
        if check:
            problems = check_mask(m)
            for line in problems:
                click.echo(f"{mask}: {line}")
            if problems:
                sys.exit(1)
            click.echo(f"{mask}: OK")
            return
        layout = None
        if plot_file:  # geometry and matplotlib problems before the summary is printed
            from badpix.inspection_plot import plot_mask, prepare_plot

            layout = prepare_plot(m, geometry)
        summary = summarize(m, classical_sigma=classical_sigma)
        click.echo(json.dumps(summary, indent=1) if as_json else format_summary(summary, top))
        if plot_file:
            with atomic_output(plot_file, force=force) as tmp:  # no partial PNG on failure
                plot_mask(m, tmp, layout=layout)
            click.echo(f"wrote {plot_file}", err=True)
