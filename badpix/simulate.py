"""Synthetic dark-run sets in the EuXFEL layout, with a ground-truth file.

The pixel model and the planted bad pixels are in :mod:`badpix.simulate_pixels`; this module
writes them: one run per gain stage with extra-data's mock writer, the pixel data injected with
h5py (per detector: :mod:`badpix.simulate_writers`), and ``truth.h5``, atomically as a folder.

Public objects
--------------
simulate_dark_set(outdir, ...) -> SimulatedSet
    Write one dark run per gain stage and ``truth.h5``.
SimulatedSet
    Where the runs and the truth file are, and what was simulated.
Truth, load_truth(path) -> Truth
    The ground truth: per-pixel class code (module, ss, fs), class names, expected BadPixel bits.

Layout of ``OUTDIR``::

    OUTDIR/raw/r0001 (high gain), r0002 (medium), r0003 (low)    # --kind raw (DSSC: r0001)
    OUTDIR/proc/r0001 ...                                       # --kind proc
    OUTDIR/truth.h5
    # with proposal=900001: OUTDIR/SPB/202601/p900001/raw/r0001 (FXE for LPD, ...) so that
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
    ModuleModel,
    SimPlan,
    model_parameters,
    module_frames,  # noqa: F401  (re-exported: tests regenerate the injected frames)
    module_model,
)
from badpix.simulate_writers import (
    LAYOUTS,
    inject_module,
    layout_for,
    write_control_file,
    write_module_file,
)

#: Detector types ``simulate_dark_set`` writes.
SIMULATED_DETECTORS: tuple[str, ...] = tuple(LAYOUTS)


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
    detector : {"AGIPD1M", "AGIPD500K", "LPD1M", "DSSC1M", "JUNGFRAU"}
        Detector type (see :mod:`badpix.simulate_writers` for each raw encoding). The default
        is ``"AGIPD1M"``. JUNGFRAU modules are numbered from 1 in source names (module axis
        ``m`` is ``JNGFR<m+1>``); its karabo id names the size (1 module ``JF500K``, 2
        ``JF1M``, more ``JF4M``).
    modules : int
        Modules ``0 .. modules-1`` are simulated (the others of the detector are absent).
    cells, trains : int
        Memory cells per train and trains per run.
    kind : {"raw", "proc"}
        Raw (uint16 in the detector's encoding) or corrected (float32, around 0, with NaN)
        data; proc for AGIPD only.
    seed : int
        Seed of every random choice; the same arguments give the same files.
    gain_mode : {"adaptive", "fixed"}
        Written to the control device's ``gainModeIndex`` (0, or 1/2/3 per run); AGIPD only,
        the other detectors' gain stages come from the run order.
    proposal : int, optional
        Use the ``<root>/<INSTRUMENT>/202601/p<proposal>/raw/r0001`` layout for ``open_run``
        (instrument from the karabo id: ``SPB`` for AGIPD1M, ``FXE`` for LPD, ...).
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
    # JUNGFRAU: as many modules as the karabo id written says (make-mask reads it the same way)
    spec = spec.sized_for(layout_for(spec.name, plan.modules).karabo_id,
                          range(spec.first_module, spec.first_module + plan.modules))
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
        detector_id=layout_for(spec.name, plan.modules).karabo_id,
        plan=plan,
    )


def _make_plan(spec: DetectorSpec, modules: int, cells: int, trains: int, kind: str, seed: int,
               gain_mode: str, proposal: int | None, missing_module: int | None,
               n_missing_trains: int, counts: Mapping[str, int] | None) -> SimPlan:
    if spec.name not in SIMULATED_DETECTORS:
        raise ConfigError(f"simulate supports {', '.join(SIMULATED_DETECTORS)}, "
                          f"not {spec.name}")
    if not 1 <= modules <= spec.n_modules:
        raise ConfigError(f"--modules must be in 1..{spec.n_modules}, got {modules}")
    if not 1 <= cells <= spec.max_cells:
        raise ConfigError(f"--cells must be in 1..{spec.max_cells}, got {cells}")
    if trains < 4:
        raise ConfigError(f"--trains must be at least 4, got {trains}")
    if kind not in ("raw", "proc"):
        raise ConfigError(f"--kind must be raw or proc, got {kind!r}")
    if kind == "proc" and not spec.name.startswith("AGIPD"):
        raise ConfigError(f"--kind proc is simulated for AGIPD only, not {spec.name}")
    if gain_mode == "fixed" and spec.gain_mode_key is None:
        raise ConfigError(f"{spec.name} records no gain mode: use gain_mode adaptive (the gain "
                          "stage of each run comes from the run order)")
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
        frame_pixels=spec.module_shape[0] * spec.module_shape[1],
    )


# ------------------------------------------------------------------------------------------
# files


def _write_set(root: Path, spec: DetectorSpec, plan: SimPlan, progress: bool) -> list[Path]:
    layout = layout_for(spec.name, plan.modules)
    raw = plan.kind == "raw"
    base = (Path(f"{layout.instrument}/202601/p{plan.proposal:06d}")
            if plan.proposal is not None else Path())
    run_rel = [base / plan.kind / f"r{i + 1:04d}" for i in range(spec.n_gain_stages)]
    missing_tids = plan.missing_train_ids()
    kept_mask = ~np.isin(plan.train_ids, missing_tids)

    for stage, rel in enumerate(run_rel):
        run_dir = root / rel
        run_dir.mkdir(parents=True)
        for m in plan.present_modules:
            n_tr = plan.trains - (missing_tids.size if m == plan.missing_trains_module else 0)
            path = run_dir / layout.file_name(spec, m, stage, raw)
            write_module_file(path, layout, spec, plan, m, n_tr)
        write_control_file(run_dir, layout, plan, stage)

    work = [(m, s) for m in plan.present_modules for s in range(spec.n_gain_stages)]
    bar = _progress(len(work), progress)
    models: dict[int, ModuleModel] = {}
    for m, stage in work:
        model = models.get(m) or module_model(plan, spec, m)
        models = {m: model}  # keep one module's model in memory
        path = root / run_rel[stage] / layout.file_name(spec, m, stage, raw)
        keep = kept_mask if m == plan.missing_trains_module else np.ones(plan.trains, bool)
        inject_module(path, layout, spec, plan, model, m, stage, keep)
        bar.set_postfix_str(f"module {m + spec.first_module} {spec.gain_stages[stage]}")
        bar.update()
    bar.close()
    _write_truth(root / "truth.h5", spec, plan, models_classes=_all_classes(plan, spec),
                 run_rel=run_rel, missing_tids=missing_tids,
                 detector_id=layout.karabo_id)
    return run_rel


def _progress(total: int, enabled: bool) -> Any:  # tqdm's type is not public
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="module-run", desc="simulate",
                leave=False)


def _all_classes(plan: SimPlan, spec: DetectorSpec) -> np.ndarray:
    out = np.full((spec.n_modules, *spec.module_shape), CLASSES.index("missing_module"), np.uint8)
    for m in plan.present_modules:
        out[m] = module_model(plan, spec, m).classes.reshape(spec.module_shape)
    return out


def _write_truth(path: Path, spec: DetectorSpec, plan: SimPlan, *, models_classes: np.ndarray,
                 run_rel: list[Path], missing_tids: np.ndarray, detector_id: str) -> None:
    bits_per_class = np.array([EXPECTED_BITS[c] for c in CLASSES], np.uint32)
    missing = ({} if plan.missing_trains_module is None
               else {str(plan.missing_trains_module): [int(t) for t in missing_tids]})
    params = asdict(plan)
    params["counts"] = dict(plan.counts)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "badpix-sim-truth"
        f.attrs["detector"] = spec.name
        f.attrs["detector_id"] = detector_id
        f.attrs["params"] = json.dumps(params)
        f.attrs["gain_stages"] = json.dumps(list(spec.gain_stages))
        f.attrs["runs"] = json.dumps([str(r) for r in run_rel])
        f.attrs["missing_trains"] = json.dumps(missing)
        f.attrs["model"] = json.dumps(model_parameters(spec.name))
        code = f.create_dataset("class_code", data=models_classes, compression="gzip")
        code.attrs["class_names"] = json.dumps(list(CLASSES))
        code.attrs["dims"] = json.dumps(["module", "ss", "fs"])
        f.create_dataset("class_bits", data=bits_per_class).attrs["class_names"] = json.dumps(
            list(CLASSES))
        exp = f.create_dataset("expected_bits", data=bits_per_class[models_classes],
                               compression="gzip")
        exp.attrs["dims"] = json.dumps(["module", "ss", "fs"])
