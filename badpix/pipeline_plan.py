"""Planning ``badpix make-mask``: :class:`WorkUnit` (one module, a block of memory cells),
:class:`MaskOptions`, :func:`plan_units` (cell blocks sized to the memory), and what identifies
a job across SLURM tasks (:func:`job_plan`, :func:`fingerprint`).

Pure bookkeeping, no data are read: :mod:`badpix.pipeline` runs the units and re-exports
everything here.

Memory: :func:`plan_units` sizes cell blocks so that one unit fits in ``max_memory`` bytes
(default :data:`DEFAULT_MAX_MEMORY` = 4 GiB). Per memory cell a unit holds two gain runs'
frames (the one being fitted and the prefetched one; ``n_trains x frame bytes``: 256 KiB per
AGIPD raw frame) plus, for all gain stages, the statistics, scores, bits and the population
fit's temporaries (:data:`_WORK_ARRAYS` float32 per pixel per stage) and the previous unit's
results waiting to be written (:data:`_PENDING_ARRAYS`); a fixed :data:`_OVERHEAD` covers the
read buffers and the interpreter.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from badpix.classify import CellPolicy, Thresholds
from badpix.darkset import DarkSet
from badpix.exceptions import ConfigError
from badpix.read import bytes_per_frame
from badpix.stats import StatsParams

DEFAULT_MAX_MEMORY = 4 << 30
_OVERHEAD = 512 << 20
_WORK_ARRAYS = 32
_PENDING_ARRAYS = 16  # one unit's results waiting for the writer: <= 14 float32 + bits + OR
_PREFETCH_BLOCKS = 1  # blocks read ahead (beside the one being fitted)


@dataclass(frozen=True)
class WorkUnit:
    """One module and a block of memory-cell IDs (increasing)."""

    module: int
    cell_ids: tuple[int, ...]

    @property
    def cells(self) -> str:
        """The block as a ``--cells`` value: ``"A:B"`` (B exclusive) or ``"1,5,9"``."""
        c = self.cell_ids
        if list(c) == list(range(c[0], c[-1] + 1)):
            return f"{c[0]}:{c[-1] + 1}"
        return ",".join(map(str, c))

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "cells": list(self.cell_ids)}

    def __str__(self) -> str:
        return f"module {self.module} cells {self.cells}"


@dataclass(frozen=True)
class MaskOptions:
    """Everything besides the runs that decides the bits (part of the fingerprint)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    stats_params: StatsParams = field(default_factory=StatsParams)
    cell_policy: CellPolicy = field(default_factory=CellPolicy)
    max_memory: int = DEFAULT_MAX_MEMORY
    n_threads: int | None = None
    compression: str = "auto"  # MaskWriter compression; does not change the bits

    def to_json(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds.to_dict(),
            "stats": self.stats_params.__dict__,
            "cell_policy": self.cell_policy.text,
        }


def bytes_per_cell(dark_set: DarkSet, *, overlap: bool = False) -> int:
    """Peak bytes one memory cell of a unit needs (see the module docstring, "Memory").

    ``overlap``: as ``make_mask`` runs units, with one block prefetched and one unit's
    results waiting for the writer; otherwise one unit alone (a SLURM task).
    """
    spec = dark_set.spec
    frames = max(r.train_ids.size for r in dark_set.runs)
    if dark_set.max_trains is not None:
        frames = min(frames, dark_set.max_trains)
    pixels = spec.module_shape[0] * spec.module_shape[1]
    arrays = _WORK_ARRAYS + (_PENDING_ARRAYS if overlap else 0)
    blocks = 1 + (_PREFETCH_BLOCKS if overlap else 0)
    work = len(dark_set.runs) * pixels * 4 * arrays
    return blocks * frames * bytes_per_frame(spec, dark_set.kind) + work


def plan_units(
    dark_set: DarkSet, max_memory: int = DEFAULT_MAX_MEMORY, *, overlap: bool = False
) -> list[WorkUnit]:
    """Split the job into units: each present module in cell blocks that fit ``max_memory``.

    Blocks of one module have equal sizes (within one cell), in increasing cell order.
    ``overlap=True`` (``make_mask``) also counts the prefetched block and the result
    waiting to be written; partials and SLURM plans use the one-unit size.
    """
    per_cell = bytes_per_cell(dark_set, overlap=overlap)
    fit = (max_memory - _OVERHEAD) // per_cell
    if fit < 1:
        need = (_OVERHEAD + per_cell) / 2**30
        raise ConfigError(
            f"--max-memory {max_memory / 2**30:.2f} GiB is too small: one memory cell needs "
            f"{need:.2f} GiB (use --max-trains to read fewer trains)"
        )
    cells = [int(c) for c in dark_set.cell_ids]
    n_blocks = math.ceil(len(cells) / fit)
    blocks = [b.tolist() for b in np.array_split(cells, n_blocks)]
    return [WorkUnit(m, tuple(b)) for m in dark_set.modules for b in blocks]


def job_plan(dark_set: DarkSet, options: MaskOptions) -> dict[str, Any]:
    """What the whole job covers: modules, cell IDs and the planned units."""
    return {
        "modules": list(dark_set.modules),
        "missing_modules": list(dark_set.missing_modules),
        "cells": [int(c) for c in dark_set.cell_ids],
        "first_module": dark_set.spec.first_module,
        "units": [u.to_json() for u in plan_units(dark_set, options.max_memory)],
    }


def fingerprint(dark_set: DarkSet, options: MaskOptions) -> str:
    """Hash of the inputs (runs, train IDs, detector, cells) and of the options."""
    h = hashlib.sha256()
    h.update(json.dumps(options.to_json(), sort_keys=True).encode())
    h.update(f"{dark_set.spec.name}|{dark_set.detector_id}|{dark_set.kind}".encode())
    for r in dark_set.runs:
        h.update(f"|{Path(r.path).resolve()}|{r.gain_stage}|".encode())
        h.update(np.ascontiguousarray(r.train_ids, np.uint64).tobytes())
    h.update(np.ascontiguousarray(dark_set.cell_ids, np.uint16).tobytes())
    return h.hexdigest()[:32]
