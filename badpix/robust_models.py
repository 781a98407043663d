"""Robust models beyond a single value: lines, planes, image backgrounds, islands.

Part of the public :mod:`badpix.robust` API (import them from there); they share its
conventions (NaN and inf are missing, ratios validated, float64 sums, centred coordinates).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from badpix import _core
from badpix._robust_checks import (
    CERTAIN_RATIO,
    LIKELY_RATIO,
    MSSE_LAMBDA,
    OPT_ITERS,
    as_float64_1d,
    check_ratios,
    n_threads_or_all,
)


class LineFit(NamedTuple):
    """Robust line ``y = slope * x + intercept`` with residual scale ``std``."""

    slope: float
    intercept: float
    std: float
    n_inliers: int


class PlaneFit(NamedTuple):
    """Robust plane ``z = a * x + b * y + c`` with residual scale ``std``."""

    a: float
    b: float
    c: float
    std: float
    n_inliers: int


class Background(NamedTuple):
    """Background ``mean`` and noise ``std`` maps of :func:`fit_background` (float64)."""

    mean: NDArray[np.float64]
    std: NDArray[np.float64]


def fit_line(
    x: ArrayLike,
    y: ArrayLike,
    *,
    likely_ratio: float = LIKELY_RATIO,
    certain_ratio: float = CERTAIN_RATIO,
    msse_lambda: float = MSSE_LAMBDA,
    opt_iters: int = OPT_ITERS,
    min_residual: float = 0.0,
) -> LineFit:
    """Robust line ``y = slope * x + intercept``.

    FLkOS concentration steps (least squares on the residual ranks ``[certain_ratio,
    likely_ratio)``) from several deterministic starts (least squares, a flat line at the median,
    exact fits through pseudo-random pairs); the best k-th order residual wins; then an MSSE
    scale and least squares on all samples within ``msse_lambda * sigma`` (centred coordinates,
    float64 sums). Pairs with a non-finite member are ignored; fewer than 4 usable pairs give NaN.

    Parameters
    ----------
    x, y : (n,) array_like
        Coordinates and values.
    likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual
        As in :func:`fit_value` (``opt_iters`` bounds the concentration steps).

    Returns
    -------
    LineFit
        ``(slope, intercept, std, n_inliers)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> x = rng.uniform(-100, 100, 200)
    >>> y = 0.5 * x + 10 + rng.normal(0, 3, 200)
    >>> y[:60] = rng.uniform(-100, 100, 60)
    >>> fit = fit_line(x, y)
    >>> bool(abs(fit.slope - 0.5) < 0.02), bool(abs(fit.intercept - 10) < 1.5)
    (True, True)
    """
    check_ratios(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual)
    xa, ya = as_float64_1d(x, "x"), as_float64_1d(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    r = _core.fit_line(
        xa, ya, likely_ratio, certain_ratio, msse_lambda, int(opt_iters), min_residual
    )
    return LineFit(float(r[0]), float(r[1]), float(r[2]), int(r[3]))


def fit_plane(
    x: ArrayLike,
    y: ArrayLike,
    z: ArrayLike,
    *,
    likely_ratio: float = LIKELY_RATIO,
    certain_ratio: float = CERTAIN_RATIO,
    msse_lambda: float = MSSE_LAMBDA,
    opt_iters: int = OPT_ITERS,
    min_residual: float = 0.0,
) -> PlaneFit:
    """Robust plane ``z = a * x + b * y + c`` (the method of :func:`fit_line`).

    Triplets with a non-finite member are ignored; fewer than 5 usable triplets give NaN.

    Parameters
    ----------
    x, y, z : (n,) array_like
        Coordinates and values.
    likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual
        As in :func:`fit_value`.

    Returns
    -------
    PlaneFit
        ``(a, b, c, std, n_inliers)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(4)
    >>> x, y = rng.uniform(-50, 50, (2, 400))
    >>> z = x - 2 * y + 50 + rng.normal(0, 5, 400)
    >>> z[:120] = rng.uniform(-150, 250, 120)
    >>> fit = fit_plane(x, y, z)
    >>> bool(abs(fit.a - 1) < 0.05), bool(abs(fit.b + 2) < 0.05), bool(abs(fit.c - 50) < 1.5)
    (True, True, True)
    """
    check_ratios(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual)
    xa, ya, za = as_float64_1d(x, "x"), as_float64_1d(y, "y"), as_float64_1d(z, "z")
    if not xa.shape == ya.shape == za.shape:
        raise ValueError("x, y and z must have the same length")
    r = _core.fit_plane(
        xa, ya, za, likely_ratio, certain_ratio, msse_lambda, int(opt_iters), min_residual
    )
    return PlaneFit(float(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4]))


def fit_background(
    image: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    window: tuple[int, int] = (64, 64),
    n_shifts: int = 2,
    model: str = "plane",
    likely_ratio: float = LIKELY_RATIO,
    certain_ratio: float = CERTAIN_RATIO,
    msse_lambda: float = MSSE_LAMBDA,
    opt_iters: int = OPT_ITERS,
    min_residual: float = 0.0,
    min_pixels: int = 16,
    n_threads: int | None = None,
) -> Background:
    """Local robust background (level and noise) of a 2-D image by windowed fits.

    The image is tiled by ``window``-sized windows (the last window of a row or column is shifted
    back to end at the edge), each window is fitted robustly (a plane or a constant over its
    unmasked finite pixels) and the model is written to all its pixels. This is repeated for
    ``n_shifts x n_shifts`` grid offsets (``i * window // n_shifts``) and the estimates covering a
    pixel are averaged ("shifting and averaging multiple estimates"), each weighted by how well
    its window's model fits the pixel's neighbourhood: with ``s`` the smallest window scale at the
    pixel, the inliers (``|residual| <= msse_lambda * s``) of the 9 x 9 box around the pixel give
    the squared local bias (mean residual of the box's four quadrants) and the weight is
    ``f3**8 * f**2 / (bias**2 + s**2 / n_in)``, ``f`` and ``f3`` being the inlier fractions of the
    box and of the pixel's 3 x 3 neighbourhood. A window straddling an ASIC-to-ASIC step that
    fits the other side, or a compromise plane through the step, therefore hardly counts: the
    averaged map stays as accurate as ASIC-aligned windows at steps (median error ~0.02, p99
    ~0.2 noise units on a module map with 10 % bad pixels) and is smoother elsewhere.

    Parameters
    ----------
    image : (rows, cols) array_like
        The map (e.g. a per-cell offset or noise map of one module); converted to float64.
        NaN/inf pixels are ignored.
    mask : (rows, cols) array_like of bool, optional
        True = ignore this pixel (known bad, e.g. a whole bad ASIC). Ignored pixels still receive
        a background value from their windows. The default is ``None`` (use all finite pixels).
    window : (int, int), optional
        Window size (rows, cols), clipped to the image. The default is (64, 64), one AGIPD ASIC.
    n_shifts : int, optional
        Grid offsets per axis (1 = one tiling, no averaging). The default is 2.
    model : {"plane", "constant"}, optional
        Per-window model. The default is "plane".
    likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual
        As in :func:`fit_value`.
    min_pixels : int, optional
        Windows with fewer usable pixels are skipped. The default is 16.
    n_threads : int, optional
        Threads over windows; the default ``None`` uses ``os.cpu_count()``.

    Returns
    -------
    Background
        ``mean`` and ``std`` maps (float64, image shape); NaN where no window had enough pixels.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> rows, cols = np.mgrid[:512, :128]
    >>> img = 1000 + 0.1 * rows + rng.normal(0, 10, (512, 128))
    >>> img[rng.random((512, 128)) < 0.1] = 5000  # 10 % hot pixels
    >>> bg = fit_background(img, window=(64, 64))
    >>> bool(np.nanmax(np.abs(bg.mean - (1000 + 0.1 * rows))) < 5)
    True
    """
    if model not in ("plane", "constant"):
        raise ValueError(f"model must be 'plane' or 'constant', got {model!r}")
    check_ratios(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual)
    img = np.asarray(image)
    if img.dtype.kind not in "biuf":
        raise TypeError(f"image must be a real numeric array, got dtype {img.dtype}")
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got {img.ndim} dimension(s)")
    img = np.ascontiguousarray(img, dtype=np.float64)
    m = None
    if mask is not None:
        mk = np.asarray(mask)
        if mk.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = ignore), got dtype {mk.dtype}")
        if mk.shape != img.shape:
            raise ValueError(f"mask shape {mk.shape} differs from image shape {img.shape}")
        m = np.ascontiguousarray(mk).view(np.uint8)
    if len(window) != 2 or any(int(w) != w or w < 1 for w in window):
        raise ValueError(f"window must be two positive integers, got {window!r}")
    if int(n_shifts) != n_shifts or n_shifts < 1:
        raise ValueError(f"n_shifts must be a positive integer, got {n_shifts!r}")
    if int(min_pixels) != min_pixels or min_pixels < 0:
        raise ValueError(f"min_pixels must be a non-negative integer, got {min_pixels!r}")
    mean, std = _core.fit_background(
        img,
        m,
        int(window[0]),
        int(window[1]),
        int(n_shifts),
        model == "plane",
        int(min_pixels),
        likely_ratio,
        certain_ratio,
        msse_lambda,
        int(opt_iters),
        min_residual,
        n_threads_or_all(n_threads),
    )
    return Background(mean, std)


def remove_islands(mask: ArrayLike, min_size: int, connectivity: int = 4) -> NDArray[np.bool_]:
    """Copy of a boolean mask without connected groups of True smaller than ``min_size`` pixels.

    Components are found iteratively (explicit stack), so any image size works.

    To turn small islands of *good* pixels enclosed by bad pixels into bad ones (RGFLib's
    ``removeIslands``), apply it to the good pixels and invert::

        bad = ~remove_islands(~bad, min_size=10)

    Parameters
    ----------
    mask : (rows, cols) array_like of bool
        The mask; True pixels form the islands.
    min_size : int
        Groups with fewer pixels than this are set to False.
    connectivity : {4, 8}, optional
        Neighbourhood: edges only (4) or edges and corners (8). The default is 4.

    Returns
    -------
    (rows, cols) ndarray of bool
        A new mask.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 6), bool)
    >>> m[0, 0] = True; m[2:4, 2:5] = True
    >>> remove_islands(m, min_size=2).astype(int)
    array([[0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [0, 0, 1, 1, 1, 0],
           [0, 0, 1, 1, 1, 0]])
    """
    mk = np.asarray(mask)
    if mk.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array, got dtype {mk.dtype}")
    if mk.ndim != 2:
        raise ValueError(f"mask must be 2-D, got {mk.ndim} dimension(s)")
    if int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer, got {min_size!r}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    out = _core.remove_islands(
        np.ascontiguousarray(mk).view(np.uint8), int(min_size), int(connectivity)
    )
    return out.view(np.bool_)
