"""Write simulated dark runs in each detector's EuXFEL layout (used by :mod:`badpix.simulate`).

Public objects
--------------
DetectorLayout, LAYOUTS
    Per simulated detector type: karabo id, file-name tag, control device (AGIPD gain mode).
write_module_file(path, layout, spec, plan, module, stage, n_trains)
    One module's file of one run, written by extra-data's mock writer (datasets empty).
write_control_file(run_dir, layout, plan, stage)
    AGIPD's control device with ``gainModeIndex`` (nothing for the other detectors).
inject_module(path, layout, spec, plan, model, module, stage, keep)
    Pixel data of one module and run injected with h5py in the detector's raw (or proc)
    encoding, and the trains the module missed removed from its index.

Raw encodings written (what ``read.py`` decodes):

- AGIPD ``image.data`` (N, 2, 512, 128): analog and digital (gain) channel.
- LPD ``image.data`` (N, 1, 256, 256): 12-bit ADC value | gain stage << 12 (0, 1, 2).
- DSSC ``image.data`` (N, 1, 128, 512): the 9-bit ADC value, no gain.
- JUNGFRAU ``data.adc`` (trains, cells, 512, 1024): 14-bit ADC value | gain << 14 (0, 1, 3),
  one entry per train with the cells on axis 1, ``data.memoryCell`` (trains, cells) and
  ``data.gain`` (the gain bits again, as in real raw files).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix.detectors import DetectorSpec
from badpix.simulate_pixels import ModuleModel, SimPlan, module_frames

_FIXED_MODE = {0: 1, 1: 2, 2: 3}  # stage index -> gainModeIndex for fixed-gain darks


@dataclass(frozen=True)
class DetectorLayout:
    """How one detector type's simulated runs are named.

    Attributes
    ----------
    karabo_id : str
        Detector karabo id (the part before ``/DET/`` in source names).
    file_tag : str
        Aggregator name in file names before the module number (``AGIPD``, ``LPD``, ``JNGFR``).
    control_id, control_agg : str or None
        AGIPD: control device prefix and its file's aggregator name (gain mode metadata).
    """

    karabo_id: str
    file_tag: str
    control_id: str | None = None
    control_agg: str | None = None

    @property
    def instrument(self) -> str:
        """Instrument of the karabo id (``SPB``, ``FXE``, ...), for the proposal layout."""
        return self.karabo_id.split("_", 1)[0]

    def source(self, spec: DetectorSpec, module: int, raw: bool) -> str:
        """Instrument source name of module axis ``module`` (numbers from ``first_module``)."""
        number = module + spec.first_module
        if spec.layout == "train_cells":
            return f"{self.karabo_id}/{'DET' if raw else 'CORR'}/JNGFR{number:02d}:daqOutput"
        return (f"{self.karabo_id}/DET/{number}CH0:xtdf" if raw
                else f"{self.karabo_id}/CORR/{number}CH0:output")

    def file_name(self, spec: DetectorSpec, module: int, stage: int, raw: bool) -> str:
        number = module + spec.first_module
        prefix = "RAW" if raw else "CORR"
        return f"{prefix}-R{stage + 1:04d}-{self.file_tag}{number:02d}-S00000.h5"


def layout_for(name: str, modules: int) -> DetectorLayout:
    """The layout of detector type ``name``; JUNGFRAU's karabo id names its size."""
    if name == "JUNGFRAU":  # a 0.5M JUNGFRAU module; the id tells badpix the detector's size
        size = "JF500K" if modules == 1 else "JF1M" if modules <= 2 else "JF4M"
        return DetectorLayout(f"FXE_XAD_{size}" if modules <= 2 else f"SPB_IRDA_{size}",
                              "JNGFR")
    return LAYOUTS[name]


LAYOUTS: dict[str, DetectorLayout] = {
    "AGIPD1M": DetectorLayout("SPB_DET_AGIPD1M-1", "AGIPD", "SPB_IRU_AGIPD1M1", "AGIPD1MCTRL00"),
    "AGIPD500K": DetectorLayout("HED_DET_AGIPD500K2G", "AGIPD", "HED_EXP_AGIPD500K2G",
                                "AGIPD500K2G00"),
    "LPD1M": DetectorLayout("FXE_DET_LPD1M-1", "LPD"),
    "DSSC1M": DetectorLayout("SCS_DET_DSSC1M-1", "DSSC"),
    "JUNGFRAU": DetectorLayout("SPB_IRDA_JF4M", "JNGFR"),
}


def _device(layout: DetectorLayout, spec: DetectorSpec, plan: SimPlan, module: int) -> Any:
    from extra_data.tests.mockdata.detectors import AGIPDModule, DSSCModule, LPDModule

    raw = plan.kind == "raw"
    src = layout.source(spec, module, raw)
    device_id, _, channel = src.partition(":")
    if spec.layout == "train_cells":
        return _jungfrau_class()(device_id, plan.cells, raw)
    cls = {"AGIPD": AGIPDModule, "LPD": LPDModule, "DSSC": DSSCModule}[layout.file_tag]
    if raw:
        return cls(device_id, frames_per_train=plan.cells)
    legacy = layout.source(spec, module, True).partition(":")[0]
    return cls(device_id, frames_per_train=plan.cells, raw=False, channel_name=channel,
               legacy_name=legacy)


@functools.cache
def _jungfrau_class() -> type:
    from extra_data.tests.mockdata.jungfrau import JUNGFRAUModule

    class JungfrauDevice(JUNGFRAUModule):  # type: ignore[misc]
        """extra-data's JUNGFRAU module with ``cells`` memory cells per train instead of 16."""

        def __init__(self, device_id: str, cells: int, raw: bool) -> None:
            super().__init__(device_id, raw=raw)
            self.cells = cells

        @property
        def instrument_keys(self) -> list[tuple[str, str, tuple[int, ...]]]:
            keys = super().instrument_keys
            return [(k, t, (self.cells, *d[1:]) if d[:1] == (16,) else d) for k, t, d in keys]

    return JungfrauDevice


def write_module_file(path: Path, layout: DetectorLayout, spec: DetectorSpec, plan: SimPlan,
                      module: int, n_trains: int) -> None:
    """One module's empty file of one run (the mock writer fills the index and IDs only)."""
    from extra_data.tests.mockdata import write_file

    chunk = 1 if spec.layout == "train_cells" else 32
    write_file(str(path), [_device(layout, spec, plan, module)], ntrains=n_trains,
               firsttrain=plan.first_train, chunksize=chunk, format_version="1.0")


def write_control_file(run_dir: Path, layout: DetectorLayout, plan: SimPlan,
                       stage: int) -> None:
    """AGIPD's ``MDL/FPGA_COMP`` with ``gainModeIndex`` (0 adaptive, 1/2/3 fixed)."""
    if layout.control_id is None or plan.kind != "raw":
        return
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.agipd import AGIPDMDL

    ctrl = f"{layout.control_id}/MDL/FPGA_COMP"
    path = run_dir / f"RAW-R{stage + 1:04d}-{layout.control_agg}-S00000.h5"
    write_file(str(path), [AGIPDMDL(ctrl)], ntrains=plan.trains, firsttrain=plan.first_train,
               chunksize=1, format_version="1.0")
    mode = _FIXED_MODE[stage] if plan.gain_mode == "fixed" else 0
    with h5py.File(path, "r+") as f:
        for grp in ("CONTROL", "RUN"):
            f[f"{grp}/{ctrl}/gainModeIndex/value"][...] = mode


def inject_module(path: Path, layout: DetectorLayout, spec: DetectorSpec, plan: SimPlan,
                  model: ModuleModel, module: int, stage: int, keep: np.ndarray) -> None:
    """Write one module's frames of one run into ``path`` (made by :func:`write_module_file`).

    ``keep`` (trains,) bool: False for the trains this module missed; their frames are not
    written and the file's index lists only the kept trains.
    """
    raw = plan.kind == "raw"
    src = layout.source(spec, module, raw)
    cells_per_entry = plan.cells if spec.layout == "xtdf" else 1
    group = "image" if spec.layout == "xtdf" else "data"
    key = (spec.raw_data_key if raw else spec.proc_data_key).rpartition(".")[2]
    kept_tids = plan.train_ids[keep]
    with h5py.File(path, "r+") as f:
        if not keep.all():  # as if the module missed these trains (INDEX and per-entry IDs)
            n = kept_tids.size
            f["INDEX/trainId"][:n] = kept_tids
            parts = ("detector", "header", "trailer") if spec.layout == "xtdf" else ()
            for part in parts:
                f[f"INSTRUMENT/{src}/{part}/trainId"][:n] = kept_tids
            tid = f[f"INSTRUMENT/{src}/{group}/trainId"]
            per_entry = np.repeat(kept_tids, cells_per_entry)
            tid[:per_entry.size] = per_entry.reshape(per_entry.size, *tid.shape[1:])
        if spec.layout == "train_cells":
            cells = f[f"INSTRUMENT/{src}/data/memoryCell"]
            cells[...] = np.arange(plan.cells, dtype=cells.dtype)  # mock writes no cell IDs
        data = f[f"INSTRUMENT/{src}/{group}/{key}"]
        gain = f.get(f"INSTRUMENT/{src}/data/gain") if spec.layout == "train_cells" else None
        out_row = np.cumsum(keep) - 1  # output train row of each kept train
        n_chunks = -(-plan.trains // plan.trains_per_chunk)
        for chunk in range(n_chunks):
            t0 = chunk * plan.trains_per_chunk
            t1 = min(plan.trains, t0 + plan.trains_per_chunk)
            sel = keep[t0:t1]
            if not sel.any():
                continue
            analog, digital = module_frames(plan, spec, model, module, stage, chunk)
            analog = analog[sel]
            digital = None if digital is None else digital[sel]
            row0 = int(out_row[t0:t1][sel][0]) * cells_per_entry
            n_entries = analog.shape[0] * cells_per_entry
            rows = slice(row0, row0 + n_entries)
            data[rows] = _encode(analog, digital, spec, raw).reshape(n_entries, *data.shape[1:])
            if gain is not None and digital is not None:
                gain[rows] = digital.astype(np.uint8)


def _encode(analog: np.ndarray, digital: np.ndarray | None, spec: DetectorSpec,
            raw: bool) -> np.ndarray:
    """Stored values of frames (trains, cells, ss, fs) in the detector's raw encoding."""
    if not raw or spec.gain_encoding == "none":
        return analog
    if spec.gain_encoding == "adc_bits":  # gain bits above the ADC bits of each word
        return analog | (digital << np.uint16(spec.adc_bits))
    out = np.empty((*analog.shape[:2], 2, *analog.shape[2:]), np.uint16)  # AGIPD channels
    out[:, :, 0] = analog
    out[:, :, 1] = digital
    return out
