"""``badpix demo [OUTDIR]``: simulate dark runs, make the mask, score it against the truth."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click


@click.command()
@click.argument("outdir", required=False, type=click.Path(file_okay=False))
@click.option(
    "--modules",
    type=click.IntRange(2, 16),
    default=3,
    show_default=True,
    help="Simulated modules (the last is left out as a missing module).",
)
@click.option("--cells", type=click.IntRange(1, 352), default=8, show_default=True)
@click.option("--trains", type=click.IntRange(8, None), default=48, show_default=True)
@click.option("--kind", type=click.Choice(["raw", "proc"]), default="raw", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace OUTDIR if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def demo(
    outdir: str | None,
    modules: int,
    cells: int,
    trains: int,
    kind: str,
    seed: int,
    force: bool,
    quiet: bool,
) -> None:
    """Run the main job on a simulated AGIPD dark set and report precision and recall.

    Writes OUTDIR (default: a new temporary folder) with the simulated runs, truth.h5 and
    mask.h5; prints the mask summary and, per planted class, which pixels got the expected
    bits (recall) and how many good pixels got them too (precision).
    """
    from badpix import pipeline
    from badpix.classify import Thresholds
    from badpix.cli.cmd_make_mask import _progress, summarize
    from badpix.evaluation import evaluate, format_table
    from badpix.maskfile import read_mask
    from badpix.runs import open_dark_set
    from badpix.simulate import load_truth, simulate_dark_set
    from badpix.stats import StatsParams

    root = Path(outdir) if outdir else Path(tempfile.mkdtemp(prefix="badpix-demo-"))
    sim_dir = root / "runs"
    if outdir is None:
        root.mkdir(exist_ok=True)
    elif not root.exists():
        root.mkdir(parents=True)
    t0 = time.monotonic()
    sim = simulate_dark_set(
        sim_dir,
        modules=modules,
        cells=cells,
        trains=trains,
        kind=kind,
        seed=seed,
        force=force,
        progress=not quiet,
    )
    t1 = time.monotonic()
    ds = open_dark_set(sim.run_dirs)
    thresholds = Thresholds.from_mapping(ds.spec.thresholds)
    options = pipeline.MaskOptions(
        thresholds=thresholds,
        stats_params=StatsParams.from_mapping(
            ds.spec.stats, min_valid_samples=thresholds.min_valid_samples
        ),
    )
    out = root / "mask.h5"
    pipeline.make_mask(
        ds,
        out,
        options,
        force=force,
        command_line="badpix demo",
        progress=_progress(quiet, "make-mask"),
    )
    t2 = time.monotonic()
    truth = load_truth(sim.truth_path)
    with read_mask(out) as m:
        click.echo(summarize(m))
        scores = evaluate(m.mask, truth)
    click.echo(
        f"\nsimulated {modules} modules x {cells} cells x {trains} trains ({kind}) in "
        f"{t1 - t0:.1f} s; make-mask {t2 - t1:.1f} s"
    )
    click.echo(f"runs: {sim.root}\nmask: {out}\n")
    click.echo(format_table(scores))
