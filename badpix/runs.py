"""Resolve, open and validate the dark runs of one detector.

Public objects
--------------
open_dark_set(runs, *, detector=None, spec=None, gain_stages=None, data="auto",
              modules=None, cells=None, max_trains=None) -> DarkSet
    Resolve ``RUN`` arguments, open them with extra-data, find the detector, the gain stage of
    each run, modules, trains and memory cells, and apply the selections.
resolve_run(arg, data="auto") -> Path
    A run folder, or ``PROPOSAL:RUN`` (``900001:1``, ``p900001:r0001``) found like extra-data's
    ``open_run`` under ``$EXTRA_DATA_DATA_ROOT`` (default ``/gpfs/exfel/exp``).
DarkSet, DarkRun
    The validated set (runs ordered by gain stage) and one run of it (defined in
    :mod:`badpix.darkset`, re-exported here).

Every user error is a one-line :class:`~badpix.exceptions.RunError` (or its subclass
:class:`~badpix.exceptions.NoDarkDataError`), or :class:`~badpix.exceptions.DataReadError` for
unreadable files.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from badpix.darkset import DarkRun, DarkSet
from badpix.detectors import DetectorSpec, available_detectors, load_detector
from badpix.exceptions import DataReadError, NoDarkDataError, RunError
from badpix.read import ModuleIndex, build_module_index

if TYPE_CHECKING:
    from extra_data import DataCollection

__all__ = ["DarkRun", "DarkSet", "open_dark_set", "resolve_run"]

_DEFAULT_ROOT = "/gpfs/exfel/exp"
_EUXFEL_FILE = re.compile(r"^[A-Z]+-R\d{4}-\w+?(-S\d{5})?\.h5$")
_PROP_RUN = re.compile(r"^p?(\d+):r?(\d+)$", re.IGNORECASE)


def resolve_run(arg: str | os.PathLike[str], data: str = "auto") -> Path:
    """Turn a ``RUN`` argument into a run folder.

    Parameters
    ----------
    arg : str or path
        A folder, or ``PROPOSAL:RUN`` such as ``900001:1`` or ``p900001:r0001``.
    data : {"auto", "raw", "proc"}
        For ``PROPOSAL:RUN``: ``auto`` prefers ``raw`` (darks) and falls back to ``proc``.

    Examples
    --------
    >>> resolve_run("/nonexistent/r0001")
    Traceback (most recent call last):
    ...
    badpix.exceptions.RunError: /nonexistent/r0001 is neither a run folder nor PROPOSAL:RUN
    """
    if data not in ("auto", "raw", "proc"):
        raise ValueError(f"data must be auto, raw or proc, got {data!r}")
    path = Path(arg)
    if path.is_dir():
        return path
    m = _PROP_RUN.match(str(arg))
    if m is None:
        raise RunError(f"{arg} is neither a run folder nor PROPOSAL:RUN")
    proposal, run = int(m.group(1)), int(m.group(2))
    root = Path(os.environ.get("EXTRA_DATA_DATA_ROOT", _DEFAULT_ROOT))
    found = sorted(root.glob(f"*/*/p{proposal:06d}"))
    if not found:
        raise RunError(f"proposal {proposal} not found under {root} "
                       "(set EXTRA_DATA_DATA_ROOT to search elsewhere)")
    prop_dir = found[0]
    kinds = ("raw", "proc") if data == "auto" else (data,)
    for kind in kinds:
        candidate = prop_dir / kind / f"r{run:04d}"
        if candidate.is_dir():
            return candidate
    raise RunError(f"run {run} of proposal {proposal} has no {' or '.join(kinds)} folder "
                   f"in {prop_dir}")


def open_dark_set(
    runs: Sequence[str | os.PathLike[str]],
    *,
    detector: str | None = None,
    spec: DetectorSpec | None = None,
    gain_stages: Sequence[str] | None = None,
    data: str = "auto",
    modules: Sequence[int] | None = None,
    cells: Sequence[int] | None = None,
    max_trains: int | None = None,
) -> DarkSet:
    """Open and validate the dark runs of one detector.

    Parameters
    ----------
    runs : sequence of str or path
        One ``RUN`` per gain stage (folders or ``PROPOSAL:RUN``), by default in the order
        high, medium, low; the gain-mode metadata (AGIPD fixed gain) takes precedence.
    detector : str, optional
        Karabo id (``SPB_DET_AGIPD1M-1``) or detector type (``AGIPD1M``); needed when a run
        holds several detectors.
    spec : DetectorSpec, optional
        Detector description to use (e.g. with threshold overrides); default: the built-in one
        for the detector found.
    gain_stages : sequence of str, optional
        Gain stage of each run, overriding metadata and order; may name fewer stages than the
        detector has (process only those).
    data : {"auto", "raw", "proc"}
        ``PROPOSAL:RUN`` resolution, see :func:`resolve_run`.
    modules : sequence of int, optional
        Modules to process (default all).
    cells : sequence of int, optional
        Memory-cell IDs to process (default all in the runs).
    max_trains : int, optional
        Use at most the first ``max_trains`` trains of each run.

    Returns
    -------
    DarkSet
    """
    if not runs:
        raise RunError("no dark runs given")
    if max_trains is not None and max_trains < 1:
        raise RunError(f"--max-trains must be positive, got {max_trains}")
    paths = [resolve_run(r, data) for r in runs]
    opened = [_open_run(p, detector, spec) for p in paths]
    spec0, det_id0 = opened[0][1], opened[0][2]
    for path, (_, sp, det_id, kind, _), in zip(paths, opened, strict=True):
        if det_id != det_id0 or sp.name != spec0.name:
            raise RunError(f"runs are from different detectors: {paths[0]} has {det_id0}, "
                           f"{path} has {det_id}")
        if kind != opened[0][3]:
            raise RunError(f"runs mix raw and proc data: {paths[0]} is {opened[0][3]}, "
                           f"{path} is {kind}")
    stages, stage_from = _gain_stages(paths, [o[4] for o in opened], spec0, gain_stages)
    all_sources = [_module_sources(o[0], o[1], o[2], o[3]) for o in opened]
    # JUNGFRAU: the module count of this detector (its karabo id names the size)
    spec0 = spec0.sized_for(det_id0, {m for src in all_sources for m in src})
    selected = _check_modules(modules, spec0)

    dark_runs = []
    for path, (run_data, _, det_id, kind, mode), stage, sources in zip(
            paths, opened, stages, all_sources, strict=True):
        sp = spec0
        mod_sel = selected if selected is not None else sorted(sources)
        index = {m: _index(run_data, sources[m], sp, kind, path)
                 for m in mod_sel if m in sources}
        tids = np.unique(np.concatenate([ix.train_ids for ix in index.values()]
                                        or [np.zeros(0, np.uint64)]))
        if max_trains is not None:
            tids = tids[:max_trains]
        if tids.size == 0:
            raise NoDarkDataError(f"no trains with detector data left in {path} "
                                  f"(modules {_fmt_ints(mod_sel)})")
        cell_ids = np.unique(np.concatenate([ix.cell_ids for ix in index.values()]))
        gain_mode = None if mode is None else ("adaptive" if mode[1] is None else "fixed")
        dark_runs.append(DarkRun(
            path=path, gain_stage=stage, gain_stage_from=stage_from, gain_mode=gain_mode,
            kind=kind, spec=sp, detector_id=det_id, sources=sources, module_index=index,
            train_ids=tids, cell_ids=cell_ids.astype(np.uint16)))

    order = {s: i for i, s in enumerate(spec0.gain_stages)}
    dark_runs.sort(key=lambda r: order[r.gain_stage])
    _check_same_cells(dark_runs)
    # default: the whole detector, so that absent modules are reported as missing
    all_modules = selected if selected is not None else list(
        range(spec0.first_module, spec0.first_module + spec0.n_modules))
    present = [m for m in all_modules if all(m in r.modules for r in dark_runs)]
    if not present:
        raise NoDarkDataError(f"none of the modules {_fmt_ints(all_modules)} has data in "
                              "every run")
    cell_ids = _select_cells(dark_runs[0].cell_ids, cells)
    return DarkSet(spec=spec0, detector_id=det_id0, runs=dark_runs, modules=present,
                   missing_modules=[m for m in all_modules if m not in present],
                   cell_ids=cell_ids, max_trains=max_trains, selected_modules=all_modules)


# ------------------------------------------------------------------------------------------


def _open_run(path: Path, detector: str | None, spec: DetectorSpec | None
              ) -> tuple[DataCollection, DetectorSpec, str, str, tuple[int, str | None] | None]:
    from extra_data import RunDirectory

    files = sorted(p for p in path.iterdir() if _EUXFEL_FILE.match(p.name))
    if not files:
        raise RunError(f"{path} is not a run: no EuXFEL HDF5 files (RAW-/CORR-R*-*.h5) in it")
    for fn in files:  # extra-data skips unreadable files with a warning; we refuse them
        try:
            with h5py.File(fn, "r") as f:
                f["INDEX/trainId"][:1]
        except (OSError, KeyError) as err:
            raise DataReadError(f"cannot read {fn} (truncated or corrupt?): {err}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the run-map cache folder is not writable
            run_data = RunDirectory(str(path))
    except (OSError, ValueError) as err:
        raise DataReadError(f"cannot open run {path}: {err}") from None
    det_id, sp, kind = _find_detector(run_data, path, detector, spec)
    return run_data, sp, det_id, kind, _gain_mode(run_data, sp)


def _find_detector(run_data: DataCollection, path: Path, detector: str | None,
                   spec: DetectorSpec | None) -> tuple[str, DetectorSpec, str]:
    specs = [spec] if spec is not None else [load_detector(n) for n in available_detectors()]
    found: dict[str, DetectorSpec] = {}
    for src in sorted(run_data.instrument_sources):
        for sp in specs:
            for pattern in (sp.raw_source_pattern, sp.proc_source_pattern):
                m = re.match(pattern, src)
                if m and sp.matches_karabo_id(m["karabo_id"]):
                    found.setdefault(m["karabo_id"], sp)
    if detector is not None:
        found = {k: s for k, s in found.items()
                 if detector in (k, s.name) or detector.upper() == s.name}
    if not found:
        what = f"detector {detector!r}" if detector else "detector"
        names = ", ".join(s.name for s in specs)
        raise RunError(f"no {what} data in {path} (looked for {names})")
    if len(found) > 1:
        listed = ", ".join(f"{k} ({s.name})" for k, s in sorted(found.items()))
        raise RunError(f"several detectors in {path}: {listed}; choose one with --detector")
    det_id, sp = found.popitem()
    return det_id, sp, _data_kind(run_data, sp, det_id)


def _data_kind(run_data: DataCollection, spec: DetectorSpec, det_id: str) -> str:
    if _match_sources(run_data, spec.proc_source_pattern, det_id):
        return "proc"
    sources = _match_sources(run_data, spec.raw_source_pattern, det_id)
    kd = run_data[next(iter(sources.values())), spec.raw_data_key]
    # old proc data used the raw source names: tell them apart by dtype (and AGIPD's 2nd dim)
    raw = np.issubdtype(kd.dtype, np.integer)
    if spec.gain_encoding == "digital_channel":
        raw = raw and len(kd.entry_shape) == 3
    return "raw" if raw else "proc"


def _match_sources(run_data: DataCollection, pattern: str, det_id: str) -> dict[int, str]:
    out = {}
    for src in run_data.instrument_sources:
        m = re.match(pattern, src)
        if m and m["karabo_id"] == det_id:
            out[int(m["module"])] = src
    return out


def _module_sources(run_data: DataCollection, spec: DetectorSpec, det_id: str,
                    kind: str) -> dict[int, str]:
    pattern = spec.proc_source_pattern if kind == "proc" else spec.raw_source_pattern
    sources = _match_sources(run_data, pattern, det_id)
    if not sources:  # proc data under the raw (legacy) names
        sources = _match_sources(run_data, spec.raw_source_pattern, det_id)
    return dict(sorted(sources.items()))


def _gain_mode(run_data: DataCollection, spec: DetectorSpec) -> tuple[int, str | None] | None:
    """``(mode value, fixed stage or None)`` from the control device, or None if not recorded."""
    if not spec.gain_mode_source_pattern or not spec.gain_mode_key:
        return None
    for src in sorted(run_data.control_sources):
        if not re.match(spec.gain_mode_source_pattern, src):
            continue
        try:
            value = int(run_data.get_run_value(src, spec.gain_mode_key))
        except Exception:  # key absent or unreadable: metadata just not there
            continue
        return value, spec.gain_mode_fixed.get(value)
    return None


def _gain_stages(paths: list[Path], modes: list[tuple[int, str | None] | None],
                 spec: DetectorSpec, given: Sequence[str] | None) -> tuple[list[str], str]:
    n_runs, n_stages = len(paths), spec.n_gain_stages
    if given is not None:
        given = list(given)
        unknown = [g for g in given if g not in spec.gain_stages]
        if unknown:
            raise RunError(f"unknown gain stage {unknown[0]!r} for {spec.name} "
                           f"(stages: {', '.join(spec.gain_stages)})")
        if len(given) != n_runs:
            raise RunError(f"{len(given)} gain stages given for {n_runs} runs")
        stages, source = given, "option"
    elif all(m is not None and m[1] is not None for m in modes):
        stages, source = [m[1] for m in modes], "metadata"
    else:
        if n_runs != n_stages:
            raise RunError(
                f"{spec.name} needs {n_stages} dark run{'s' if n_stages > 1 else ''} (one per "
                f"gain stage: {', '.join(spec.gain_stages)}), got {n_runs}")
        stages, source = list(spec.gain_stages), "order"
    if source != "option" and n_runs != n_stages:
        raise RunError(f"{spec.name} needs {n_stages} dark runs (one per gain stage: "
                       f"{', '.join(spec.gain_stages)}), got {n_runs}")
    for i, stage in enumerate(stages):
        if stage in stages[:i]:
            j = stages.index(stage)
            raise RunError(f"{paths[j]} and {paths[i]} are both {stage} gain ({source})")
    return stages, source


def _check_modules(modules: Sequence[int] | None, spec: DetectorSpec) -> list[int] | None:
    if modules is None:
        return None
    lo, hi = spec.first_module, spec.first_module + spec.n_modules
    out = sorted(set(int(m) for m in modules))
    bad = [m for m in out if not lo <= m < hi]
    if bad or not out:
        raise RunError(f"modules must be in {lo}..{hi - 1} for {spec.name}, got "
                       f"{_fmt_ints(bad or out)}")
    return out


def _index(run_data: DataCollection, source: str, spec: DetectorSpec, kind: str,
           path: Path) -> ModuleIndex:
    try:
        return build_module_index(run_data, source, spec, kind)
    except (KeyError, ValueError) as err:
        raise RunError(f"{path}: {source} has no usable {spec.raw_data_key}: {err}") from None


def _check_same_cells(runs: list[DarkRun]) -> None:
    first = runs[0]
    for run in runs[1:]:
        if not np.array_equal(run.cell_ids, first.cell_ids):
            raise RunError(
                f"runs have different memory cells: {first.path} has {first.cell_ids.size} "
                f"({_fmt_ints(first.cell_ids)}), {run.path} has {run.cell_ids.size} "
                f"({_fmt_ints(run.cell_ids)})")


def _select_cells(available: np.ndarray, cells: Sequence[int] | None) -> np.ndarray:
    if cells is None:
        return available.copy()
    wanted = np.unique(np.asarray(list(cells), dtype=np.int64))
    missing = wanted[~np.isin(wanted, available)]
    if wanted.size == 0:
        raise RunError("no memory cells selected")
    if missing.size:
        raise RunError(f"memory cells {_fmt_ints(missing)} are not in the runs "
                       f"(cells {_fmt_ints(available)})")
    return wanted.astype(np.uint16)


def _fmt_ints(values: Sequence[int] | np.ndarray) -> str:
    """Compact text for integer lists: ``0-7, 9``."""
    vals = sorted(int(v) for v in values)
    if not vals:
        return "none"
    parts, start, prev = [], vals[0], vals[0]
    for v in [*vals[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)
