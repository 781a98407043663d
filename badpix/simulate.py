"""Synthetic dark-run sets in the EuXFEL layout, with a ground-truth file.

The pixel model and the planted bad pixels are in :mod:`badpix.simulate_pixels`; this module
writes them: one run per gain stage with extra-data's mock writer, the pixel data injected with
h5py, and ``truth.h5``, atomically as a folder.

Public objects
--------------
simulate_dark_set(outdir, ...) -> SimulatedSet
    Write one dark run per gain stage and ``truth.h5``.
SimulatedSet
    Where the runs and the truth file are, and what was simulated.
Truth, load_truth(path) -> Truth
    The ground truth: per-pixel class code (module, ss, fs), class names, expected BadPixel bits.

Layout of ``OUTDIR``::

    OUTDIR/raw/r0001 (high gain), r0002 (medium), r0003 (low)    # --kind raw
    OUTDIR/proc/r0001 ...                                       # --kind proc
    OUTDIR/truth.h5
    # with proposal=900001: OUTDIR/SPB/202601/p900001/raw/r0001 ... so that
    # EXTRA_DATA_DATA_ROOT=OUTDIR and open_run(900001, 1) find the runs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix.detectors import DetectorSpec, load_detector
from badpix.exceptions import ConfigError, OutputError, OutputExistsError
from badpix.simulate_pixels import (
    CLASSES,
    DEFAULT_COUNTS,
    EXPECTED_BITS,
    MODEL_PARAMETERS,
    ModuleModel,
    SimPlan,
    module_frames,
    module_model,
)

_KARABO_IDS = {"AGIPD1M": "SPB_DET_AGIPD1M-1", "AGIPD500K": "HED_DET_AGIPD500K2G"}
_CONTROL_IDS = {"AGIPD1M": "SPB_IRU_AGIPD1M1", "AGIPD500K": "HED_EXP_AGIPD500K2G"}
_CONTROL_AGG = {"AGIPD1M": "AGIPD1MCTRL00", "AGIPD500K": "AGIPD500K2G00"}
_FIXED_MODE = {0: 1, 1: 2, 2: 3}  # stage index -> gainModeIndex for fixed-gain darks


@dataclass(frozen=True)
class SimulatedSet:
    """A simulated dark set on disk.

    Attributes
    ----------
    root : Path
        ``OUTDIR``.
    run_dirs : tuple of Path
        One run folder per gain stage, in the order of ``gain_stages``.
    gain_stages : tuple of str
    truth_path : Path
        ``OUTDIR/truth.h5`` (see :func:`load_truth`).
    detector_id : str
        Karabo id of the detector, e.g. ``SPB_DET_AGIPD1M-1``.
    plan : SimPlan
        The parameters.
    """

    root: Path
    run_dirs: tuple[Path, ...]
    gain_stages: tuple[str, ...]
    truth_path: Path
    detector_id: str
    plan: SimPlan

    @property
    def data_root(self) -> Path:
        """The folder to use as ``EXTRA_DATA_DATA_ROOT`` (only with a proposal layout)."""
        return self.root


@dataclass(frozen=True)
class Truth:
    """Ground truth of a simulated set (see ``truth.h5``)."""

    class_code: np.ndarray  # (M, ss, fs) uint8
    class_names: tuple[str, ...]
    expected_bits: np.ndarray  # (M, ss, fs) uint32
    params: dict
    missing_trains: dict[int, list[int]]

    def pixels_of(self, name: str) -> np.ndarray:
        """Boolean (M, ss, fs) map of the pixels of class ``name``."""
        return self.class_code == self.class_names.index(name)


def load_truth(path: str | Path) -> Truth:
    """Read ``truth.h5`` written by :func:`simulate_dark_set`."""
    with h5py.File(path, "r") as f:
        names = tuple(json.loads(f["class_code"].attrs["class_names"]))
        return Truth(
            class_code=f["class_code"][()],
            class_names=names,
            expected_bits=f["expected_bits"][()],
            params=json.loads(f.attrs["params"]),
            missing_trains={int(k): v for k, v in json.loads(f.attrs["missing_trains"]).items()},
        )


def simulate_dark_set(
    outdir: str | Path,
    *,
    detector: str = "AGIPD1M",
    modules: int = 4,
    cells: int = 8,
    trains: int = 32,
    kind: str = "raw",
    seed: int = 0,
    gain_mode: str = "adaptive",
    proposal: int | None = None,
    missing_module: int | None = -1,
    n_missing_trains: int = 3,
    counts: Mapping[str, int] | None = None,
    force: bool = False,
    progress: bool = False,
) -> SimulatedSet:
    """Write a synthetic dark-run set (one run per gain stage) and its ground truth.

    Parameters
    ----------
    outdir : str or Path
        Folder to create; written beside it under a temporary name and renamed at the end.
    detector : {"AGIPD1M", "AGIPD500K"}
        Detector type. The default is ``"AGIPD1M"``.
    modules : int
        Modules ``0 .. modules-1`` are simulated (the others of the detector are absent).
    cells, trains : int
        Memory cells per train and trains per run.
    kind : {"raw", "proc"}
        Raw (uint16, analog + digital) or corrected (float32, around 0, with NaN) data.
    seed : int
        Seed of every random choice; the same arguments give the same files.
    gain_mode : {"adaptive", "fixed"}
        Written to the control device's ``gainModeIndex`` (0, or 1/2/3 per run).
    proposal : int, optional
        Use the ``<root>/SPB/202601/p<proposal>/raw/r0001`` layout for ``open_run``.
    missing_module : int or None
        Module whose files are absent; ``-1`` (default) = the last simulated module when at
        least 2 are simulated; ``None`` = none.
    n_missing_trains : int
        Trains absent for one module (the second present module, else the first).
    counts : mapping, optional
        Pixels per class and module, replacing entries of :data:`DEFAULT_COUNTS`.
    force : bool
        Replace an existing ``outdir``.
    progress : bool
        Show a progress bar (stderr) per module and run.

    Returns
    -------
    SimulatedSet
    """
    spec = load_detector(detector)
    plan = _make_plan(spec, modules, cells, trains, kind, seed, gain_mode, proposal,
                      missing_module, n_missing_trains, counts)
    outdir = Path(outdir)
    if outdir.exists() and not force:
        raise OutputExistsError(outdir)
    parent = outdir.parent if str(outdir.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".part", dir=parent))
    try:
        run_rel = _write_set(tmp, spec, plan, progress)
        if outdir.exists():
            shutil.rmtree(outdir)
        os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SimulatedSet(
        root=outdir,
        run_dirs=tuple(outdir / r for r in run_rel),
        gain_stages=spec.gain_stages,
        truth_path=outdir / "truth.h5",
        detector_id=_KARABO_IDS[spec.name],
        plan=plan,
    )


def _make_plan(spec: DetectorSpec, modules: int, cells: int, trains: int, kind: str, seed: int,
               gain_mode: str, proposal: int | None, missing_module: int | None,
               n_missing_trains: int, counts: Mapping[str, int] | None) -> SimPlan:
    if spec.name not in _KARABO_IDS:
        raise ConfigError(f"simulate supports {', '.join(_KARABO_IDS)}, not {spec.name}")
    if not 1 <= modules <= spec.n_modules:
        raise ConfigError(f"--modules must be in 1..{spec.n_modules}, got {modules}")
    if not 1 <= cells <= spec.max_cells:
        raise ConfigError(f"--cells must be in 1..{spec.max_cells}, got {cells}")
    if trains < 4:
        raise ConfigError(f"--trains must be at least 4, got {trains}")
    if kind not in ("raw", "proc"):
        raise ConfigError(f"--kind must be raw or proc, got {kind!r}")
    if gain_mode not in ("adaptive", "fixed"):
        raise ConfigError(f"gain_mode must be adaptive or fixed, got {gain_mode!r}")
    if missing_module == -1:
        missing_module = modules - 1 if modules >= 2 else None
    if missing_module is not None and not 0 <= missing_module < modules:
        raise ConfigError(f"missing_module must be in 0..{modules - 1}, got {missing_module}")
    present = [m for m in range(modules) if m != missing_module]
    if not 0 <= n_missing_trains <= trains - 3:
        raise ConfigError(f"n_missing_trains must be in 0..{trains - 3}")
    merged = dict(DEFAULT_COUNTS)
    for name, n in (counts or {}).items():
        if name not in DEFAULT_COUNTS:
            raise ConfigError(f"unknown pixel class {name!r}; known: {', '.join(DEFAULT_COUNTS)}")
        merged[name] = int(n)
    return SimPlan(
        detector=spec.name, modules=modules, cells=cells, trains=trains, kind=kind, seed=seed,
        gain_mode=gain_mode, proposal=proposal, missing_module=missing_module,
        missing_trains_module=present[1] if len(present) > 1 else present[0],
        n_missing_trains=n_missing_trains, dead_asic_module=present[0], counts=merged,
    )


# ------------------------------------------------------------------------------------------
# files


def _write_set(root: Path, spec: DetectorSpec, plan: SimPlan, progress: bool) -> list[Path]:
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.agipd import AGIPDMDL
    from extra_data.tests.mockdata.detectors import AGIPDModule

    karabo_id = _KARABO_IDS[spec.name]
    raw = plan.kind == "raw"
    prefix = "RAW" if raw else "CORR"
    base = Path(f"SPB/202601/p{plan.proposal:06d}") if plan.proposal is not None else Path()
    run_rel = [base / plan.kind / f"r{i + 1:04d}" for i in range(spec.n_gain_stages)]
    missing_tids = plan.missing_train_ids()
    kept_mask = ~np.isin(plan.train_ids, missing_tids)

    for stage, rel in enumerate(run_rel):
        run_dir = root / rel
        run_dir.mkdir(parents=True)
        for m in plan.present_modules:
            n_tr = plan.trains - (missing_tids.size if m == plan.missing_trains_module else 0)
            if raw:
                dev = AGIPDModule(f"{karabo_id}/DET/{m}CH0", frames_per_train=plan.cells)
            else:
                dev = AGIPDModule(f"{karabo_id}/CORR/{m}CH0", frames_per_train=plan.cells,
                                  raw=False, channel_name="output",
                                  legacy_name=f"{karabo_id}/DET/{m}CH0")
            write_file(str(run_dir / f"{prefix}-R{stage + 1:04d}-AGIPD{m:02d}-S00000.h5"),
                       [dev], ntrains=n_tr, firsttrain=plan.first_train, chunksize=32,
                       format_version="1.0")
        if raw:
            ctrl = f"{_CONTROL_IDS[spec.name]}/MDL/FPGA_COMP"
            path = run_dir / f"RAW-R{stage + 1:04d}-{_CONTROL_AGG[spec.name]}-S00000.h5"
            write_file(str(path), [AGIPDMDL(ctrl)], ntrains=plan.trains,
                       firsttrain=plan.first_train, chunksize=1, format_version="1.0")
            mode = _FIXED_MODE[stage] if plan.gain_mode == "fixed" else 0
            with h5py.File(path, "r+") as f:
                for grp in ("CONTROL", "RUN"):
                    f[f"{grp}/{ctrl}/gainModeIndex/value"][...] = mode

    work = [(m, s) for m in plan.present_modules for s in range(spec.n_gain_stages)]
    bar = _progress(len(work), progress)
    models: dict[int, ModuleModel] = {}
    for m, stage in work:
        model = models.get(m) or module_model(plan, spec, m)
        models = {m: model}  # keep one module's model in memory
        path = root / run_rel[stage] / f"{prefix}-R{stage + 1:04d}-AGIPD{m:02d}-S00000.h5"
        src = f"{karabo_id}/DET/{m}CH0:xtdf" if raw else f"{karabo_id}/CORR/{m}CH0:output"
        keep = kept_mask if m == plan.missing_trains_module else np.ones(plan.trains, bool)
        _inject_module(path, src, plan, spec, model, m, stage, keep)
        bar.set_postfix_str(f"module {m} {spec.gain_stages[stage]}")
        bar.update()
    bar.close()
    _write_truth(root / "truth.h5", spec, plan, models_classes=_all_classes(plan, spec),
                 run_rel=run_rel, missing_tids=missing_tids)
    return run_rel


def _progress(total: int, enabled: bool) -> Any:  # tqdm's type is not public
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="module-run", desc="simulate",
                leave=False)


def _inject_module(path: Path, src: str, plan: SimPlan, spec: DetectorSpec,
                   model: ModuleModel, module: int, stage: int, keep: np.ndarray) -> None:
    kept_tids = plan.train_ids[keep]
    with h5py.File(path, "r+") as f:
        if not keep.all():  # as if the module missed these trains (INDEX and per-frame IDs)
            n = kept_tids.size
            f["INDEX/trainId"][:n] = kept_tids
            for part in ("detector", "header", "trailer"):
                f[f"INSTRUMENT/{src}/{part}/trainId"][:n] = kept_tids
            tid = f[f"INSTRUMENT/{src}/image/trainId"]
            per_frame = np.repeat(kept_tids, plan.cells)
            tid[...] = per_frame.reshape(tid.shape)
        data = f[f"INSTRUMENT/{src}/image/data"]
        out_row = np.cumsum(keep) - 1  # output train row of each kept train
        n_chunks = -(-plan.trains // plan.trains_per_chunk)
        for chunk in range(n_chunks):
            t0 = chunk * plan.trains_per_chunk
            t1 = min(plan.trains, t0 + plan.trains_per_chunk)
            analog, digital = module_frames(plan, spec, model, module, stage, chunk)
            sel = keep[t0:t1]
            if not sel.any():
                continue
            analog = analog[sel]
            frames0 = int(out_row[t0:t1][sel][0]) * plan.cells
            n_frames = analog.shape[0] * plan.cells
            rows = slice(frames0, frames0 + n_frames)
            if plan.kind == "proc":
                data[rows] = analog.reshape(n_frames, *spec.module_shape)
            else:
                buf = np.empty((n_frames, 2, *spec.module_shape), np.uint16)
                buf[:, 0] = analog.reshape(n_frames, *spec.module_shape)
                buf[:, 1] = digital[sel].reshape(n_frames, *spec.module_shape)
                data[rows] = buf


def _all_classes(plan: SimPlan, spec: DetectorSpec) -> np.ndarray:
    out = np.full((spec.n_modules, *spec.module_shape), CLASSES.index("missing_module"), np.uint8)
    for m in plan.present_modules:
        out[m] = module_model(plan, spec, m).classes.reshape(spec.module_shape)
    return out


def _write_truth(path: Path, spec: DetectorSpec, plan: SimPlan, *, models_classes: np.ndarray,
                 run_rel: list[Path], missing_tids: np.ndarray) -> None:
    bits_per_class = np.array([EXPECTED_BITS[c] for c in CLASSES], np.uint32)
    missing = ({} if plan.missing_trains_module is None
               else {str(plan.missing_trains_module): [int(t) for t in missing_tids]})
    params = asdict(plan)
    params["counts"] = dict(plan.counts)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "badpix-sim-truth"
        f.attrs["detector"] = spec.name
        f.attrs["detector_id"] = _KARABO_IDS[spec.name]
        f.attrs["params"] = json.dumps(params)
        f.attrs["gain_stages"] = json.dumps(list(spec.gain_stages))
        f.attrs["runs"] = json.dumps([str(r) for r in run_rel])
        f.attrs["missing_trains"] = json.dumps(missing)
        f.attrs["model"] = json.dumps(dict(MODEL_PARAMETERS))
        code = f.create_dataset("class_code", data=models_classes, compression="gzip")
        code.attrs["class_names"] = json.dumps(list(CLASSES))
        code.attrs["dims"] = json.dumps(["module", "ss", "fs"])
        f.create_dataset("class_bits", data=bits_per_class).attrs["class_names"] = json.dumps(
            list(CLASSES))
        exp = f.create_dataset("expected_bits", data=bits_per_class[models_classes],
                               compression="gzip")
        exp.attrs["dims"] = json.dumps(["module", "ss", "fs"])
