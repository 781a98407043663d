"""Throughput of badpix.robust.fit_value_tensor on an AGIPD-like (256, 512, 128) tensor.

Prints one table: badpix (float32 / uint16, 1 thread / all threads) beside np.median(axis=0) and,
when importable, the original RGFLib ``fitValueTensor`` (RobustGaussianFittingLibrary==0.2.5,
e.g. from a throwaway venv made with --system-site-packages so badpix is importable too).

    python tests/benchmarks/bench_robust.py [--repeat 3] [--no-rgf]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from badpix.robust import fit_value_tensor

SHAPE = (256, 512, 128)


def make_tensor() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference section 6.2 data: per-pixel N(mu, sigma), 1 % outliers of +-U(10, 100) sigma."""
    rng = np.random.default_rng(42)
    mu = (5000 + 200 * rng.standard_normal(SHAPE[1:])).astype(np.float32)
    sig = (25 * (1 + 0.2 * rng.random(SHAPE[1:]))).astype(np.float32)
    t = rng.standard_normal(SHAPE, dtype=np.float32) * sig + mu
    out = np.nonzero(rng.random(SHAPE, dtype=np.float32) < 0.01)
    sign = np.where(rng.random(out[0].size) < 0.5, -1, 1)
    t[out] += (sign * rng.uniform(10, 100, out[0].size) * sig[out[1], out[2]]).astype(np.float32)
    return t, mu, sig


def best_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-rgf", action="store_true", help="skip the original library")
    args = ap.parse_args()
    t, mu, sig = make_tensor()
    u16 = np.rint(t).clip(0, 65535).astype(np.uint16)
    ncpu = os.cpu_count() or 1
    n_pix = SHAPE[1] * SHAPE[2]
    rows: list[tuple[str, float, str]] = []

    def acc(mean: np.ndarray, std: np.ndarray) -> str:
        e = np.median(np.abs(mean - mu) / sig)
        lo, hi = np.percentile(std / sig, [1, 99])
        return f"{e:.4f} | {np.median(std / sig):.4f} ({lo:.3f}-{hi:.3f})"

    for name, x in (("float32", t), ("uint16", u16)):
        for nt in sorted({1, ncpu}):
            dt = best_time(lambda x=x, nt=nt: fit_value_tensor(x, n_threads=nt), args.repeat)
            f = fit_value_tensor(x, n_threads=nt)
            rows.append((f"badpix fit_value_tensor {name}, {nt} thread(s)", dt, acc(f.mean, f.std)))
    dt = best_time(lambda: fit_value_tensor(t, n_threads=1, return_classical=True), args.repeat)
    rows.append(("badpix ... float32, 1 thread, return_classical=True", dt, "-"))
    dt = best_time(lambda: np.median(t, axis=0), args.repeat)
    rows.append(("np.median(axis=0) float32 (1 thread)", dt, "-"))

    rgf_note = ""
    if args.no_rgf:
        rgf_note = "RGFLib skipped (--no-rgf)"
    else:
        try:
            import RobustGaussianFittingLibrary as rgf  # type: ignore[import-not-found]
        except Exception as exc:  # any import problem means: skip the row
            rgf_note = f"RGFLib not importable ({type(exc).__name__}: {exc}); row skipped"
        else:
            t0 = time.perf_counter()
            r = rgf.fitValueTensor(t)
            dt = time.perf_counter() - t0  # one call: it takes ~10 s
            rows.append(("RGFLib 0.2.5 fitValueTensor float32 (1 thread)", dt, acc(r[0], r[1])))

    base = (
        next(d for n, d, _ in rows if n.startswith("RGFLib"))
        if any(n.startswith("RGFLib") for n, _, _ in rows)
        else None
    )
    print(
        f"tensor {SHAPE} ({n_pix} pixels x {SHAPE[0]} frames), os.cpu_count()={ncpu}, "
        f"best of {args.repeat}"
    )
    print(
        "| method | time (s) | Mpixel-series/s | x RGFLib | median abs(mu err)/sigma | "
        "median sigma ratio (p1-p99) |"
    )
    print("|---|---|---|---|---|---|")
    for name, dt, a in rows:
        speed = f"{base / dt:.0f}x" if base else "-"
        print(f"| {name} | {dt:.3f} | {n_pix / dt / 1e6:.2f} | {speed} | {a} |")
    if rgf_note:
        print(rgf_note)


if __name__ == "__main__":
    main()
