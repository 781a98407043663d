"""``badpix make-mask``, ``badpix rethreshold`` and ``badpix assemble``."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from badpix.exceptions import ConfigError

if TYPE_CHECKING:
    from badpix.classify import Thresholds

_THRESHOLD_OPTIONS = (
    ("--offset-snr", float, "Offset score cut (|SNR| against the ASIC's local population)."),
    ("--noise-snr", float, "Noise score cut (|SNR| of noise^(2/3) against the population)."),
    ("--inlier-snr", float, "NON_GAUSSIAN: inlier score cut ..."),
    ("--inlier-fraction-min", float, "... and inlier fraction below this."),
    ("--gain-separation-sigma", float, "GAIN_THRESHOLDING_ERROR below this separation (0: off)."),
    ("--asic-noise-ratio", float, "BAD_ASIC when an ASIC's noise differs by this factor (0: off)."),
    ("--asic-offset-snr", float, "BAD_ASIC when an ASIC's level score exceeds this (0: off)."),
    ("--min-valid-samples", int, "Fewest valid frames per cell and pixel to fit."),
)


def threshold_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The threshold options shared by make-mask and rethreshold (default: the config's)."""
    for flag, typ, text in reversed(_THRESHOLD_OPTIONS):
        func = click.option(flag, type=typ, default=None, help=text)(func)
    func = click.option(
        "--no-hard-limits", is_flag=True, help="Ignore the config's hard offset/noise limits."
    )(func)
    func = click.option(
        "--asic-edges/--no-asic-edges",
        default=None,
        help="Mark double-size ASIC-seam pixels NON_STANDARD_SIZE (default: config, off).",
    )(func)
    return click.option(
        "--cell-policy",
        default=None,
        help="Per-cell to static mask: 'any' (default) or 'fraction:F' of the cells.",
    )(func)


def _thresholds(base: Mapping[str, Any], kw: dict[str, Any]) -> Thresholds:
    from badpix.classify import Thresholds

    overrides = {
        flag[2:].replace("-", "_"): kw.get(flag[2:].replace("-", "_"))
        for flag, _, _ in _THRESHOLD_OPTIONS
    }
    overrides["asic_edges"] = kw.get("asic_edges")
    base = dict(base)
    if kw.get("no_hard_limits"):
        base = {k: v for k, v in base.items() if "_hard" not in k}
    return Thresholds.from_mapping(base, overrides)


def parse_int_list(text: str | None, name: str) -> list[int] | None:
    """``"0,2,5:8"`` → [0, 2, 5, 6, 7] (``A:B`` excludes B; ``A-B`` includes it)."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if ":" in part:
                a, b = part.split(":")
                out += range(int(a), int(b))
            elif "-" in part[1:]:
                a, b = part.split("-")
                out += range(int(a), int(b) + 1)
            else:
                out.append(int(part))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected e.g. 0:64 or 0,1,5", param_hint=name
        ) from None
    if not out or min(out) < 0:
        raise click.BadParameter(f"{text!r} selects nothing", param_hint=name)
    return sorted(set(out))


def _progress(quiet: bool, desc: str) -> Callable[[Iterable[Any]], Iterable[Any]] | None:
    if quiet:
        return None
    from tqdm import tqdm

    def wrap(units: Iterable[Any]) -> Iterable[Any]:
        bar = tqdm(list(units), desc=desc, unit="unit", file=sys.stderr, leave=False)
        for unit in bar:
            bar.set_postfix_str(str(unit))
            yield unit

    return wrap


def _command_line() -> str:
    """The command as typed (from ``sys.argv``), else rebuilt from the parsed parameters."""
    ctx = click.get_current_context()
    args = sys.argv[1:]
    if ctx.info_name in args:
        return shlex.join(["badpix", *args[args.index(ctx.info_name) :]])
    params = [f"{k}={v!r}" for k, v in ctx.params.items() if v not in (None, False, ())]
    return f"badpix {ctx.info_name} " + " ".join(params)


@click.command("make-mask")
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Mask file to write (HDF5).",
)
@click.option("--detector", default=None, help="Karabo id or detector type, if several.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file whose tables override the detector config.",
)
@click.option("--gain-stages", default=None, help="Gain stage per run, e.g. high,medium,low.")
@click.option("--modules", default=None, help="Modules to process, e.g. 0-3,8 (default all).")
@click.option("--cells", default=None, help="Memory-cell IDs, e.g. 0:64 (default all).")
@click.option(
    "--max-trains",
    type=click.IntRange(1, None),
    default=None,
    help="Use at most the first N trains of each run.",
)
@click.option(
    "--max-memory",
    default="4G",
    show_default=True,
    help="Memory per work unit (cell blocks are sized to fit), e.g. 8G.",
)
@threshold_options
@click.option(
    "--geometry",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CrystFEL .geom to copy to <MASK>.geom with the mask lines inserted.",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Write one unit (--modules M --cells A:B) as a partial result (SLURM).",
)
@click.option(
    "--compression",
    type=click.Choice(["auto", "gzip", "none"]),
    default="auto",
    show_default=True,
    help="gzip for /stats and /scores: auto = only where it pays (integer-like, sparse), "
    "gzip = all (smallest file, slower), none. Masks and bits are always gzip.",
)
@click.option("--force", is_flag=True, help="Overwrite the output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.option(
    "-j",
    "--threads",
    type=click.IntRange(1, None),
    default=None,
    help="Threads of the robust core (default: all cores).",
)
def make_mask_cmd(
    runs: tuple[str, ...],
    output: str,
    detector: str | None,
    config_file: str | None,
    gain_stages: str | None,
    modules: str | None,
    cells: str | None,
    max_trains: int | None,
    max_memory: str,
    geometry: str | None,
    partial: bool,
    force: bool,
    quiet: bool,
    threads: int | None,
    **kw: Any,
) -> None:
    """Make a bad-pixel mask from dark runs (one per gain stage: high, medium, low)."""
    from badpix import pipeline
    from badpix.atomic import check_output_path

    out = check_output_path(output, force=force)
    geom_out = out.with_suffix(".geom") if geometry else None
    if geom_out is not None:
        check_output_path(geom_out, force=force)
    module_list = parse_int_list(modules, "--modules")
    cell_list = parse_int_list(cells, "--cells")
    if partial and (module_list is None or len(module_list) != 1):
        raise click.UsageError("--partial needs exactly one module: --modules M --cells A:B")
    ds, options = dark_set_and_options(
        {
            "runs": runs,
            "detector": detector,
            "config_file": config_file,
            "gain_stages": gain_stages,
            "modules": modules,
            "cells": cells,
            "max_trains": max_trains,
            "max_memory": max_memory,
            "partial": partial,
            "threads": threads,
            **kw,
        }
    )
    if partial:
        module = module_list[0]
        unit_cells = cell_list or [int(c) for c in ds.cell_ids]
        unit = pipeline.WorkUnit(module, tuple(unit_cells))
        pipeline.write_partial(ds, unit, out, options, force=force, command_line=_command_line())
        if not quiet:
            click.echo(f"wrote partial result {unit} to {out}", err=True)
        return
    times = pipeline.StageTimes()
    pipeline.make_mask(
        ds,
        out,
        options,
        force=force,
        command_line=_command_line(),
        progress=_progress(quiet, "make-mask"),
        timings=times,
    )
    _finish_outputs(out, geometry, geom_out, force, quiet)
    if not quiet:
        click.echo(f"time: {times.summary()}", err=True)


def dark_set_and_options(params: Mapping[str, Any]) -> tuple[Any, Any]:
    """The dark set and :class:`~badpix.pipeline.MaskOptions` of make-mask's parameters.

    ``params`` are make-mask's parsed parameters by name (``make_mask_cmd.make_context(...)
    .params``, or the command's own arguments): ``runs``, ``detector``, ``config_file``,
    ``gain_stages``, ``modules``, ``cells``, ``max_trains``, ``max_memory``, ``partial``,
    ``threads``, ``compression`` and the threshold options; missing ones take make-mask's
    defaults. With ``partial`` (as for ``badpix slurm``, which passes no ``modules``/``cells``)
    the dark set spans every module and cell of the runs: ``--modules``/``--cells`` then only
    name the unit, and the job's plan and fingerprint come from the whole set. This is the one
    place that turns make-mask's options into a job, so a SLURM task and the ``badpix slurm``
    command that planned it compute the same fingerprint.
    """
    from badpix import pipeline
    from badpix.classify import parse_cell_policy
    from badpix.runs import open_dark_set
    from badpix.slurm import parse_mem
    from badpix.stats import StatsParams

    p = dict(params)
    partial = bool(p.get("partial"))
    stages = [s.strip() for s in p["gain_stages"].split(",")] if p.get("gain_stages") else None
    overrides = _read_config(p["config_file"]) if p.get("config_file") else {}
    ds = open_dark_set(
        p["runs"],
        detector=p.get("detector"),
        gain_stages=stages,
        max_trains=p.get("max_trains"),
        modules=None if partial else parse_int_list(p.get("modules"), "--modules"),
        cells=None if partial else parse_int_list(p.get("cells"), "--cells"),
    )
    ds = _with_overrides(ds, overrides)
    thresholds = _thresholds(ds.spec.thresholds, p)
    options = pipeline.MaskOptions(
        thresholds=thresholds,
        stats_params=StatsParams.from_mapping(
            ds.spec.stats, min_valid_samples=thresholds.min_valid_samples
        ),
        cell_policy=parse_cell_policy(p.get("cell_policy") or "any"),
        max_memory=parse_mem(p.get("max_memory") or "4G"),
        n_threads=p.get("threads"),
        compression=p.get("compression") or "auto",
    )
    return ds, options


def _read_config(path: str) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None


def _with_overrides(ds: Any, overrides: dict[str, Any]) -> Any:
    """The dark set with its detector spec re-loaded with ``overrides`` (--config)."""
    if not overrides:
        return ds
    from badpix.detectors import load_detector

    source = ds.spec.config_path or ds.spec.name
    spec = load_detector(source, overrides)
    runs = [dataclasses.replace(r, spec=spec) for r in ds.runs]
    return dataclasses.replace(ds, spec=spec, runs=runs)


def _finish_outputs(
    out: Path, geometry: str | None, geom_out: Path | None, force: bool, quiet: bool
) -> None:
    from badpix.maskfile import read_mask

    with read_mask(out) as m:
        lines = m.geometry_lines
        summary = summarize(m)
    if geometry and geom_out is not None:
        from badpix.atomic import atomic_output
        from badpix.crystfel import insert_mask_lines

        text = insert_mask_lines(Path(geometry).read_text(), lines.splitlines())
        with atomic_output(geom_out, force=force) as tmp:
            tmp.write_text(text)
    if quiet:
        return
    click.echo(summary)
    click.echo(f"wrote {out}" + (f" and {geom_out}" if geom_out else ""))
    click.echo("CrystFEL geometry lines (before the panel definitions):")
    click.echo(lines.rstrip())


def summarize(m: Any) -> str:
    """Bad fraction per processed module and pixel counts per reason (static mask)."""
    mask = m.mask
    rows = ["module  bad fraction"]
    for i, done in enumerate(m.modules_processed):
        if done:
            rows.append(f"{i:>6}  {np.count_nonzero(mask[i]) / mask[i].size:10.4%}")
    missing = [i for i, d in enumerate(m.modules_processed) if not d]
    if missing:
        rows.append(f"no dark data (NO_DARK_DATA): modules {','.join(map(str, missing))}")
    processed = mask[np.asarray(m.modules_processed, bool)]
    rows.append("reason                     pixels  fraction")
    for name, value in sorted(m.bit_names.items(), key=lambda kv: kv[1]):
        n = int(np.count_nonzero(processed & np.uint32(value)))
        if n:
            rows.append(f"{name:<25} {n:>8}  {n / max(processed.size, 1):8.4%}")
    return "\n".join(rows)


@click.command("rethreshold")
@click.argument("mask", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="New mask file."
)
@threshold_options
@click.option("--force", is_flag=True, help="Overwrite the output.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def rethreshold_cmd(mask: str, output: str, force: bool, quiet: bool, **kw: Any) -> None:
    """Re-cut a mask file's stored scores with new thresholds (no runs needed)."""
    from badpix.atomic import check_output_path
    from badpix.rethreshold import rethreshold

    out = check_output_path(output, force=force)
    rethreshold(
        mask,
        out,
        lambda base: _thresholds(base, kw),
        kw.get("cell_policy"),
        force=force,
        command_line=_command_line(),
    )
    if not quiet:
        from badpix.maskfile import read_mask

        with read_mask(out) as m:
            click.echo(summarize(m))
        click.echo(f"wrote {out}")


@click.command("assemble")
@click.argument("parts", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Mask file to write."
)
@click.option("--force", is_flag=True, help="Overwrite the output.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def assemble_cmd(parts: tuple[str, ...], output: str, force: bool, quiet: bool) -> None:
    """Assemble the partial results of a job (files or folders) into the mask file."""
    from badpix.assembly import assemble
    from badpix.atomic import check_output_path

    out = check_output_path(output, force=force)
    assemble(parts, out, force=force, command_line=_command_line())
    _finish_outputs(out, None, None, force, quiet)
