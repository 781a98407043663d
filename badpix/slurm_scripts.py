"""The sbatch scripts of a :class:`badpix.slurm.JobSpec`: ``array.sh`` and ``merge.sh``.

The rendering functions are pure (a ``JobSpec`` in, script text out), so tests check the text
and run it with bash; :func:`write_scripts` creates the job folder and writes both scripts
atomically.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from badpix.atomic import atomic_output
from badpix.exceptions import ConfigError
from badpix.slurm import JobSpec


def _directive(option: str, value: str | int | None = None) -> str:
    """One ``#SBATCH`` line; sbatch reads these itself (not bash), so quote with "..." only."""
    if value is None:
        return f"#SBATCH {option}"
    text = str(value)
    if any(c in text for c in '"\n\r'):
        raise ConfigError(f"sbatch {option} value {text!r} must not contain quotes or newlines")
    if re.search(r"\s", text):
        text = f'"{text}"'
    return f"#SBATCH {option}={text}"


def _log_pattern(folder: Path, name: str) -> str:
    # sbatch expands %-patterns in --output; a literal % in the folder name must be doubled
    return str(folder).replace("%", "%%") + "/" + name


def _sbatch_lines(options: Sequence[tuple[str, str | int]], extra: Sequence[str]) -> list[str]:
    lines = [_directive(opt, value) for opt, value in options if value not in ("", None)]
    for item in extra:
        opt, eq, value = item.partition("=")
        lines.append(_directive(opt, value) if eq else _directive(opt))
    return lines


def _environment_block(spec: JobSpec) -> list[str]:
    lines = [
        "# The interpreter, environment and folder of the `badpix slurm` that wrote this script,",
        "# so every task runs the same badpix on the same data.",
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in spec.env]
    lines.append(f"BADPIX=({' '.join(shlex.quote(a) for a in spec.badpix)})")
    lines.append(f"cd {shlex.quote(str(spec.cwd))}")
    return lines


def _header(spec: JobSpec, what: Sequence[str]) -> list[str]:
    lines = ["#!/bin/bash"]
    lines += [f"# {line}".rstrip() for line in what]
    lines += [
        "#",
        "# Written by:",
        f"#   {spec.command_line}" if spec.command_line else "#   badpix slurm",
        "# Rerun the same command with --submit (add --wait to follow it): units whose partial",
        "# result is present and valid are skipped, and only the merge runs if none is missing.",
        "# Options below can be edited; they apply when the script is submitted again.",
    ]
    return lines


def _paired(args: Sequence[str]) -> list[str]:
    """Quoted arguments, one per line, an option and its value on the same line (readability)."""
    lines: list[str] = []
    for arg in args:
        if lines and lines[-1].startswith("-") and " " not in lines[-1] \
                and not arg.startswith("-"):
            lines[-1] += " " + shlex.quote(arg)
        else:
            lines.append(shlex.quote(arg))
    return lines


def render_array_script(spec: JobSpec) -> str:
    """The array job script: task ``$SLURM_ARRAY_TASK_ID`` computes that unit's partial result.

    Examples
    --------
    >>> from badpix.slurm import JobLayout, JobSpec, SlurmSettings, Unit
    >>> spec = JobSpec(units=(Unit(0, 3, "0:8"),), make_mask_args=("/runs/r1",),
    ...                output=Path("/m.h5"), layout=JobLayout(Path("/m.h5.slurm")),
    ...                settings=SlurmSettings(), badpix=("/py", "-m", "badpix"), cwd=Path("/"))
    >>> lines = render_array_script(spec).splitlines()
    >>> [ln for ln in lines if ln.startswith(("#SBATCH --a", '    "3'))]
    ['#SBATCH --array=0-0', '    "3 0:8"  # 0']
    """
    s, lay = spec.settings, spec.layout
    n = len(spec.units)
    lines = _header(spec, [
        f"badpix SLURM array job: {n} work units (a module x a block of memory cells) of the mask",
        f"  {spec.output}",
        "Task i runs `badpix make-mask ... --modules M --cells A:B --partial` for UNITS[i] and",
        f"writes {lay.parts}/unit-<iiii>.h5; its log is {lay.logs}/unit-<iiii>.out.",
        "merge.sh (submitted with --dependency=afterok:<this job's id>) assembles the mask.",
        "By hand: sbatch --array=3,7 array.sh   (only units 3 and 7)",
        "         SLURM_ARRAY_TASK_ID=3 bash array.sh   (unit 3 here, without SLURM)",
    ])
    lines += _sbatch_lines(
        [
            ("--job-name", f"{spec.job_name}-units"),
            ("--array", f"0-{n - 1}"),
            ("--output", _log_pattern(lay.logs, "unit-%4a.out")),
            ("--partition", s.partition),
            ("--account", s.account),
            ("--time", s.time),
            ("--mem", s.mem),
            ("--cpus-per-task", s.cpus_per_task),
        ],
        s.extra_sbatch,
    )
    lines += ["", "set -euo pipefail", ""]
    lines += _environment_block(spec)
    lines += [
        "",
        "# The runs and make-mask options shared by every unit",
        "RUNS_AND_OPTIONS=(",
        *(f"    {line}" for line in _paired(spec.make_mask_args)),
        ")",
        f"PARTS={shlex.quote(str(lay.parts))}",
        "",
        '# One work unit per line: "module cells"; line i is array task i',
        "UNITS=(",
        *(f'    "{u.module} {u.cells}"  # {u.index}' for u in spec.units),
        ")",
        "",
        'task=${SLURM_ARRAY_TASK_ID:?"submit with sbatch, or set SLURM_ARRAY_TASK_ID=<unit>"}',
        'if (( task < 0 || task >= ${#UNITS[@]} )); then',
        '    echo "no work unit $task (there are ${#UNITS[@]})" >&2; exit 2',
        "fi",
        'read -r module cells <<< "${UNITS[$task]}"',
        'printf -v part "%s/unit-%04d.h5" "$PARTS" "$task"',
        'echo "badpix unit $task: module $module, cells $cells -> $part" \\',
        '     "(host $(hostname), job ${SLURM_JOB_ID:-none}, $(date -Is))"',
        'mkdir -p "$PARTS"',
        "# one thread per allocated CPU; --force: a partial of an earlier job is replaced",
        'exec "${BADPIX[@]}" make-mask --threads "${SLURM_CPUS_PER_TASK:-1}" \\',
        '    "${RUNS_AND_OPTIONS[@]}" \\',
        '    --modules "$module" --cells "$cells" --partial --force -o "$part"',
    ]
    return "\n".join(lines) + "\n"


def render_merge_script(spec: JobSpec) -> str:
    """The merge job script: ``badpix assemble <parts> -o <mask>`` after the array job."""
    s, lay = spec.settings, spec.layout
    lines = _header(spec, [
        "badpix SLURM merge job: assembles the partial results of array.sh into the mask",
        f"  {spec.output}",
        "`badpix assemble` refuses an incomplete set, duplicated units or partials of other",
        "runs or options, naming what is wrong.",
        "By hand: sbatch --dependency=afterok:<array job id> merge.sh   (or just sbatch merge.sh",
        "once every partial is there)",
    ])
    lines += _sbatch_lines(
        [
            ("--job-name", f"{spec.job_name}-merge"),
            ("--output", _log_pattern(lay.logs, lay.merge_log.name)),
            ("--partition", s.partition),
            ("--account", s.account),
            ("--time", s.merge_time),
            ("--mem", s.merge_mem),
            ("--cpus-per-task", 1),
            # without this a failed unit leaves the merge pending forever on many clusters
            ("--kill-on-invalid-dep", "yes"),
        ],
        s.extra_sbatch,
    )
    lines += ["", "set -euo pipefail", ""]
    lines += _environment_block(spec)
    force = " --force" if spec.force else ""
    lines += [
        "",
        f"PARTS={shlex.quote(str(lay.parts))}",
        f"OUTPUT={shlex.quote(str(spec.output))}",
        'echo "badpix merge: $PARTS -> $OUTPUT (host $(hostname), job ${SLURM_JOB_ID:-none},'
        ' $(date -Is))"',
        f'exec "${{BADPIX[@]}}" assemble "$PARTS" -o "$OUTPUT"{force}',
    ]
    return "\n".join(lines) + "\n"


def write_scripts(spec: JobSpec) -> None:
    """Create the job folder and write ``array.sh`` and ``merge.sh`` (atomically)."""
    lay = spec.layout
    for folder in (lay.workdir, lay.parts, lay.logs):
        folder.mkdir(parents=True, exist_ok=True)
    for path, text in ((lay.array_script, render_array_script(spec)),
                       (lay.merge_script, render_merge_script(spec))):
        with atomic_output(path, force=True) as tmp:
            tmp.write_text(text)
        path.chmod(path.stat().st_mode | 0o111)  # users may also run them with ./array.sh
