"""Read the frames of one module and a block of memory cells from a dark run.

Public objects
--------------
read_block(dark_run, module, cell_ids, max_trains=None) -> DarkBlock
    All (selected) trains of one module for the given cells, missing frames marked invalid.
DarkBlock
    ``analog`` / ``digital`` (n_trains, n_cells, ss, fs), ``valid`` (n_trains, n_cells),
    ``train_ids``, ``cell_ids``.
ModuleIndex, build_module_index(data, source, spec, kind) -> ModuleIndex
    Where each frame of one module's source is stored (file, position, train, cell); built
    once from extra-data's index when a run is opened (``runs.py``).
bytes_per_frame(spec, kind) -> int, frame_shape(spec) -> (ss, fs)
    To size cell blocks from a memory budget.

How the data is read: extra-data opens the run and gives the per-file INDEX (first/count per
train) and the memory-cell IDs; the bulk pixel data are then read with h5py at the positions of
the wanted frames, one contiguous slice per call (a dark run stores the cells of a train
together, so one call per train and cell block), in batches of at most 64 MiB that are
scattered into the output. Measurements behind this choice: ``tests/benchmarks/README.md``
("Reading"). Integer indices and strided selections are avoided (HDF5 is 10-100x slower).

Invalid frames (train missing for this module, cell missing in a train) are filled with 0
(integers) or NaN (floats) and have ``valid == False``; proc NaN values in valid frames are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import h5py
import numpy as np

from badpix.detectors import DetectorSpec
from badpix.exceptions import DataReadError, NoDarkDataError

if TYPE_CHECKING:
    from extra_data import DataCollection

    from badpix.darkset import DarkRun

_BATCH_BYTES = 16 << 20  # read buffer per batch; bounds the memory beyond the block


@dataclass(frozen=True)
class ModuleIndex:
    """Storage positions of one module's frames (built by :func:`build_module_index`).

    Attributes
    ----------
    source : str
        Instrument source name.
    files : tuple of str
        Paths of the files holding the data.
    dataset : str
        HDF5 path of the pixel data in those files.
    dtype : numpy.dtype
        Stored dtype.
    entry_shape : tuple of int
        Shape of one stored entry (a frame, or a train of cells for ``train_cells`` layout).
    train_ids : (n,) uint64 ndarray
        Trains with data, increasing.
    frame_train, frame_cell, frame_file, frame_pos : (n_frames,) ndarrays
        Per stored frame: train ID, memory cell, file number, position (entry index) in the file.
        For ``train_cells`` layout a "frame" is one cell of one entry; ``frame_slot`` holds the
        cell's index along the entry's cell axis.
    frame_slot : (n_frames,) ndarray or None
    """

    source: str
    files: tuple[str, ...]
    dataset: str
    dtype: np.dtype
    entry_shape: tuple[int, ...]
    train_ids: np.ndarray
    frame_train: np.ndarray
    frame_cell: np.ndarray
    frame_file: np.ndarray
    frame_pos: np.ndarray
    frame_slot: np.ndarray | None = None

    @property
    def cell_ids(self) -> np.ndarray:
        """Memory cells present in any train, increasing."""
        return np.unique(self.frame_cell)


@dataclass
class DarkBlock:
    """Frames of one module and gain run for a block of memory cells.

    Attributes
    ----------
    module : int
    gain_stage : str
    kind : {"raw", "proc"}
    analog : (n_trains, n_cells, ss, fs) ndarray
        uint16 for raw data (ADC bits only for LPD/JUNGFRAU), float32 for proc (NaN kept).
    digital : (n_trains, n_cells, ss, fs) ndarray or None
        Raw AGIPD digital (gain) ADC, or the gain bits of LPD/JUNGFRAU raw words; None otherwise.
    valid : (n_trains, n_cells) bool ndarray
        False where the frame is missing; such frames hold 0 or NaN and must be ignored.
    train_ids : (n_trains,) uint64 ndarray
    cell_ids : (n_cells,) uint16 ndarray
    """

    module: int
    gain_stage: str
    kind: str
    analog: np.ndarray
    digital: np.ndarray | None
    valid: np.ndarray
    train_ids: np.ndarray
    cell_ids: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return self.analog.nbytes + (0 if self.digital is None else self.digital.nbytes)


def frame_shape(spec: DetectorSpec) -> tuple[int, int]:
    """``(ss, fs)`` of one module frame."""
    return spec.module_shape


def bytes_per_frame(spec: DetectorSpec, kind: str) -> int:
    """Bytes one (train, cell) frame of one module takes in a :class:`DarkBlock`.

    Raw: 2 bytes per pixel for ``analog`` plus 2 for ``digital`` when the detector encodes the
    gain; proc: 4 bytes (float32). Reading needs at most 64 MiB more (the read buffer).
    """
    ss, fs = spec.module_shape
    if kind == "proc":
        return ss * fs * 4
    per_pixel = 2 if spec.gain_encoding == "none" else 4
    return ss * fs * per_pixel


def build_module_index(data: DataCollection, source: str, spec: DetectorSpec,
                       kind: str) -> ModuleIndex:
    """Index the frames of ``source`` in ``data`` (an extra-data run or selection).

    Raises :class:`DataReadError` when an index or cell dataset cannot be read.
    """
    data_key = spec.raw_data_key if kind == "raw" else spec.proc_data_key
    cells_key = spec.raw_cells_key if kind == "raw" else spec.proc_cells_key
    kd = data[source, data_key]
    cells_path = data[source, cells_key].hdf5_data_path
    selected = np.asarray(kd.train_ids, np.uint64)

    files: list[str] = []
    tids, firsts, fileno, cells = [], [], [], []
    seen: set[int] = set()
    for fa in kd.files:
        try:
            first, count = fa.get_index(source, kd.index_group)
            file_cells = fa.file[cells_path][()]
        except (OSError, KeyError) as err:
            raise DataReadError(f"cannot read the index of {source} in {fa.filename}: {err}"
                                ) from None
        file_tids = np.asarray(fa.train_ids, np.uint64)
        use = (count > 0) & np.isin(file_tids, selected)
        use &= ~np.isin(file_tids, np.fromiter(seen, np.uint64, len(seen)))
        if not use.any():
            continue
        seen.update(int(t) for t in file_tids[use])
        files.append(fa.filename)
        for i in np.flatnonzero(use):
            f0, n = int(first[i]), int(count[i])
            tids.append(np.full(n, file_tids[i], np.uint64))
            firsts.append(np.arange(f0, f0 + n, dtype=np.int64))
            fileno.append(np.full(n, len(files) - 1, np.int32))
            cells.append(np.asarray(file_cells[f0:f0 + n]).reshape(n, -1))

    if not tids:
        empty = np.zeros(0, np.int64)
        return ModuleIndex(source, tuple(files), kd.hdf5_data_path, kd.dtype,
                           tuple(kd.entry_shape), np.zeros(0, np.uint64), empty.astype(np.uint64),
                           empty.astype(np.uint16), empty.astype(np.int32), empty)
    frame_train = np.concatenate(tids)
    frame_pos = np.concatenate(firsts)
    frame_file = np.concatenate(fileno)
    cell_arr = np.concatenate(cells)
    slot = None
    if spec.layout == "train_cells":  # one entry per train, cells along axis 1 of the entry
        n_slots = cell_arr.shape[1]
        frame_train = np.repeat(frame_train, n_slots)
        frame_pos = np.repeat(frame_pos, n_slots)
        frame_file = np.repeat(frame_file, n_slots)
        slot = np.tile(np.arange(n_slots, dtype=np.int32), cell_arr.shape[0])
    frame_cell = cell_arr.ravel().astype(np.uint16)
    order = np.argsort(frame_train, kind="stable")  # files may be listed in any order
    return ModuleIndex(
        source=source, files=tuple(files), dataset=kd.hdf5_data_path, dtype=kd.dtype,
        entry_shape=tuple(kd.entry_shape), train_ids=np.unique(frame_train),
        frame_train=frame_train[order], frame_cell=frame_cell[order],
        frame_file=frame_file[order], frame_pos=frame_pos[order],
        frame_slot=None if slot is None else slot[order],
    )


def read_block(dark_run: DarkRun, module: int, cell_ids: np.ndarray | list[int],
               max_trains: int | None = None) -> DarkBlock:
    """Read one module's frames for a block of memory cells, for every selected train.

    Parameters
    ----------
    dark_run : DarkRun
        A run of a :class:`~badpix.darkset.DarkSet`.
    module : int
        Module number (as in source names).
    cell_ids : sequence of int
        Memory-cell IDs, increasing and distinct; cells absent from the run give invalid frames.
    max_trains : int, optional
        Use only the first ``max_trains`` of the run's selected trains.

    Returns
    -------
    DarkBlock

    Raises
    ------
    NoDarkDataError
        The module has no data in this run, or no trains are left.
    DataReadError
        A file cannot be read.
    """
    spec = dark_run.spec
    index = dark_run.module_index.get(module)
    if index is None or index.train_ids.size == 0:
        raise NoDarkDataError(f"module {module} has no data in {dark_run.path}")
    cells = _check_cells(cell_ids)
    train_ids = dark_run.train_ids
    if max_trains is not None:
        if max_trains < 1:
            raise ValueError(f"max_trains must be positive, got {max_trains}")
        train_ids = train_ids[:max_trains]
    if train_ids.size == 0:
        raise NoDarkDataError(f"no trains selected in {dark_run.path}")

    shape = (train_ids.size, cells.size, *spec.module_shape)
    raw = dark_run.kind == "raw"
    out_dtype = np.dtype(np.uint16) if raw else np.dtype(np.float32)
    analog = np.zeros(shape, out_dtype) if raw else np.full(shape, np.nan, np.float32)
    digital = np.zeros(shape, np.uint16) if raw and spec.gain_encoding != "none" else None
    valid = np.zeros(shape[:2], bool)

    # which stored frames are wanted, and where they go
    row = np.searchsorted(train_ids, index.frame_train).clip(max=train_ids.size - 1)
    col = np.searchsorted(cells, index.frame_cell).clip(max=cells.size - 1)
    want = (train_ids[row] == index.frame_train) & (cells[col] == index.frame_cell)
    rows, cols = row[want], col[want]
    valid[rows, cols] = True
    for fileno, path in enumerate(index.files):
        in_file = index.frame_file[want] == fileno
        if not in_file.any():
            continue
        pos = index.frame_pos[want][in_file]
        slots = None if index.frame_slot is None else index.frame_slot[want][in_file]
        _read_frames(path, index, pos, slots, rows[in_file], cols[in_file], spec, raw,
                     analog, digital)
    return DarkBlock(module=module, gain_stage=dark_run.gain_stage, kind=dark_run.kind,
                     analog=analog, digital=digital, valid=valid, train_ids=train_ids.copy(),
                     cell_ids=cells)


def _check_cells(cell_ids: np.ndarray | list[int]) -> np.ndarray:
    cells = np.asarray(cell_ids)
    if cells.ndim != 1 or cells.size == 0:
        raise ValueError("cell_ids must be a non-empty 1-D sequence")
    if not np.issubdtype(cells.dtype, np.integer) or cells.min() < 0 or cells.max() > 65535:
        raise ValueError("cell_ids must be integers in 0..65535")
    if np.any(np.diff(cells) <= 0):
        raise ValueError("cell_ids must be increasing and distinct")
    return cells.astype(np.uint16)


def _read_frames(path: str, index: ModuleIndex, pos: np.ndarray, slots: np.ndarray | None,
                 rows: np.ndarray, cols: np.ndarray, spec: DetectorSpec, raw: bool,
                 analog: np.ndarray, digital: np.ndarray | None) -> None:
    """Read the entries at ``pos`` of one file and scatter them into the outputs."""
    entry_bytes = int(np.prod(index.entry_shape)) * index.dtype.itemsize
    try:
        with h5py.File(path, "r") as f:
            ds = f[index.dataset]
            if slots is None:
                batch = max(1, _BATCH_BYTES // entry_bytes)
                for start in range(0, pos.size, batch):
                    sl = slice(start, start + batch)
                    buf = _read_positions(ds, pos[sl], index.entry_shape)
                    _scatter(buf, rows[sl], cols[sl], spec, raw, analog, digital)
            else:  # train_cells: read whole entries (all cells of a train), pick the cells
                entries, inverse = np.unique(pos, return_inverse=True)
                batch = max(1, _BATCH_BYTES // entry_bytes)
                for start in range(0, entries.size, batch):
                    part = entries[start:start + batch]
                    buf = _read_positions(ds, part, index.entry_shape)
                    sel = (inverse >= start) & (inverse < start + part.size)
                    frames = buf[inverse[sel] - start, slots[sel]]
                    _scatter(frames, rows[sel], cols[sel], spec, raw, analog, digital)
    except OSError as err:
        raise DataReadError(f"cannot read {index.dataset} from {path}: {err}") from None


def _read_positions(ds: h5py.Dataset, pos: np.ndarray, entry_shape: tuple[int, ...]
                    ) -> np.ndarray:
    """Read entries at increasing positions ``pos``, one contiguous slice per h5py call.

    One call per contiguous run (in a dark run: one per train) measured 10-100x faster than a
    single strided or OR-ed hyperslab selection of the same frames (tests/benchmarks/README.md).
    """
    out = np.empty((pos.size, *entry_shape), ds.dtype)
    done = 0
    for start, length in _runs(pos):
        ds.read_direct(out, np.s_[int(start):int(start + length)], np.s_[done:done + length])
        done += int(length)
    return out


def _runs(pos: np.ndarray) -> np.ndarray:
    """``(start, length)`` of the contiguous runs of increasing positions."""
    breaks = np.flatnonzero(np.diff(pos) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [pos.size]])
    return np.stack([pos[starts], stops - starts], axis=1)


def _scatter(buf: np.ndarray, rows: np.ndarray, cols: np.ndarray, spec: DetectorSpec, raw: bool,
             analog: np.ndarray, digital: np.ndarray | None) -> None:
    if not raw:
        analog[rows, cols] = buf.reshape(buf.shape[0], *spec.module_shape)
        return
    if spec.gain_encoding == "digital_channel":  # AGIPD: (n, 2, ss, fs)
        analog[rows, cols] = buf[:, 0]
        digital[rows, cols] = buf[:, 1]
        return
    words = buf.reshape(buf.shape[0], *spec.module_shape)
    if spec.gain_encoding == "adc_bits":  # LPD, JUNGFRAU: gain bits above the ADC bits
        analog[rows, cols] = words & spec.adc_mask
        digital[rows, cols] = (words >> spec.adc_bits) & 0x3
    else:
        analog[rows, cols] = words
