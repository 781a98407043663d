"""Plan and run ``badpix make-mask``: work units, one process, partials and assembly.

A :class:`WorkUnit` is one module and a block of memory cells. Everything a unit's bits depend
on lies inside the unit (population fits are per gain stage, cell and ASIC of one module), so the
units can run in any order, in one process (:func:`make_mask`) or as separate SLURM tasks
(:func:`write_partial`, then :func:`badpix.assembly.assemble`), and give the same file.

Overlap (:func:`make_mask`): a small bounded pipeline of three threads. One reader thread
reads the next gain run's block (the next unit's first block after a unit's last) while the
current block is fitted (h5py holds the GIL, the robust core releases it), and one writer thread
writes a unit's results while the next unit is computed. At most one block is prefetched and at
most one result waits to be written. Per-stage times are collected in :class:`StageTimes`.

Planning (:class:`WorkUnit`, :class:`MaskOptions`, :func:`plan_units`, the memory model,
:func:`job_plan`, :func:`fingerprint`) is in :mod:`badpix.pipeline_plan`, re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from badpix import crystfel
from badpix.atomic import atomic_output
from badpix.classify import BadPixel, apply_thresholds
from badpix.darkset import DarkSet
from badpix.exceptions import ConfigError
from badpix.maskfile import GAIN_STAT_NAMES, STAT_NAMES, MaskLayout, MaskWriter
from badpix.pipeline_plan import (
    DEFAULT_MAX_MEMORY,
    MaskOptions,
    WorkUnit,
    bytes_per_cell,
    fingerprint,
    job_plan,
    plan_units,
)
from badpix.population import compute_scores
from badpix.read import read_block
from badpix.stats import dark_stats, stack_stats

__all__ = [
    "BAD_BITS",
    "DEFAULT_MAX_MEMORY",
    "MaskOptions",
    "StageTimes",
    "UnitResult",
    "WorkUnit",
    "bytes_per_cell",
    "fingerprint",
    "gain_check",
    "geometry_lines",
    "job_plan",
    "make_mask",
    "mask_layout",
    "plan_units",
    "provenance",
    "run_unit",
    "write_partial",
]

#: all bits badpix sets: the ``mask_bad`` of the CrystFEL lines
BAD_BITS = int(np.bitwise_or.reduce([int(b) for b in BadPixel]))


@dataclass
class StageTimes:
    """Seconds spent per stage (summed over units). ``read`` runs in the reader thread and
    ``write`` in the writer thread, overlapped with ``core`` and ``scores``; ``wait_read`` /
    ``wait_write`` are the times the compute thread waited for them (not hidden by overlap)."""

    read: float = 0.0
    core: float = 0.0
    scores: float = 0.0
    write: float = 0.0
    wait_read: float = 0.0
    wait_write: float = 0.0
    total: float = 0.0
    read_bytes: int = 0

    def summary(self) -> str:
        return (
            f"read {self.read:.2f} s, core {self.core:.2f} s, scores {self.scores:.2f} s, "
            f"write {self.write:.2f} s (waited: read {self.wait_read:.2f} s, write "
            f"{self.wait_write:.2f} s), total {self.total:.2f} s"
        )


@dataclass
class UnitResult:
    """Bits, statistics and scores of one unit; arrays ``(G, n_cells, ss, fs)``."""

    unit: WorkUnit
    bits: np.ndarray
    stats: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]


# ------------------------------------------------------------------------------------ layout
def gain_check(dark_set: DarkSet) -> bool:
    """Whether the gain-separation test applies: raw adaptive data with a digital channel."""
    return (
        dark_set.kind == "raw"
        and dark_set.spec.gain_encoding == "digital_channel"
        and len(dark_set.runs) > 1
        and all(r.gain_mode != "fixed" for r in dark_set.runs)
    )


def mask_layout(dark_set: DarkSet) -> MaskLayout:
    spec = dark_set.spec
    has_digital = dark_set.kind == "raw" and spec.gain_encoding != "none"
    scores = ("offset", "noise", "inlier", *(("gain",) if gain_check(dark_set) else ()))
    return MaskLayout(
        detector=spec.name,
        n_modules=spec.n_modules,
        module_shape=tuple(spec.module_shape),
        cells=tuple(int(c) for c in dark_set.cell_ids),
        gain_stages=tuple(dark_set.gain_stages),
        stat_names=STAT_NAMES + (GAIN_STAT_NAMES if has_digital else ()),
        score_names=(*scores, "asic_offset", "asic_noise"),
        detector_id=dark_set.detector_id,
    )


# ----------------------------------------------------------------------------------- running
def run_unit(
    dark_set: DarkSet, unit: WorkUnit, options: MaskOptions, times: StageTimes | None = None
) -> UnitResult:
    """Read each gain run's block of ``unit``, compute statistics, scores and bits."""
    times = times if times is not None else StageTimes()

    def blocks() -> Iterator[Any]:
        for run in dark_set.runs:  # one run's frames in memory at a time
            yield _timed_read(dark_set, run, unit, times)

    return _compute(dark_set, unit, options, blocks(), times)


def _timed_read(dark_set: DarkSet, run: Any, unit: WorkUnit, times: StageTimes) -> Any:
    t0 = time.perf_counter()
    block = read_block(run, unit.module, list(unit.cell_ids), dark_set.max_trains)
    times.read += time.perf_counter() - t0
    times.read_bytes += block.nbytes
    return block


def _compute(
    dark_set: DarkSet,
    unit: WorkUnit,
    options: MaskOptions,
    blocks: Iterable[Any],
    times: StageTimes,
) -> UnitResult:
    """Statistics of each gain run's block (in run order), then scores and bits."""
    spec = dark_set.spec
    per_gain = []
    for block in blocks:
        t0 = time.perf_counter()
        per_gain.append(dark_stats(block, options.stats_params, options.n_threads))
        times.core += time.perf_counter() - t0
        del block  # before the next block arrives: at most one fitted + one prefetched
    t0 = time.perf_counter()
    stats = stack_stats(per_gain)
    scores = compute_scores(
        stats, tuple(spec.asic_shape), gain_check=gain_check(dark_set), n_threads=options.n_threads
    )
    bits = apply_thresholds(
        scores,
        stats,
        options.thresholds,
        gain_stages=dark_set.gain_stages,
        asic_shape=tuple(spec.asic_shape),
        raw=dark_set.kind == "raw",
    )
    times.scores += time.perf_counter() - t0
    return UnitResult(unit, bits, stats, scores)


def _prefetched_blocks(
    dark_set: DarkSet, units: Sequence[WorkUnit], reader: ThreadPoolExecutor, times: StageTimes
) -> Iterator[Iterator[Any]]:
    """Per unit, an iterator over its gain runs' blocks, read one block ahead in ``reader``.

    The read of block i + 1 (possibly the next unit's first) is submitted when block i is
    handed out, so one block is fitted while one is read; never more than two exist.
    """
    tasks = [(u, r) for u in units for r in dark_set.runs]
    pending: list[Future[Any]] = []

    def submit(i: int) -> None:
        if i < len(tasks):
            u, r = tasks[i]
            pending.append(reader.submit(_timed_read, dark_set, r, u, times))

    submit(0)
    n_runs = len(dark_set.runs)

    def unit_blocks(k: int) -> Iterator[Any]:
        for j in range(n_runs):
            fut = pending.pop(0)
            t0 = time.perf_counter()
            fut.result()  # raises the reader's exception here
            times.wait_read += time.perf_counter() - t0
            submit(k * n_runs + j + 1)
            yield fut.result()
            del fut

    for k in range(len(units)):
        yield unit_blocks(k)


def _write(writer: MaskWriter, dark_set: DarkSet, result: UnitResult) -> None:
    module_axis = result.unit.module - dark_set.spec.first_module
    writer.write_unit(module_axis, result.unit.cell_ids, result.bits, result.stats, result.scores)


def provenance(dark_set: DarkSet, options: MaskOptions, command_line: str = "") -> dict[str, Any]:
    """The ``/provenance`` attributes (without timing and host)."""
    return {
        "command_line": command_line,
        "detector": dark_set.spec.name,
        "detector_id": dark_set.detector_id,
        "runs": [
            {
                "path": str(r.path),
                "gain_stage": r.gain_stage,
                "gain_stage_from": r.gain_stage_from,
                "gain_mode": r.gain_mode,
                "kind": r.kind,
            }
            for r in dark_set.runs
        ],
        "trains": {
            r.gain_stage: {
                "first": int(r.train_ids[0]),
                "last": int(r.train_ids[-1]),
                "count": int(r.train_ids.size),
            }
            for r in dark_set.runs
        },
        "thresholds": options.thresholds.to_dict(),
        "stats_params": options.stats_params.__dict__,
        "config": dark_set.spec.config_text,
        "cell_policy": options.cell_policy.text,
        "modules": dark_set.modules,
        "missing_modules": dark_set.missing_modules,
    }


def geometry_lines(out: str | Path) -> str:
    """CrystFEL lines for the mask file at ``out`` (VDS layout; stacked as a comment)."""
    path = Path(out).resolve()
    vds = crystfel.mask_geometry_lines(path, layout="vds", bad_bits=BAD_BITS)
    stacked = crystfel.mask_geometry_lines(path, layout="stacked", bad_bits=BAD_BITS)
    alt = [f"; {ln}" if not ln.startswith(";") else ln for ln in stacked]
    return "\n".join([*vds, "; for the stacked 2-D layout use instead:", *alt]) + "\n"


def make_mask(
    dark_set: DarkSet,
    out: str | Path,
    options: MaskOptions | None = None,
    *,
    force: bool = False,
    command_line: str = "",
    progress: Callable[[Iterable[WorkUnit]], Iterable[WorkUnit]] | None = None,
    timings: StageTimes | None = None,
) -> Path:
    """Compute the mask of ``dark_set`` in this process and write it atomically to ``out``.

    ``progress`` wraps the iterable of units (e.g. a tqdm bar); ``timings`` receives the
    per-stage times. Reading, computing and writing overlap (module docstring). An exception or
    Ctrl-C anywhere leaves no output file behind.
    """
    options = options or MaskOptions()
    times = timings if timings is not None else StageTimes()
    t_start = time.perf_counter()
    units = plan_units(dark_set, options.max_memory, overlap=True)
    lines = geometry_lines(out)
    layout = mask_layout(dark_set)
    with (
        atomic_output(out, force=force) as tmp,
        MaskWriter(
            tmp, layout, cell_policy=options.cell_policy, compression=options.compression
        ) as writer,
    ):
        reader = ThreadPoolExecutor(1, thread_name_prefix="badpix-read")
        writer_pool = ThreadPoolExecutor(1, thread_name_prefix="badpix-write")
        pending_write: Future[None] | None = None

        def timed_write(result: UnitResult) -> None:
            t0 = time.perf_counter()
            _write(writer, dark_set, result)
            times.write += time.perf_counter() - t0

        try:
            per_unit = _prefetched_blocks(dark_set, units, reader, times)
            for unit in progress(units) if progress else units:
                result = _compute(dark_set, unit, options, next(per_unit), times)
                if pending_write is not None:  # at most one result waits for the writer
                    t0 = time.perf_counter()
                    pending_write.result()
                    times.wait_write += time.perf_counter() - t0
                pending_write = writer_pool.submit(timed_write, result)
                del result
            if pending_write is not None:
                t0 = time.perf_counter()
                pending_write.result()
                times.wait_write += time.perf_counter() - t0
        finally:  # no thread may touch the file or the runs once we leave
            reader.shutdown(wait=True, cancel_futures=True)
            writer_pool.shutdown(wait=True, cancel_futures=True)
        writer.finish(
            provenance=provenance(dark_set, options, command_line),
            train_ids={r.gain_stage: r.train_ids for r in dark_set.runs},
            geometry_lines=lines,
        )
    times.total = time.perf_counter() - t_start
    return Path(out)


# ---------------------------------------------------------------------------------- partials
def write_partial(
    dark_set: DarkSet,
    unit: WorkUnit,
    out: str | Path,
    options: MaskOptions | None = None,
    *,
    force: bool = False,
    command_line: str = "",
) -> Path:
    """Compute one unit of the job described by ``dark_set`` and write it as a partial result."""
    options = options or MaskOptions()
    if unit.module not in dark_set.modules:
        raise ConfigError(f"module {unit.module} has no data in every run; nothing to compute")
    missing = set(unit.cell_ids) - {int(c) for c in dark_set.cell_ids}
    if missing:
        raise ConfigError(f"cells {sorted(missing)} are not in the runs")
    partial = {
        "unit": unit.to_json(),
        "plan": job_plan(dark_set, options),
        "fingerprint": fingerprint(dark_set, options),
    }
    with (
        atomic_output(out, force=force) as tmp,
        MaskWriter(
            tmp,
            mask_layout(dark_set),
            cell_policy=options.cell_policy,
            partial=partial,
            compression=options.compression,
        ) as writer,
    ):
        _write(writer, dark_set, run_unit(dark_set, unit, options))
        writer.finish(
            provenance=provenance(dark_set, options, command_line),
            train_ids={r.gain_stage: r.train_ids for r in dark_set.runs},
        )
    return Path(out)
