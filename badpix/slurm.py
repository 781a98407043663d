"""Run ``badpix make-mask`` as SLURM jobs: settings, job scripts, partial sets, submission.

One mask is split into work units (one module x a block of memory cells, planned by
:func:`badpix.pipeline.plan_units`). A job folder holds::

    array.sh            array job: task i runs `badpix make-mask ... --partial` for unit i
    merge.sh            runs `badpix assemble parts -o MASK.h5` once every task succeeded
    parts/unit-0007.h5  the partial result of unit 7
    logs/unit-0007.out  the log of unit 7 (stdout and stderr); logs/merge.out for the merge

The rendering functions are pure (settings in, script text out); :func:`write_scripts` writes the
scripts atomically. :func:`partial_status` tells which units are done, so a rerun submits only the
rest. :func:`submit`, :func:`wait_for_jobs` and :func:`report` talk to SLURM through ``sbatch``,
``squeue``, ``scontrol`` and ``scancel`` only: no accounting (``sacct``) is needed, and the
outcome of a unit is read from its partial file and its log, which survive on every cluster.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from badpix.atomic import atomic_output
from badpix.exceptions import ConfigError, SlurmError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

#: The built-in settings (``configs/slurm.toml``, reached through the ``badpix/configs`` link).
CONFIG_PATH = Path(__file__).resolve().parent / "configs" / "slurm.toml"

#: Environment variables a job needs to run the same badpix on the same data as its submitter.
#: They are written into the scripts because a script resubmitted by hand from another shell
#: (or by a cluster that starts jobs with a clean environment) must still find them.
ENV_VARS = (
    "PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "LD_LIBRARY_PATH",
    "EXTRA_DATA_DATA_ROOT",
    "HDF5_USE_FILE_LOCKING",
)


# ----------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SlurmSettings:
    """sbatch settings of one job (see ``configs/slurm.toml`` for every key).

    Empty strings mean "not set": the cluster's default partition, no account, and a planning
    budget of 75 % of ``mem``.
    """

    partition: str = ""
    account: str = ""
    time: str = "01:00:00"
    mem: str = "4G"
    cpus_per_task: int = 1
    max_memory: str = ""
    merge_time: str = "00:30:00"
    merge_mem: str = "4G"
    extra_sbatch: tuple[str, ...] = ()

    @property
    def max_memory_bytes(self) -> int:
        """Memory one work unit may use, in bytes (planning budget)."""
        if self.max_memory:
            return parse_mem(self.max_memory)
        # headroom for the interpreter, h5py buffers and the output arrays' copies
        return parse_mem(self.mem) * 3 // 4


_KEYS = {f.name.replace("_", "-"): f.name for f in fields(SlurmSettings)}


def load_settings(
    detector: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> SlurmSettings:
    """Settings for ``detector``: ``[default]``, then the detector's table, then ``overrides``.

    Parameters
    ----------
    detector : str, optional
        Detector name (case-insensitive), e.g. ``"AGIPD1M"``. None uses ``[default]`` only.
    overrides : mapping, optional
        Values that win over the file, keyed like the file (``"cpus-per-task"``) or like the
        fields (``"cpus_per_task"``); None values are ignored (an option not given).
    path : str or Path, optional
        TOML file to read instead of the built-in ``configs/slurm.toml``.

    Returns
    -------
    SlurmSettings

    Raises
    ------
    ConfigError
        Unreadable file, unknown key or a value of the wrong type.

    Examples
    --------
    >>> s = load_settings("agipd1m", {"partition": "upex"})
    >>> s.partition, s.cpus_per_task
    ('upex', 8)
    """
    path = Path(path) if path is not None else CONFIG_PATH
    try:
        table = tomllib.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read SLURM settings {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    values: dict[str, Any] = {}
    sections = {name.lower(): name for name in table}
    chosen = ["default"] + ([detector.lower()] if detector else [])
    for key in chosen:
        section = table.get(sections.get(key, ""), {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{sections[key]}] must be a table")
        for name, value in section.items():
            values[_field(name, f"{path} [{sections[key]}]")] = value
    for name, value in (overrides or {}).items():
        if value is not None:
            values[_field(name, "option")] = value
    return _checked(values, path)


def _field(name: str, where: str) -> str:
    key = name.replace("_", "-")
    if key not in _KEYS:
        raise ConfigError(f"{where}: unknown SLURM setting {name!r}; known: {', '.join(_KEYS)}")
    return _KEYS[key]


def _checked(values: dict[str, Any], path: Path) -> SlurmSettings:
    for name, value in values.items():
        if name == "cpus_per_task":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{path}: cpus-per-task must be an integer >= 1, not {value!r}")
        elif name == "extra_sbatch":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: extra-sbatch must be a list of strings")
            values[name] = tuple(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{path}: {name.replace('_', '-')} must be a string, not {value!r}")
    settings = SlurmSettings(**values)
    for key in ("mem", "merge_mem", "max_memory"):
        if getattr(settings, key):
            parse_mem(getattr(settings, key))  # fail now, not at submit time
    return settings


_MEM_UNITS = {"": 2**20, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_mem(text: str) -> int:
    """Bytes in an sbatch ``--mem`` value (``"8G"``, ``"500M"``; a plain number is MB).

    Examples
    --------
    >>> parse_mem("8G"), parse_mem("512")
    (8589934592, 536870912)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ConfigError(f"memory {text!r} is not a size like 8G, 500M or 4096 (MB)")
    return int(float(match[1]) * _MEM_UNITS[match[2].upper()])


# ---------------------------------------------------------------------------------- job layout
@dataclass(frozen=True)
class Unit:
    """One array task: work unit ``index`` of the plan, as the scripts pass it to make-mask."""

    index: int
    module: int
    cells: str  # the value of make-mask's --cells, e.g. "0:64"


@dataclass(frozen=True)
class JobLayout:
    """Where a job folder keeps its scripts, partials and logs."""

    workdir: Path

    @property
    def array_script(self) -> Path:
        return self.workdir / "array.sh"

    @property
    def merge_script(self) -> Path:
        return self.workdir / "merge.sh"

    @property
    def parts(self) -> Path:
        return self.workdir / "parts"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def part(self, index: int) -> Path:
        return self.parts / f"unit-{index:04d}.h5"

    def unit_log(self, index: int) -> Path:
        return self.logs / f"unit-{index:04d}.out"

    @property
    def merge_log(self) -> Path:
        return self.logs / "merge.out"


@dataclass(frozen=True)
class JobSpec:
    """Everything the two scripts need.

    Attributes
    ----------
    units : tuple of Unit
        Every unit of the plan (a rerun submits a subset with ``sbatch --array=...``).
    make_mask_args : tuple of str
        The runs and make-mask options shared by every unit (paths absolute).
    output : Path
        The mask file the merge job writes (absolute).
    layout : JobLayout
    settings : SlurmSettings
    badpix : tuple of str
        The command that runs badpix: ``(sys.executable, "-m", "badpix")``.
    env : tuple of (str, str)
        Environment variables exported by the scripts.
    cwd : Path
        Folder the jobs run in (where ``badpix slurm`` ran).
    command_line : str
        The ``badpix slurm`` command line, quoted in the scripts' header.
    force : bool
        Let the merge job overwrite an existing mask file.
    job_name : str
    """

    units: tuple[Unit, ...]
    make_mask_args: tuple[str, ...]
    output: Path
    layout: JobLayout
    settings: SlurmSettings
    badpix: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: Path = field(default_factory=Path.cwd)
    command_line: str = ""
    force: bool = False
    job_name: str = "badpix"


def capture_environment(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The variables of :data:`ENV_VARS` (and any ``BADPIX_*``) that are set in ``environ``."""
    environ = os.environ if environ is None else environ
    names = [n for n in ENV_VARS if n in environ]
    names += sorted(n for n in environ if n.startswith("BADPIX_"))
    return tuple((n, environ[n]) for n in names)


def array_ranges(indices: Iterable[int]) -> str:
    """An sbatch ``--array`` value for ``indices``: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    ranges: list[list[int]] = []
    for i in sorted(set(indices)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


# ---------------------------------------------------------------------------------- rendering
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


# ------------------------------------------------------------------------------- partial sets
def partial_status(path: Path, expected: Mapping[str, Any]) -> str | None:
    """Why the partial result at ``path`` cannot be reused, or None if it can.

    A partial is reusable when it opens, has ``format = "badpix-partial"`` and its attributes
    named in ``expected`` (e.g. ``unit``, ``fingerprint``) equal the expected values; JSON
    attributes are compared decoded. Partials are written atomically, so an existing file is
    complete; a file of another job (other runs, options or plan) is what this catches.
    """
    import h5py  # only here: rendering scripts must not need it

    from badpix.maskfile import PARTIAL_FORMAT

    if not path.is_file():
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decoded(f.attrs[k]) for k in ("format", *expected) if k in f.attrs}
    except OSError as err:
        return f"unreadable ({err})"
    if attrs.get("format") != PARTIAL_FORMAT:
        return f"not a badpix partial result (format {attrs.get('format')!r})"
    for key, value in expected.items():
        if key not in attrs:
            return f"no {key!r} attribute"
        if attrs[key] != _decoded(value):
            return f"{key} differs from this job's (a partial of another job)"
    return None


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class PartialScan:
    """The state of a job folder's ``parts/`` against the plan.

    Attributes
    ----------
    done : tuple of int
        Units whose partial is valid: not submitted again.
    todo : tuple of int
        Units to run: no partial, or an invalid one (``invalid``), which the task replaces.
    invalid : tuple of (Path, str)
        Partials of planned units that cannot be reused, and why.
    foreign : tuple of Path
        ``*.h5`` files in ``parts/`` that are no unit of this plan (an earlier job with
        another plan). ``assemble`` reads the whole folder, so they must go before it runs.
    """

    done: tuple[int, ...]
    todo: tuple[int, ...]
    invalid: tuple[tuple[Path, str], ...]
    foreign: tuple[Path, ...]


def scan_partials(
    layout: JobLayout, expected: Mapping[int, Mapping[str, Any]]
) -> PartialScan:
    """Check ``parts/`` against the plan.

    Parameters
    ----------
    layout : JobLayout
    expected : mapping of int to mapping
        For each unit index of the plan, the attributes its partial must have (see
        :func:`partial_status`).

    Returns
    -------
    PartialScan
    """
    done, todo, invalid = [], [], []
    for index, attrs in sorted(expected.items()):
        why = partial_status(layout.part(index), attrs)
        if why is None:
            done.append(index)
        else:
            todo.append(index)
            if why != "missing":
                invalid.append((layout.part(index), why))
    planned = {layout.part(i).name for i in expected}
    foreign = []
    if layout.parts.is_dir():
        foreign = [p for p in sorted(layout.parts.glob("*.h5")) if p.name not in planned]
    return PartialScan(tuple(done), tuple(todo), tuple(invalid), tuple(foreign))


# --------------------------------------------------------------------------------- submission
@dataclass(frozen=True)
class Submission:
    """Job ids of one submission (``array_id`` is None when every partial already existed)."""

    array_id: str | None
    merge_id: str
    indices: tuple[int, ...]
    submitted_at: float


def sbatch_commands(spec: JobSpec, todo: Sequence[int]) -> list[list[str]]:
    """The sbatch command lines :func:`submit` runs (``<ARRAY_JOB_ID>`` as a placeholder)."""
    commands = []
    merge = ["sbatch", "--parsable"]
    if todo:
        commands.append(["sbatch", "--parsable", f"--array={array_ranges(todo)}",
                         str(spec.layout.array_script)])
        merge.append("--dependency=afterok:<ARRAY_JOB_ID>")
    commands.append([*merge, str(spec.layout.merge_script)])
    return commands


def _slurm(cmd: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} not found: run this on a SLURM login node") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{cmd[0]} did not answer within 120 s; is SLURM up?") from None
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise SlurmError(f"{shlex.join(cmd)} failed: {last}")
    return proc


def submit(spec: JobSpec, todo: Sequence[int]) -> Submission:
    """Submit the array job for units ``todo`` (if any), then the merge job depending on it."""
    commands = sbatch_commands(spec, todo)
    started = time.time()
    array_id = None
    if todo:
        array_id = _slurm(commands[0]).stdout.strip().split(";")[0]
    merge_cmd = [a.replace("<ARRAY_JOB_ID>", array_id or "") for a in commands[-1]]
    try:
        merge_id = _slurm(merge_cmd).stdout.strip().split(";")[0]
    except SlurmError as err:
        if array_id:
            raise SlurmError(f"{err} (array job {array_id} was submitted and runs; rerun "
                             "with --submit once it is done to merge)") from None
        raise
    return Submission(array_id, merge_id, tuple(todo), started)


def queued(job_ids: Sequence[str]) -> list[dict[str, str]]:
    """Jobs among ``job_ids`` still known to ``squeue`` (pending or running): id, state, reason."""
    proc = _slurm(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%r"], check=False)
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # all of them finished and were purged
            return []
        raise SlurmError(f"squeue failed: {proc.stderr.strip() or proc.returncode}")
    jobs = []
    for line in proc.stdout.splitlines():
        job_id, state, reason = [*line.split("|"), "", ""][:3]
        jobs.append({"id": job_id.strip(), "state": state.strip(), "reason": reason.strip()})
    return jobs


def wait_for_jobs(
    submission: Submission,
    *,
    poll: float = 5.0,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Poll ``squeue`` until the submitted jobs have left the queue.

    A merge job whose dependency can never be satisfied (a unit failed) is cancelled: where
    ``--kill-on-invalid-dep`` is not honoured it would otherwise stay pending for ever.
    """
    ids = [i for i in (submission.array_id, submission.merge_id) if i]
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    errors = 0
    while True:
        try:
            jobs = queued(ids)
            errors = 0
        except SlurmError:
            # a busy controller times out now and then; give up only if it stays away
            errors += 1
            if errors >= 5:
                raise
            time.sleep(poll)
            continue
        if not jobs:
            return
        for job in jobs:
            if job["id"] == submission.merge_id and job["reason"] == "DependencyNeverSatisfied":
                _slurm(["scancel", submission.merge_id], check=False)
        summary = ", ".join(f"{j['id']} {j['state'].lower()}" for j in jobs)
        if progress and summary != last:
            progress(summary)
            last = summary
        if deadline is not None and time.monotonic() > deadline:
            raise SlurmError(f"jobs {', '.join(ids)} still queued after {timeout:.0f} s: "
                             f"{summary}")
        time.sleep(poll)


def job_states(job_id: str) -> dict[int | None, dict[str, str]]:
    """``scontrol show job`` fields by array task id (None for a plain job); {} if unknown.

    Clusters forget finished jobs after ``MinJobAge`` (300 s by default), so callers use this
    only to add detail (state, exit code) to what the partials and logs already tell.
    """
    try:
        proc = _slurm(["scontrol", "-o", "show", "job", job_id], check=False)
    except SlurmError:  # no scontrol here: the files still tell what happened
        return {}
    if proc.returncode != 0:
        return {}
    states: dict[int | None, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        info = dict(re.findall(r"(\w+)=(\S*)", line))
        task = info.get("ArrayTaskId", "")
        states[int(task) if task.isdigit() else None] = info
    return states


def tail(path: Path, lines: int = 10) -> list[str]:
    """The last ``lines`` lines of a log (a note if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError as err:
        return [f"(no log: {err.strerror})"]
    return text.splitlines()[-lines:]


# ------------------------------------------------------------------------------------ outcome
@dataclass(frozen=True)
class Failure:
    """A unit (or the merge, ``unit=None``) that did not produce its file."""

    unit: Unit | None
    state: str
    log: Path
    tail: tuple[str, ...]


def failures(
    spec: JobSpec,
    submission: Submission,
    unit_done: Callable[[int], bool],
    *,
    tail_lines: int = 10,
) -> list[Failure]:
    """The submitted units without a valid partial, and the merge if it wrote no mask.

    The files decide (a partial is valid, the mask is newer than the submission); the job state
    from ``scontrol`` (e.g. ``FAILED 1:0``, ``TIMEOUT``, ``OUT_OF_MEMORY``), when the cluster
    still remembers the job, only describes the failure.
    """
    units = {u.index: u for u in spec.units}
    tasks = job_states(submission.array_id) if submission.array_id else {}
    found = []
    for index in submission.indices:
        if not unit_done(index):
            info = tasks.get(index, {})
            found.append(Failure(units[index], _state(info, "no valid partial written"),
                                 spec.layout.unit_log(index),
                                 tuple(tail(spec.layout.unit_log(index), tail_lines))))
    merge = job_states(submission.merge_id).get(None, {})
    out = spec.output
    # 1 s of slack: some file systems store whole-second modification times
    written = out.is_file() and out.stat().st_mtime >= submission.submitted_at - 1
    if not written or merge.get("JobState", "COMPLETED") != "COMPLETED":
        state = _state(merge, "no mask written")
        if found and merge.get("JobState") in (None, "CANCELLED", "PENDING"):
            state = "not run (a unit failed)"
        found.append(Failure(None, state, spec.layout.merge_log,
                             tuple(tail(spec.layout.merge_log, tail_lines))))
    return found


def _state(info: Mapping[str, str], default: str) -> str:
    if not info:
        return default
    state = info.get("JobState", "?")
    if info.get("ExitCode", "0:0") != "0:0":
        state += f" (exit code {info['ExitCode']})"
    return state


def format_failures(found: Sequence[Failure]) -> str:
    """A readable report: each failed unit or merge with its state, log path and log tail."""
    out = []
    for fail in found:
        if fail.unit is None:
            out.append(f"merge job: {fail.state}; log {fail.log}")
        else:
            u = fail.unit
            out.append(f"unit {u.index} (module {u.module}, cells {u.cells}): {fail.state}; "
                       f"log {fail.log}")
        if fail.unit is not None or "not run" not in fail.state:
            out += [f"    | {line}" for line in fail.tail]
    return "\n".join(out)
