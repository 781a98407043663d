"""``badpix simulate OUTDIR``: write a synthetic dark-run set with its ground truth."""

from __future__ import annotations

import click

from badpix.simulate import SIMULATED_DETECTORS, simulate_dark_set


@click.command()
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--detector", type=click.Choice(SIMULATED_DETECTORS, case_sensitive=False),
              default="AGIPD1M", show_default=True,
              help="Detector type (LPD1M, DSSC1M, JUNGFRAU: raw only, stages from run order).")
@click.option("--modules", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Simulate the first N modules (JUNGFRAU: JNGFR01..N); the last one is left "
                   "out as a missing module.")
@click.option("--cells", type=click.IntRange(1, 800), default=8, show_default=True,
              help="Memory cells per train (up to the detector's maximum; JUNGFRAU 1 or 16).")
@click.option("--trains", type=click.IntRange(4, None), default=32, show_default=True,
              help="Trains per run.")
@click.option("--kind", type=click.Choice(["raw", "proc"]), default="raw", show_default=True,
              help="Raw (uint16 in the detector's encoding) or corrected (float32, with NaN; "
                   "AGIPD only) data.")
@click.option("--gain-mode", type=click.Choice(["adaptive", "fixed"]), default="adaptive",
              show_default=True,
              help="AGIPD gainModeIndex written to the control device (fixed: 1/2/3 per run).")
@click.option("--proposal", type=click.IntRange(1, 999999), default=None,
              help="Write OUTDIR/<INSTRUMENT>/202601/p<PROPOSAL>/raw/r000N (SPB for AGIPD1M, "
                   "FXE for LPD1M, ...), for open_run with EXTRA_DATA_DATA_ROOT=OUTDIR.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--force", is_flag=True, help="Replace OUTDIR if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def simulate(outdir: str, detector: str, modules: int, cells: int, trains: int, kind: str,
             gain_mode: str, proposal: int | None, seed: int, force: bool, quiet: bool) -> None:
    """Write a synthetic dark-run set (one run per gain stage) and OUTDIR/truth.h5.

    Planted per module (seeded): hot, cold, noisy, stuck, telegraph pixels (and gain-bit-error
    pixels for AGIPD), a dead ASIC in the first module, rare cosmic-like spikes in good
    pixels, missing trains in one module and one missing module; for proc also always-NaN
    pixels and good pixels with a few NaN frames.
    """
    sim = simulate_dark_set(outdir, detector=detector.upper(), modules=modules, cells=cells,
                            trains=trains, kind=kind, seed=seed, gain_mode=gain_mode,
                            proposal=proposal, force=force, progress=not quiet)
    if quiet:
        return
    click.echo(f"wrote {len(sim.run_dirs)} {kind} runs of {sim.detector_id} to {sim.root}",
               err=True)
    for stage, run_dir in zip(sim.gain_stages, sim.run_dirs, strict=True):
        click.echo(f"  {stage:<7} {run_dir}", err=True)
    click.echo(f"  truth   {sim.truth_path}  (missing module: {sim.plan.missing_module})",
               err=True)
