"""Input checks and defaults shared by the robust-fitting functions (private).

They run before any work is handed to the compiled core, so a bad argument is a ``ValueError``
or ``TypeError`` that names the parameter, never a crash or a silent copy.
"""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Defaults of the FLkOS / MSSE parameters (the original library's meaning).
LIKELY_RATIO = 0.5
CERTAIN_RATIO = 0.35
MSSE_LAMBDA = 3.0
OPT_ITERS = 12


def check_ratios(
    likely_ratio: float,
    certain_ratio: float,
    msse_lambda: float,
    opt_iters: int,
    min_residual: float,
) -> None:
    if not (0.0 <= certain_ratio < likely_ratio <= 1.0):
        raise ValueError(
            "need 0 <= certain_ratio < likely_ratio <= 1, got "
            f"certain_ratio={certain_ratio!r}, likely_ratio={likely_ratio!r}"
        )
    if not (np.isfinite(msse_lambda) and msse_lambda > 0):
        raise ValueError(f"msse_lambda must be a positive finite number, got {msse_lambda!r}")
    if int(opt_iters) != opt_iters or opt_iters < 0:
        raise ValueError(f"opt_iters must be an integer >= 0, got {opt_iters!r}")
    if not (np.isfinite(min_residual) and min_residual >= 0):
        raise ValueError(f"min_residual must be a finite number >= 0, got {min_residual!r}")


def as_float64_1d(a: ArrayLike, name: str) -> NDArray[np.float64]:
    """Small 1-D inputs are converted (copied if needed) to contiguous native float64."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got {arr.ndim} dimension(s)")
    return np.ascontiguousarray(arr, dtype=np.float64)


def n_threads_or_all(n_threads: int | None) -> int:
    if n_threads is None:
        return os.cpu_count() or 1
    if int(n_threads) != n_threads or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return int(n_threads)
