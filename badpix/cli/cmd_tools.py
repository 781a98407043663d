"""``badpix diff``, ``badpix merge`` and ``badpix export``: mask files in, mask files out."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from badpix.atomic import atomic_output, check_output_path

_force = click.option("--force", is_flag=True, help="Overwrite existing output files.")


@click.command("diff")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False),
              help="Write a PNG of the changes on the assembled detector.")
@click.option("--geometry", type=click.Path(exists=True, dir_okay=False),
              help="CrystFEL geometry for --plot (default: extra-geom's example geometry; "
                   "a plain module grid for detectors without one).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1),
              help="Rows of each worst-first table.")
@_force
def diff(a: str, b: str, as_json: bool, plot_file: str | None, geometry: str | None,
         top: int, force: bool) -> None:
    """Show what changed from mask A to mask B: new bad, no longer bad and changed-reason
    pixels per module, reason bit and memory cell. Prints "no differences" for equal masks.
    """
    from badpix.masktools import diff_masks, format_diff, open_mask

    if plot_file:
        check_output_path(plot_file, force=force)
    with open_mask(a) as ma, open_mask(b) as mb:
        result = diff_masks(ma, mb)
        layout = None
        if plot_file:  # geometry and matplotlib problems before the report is printed
            from badpix.inspection_plot import plot_diff, prepare_plot

            layout = prepare_plot(ma, geometry)
        click.echo(json.dumps(result, indent=1) if as_json else format_diff(result, top))
        if plot_file:
            with atomic_output(plot_file, force=force) as tmp:  # no partial PNG on failure
                plot_diff(ma, mb, tmp, layout=layout)
            click.echo(f"wrote {plot_file}", err=True)


@click.command("merge")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Merged mask file to write.")
@click.option("--polarity", type=click.Choice(["0-good", "1-good"]), default="0-good",
              show_default=True, help="Polarity of plain HDF5 inputs (FILE:/dataset).")
@_force
def merge(inputs: tuple[str, ...], output: str, polarity: str, force: bool) -> None:
    """OR-combine badpix masks and plain HDF5 masks (FILE:/path/to/dataset, shape (M, ss, fs)
    or (M*ss, fs)) into one badpix mask file. Bad pixels of plain masks get bit USER1 (1<<30).
    The per-cell masks and per-gain bits are ORed too; statistics are not kept (see
    ``badpix.masktools.merge_masks``); each source's provenance goes to /provenance/sources/<i>.
    """
    from badpix.masktools import PlainMask, merge_masks

    check_output_path(output, force=force)
    sources: list[str | Path | PlainMask] = [
        PlainMask(s, polarity) if ":/" in s and not Path(s).exists() else Path(s) for s in inputs
    ]
    with atomic_output(output, force=force) as tmp:
        info = merge_masks(sources, tmp, final_path=output,
                           command_line=shlex.join(["badpix", *sys.argv[1:]]))
    click.echo(f"{output}: {info['bad']} bad pixels from {len(info['sources'])} sources")


@click.command("export")
@click.argument("mask", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True,
              type=click.Choice(["crystfel", "pyfai", "cheetah", "om", "nexus"]),
              help="Target program.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="File to write (.geom; pyfai: .edf, .npy or .h5; others: .h5).")
@click.option("--layout", type=click.Choice(["vds", "stacked", "assembled"]),
              help="crystfel: vds (default, CrystFEL 0.10+) or stacked (0.9+); "
                   "pyfai: stacked (default) or assembled.")
@click.option("--geometry", type=click.Path(exists=True, dir_okay=False),
              help="CrystFEL geometry to take panels from (crystfel) or to assemble (pyfai).")
@click.option("--bits", "bad_bits", type=str, default=None,
              help="Bits that count as bad, e.g. 0xf (default: all bits of the file).")
@_force
def export(mask: str, fmt: str, output: str, layout: str | None, geometry: str | None,
           bad_bits: str | None, force: bool) -> None:
    """Write mask MASK for another program: a CrystFEL .geom pointing at MASK, a pyFAI mask
    (1 = masked), a Cheetah/OM bad-pixel map (/data/data, 1 = good) or a NeXus pixel_mask.
    """
    from badpix.maskexport import export_mask
    from badpix.masktools import open_mask

    try:
        bits = None if bad_bits is None else int(bad_bits, 0)
    except ValueError:
        raise click.BadParameter(f"{bad_bits!r} is not an integer", param_hint="--bits") from None
    check_output_path(output, force=force)
    with open_mask(mask) as m, atomic_output(output, force=force) as tmp:
        info = export_mask(m, fmt, tmp, layout=layout, geometry_file=geometry, bad_bits=bits,
                           suffix=Path(output).suffix)  # tmp is a .part name
    click.echo(f"{output}: {fmt} ({info['layout']}, {info['polarity']}), "
               f"{info['bad']} bad pixels")
