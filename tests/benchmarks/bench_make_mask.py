"""make-mask benchmark: quality against the simulated truth, and throughput.

    PYTHONPATH=. python tests/benchmarks/bench_make_mask.py [--modules 3] [--cells 16]
        [--trains 64] [--realistic] [--compression auto|gzip|none] [--threads N] [--no-baseline]
        [TMPDIR]

``--realistic`` = ``--cells 4 --trains 256``: the same bytes as the default 16 cells x 64 trains,
but series as long as a real AGIPD dark's (~250-2000 trains per cell) instead of the test-sized
ones; the per-series cost of the robust core depends on the length (see README).

(``PYTHONPATH=.``: run the checkout's badpix, not another installed copy.)

Simulates an AGIPD1M raw dark set (``badpix.simulate``), then

* **badpix**: ``open_dark_set`` + ``make_mask`` end to end (reading, robust statistics,
  population scores, writing the mask file), GB of raw input per second;
* **bare read**: h5py ``read_direct`` of the same ``image.data`` frames (every train of every
  module file of every run), GB/s, cold (the files' pages dropped with
  ``posix_fadvise(DONTNEED)``) and warm (best of 2);
* the per-stage profile of make-mask (``pipeline.StageTimes``: read, core = robust statistics
  incl. the small-n re-check, scores = population scores + thresholds, write) and the threads;
* **baseline** (pycalibration style, on the same blocks): offset = median over trains, noise =
  std over trains; per module and cell: offset outside median ± 3 std of the module's pixels
  (OFFSET), noise outside median ± 5 std (NOISE), NaN (EVAL_ERROR), std == 0 (DATA_STD_IS_ZERO),
  neighbouring gain stages' digital medians closer than 5 (std_s + std_s') (GAIN); hard limits
  as in the AGIPD config; static mask = OR over gains and cells.

Prints precision and recall per planted class for both (see ``badpix.evaluation``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from badpix.classify import BadPixel, Thresholds
from badpix.evaluation import evaluate
from badpix.maskfile import read_mask
from badpix.pipeline import MaskOptions, StageTimes, make_mask
from badpix.read import read_block
from badpix.runs import open_dark_set
from badpix.simulate import load_truth, simulate_dark_set
from badpix.stats import StatsParams


def bare_read(run_dirs: list[Path]) -> tuple[int, float]:
    """Read every module file's ``image.data`` with h5py, one train slice at a time."""
    nbytes, t0 = 0, time.perf_counter()
    for run in run_dirs:
        for path in sorted(run.glob("*.h5")):
            with h5py.File(path, "r") as f:
                if "INSTRUMENT" not in f:
                    continue
                names: list[str] = []
                f["INSTRUMENT"].visit(names.append)
                for name in (n for n in names if n.endswith("image/data")):
                    src = name[: -len("/image/data")]
                    ds = f[f"INSTRUMENT/{name}"]
                    first = f[f"INDEX/{src}/image/first"][()]
                    count = f[f"INDEX/{src}/image/count"][()]
                    buf = np.empty((max(int(count.max()), 1), *ds.shape[1:]), ds.dtype)
                    for a, n in zip(first, count, strict=True):
                        if n:
                            ds.read_direct(buf, np.s_[a : a + n], np.s_[0:n])
                            nbytes += buf[:n].nbytes
    return nbytes, time.perf_counter() - t0


def drop_cache(run_dirs: list[Path]) -> None:
    """Drop the page cache of the run files (cold read) without root."""
    for run in run_dirs:
        for path in run.glob("*.h5"):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def baseline(ds, thresholds: Thresholds) -> np.ndarray:
    """pycalibration-style static mask (M, ss, fs) from median/std and module-wide cuts."""
    spec = ds.spec
    static = np.full((spec.n_modules, *spec.module_shape), BadPixel.NO_DARK_DATA, np.uint32)
    cells = [int(c) for c in ds.cell_ids]
    for module in ds.modules:
        acc = np.zeros(spec.module_shape, np.uint32)
        dig = []
        for run in ds.runs:
            b = read_block(run, module, cells)
            bits = np.zeros((len(cells), *spec.module_shape), np.uint32)
            levels = np.empty((2, len(cells), *spec.module_shape), np.float32)
            for c in range(len(cells)):
                x = b.analog[b.valid[:, c], c].astype(np.float32)
                off, noise = np.median(x, axis=0), x.std(axis=0)
                for v, nsig, bit in ((off, 3, 1), (noise, 5, 2)):
                    med, sd = np.nanmedian(v), np.nanstd(v)
                    bits[c][np.abs(v - med) > nsig * sd] |= np.uint32(bit)
                lo, hi = thresholds.offset_hard.get(run.gain_stage, (-np.inf, np.inf))
                bits[c][(off < lo) | (off > hi)] |= np.uint32(1)
                lo, hi = thresholds.noise_hard.get(run.gain_stage, (-np.inf, np.inf))
                bits[c][(noise < lo) | (noise > hi)] |= np.uint32(2)
                bits[c][~np.isfinite(off) | ~np.isfinite(noise)] |= np.uint32(4)
                bits[c][noise == 0] |= np.uint32(BadPixel.DATA_STD_IS_ZERO)
                if b.digital is not None:
                    d = b.digital[b.valid[:, c], c].astype(np.float32)
                    levels[:, c] = np.median(d, axis=0), d.std(axis=0)
            dig.append((levels, bits))
            acc |= np.bitwise_or.reduce(bits, axis=0)
        for g in range(len(dig) - 1):
            (l0, _), (l1, _) = dig[g], dig[g + 1]
            bad = np.abs(l0[0] - l1[0]) < 5 * (l0[1] + l1[1])
            acc[bad.any(axis=0)] |= np.uint32(BadPixel.GAIN_THRESHOLDING_ERROR)
        static[module - spec.first_module] = acc
    return static


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tmpdir", nargs="?", default=None)
    p.add_argument("--modules", type=int, default=3)
    p.add_argument("--cells", type=int, default=16)
    p.add_argument("--trains", type=int, default=64)
    p.add_argument("--realistic", action="store_true",
                   help="--cells 4 --trains 256 (same bytes as the default, long series)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--compression", default="auto", choices=("auto", "gzip", "none"))
    p.add_argument("--threads", type=int, default=None, help="robust core threads (all)")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline (slow)")
    args = p.parse_args()
    if args.realistic:
        args.cells, args.trains = 4, 256
    tmp = Path(args.tmpdir or tempfile.mkdtemp(prefix="bench-make-mask-"))
    sim = simulate_dark_set(
        tmp / "sim",
        modules=args.modules,
        cells=args.cells,
        trains=args.trains,
        seed=args.seed,
        force=True,
    )
    truth = load_truth(sim.truth_path)
    runs = list(sim.run_dirs)
    drop_cache(runs)
    nbytes, t_cold = bare_read(runs)
    t_read = min(bare_read(runs)[1] for _ in range(2))  # warm

    from badpix import _core  # noqa: F401  (import before timing)

    threads = args.threads or os.cpu_count()
    results = {}
    for label in ("cold", "warm"):
        if label == "cold":
            drop_cache(runs)
        times = StageTimes()
        t0 = time.perf_counter()
        ds = open_dark_set(sim.run_dirs)
        th = Thresholds.from_mapping(ds.spec.thresholds)
        opts = MaskOptions(
            th,
            StatsParams.from_mapping(ds.spec.stats, min_valid_samples=th.min_valid_samples),
            n_threads=args.threads,
            compression=args.compression,
        )
        out = make_mask(ds, tmp / "mask.h5", opts, force=True, timings=times)
        results[label] = (time.perf_counter() - t0, times)
    _, times = results["warm"]
    with read_mask(out) as m:
        ours = evaluate(m.mask, truth)
    if args.no_baseline:
        base, t_base = ours, float("nan")
    else:
        t0 = time.perf_counter()
        base = evaluate(baseline(ds, th), truth)
        t_base = time.perf_counter() - t0

    print(
        f"set: {args.modules} modules ({len(ds.modules)} present) x {args.cells} cells x "
        f"{args.trains} trains x {len(ds.runs)} gain runs, raw input {nbytes / 1e9:.2f} GB"
    )
    print(
        f"{'class':<16}{'pixels':>7}  {'badpix recall':>13} {'precision':>9}   "
        f"{'baseline recall':>15} {'precision':>9}"
    )
    for a, b in zip(ours, base, strict=True):
        if a.recall is None:
            print(
                f"{a.name:<16}{a.n_pixels:>7}  {'flagged ' + str(a.false_positives):>23}   "
                f"{'flagged ' + str(b.false_positives):>25}"
            )
        else:
            print(
                f"{a.name:<16}{a.n_pixels:>7}  {a.recall:>13.2%} {a.precision:>9.2%}   "
                f"{b.recall:>15.2%} {b.precision:>9.2%}"
            )
    gb = nbytes / 1e9
    print(f"threads of the robust core: {threads}; mask file {out.stat().st_size / 1e6:.0f} MB "
          f"(--compression {args.compression})")
    print(f"bare h5py read (cold):  {t_cold:6.2f} s  {gb / t_cold:6.2f} GB/s")
    print(f"bare h5py read (warm):  {t_read:6.2f} s  {gb / t_read:6.2f} GB/s")
    for label in ("cold", "warm"):
        t, _ = results[label]
        print(f"badpix make-mask ({label}): {t:6.2f} s  {gb / t:6.2f} GB/s  "
              f"({t / t_cold:.1f}x the cold read, {t / t_read:.1f}x the warm read)")
    print(f"profile (warm run, seconds; read runs in a reader thread and write in a writer "
          f"thread, overlapped with core/scores): {times.summary()}")
    core_rate = times.read_bytes / max(times.core, 1e-9) / 1e9
    print(f"core: {core_rate:.2f} GB/s of read blocks on {threads} threads "
          f"({core_rate / threads:.3f} GB/s per thread)")
    print(f"baseline (median/std):  {t_base:6.2f} s  {gb / t_base:6.2f} GB/s")
    n_series = times.read_bytes / 2 / args.trains  # uint16 analog + digital per train
    print(f"throughput row: | {args.cells} cells x {args.trains} trains | {t:.2f} | {gb / t:.3f} | "
          f"{times.core:.2f} | {times.core / max(n_series, 1) * 1e6:.2f} |  "
          "(cells x trains | make-mask warm s | GB/s | core s | core µs per series, all threads)")

if __name__ == "__main__":
    main()
