"""``badpix slurm RUN... -o MASK.h5``: make-mask as a SLURM array job plus a merge job."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from badpix import slurm as sl
from badpix import slurm_jobs as jobs
from badpix import slurm_scripts as scripts
from badpix.atomic import check_output_path
from badpix.exceptions import OutputError, SlurmError


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("make_mask_args", nargs=-1, required=True, type=click.UNPROCESSED,
                metavar="RUN... [MAKE-MASK OPTIONS]")
@click.option("-o", "--output", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Mask file the merge job writes.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Job folder: array.sh, merge.sh, parts/, logs/. [default: MASK.slurm]")
@click.option("--partition", help="sbatch --partition. [default: configs/slurm.toml]")
@click.option("--account", help="sbatch --account.")
@click.option("--time", "time_", metavar="TIME", help="sbatch --time of each unit task.")
@click.option("--mem", help="sbatch --mem of each unit task, e.g. 8G.")
@click.option("--cpus-per-task", type=click.IntRange(1), help="sbatch --cpus-per-task.")
@click.option("--max-memory", help="Memory one unit may use, for planning the units "
                                   "(smaller: more, smaller tasks). [default: 75% of --mem]")
@click.option("--merge-time", help="sbatch --time of the merge job.")
@click.option("--merge-mem", help="sbatch --mem of the merge job.")
@click.option("--slurm-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="SLURM settings file to use instead of the built-in configs/slurm.toml.")
@click.option("--submit", is_flag=True, help="Submit the jobs (sbatch) and print their ids.")
@click.option("--wait", is_flag=True,
              help="Submit, wait for the jobs and report the mask or the failed units "
                   "with their logs (exit code 1 on failure).")
@click.option("--dry-run", is_flag=True,
              help="Print the scripts and sbatch commands; write and submit nothing.")
@click.option("--force", is_flag=True, help="Overwrite an existing mask file; delete partial "
                                            "results of another job in the job folder.")
@click.option("--poll", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="Seconds between squeue polls with --wait.")
@click.option("--timeout", type=click.FloatRange(1), help="Give up waiting after this many "
                                                          "seconds (the jobs keep running).")
def slurm(make_mask_args: tuple[str, ...], output: Path, workdir: Path | None,
          slurm_config: Path | None, submit: bool, wait: bool, dry_run: bool, force: bool,
          poll: float, timeout: float | None, **settings: Any) -> None:
    """Make a mask on a SLURM cluster: one array task per work unit, then a merge job.

    Takes the runs and options of `badpix make-mask`. The work is split into units (one module
    x a block of memory cells, sized by --max-memory); array.sh runs `badpix make-mask ...
    --partial` for one unit per task, and merge.sh runs `badpix assemble` after all of them
    succeeded. Without --submit, the scripts are only written. Rerunning the same command
    submits only the units whose partial result is missing or invalid (only the merge, if none
    is). Logs: WORKDIR/logs/unit-NNNN.out and WORKDIR/logs/merge.out.

    \b
    Example:
      badpix slurm r0010 r0011 r0012 -o mask.h5 --partition upex --submit --wait
    """
    if dry_run and (submit or wait):
        raise click.UsageError("--dry-run cannot be combined with --submit or --wait")
    output = check_output_path(output.absolute(), force=force)
    _check_mask_path(output)
    dark_set, options = _open_job(make_mask_args, output)
    settings["time"] = settings.pop("time_")
    opts = sl.load_settings(dark_set.spec.name, settings, slurm_config)
    # the tasks must plan with the same budget, or their partials name another plan
    budget = f"{opts.max_memory_bytes // 2**20}M"
    dark_set, options, units = _plan(dark_set, options, sl.parse_mem(budget))
    layout = sl.JobLayout((workdir or output.with_name(output.name + ".slurm")).absolute())
    spec = sl.JobSpec(
        units=tuple(u for u, _ in units),
        make_mask_args=(*make_mask_args, "--max-memory", budget),
        output=output,
        layout=layout,
        settings=opts,
        badpix=(str(Path(sys.executable).absolute()), "-m", "badpix"),
        env=sl.capture_environment(),
        cwd=Path.cwd(),
        command_line=_command_line(make_mask_args, output, {
            "workdir": workdir, **settings, "slurm_config": slurm_config, "force": force}),
        force=force,
    )
    expected = {u.index: attrs for u, attrs in units}
    scan = jobs.scan_partials(layout, expected)
    _handle_foreign(scan, force, dry_run)

    click.echo(f"{len(units)} work units of {dark_set.detector_id} ({len(scan.done)} already done, "
               f"{len(scan.todo)} to run) for {output}")
    if dry_run:
        for path, text in ((layout.array_script, scripts.render_array_script(spec)),
                           (layout.merge_script, scripts.render_merge_script(spec))):
            click.echo(f"\n==> {path} (not written) <==\n{text}")
        click.echo("would submit:")
        for cmd in jobs.sbatch_commands(spec, scan.todo):
            click.echo("  " + shlex.join(cmd))
        return
    scripts.write_scripts(spec)
    click.echo(f"job folder {layout.workdir}: array.sh, merge.sh, parts/, logs/")
    if not (submit or wait):
        click.echo("submit with the same command and --submit, or by hand:")
        for cmd in jobs.sbatch_commands(spec, scan.todo):
            click.echo("  " + shlex.join(cmd))
        return

    sub = jobs.submit(spec, scan.todo)
    if sub.array_id:
        click.echo(f"submitted array job {sub.array_id} (units {jobs.array_ranges(sub.indices)}), "
                   f"logs {layout.logs}/unit-NNNN.out")
    click.echo(f"submitted merge job {sub.merge_id}, log {layout.merge_log}")
    if not wait:
        return
    jobs.wait_for_jobs(sub, poll=poll, timeout=timeout,
                       progress=lambda s: click.echo(f"  queued: {s}", err=True))
    failed = jobs.failures(spec, sub, lambda i: jobs.partial_status(layout.part(i),
                                                                    expected[i]) is None)
    if not failed:
        click.echo(f"done: {output}")
        return
    click.echo(jobs.format_failures(failed), err=True)
    n_units = sum(f.unit is not None for f in failed)
    what = f"{n_units} of {len(sub.indices)} units failed" if n_units else "the merge failed"
    raise SlurmError(f"{what}; see the logs above, fix the cause and rerun the same "
                     "command (only the missing units run again)")


def _check_mask_path(output: Path) -> None:
    """Refuse now what the merge job would refuse at the end (e.g. white space for CrystFEL)."""
    from badpix.pipeline import geometry_lines

    geometry_lines(output)


def _open_job(make_mask_args: tuple[str, ...], output: Path) -> tuple[Any, Any]:
    """The dark set and options of the job, parsed and opened exactly as each task will.

    The arguments go through make-mask's own parser (usage errors surface here, before any
    job is written). As in ``make-mask --partial``, the dark set spans every module and cell:
    the partials' ``plan`` and ``fingerprint`` are computed from it.
    """
    from badpix.cli import cmd_make_mask as mm

    refused = {"--partial", "--modules", "--cells", "--geometry", "--threads", "-j"}
    given = refused.intersection(a.split("=")[0] for a in make_mask_args)
    if given:
        raise click.UsageError(
            f"{', '.join(sorted(given))}: not with badpix slurm, which runs every module and "
            "cell as units (--modules/--cells/--partial), one thread per CPU of a task "
            "(--cpus-per-task), and no geometry (use make-mask --geometry on one node)")
    try:
        ctx = mm.make_mask_cmd.make_context(
            "badpix slurm", [*make_mask_args, "-o", str(output)])
    except click.UsageError as err:
        raise click.UsageError(err.format_message()) from None
    # make-mask's own option handling (the partial branch: the whole set), so that the
    # fingerprint computed here equals the one each task writes; a test on SLURM checks it
    return mm.dark_set_and_options({**ctx.params, "partial": True})


def _plan(dark_set: Any, options: Any, max_memory: int
          ) -> tuple[Any, Any, list[tuple[sl.Unit, dict[str, Any]]]]:
    """The units, each with the attributes its partial result must carry."""
    import dataclasses

    from badpix import pipeline

    options = dataclasses.replace(options, max_memory=max_memory)
    plan = pipeline.job_plan(dark_set, options)
    fingerprint = pipeline.fingerprint(dark_set, options)
    units = [
        (sl.Unit(i, u.module, u.cells),
         {"unit": u.to_json(), "plan": plan, "fingerprint": fingerprint})
        for i, u in enumerate(pipeline.plan_units(dark_set, max_memory))
    ]
    return dark_set, options, units


def _handle_foreign(scan: jobs.PartialScan, force: bool, dry_run: bool) -> None:
    """Files in parts/ that are no unit of this plan: `assemble` would refuse the folder."""
    if not scan.foreign:
        return
    if not force:
        names = ", ".join(p.name for p in scan.foreign[:3])
        more = f" and {len(scan.foreign) - 3} more" if len(scan.foreign) > 3 else ""
        raise OutputError(f"{scan.foreign[0].parent} holds partial results of another plan "
                          f"({names}{more}); use --force to delete them, or another --workdir")
    for path in scan.foreign:
        click.echo(f"{'would delete' if dry_run else 'deleting'} {path} (not in this plan)")
        if not dry_run:
            path.unlink()


def _command_line(make_mask_args: tuple[str, ...], output: Path,
                  given: dict[str, Any]) -> str:
    """The ``badpix slurm`` command as typed (modulo order), for the scripts' header."""
    words = ["badpix", "slurm", *make_mask_args, "-o", str(output)]
    for name, value in given.items():
        flag = "--" + name.rstrip("_").replace("_", "-")
        if value is True:
            words.append(flag)
        elif value not in (None, False):
            words += [flag, str(value)]
    return shlex.join(words)
