"""Synthetic dark-run sets in the EuXFEL layout, with a ground-truth file.

Public objects
--------------
simulate_dark_set(outdir, ...) -> SimulatedSet
    Write one dark run per gain stage (extra-data's mock writer, pixel data injected with h5py)
    and ``truth.h5``, atomically as a folder.
SimulatedSet
    Where the runs and the truth file are, and what was simulated.
Truth, load_truth(path) -> Truth
    The ground truth: per-pixel class code (module, ss, fs), class names, expected BadPixel bits.
CLASSES, EXPECTED_BITS, DEFAULT_COUNTS
    Class names (index = code), their expected static-mask bits, and the number of pixels of
    each class planted per module.
module_frames(plan, module, stage, chunk) -> (analog, digital)
    The frames written for one train chunk, regenerated deterministically (tests compare with it).

Layout of ``OUTDIR``::

    OUTDIR/raw/r0001 (high gain), r0002 (medium), r0003 (low)    # --kind raw
    OUTDIR/proc/r0001 ...                                       # --kind proc
    OUTDIR/truth.h5
    # with proposal=900001: OUTDIR/SPB/202601/p900001/raw/r0001 ... so that
    # EXTRA_DATA_DATA_ROOT=OUTDIR and open_run(900001, 1) find the runs.

Pixel model (ADU), per module, gain stage, memory cell and pixel: stage level + module level +
ASIC level (ASICs differ by a few hundred ADU) + a smooth gradient across each ASIC + per-cell
drift + per-pixel spread, plus Gaussian noise of a per-pixel sigma. AGIPD raw has a digital
(gain) channel at a per-stage level that separates the stages. Proc data are the analog values
minus the (smooth) offset model: float32 around 0.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix.detectors import DetectorSpec, load_detector
from badpix.exceptions import ConfigError, OutputError, OutputExistsError

CLASSES: tuple[str, ...] = (
    "good", "hot", "cold", "noisy", "stuck", "telegraph", "gain_bit_error", "dead_asic",
    "always_nan", "good_spiky", "good_some_nan", "missing_module",
)
_CODE = {name: code for code, name in enumerate(CLASSES)}

_NON_GAUSSIAN = 1 << 23
_BAD_ASIC = 1 << 24
EXPECTED_BITS: Mapping[str, int] = {
    "good": 0,
    "hot": 0x1,  # OFFSET_OUT_OF_THRESHOLD
    "cold": 0x1,
    "noisy": 0x2,  # NOISE_OUT_OF_THRESHOLD
    "stuck": 0x4000,  # DATA_STD_IS_ZERO
    "telegraph": _NON_GAUSSIAN,
    "gain_bit_error": 0x2000,  # GAIN_THRESHOLDING_ERROR
    "dead_asic": 0x1 | _BAD_ASIC,
    "always_nan": 0x4,  # OFFSET_NOISE_EVAL_ERROR
    "good_spiky": 0,  # 1-2 cosmic-like frames: must not be flagged
    "good_some_nan": 0,  # a few NaN frames in proc: must not be flagged
    "missing_module": 0x8,  # NO_DARK_DATA
}

# Pixels planted per present module (of 65536 for AGIPD). Classes that do not apply to a data
# kind are skipped: gain_bit_error needs a digital channel (raw AGIPD), the NaN classes proc.
DEFAULT_COUNTS: Mapping[str, int] = {
    "hot": 60, "cold": 60, "noisy": 100, "stuck": 40, "telegraph": 60, "gain_bit_error": 50,
    "always_nan": 30, "good_spiky": 150, "good_some_nan": 80,
}

# Per-stage model (index = gain stage): analog level, pixel spread, noise; digital level.
_ANALOG_LEVEL = (5000.0, 7500.0, 8200.0)
_PIXEL_SPREAD = (40.0, 25.0, 20.0)
_NOISE = (20.0, 10.0, 7.0)
_DIGITAL_LEVEL = (4500.0, 5500.0, 6500.0)
_DIGITAL_SPREAD = 60.0
_DIGITAL_NOISE = 8.0
_DEAD_LEVEL = 60.0
_CHUNK_BYTES = 64 << 20  # float32 bytes generated at once per module and stage

_KARABO_IDS = {"AGIPD1M": "SPB_DET_AGIPD1M-1", "AGIPD500K": "HED_DET_AGIPD500K2G"}
_CONTROL_IDS = {"AGIPD1M": "SPB_IRU_AGIPD1M1", "AGIPD500K": "HED_EXP_AGIPD500K2G"}
_CONTROL_AGG = {"AGIPD1M": "AGIPD1MCTRL00", "AGIPD500K": "AGIPD500K2G00"}
_FIXED_MODE = {0: 1, 1: 2, 2: 3}  # stage index -> gainModeIndex for fixed-gain darks


@dataclass(frozen=True)
class SimPlan:
    """Everything that determines the simulated data (stored in ``truth.h5``)."""

    detector: str
    modules: int
    cells: int
    trains: int
    kind: str
    seed: int
    gain_mode: str
    proposal: int | None
    missing_module: int | None
    missing_trains_module: int | None
    n_missing_trains: int
    dead_asic_module: int | None
    first_train: int = 10000
    counts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTS))

    @property
    def present_modules(self) -> list[int]:
        return [m for m in range(self.modules) if m != self.missing_module]

    @property
    def train_ids(self) -> np.ndarray:
        return np.arange(self.first_train, self.first_train + self.trains, dtype=np.uint64)

    @property
    def trains_per_chunk(self) -> int:
        return max(1, _CHUNK_BYTES // (self.cells * 512 * 128 * 4))

    def missing_train_ids(self) -> np.ndarray:
        """Train IDs absent for ``missing_trains_module``: spread over the run, never the ends."""
        if self.missing_trains_module is None or self.n_missing_trains == 0:
            return np.zeros(0, np.uint64)
        rng = np.random.default_rng([self.seed, 7777])
        idx = rng.choice(np.arange(1, self.trains - 1), self.n_missing_trains, replace=False)
        return np.sort(self.train_ids[idx])


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
# pixel model


@dataclass
class _ModuleModel:
    """Per-pixel maps of one module (flattened pixels), shared by all gain stages."""

    classes: np.ndarray  # (P,) uint8 class codes
    offset: np.ndarray  # (G, C, P) float32 mean analog value
    smooth: np.ndarray  # (G, C, P) float32 the offset model a correction removes (proc)
    sigma: np.ndarray  # (G, P) float32 noise
    digital: np.ndarray  # (G, P) float32 digital level
    telegraph_frac: np.ndarray  # (P,) fraction of frames at the second level (telegraph)
    telegraph_amp: np.ndarray  # (G, P)
    spikes: np.ndarray  # (n, 3) int: train index, cell, pixel of cosmic-like spikes
    nan_frames: np.ndarray  # (n, 3) int: train index, cell, pixel of isolated NaN (proc)


def _classes_applicable(spec: DetectorSpec, kind: str) -> list[str]:
    names = ["hot", "cold", "noisy", "stuck", "telegraph", "good_spiky"]
    if kind == "raw" and spec.gain_encoding == "digital_channel" and spec.n_gain_stages > 1:
        names.append("gain_bit_error")
    if kind == "proc":
        names += ["always_nan", "good_some_nan"]
    return names


def module_model(plan: SimPlan, spec: DetectorSpec, module: int) -> _ModuleModel:
    """Build the deterministic pixel model of one module (see the module docstring)."""
    rng = np.random.default_rng([plan.seed, module, 1])
    ss, fs = spec.module_shape
    n_pix = ss * fs
    n_gain, n_cells = spec.n_gain_stages, plan.cells
    asic = spec.asic_map().ravel()
    loc_ss = (np.arange(ss) % spec.asic_shape[0]) / spec.asic_shape[0] - 0.5
    loc_fs = (np.arange(fs) % spec.asic_shape[1]) / spec.asic_shape[1] - 0.5
    loc_ss = np.repeat(loc_ss, fs)
    loc_fs = np.tile(loc_fs, ss)

    classes = np.zeros(n_pix, np.uint8)
    if module == plan.dead_asic_module:
        dead = int(rng.integers(spec.n_asics))
        classes[asic == dead] = _CODE["dead_asic"]
    free = np.flatnonzero(classes == 0)
    names = _classes_applicable(spec, plan.kind)
    wanted = [(n, plan.counts[n]) for n in names]
    chosen = rng.choice(free, sum(n for _, n in wanted), replace=False)
    start = 0
    for name, n in wanted:
        classes[chosen[start:start + n]] = _CODE[name]
        start += n

    offset = np.empty((n_gain, n_cells, n_pix), np.float32)
    smooth = np.empty_like(offset)
    sigma = np.empty((n_gain, n_pix), np.float32)
    digital = np.empty((n_gain, n_pix), np.float32)
    pix_z = rng.standard_normal(n_pix).astype(np.float32)
    noise_z = rng.standard_normal(n_pix).astype(np.float32)
    dig_z = rng.standard_normal(n_pix).astype(np.float32)
    cells = np.arange(n_cells)
    for g in range(n_gain):
        asic_level = rng.uniform(-300, 300, spec.n_asics)
        slopes = rng.uniform(-40, 40, (spec.n_asics, 2))
        module_level = rng.normal(0, 150)
        base = (_ANALOG_LEVEL[g] + module_level + asic_level[asic]
                + slopes[asic, 0] * loc_ss + slopes[asic, 1] * loc_fs)
        drift = 30 * np.sin(2 * np.pi * cells / 37 + rng.uniform(0, 2 * np.pi)) + 0.2 * cells
        smooth[g] = base[None, :] + drift[:, None]
        offset[g] = smooth[g] + _PIXEL_SPREAD[g] * pix_z[None, :]
        sigma[g] = _NOISE[g] * np.clip(1 + 0.08 * noise_z, 0.6, 1.4)
        digital[g] = _DIGITAL_LEVEL[g] + rng.normal(0, 50) + _DIGITAL_SPREAD * dig_z

    for name in ("hot", "cold"):
        idx = np.flatnonzero(classes == _CODE[name])
        shift = rng.uniform(15, 30, idx.size) * np.array(_PIXEL_SPREAD)[:, None]
        offset[:, :, idx] += (shift if name == "hot" else -shift)[:, None, :]
    idx = np.flatnonzero(classes == _CODE["noisy"])
    sigma[:, idx] *= rng.uniform(3, 5, idx.size)
    idx = np.flatnonzero(classes == _CODE["stuck"])
    sigma[:, idx] = 0
    offset[:, :, idx] = np.round(offset[:, :, idx])
    idx = np.flatnonzero(classes == _CODE["gain_bit_error"])
    if idx.size and n_gain > 1:  # medium-gain digital level on top of the high-gain one
        digital[1, idx] = digital[0, idx] + rng.normal(0, 10, idx.size)
    idx = np.flatnonzero(classes == _CODE["dead_asic"])
    offset[:, :, idx] = _DEAD_LEVEL + rng.normal(0, 3, idx.size)
    sigma[:, idx] = 1.5

    telegraph_frac = np.zeros(n_pix, np.float32)
    telegraph_amp = np.zeros((n_gain, n_pix), np.float32)
    idx = np.flatnonzero(classes == _CODE["telegraph"])
    telegraph_frac[idx] = rng.uniform(0.2, 0.4, idx.size)
    telegraph_amp[:, idx] = rng.uniform(8, 15, idx.size) * sigma[:, idx]

    def events(name: str, low: int, high: int) -> np.ndarray:
        pix = np.flatnonzero(classes == _CODE[name])
        reps = rng.integers(low, high + 1, pix.size)
        pix = np.repeat(pix, reps)
        return np.stack([rng.integers(0, plan.trains, pix.size),
                         rng.integers(0, n_cells, pix.size), pix], axis=1)

    return _ModuleModel(classes, offset, smooth, sigma, digital, telegraph_frac, telegraph_amp,
                        events("good_spiky", 1, 2), events("good_some_nan", 1, 3))


def module_frames(plan: SimPlan, spec: DetectorSpec, model: _ModuleModel, module: int,
                  stage: int, chunk: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames of trains ``chunk * plan.trains_per_chunk ...`` for one module and gain stage.

    Returns ``(analog, digital)`` shaped (trains, cells, ss, fs): uint16 and uint16 for raw,
    float32 and None for proc. Deterministic: the same plan gives the same frames.
    """
    t0 = chunk * plan.trains_per_chunk
    t1 = min(plan.trains, t0 + plan.trains_per_chunk)
    n_t, n_c = t1 - t0, plan.cells
    n_pix = model.classes.size
    rng = np.random.default_rng([plan.seed, module, stage, chunk, 2])
    frames = rng.standard_normal((n_t, n_c, n_pix), dtype=np.float32)
    frames *= model.sigma[stage]
    frames += model.offset[stage]

    tele = np.flatnonzero(model.telegraph_frac)
    if tele.size:
        high = rng.random((n_t, n_c, tele.size)) < model.telegraph_frac[tele]
        frames[:, :, tele] += high * model.telegraph_amp[stage, tele]
    for t, c, p in model.spikes:
        if t0 <= t < t1:
            frames[t - t0, c, p] += 100 * max(model.sigma[stage, p], 1.0)

    shape = (n_t, n_c, *spec.module_shape)
    if plan.kind == "proc":
        frames -= model.smooth[stage]
        frames -= np.float32(0.95 * _PIXEL_SPREAD[stage]) * _pixel_z(model, stage)
        frames[:, :, model.classes == _CODE["always_nan"]] = np.nan
        for t, c, p in model.nan_frames:
            if t0 <= t < t1:
                frames[t - t0, c, p] = np.nan
        return frames.reshape(shape), None

    analog = _to_uint16(frames).reshape(shape)
    if spec.gain_encoding != "digital_channel":
        return analog, None
    dig = rng.standard_normal((n_t, n_c, n_pix), dtype=np.float32)
    dig *= np.float32(_DIGITAL_NOISE)
    dig += model.digital[stage]
    return analog, _to_uint16(dig).reshape(shape)


def _pixel_z(model: _ModuleModel, stage: int) -> np.ndarray:
    # the per-pixel spread as the correction's offset constant knows it (stuck/hot/... excluded)
    # offset anomalies (hot, cold, stuck, dead ASIC) are not in the constant, so they stay
    known = ~np.isin(model.classes, [_CODE[c] for c in ("hot", "cold", "stuck", "dead_asic")])
    return (model.offset[stage, 0] - model.smooth[stage, 0]) * known / np.float32(
        _PIXEL_SPREAD[stage])


def _to_uint16(values: np.ndarray) -> np.ndarray:
    np.clip(values, 0, 65535, out=values)
    values += 0.5
    return values.astype(np.uint16)


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
    models: dict[int, _ModuleModel] = {}
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
                   model: _ModuleModel, module: int, stage: int, keep: np.ndarray) -> None:
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
    out = np.full((spec.n_modules, *spec.module_shape), _CODE["missing_module"], np.uint8)
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
        f.attrs["model"] = json.dumps({
            "analog_level": _ANALOG_LEVEL, "pixel_spread": _PIXEL_SPREAD, "noise": _NOISE,
            "digital_level": _DIGITAL_LEVEL, "digital_spread": _DIGITAL_SPREAD,
            "digital_noise": _DIGITAL_NOISE, "dead_asic_level": _DEAD_LEVEL,
            "asic_level_range": [-300, 300], "gradient_range": [-40, 40],
            "hot_cold_shift_in_pixel_spreads": [15, 30], "noisy_factor": [3, 5],
            "telegraph_fraction": [0.2, 0.4], "telegraph_amplitude_in_sigma": [8, 15],
            "spike_in_sigma": 100, "spikes_per_pixel": [1, 2], "nan_frames_per_pixel": [1, 3],
        })
        code = f.create_dataset("class_code", data=models_classes, compression="gzip")
        code.attrs["class_names"] = json.dumps(list(CLASSES))
        code.attrs["dims"] = json.dumps(["module", "ss", "fs"])
        f.create_dataset("class_bits", data=bits_per_class).attrs["class_names"] = json.dumps(
            list(CLASSES))
        exp = f.create_dataset("expected_bits", data=bits_per_class[models_classes],
                               compression="gzip")
        exp.attrs["dims"] = json.dumps(["module", "ss", "fs"])


def iter_classes() -> Iterator[tuple[int, str, int]]:
    """Yield ``(code, name, expected_bits)`` for every class."""
    for code, name in enumerate(CLASSES):
        yield code, name, EXPECTED_BITS[name]
