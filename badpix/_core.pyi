"""Type stub of the private compiled core; use :mod:`badpix.robust` instead."""

import numpy as np
from numpy.typing import NDArray

MIN_SAMPLES: int

def fit_value(
    x: NDArray[np.float64],
    weights: NDArray[np.float64] | None,
    likely_ratio: float,
    certain_ratio: float,
    msse_lambda: float,
    opt_iters: int,
    min_residual: float,
) -> tuple[float, float, int]: ...
def msse(
    residuals: NDArray[np.float64], k: int, msse_lambda: float, min_residual: float
) -> tuple[float, int]: ...
def fit_value_tensor(
    x: NDArray[np.generic],
    n_threads: int,
    likely_ratio: float,
    certain_ratio: float,
    msse_lambda: float,
    opt_iters: int,
    min_residual: float,
    return_classical: bool,
) -> tuple[NDArray[np.generic], ...]: ...
def fit_line(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    likely_ratio: float,
    certain_ratio: float,
    msse_lambda: float,
    opt_iters: int,
    min_residual: float,
) -> tuple[float, float, float, int]: ...
def fit_plane(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    z: NDArray[np.float64],
    likely_ratio: float,
    certain_ratio: float,
    msse_lambda: float,
    opt_iters: int,
    min_residual: float,
) -> tuple[float, float, float, float, int]: ...
def fit_background(
    image: NDArray[np.float64],
    mask: NDArray[np.uint8] | None,
    win_r: int,
    win_c: int,
    n_shifts: int,
    plane: bool,
    min_pixels: int,
    likely_ratio: float,
    certain_ratio: float,
    msse_lambda: float,
    opt_iters: int,
    min_residual: float,
    n_threads: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def remove_islands(
    mask: NDArray[np.uint8], min_size: int, connectivity: int
) -> NDArray[np.uint8]: ...
