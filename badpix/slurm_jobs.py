"""Run the SLURM jobs of a :class:`badpix.slurm.JobSpec`: partials, submission, failures.

:func:`scan_partials` tells which units of a job folder are done, so a rerun submits only the
rest. :func:`submit`, :func:`wait_for_jobs` and :func:`failures` talk to SLURM through
``sbatch``, ``squeue``, ``scontrol`` and ``scancel`` only: no accounting (``sacct``) is needed,
and the outcome of a unit is read from its partial file and its log, which survive on every
cluster. :func:`format_failures` turns the failures into a report for the user.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from badpix.exceptions import SlurmError
from badpix.slurm import JobLayout, JobSpec, Unit


def array_ranges(indices: Iterable[int]) -> str:
    """An sbatch ``--array`` value for ``indices``: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    ranges: list[list[int]] = []
    for i in sorted(set(indices)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


# ------------------------------------------------------------------------------- partial sets
def partial_status(path: Path, expected: Mapping[str, Any]) -> str | None:
    """Why the partial result at ``path`` cannot be reused, or None if it can.

    A partial is reusable when it opens, has ``format = "badpix-partial"`` and its attributes
    named in ``expected`` (e.g. ``unit``, ``fingerprint``) equal the expected values; JSON
    attributes are compared decoded. Partials are written atomically, so an existing file is
    complete; a file of another job (other runs, options or plan) is what this catches.
    """
    import h5py  # here, not at import: only checking partials reads HDF5

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
