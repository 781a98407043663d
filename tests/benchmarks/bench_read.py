"""Read-path benchmark for badpix.read (results: tests/benchmarks/README.md, "Reading").

Simulates one AGIPD1M raw module of 64 trains x 64 cells (1 GiB) in a temporary folder and
times, cold (pages dropped with posix_fadvise) and warm (best of 3), reading (a) all cells and
(b) a block of 16 cells of every train with:

- badpix ``read_block`` (h5py, one slice per train at positions from extra-data's index),
- extra-data ``AGIPD1M(...)['image.data'].select_pulses(...).ndarray()``
  (then analog/digital split, as read_block returns them),
- extra-data ``split_trains(trains_per_part=16)`` + ``ndarray()`` per part,
- h5py ``read_direct`` per train (INDEX first/count, slices only).

Run: ``python tests/benchmarks/bench_read.py [TMPDIR]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from badpix.read import read_block
from badpix.runs import open_dark_set
from badpix.simulate import simulate_dark_set

N_TRAINS, N_CELLS, BLOCK = 64, 64, 16


def drop_cache(folder: Path) -> None:
    for fn in folder.rglob("*.h5"):
        fd = os.open(fn, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def timed(fn, folder: Path) -> tuple[float, float, int]:
    drop_cache(folder)
    t0 = time.perf_counter()
    nbytes = fn()
    cold = time.perf_counter() - t0
    warm = min(_once(fn) for _ in range(3))
    return cold, warm, nbytes


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(tmp: str | None = None) -> None:
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        t0 = time.perf_counter()
        sim = simulate_dark_set(Path(d) / "bench", modules=1, cells=N_CELLS, trains=N_TRAINS,
                                missing_module=None, n_missing_trains=0)
        print(f"simulated 3 runs of 1 GiB in {time.perf_counter() - t0:.1f} s")
        folder = sim.run_dirs[0]
        ds = open_dark_set([str(p) for p in sim.run_dirs])
        run = ds.runs[0]
        src = run.sources[0]

        def badpix(cells):
            def f():
                b = read_block(run, 0, cells)
                return b.nbytes
            return f

        def xd_select_pulses(cells):
            def f():
                from extra_data import RunDirectory
                from extra_data.components import AGIPD1M

                det = AGIPD1M(RunDirectory(str(folder)), modules=[0], raw=True)
                arr = det["image.data"].select_pulses(np.s_[cells[0]:cells[-1] + 1]).ndarray()
                analog = np.ascontiguousarray(arr[0, :, 0])
                digital = np.ascontiguousarray(arr[0, :, 1])
                return analog.nbytes + digital.nbytes
            return f

        def xd_split_trains(cells):
            def f():
                from extra_data import RunDirectory

                kd = RunDirectory(str(folder))[src, "image.data"]
                n = 0
                for part in kd.split_trains(trains_per_part=16):
                    arr = part.ndarray().reshape(-1, N_CELLS, 2, 512, 128)[:, cells]
                    n += arr.nbytes
                return n
            return f

        def h5_per_train(cells):
            def f():
                fn = next(folder.glob("*AGIPD00*"))
                with h5py.File(fn, "r") as h5:
                    ds_ = h5[f"INSTRUMENT/{src}/image/data"]
                    first = h5[f"INDEX/{src}/image/first"][()]
                    out = np.empty((N_TRAINS, len(cells), 2, 512, 128), np.uint16)
                    for t in range(N_TRAINS):
                        s = int(first[t]) + cells[0]
                        ds_.read_direct(out[t], np.s_[s:s + len(cells)])
                    return out.nbytes
            return f

        os.sync()  # let the writeback of the simulated files finish before timing
        time.sleep(3)
        print(f"{'method':<42} {'cells':>5} {'cold GiB/s':>10} {'warm GiB/s':>10}")
        for label, cells in (("all", list(range(N_CELLS))), ("block", list(range(16, 32)))):
            for name, make in (("badpix read_block (slice per train)", badpix),
                               ("extra-data select_pulses + ndarray", xd_select_pulses),
                               ("extra-data split_trains(16) + ndarray", xd_split_trains),
                               ("h5py read_direct per train", h5_per_train)):
                cold, warm, nbytes = timed(make(cells), folder)
                gib = nbytes / 2**30
                print(f"{name:<42} {label:>5} {gib / cold:10.2f} {gib / warm:10.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
