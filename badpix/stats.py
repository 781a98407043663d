"""Per-cell, per-pixel dark statistics of one module and gain run.

:func:`dark_stats` fits every pixel's series over trains with the robust core
(:func:`badpix.robust.fit_value_tensor`): the FLkOS mean is the **offset**, the MSSE σ the
**noise**, and ``n_inliers / n_valid`` the **inlier fraction** (a Gaussian pixel keeps ~99.7 %
of its frames within 3 σ; a telegraph pixel loses the fraction it spends in its other state).
The classical median and standard deviation (pycalibration's offset and noise) come from the
same pass for comparison. For raw AGIPD the digital (gain) channel gets its robust mean
(``gain_level``) and σ (``gain_sigma``).

Missing frames never enter a fit. When every frame of the block is valid the whole block is
fitted in one call, read in place through its strides; otherwise each cell is fitted on its
valid frames only (a copy of that one cell's valid frames). A cell with fewer than
``min_valid_samples`` valid frames is not fitted: its statistics are NaN and ``n_valid`` holds
the count, which :func:`badpix.classify.apply_thresholds` turns into NO_DARK_DATA. A pixel with
fewer finite samples although its frames exist (proc NaN) is fitted by nobody either: NaN
statistics, flagged OFFSET_NOISE_EVAL_ERROR.

Examples
--------
>>> from types import SimpleNamespace
>>> rng = np.random.default_rng(0)
>>> analog = rng.normal(5000, 20, (40, 2, 4, 4)).astype(np.float32)
>>> block = SimpleNamespace(analog=analog, digital=None, valid=np.ones((40, 2), bool))
>>> st = dark_stats(block, StatsParams())
>>> st.offset.shape, bool(abs(st.offset.mean() - 5000) < 5), int(st.n_valid[0, 0, 0])
((2, 4, 4), True, 40)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from badpix import robust
from badpix.exceptions import ConfigError


class _Block(Protocol):  # the parts of read.DarkBlock used here
    analog: np.ndarray
    digital: np.ndarray | None
    valid: np.ndarray


@dataclass(frozen=True)
class StatsParams:
    """Parameters of the robust fit (the detector config's ``[stats]`` table).

    ``likely_ratio``, ``certain_ratio``, ``msse_lambda``, ``opt_iters``, ``min_residual`` are
    passed to :func:`badpix.robust.fit_value_tensor`; ``min_valid_samples`` (from the
    ``[thresholds]`` table) is the fewest valid frames a cell needs to be fitted.
    """

    likely_ratio: float = robust.LIKELY_RATIO
    certain_ratio: float = robust.CERTAIN_RATIO
    msse_lambda: float = robust.MSSE_LAMBDA
    opt_iters: int = robust.OPT_ITERS
    min_residual: float = 0.0
    min_valid_samples: int = 10

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None, **extra: Any) -> StatsParams:
        """Validate a ``[stats]`` table; :class:`ConfigError` names a bad key or value."""
        values = {**dict(table or {}), **extra}
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in values.items():
            if key not in names:
                raise ConfigError(f"unknown [stats] key {key!r}; known: {', '.join(sorted(names))}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"[stats] {key} = {value!r}: expected a number")
            if not math.isfinite(value):
                raise ConfigError(f"[stats] {key} = {value!r}: expected a finite number")
        params = cls(**values)
        lr, cr = params.likely_ratio, params.certain_ratio
        if not 0 <= cr < lr <= 1:
            raise ConfigError(
                f"[stats] need 0 <= certain_ratio < likely_ratio <= 1, got certain_ratio={cr}, "
                f"likely_ratio={lr}"
            )
        if params.msse_lambda < 2.5:
            raise ConfigError(f"[stats] msse_lambda = {params.msse_lambda}: below 2.5 σ collapses")
        if params.opt_iters < 1 or params.min_residual < 0 or params.min_valid_samples < 3:
            raise ConfigError("[stats] need opt_iters >= 1, min_residual >= 0, min_valid >= 3")
        return params

    def fit_kwargs(self) -> dict[str, Any]:
        return {
            "likely_ratio": self.likely_ratio,
            "certain_ratio": self.certain_ratio,
            "msse_lambda": self.msse_lambda,
            "opt_iters": int(self.opt_iters),
            "min_residual": self.min_residual,
        }


@dataclass
class DarkStats:
    """Statistics of one gain run; every array is ``(n_cells, ss, fs)``."""

    offset: np.ndarray
    noise: np.ndarray
    inlier_fraction: np.ndarray
    n_valid: np.ndarray
    offset_median: np.ndarray
    noise_std: np.ndarray
    gain_level: np.ndarray | None = None
    gain_sigma: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        """Name → array, without the absent gain statistics."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v is not None}


def stack_stats(per_gain: Sequence[DarkStats]) -> dict[str, np.ndarray]:
    """Stack the gain runs' statistics: name → ``(G, C, ss, fs)``."""
    dicts = [s.as_dict() for s in per_gain]
    names = [n for n in dicts[0] if all(n in d for d in dicts)]
    return {n: np.stack([d[n] for d in dicts]) for n in names}


def dark_stats(block: _Block, params: StatsParams, n_threads: int | None = None) -> DarkStats:
    """Robust and classical per-pixel statistics of one module's dark block.

    Parameters
    ----------
    block : DarkBlock
        ``analog`` (and ``digital``) of shape ``(n_trains, n_cells, ss, fs)``, ``valid``
        ``(n_trains, n_cells)``.
    params : StatsParams
    n_threads : int, optional
        Threads of the robust core (default: all cores).

    Returns
    -------
    DarkStats
    """
    analog, valid = block.analog, np.asarray(block.valid, bool)
    n_trains, n_cells = analog.shape[:2]
    if valid.shape != (n_trains, n_cells):
        raise ValueError(f"valid has shape {valid.shape}, expected {(n_trains, n_cells)}")
    shape = (n_cells, *analog.shape[2:])
    out = {
        name: np.full(shape, np.nan, np.float32)
        for name in ("offset", "noise", "inlier_fraction", "offset_median", "noise_std")
    }
    n_valid = np.zeros(shape, np.int32)
    digital = block.digital
    gain = (np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32))
    kw = params.fit_kwargs()

    def fit_into(sel: slice | int, a: np.ndarray, d: np.ndarray | None) -> None:
        fit = robust.fit_value_tensor(a, axis=0, n_threads=n_threads, return_classical=True, **kw)
        n_in = fit.n_inliers
        per_cell = fit.std.reshape(fit.std.shape[0] if fit.std.ndim == 3 else 1, -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells
            ref = np.nanmedian(per_cell, axis=1).reshape(-1, *([1] * (fit.std.ndim - 1)))
        if fit.std.ndim < 3:
            ref = ref.reshape(())
        _refine(a, fit.mean, fit.std, n_in, fit.n_valid, fit.sample_std, params.msse_lambda, ref)
        out["offset"][sel] = fit.mean
        out["noise"][sel] = fit.std
        out["offset_median"][sel] = fit.median
        out["noise_std"][sel] = fit.sample_std
        n_valid[sel] = fit.n_valid
        with np.errstate(invalid="ignore", divide="ignore"):
            out["inlier_fraction"][sel] = n_in / fit.n_valid
        if d is not None:
            dfit = robust.fit_value_tensor(d, axis=0, n_threads=n_threads, **kw)
            gain[0][sel], gain[1][sel] = dfit.mean, dfit.std

    frames_per_cell = valid.sum(axis=0)
    if valid.all() and n_trains >= params.min_valid_samples:
        fit_into(slice(None), analog, digital)  # the common case: no copy at all
    else:
        for c in range(n_cells):
            if frames_per_cell[c] < params.min_valid_samples:
                n_valid[c] = frames_per_cell[c]  # too few frames: not fitted
                continue
            if frames_per_cell[c] == n_trains:
                fit_into(c, analog[:, c], None if digital is None else digital[:, c])
            else:  # only this cell's valid frames, never the invalid fill values
                keep = valid[:, c]
                fit_into(c, analog[keep, c], None if digital is None else digital[keep, c])

    # pixels with too few finite samples (proc NaN) are not evaluated
    few = n_valid < params.min_valid_samples
    if few.any():
        for arr in (*out.values(), *gain):
            arr[few] = np.nan
    return DarkStats(
        n_valid=n_valid,
        gain_level=gain[0] if digital is not None else None,
        gain_sigma=gain[1] if digital is not None else None,
        **out,
    )


_REFINE_INLIERS = 0.95  # re-examine pixels that kept fewer inliers than this ...
_REFINE_SIGMA = 0.75  # ... or whose robust sigma is this far below the sample std
_REFINE_SIGMA_HIGH = 1.1  # ... or above it (a location stuck on a chance cluster inflates σ)
_ROUNDS = 30
_EM_ROUNDS = 15
_EM_INLIERS = 0.9  # two-state test only below this inlier fraction (else: one Gaussian)
_SEPARATION = 3.0  # two states of a telegraph pixel: |m1 - m2| / (s1 + s2) at least this


def _refine(
    x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    n_inliers: np.ndarray,
    n_valid: np.ndarray,
    sample_std: np.ndarray,
    lam: float,
    sigma_ref: np.ndarray | None = None,
) -> None:
    """Re-examine suspicious robust fits: one Gaussian, or really two populations? (in place)

    With few samples (n ~ 20-60) the MSSE scale sometimes locks onto a chance cluster of about
    ``likely_ratio * n`` samples of a plain Gaussian: σ a few times too small and half of the
    frames "outliers"; or the location stays on such a cluster while all frames are inliers,
    and σ, taken around it, exceeds the sample standard deviation (up to 1.4x at n = 24). A
    telegraph pixel gives the first picture for a real reason. For the few
    pixels that look like either, compare by BIC a two-Gaussian mixture (EM started from the
    robust fit and its outliers) with a single Gaussian. Only when the mixture wins, with a minor
    component of at least 3 frames lying at least 3 (σ1 + σ2) from the major one, is the robust
    fit kept (a steady fraction of frames off the Gaussian). The components' σ are floored at
    0.7 ``sigma_ref`` (the typical noise of the block's pixels), because a chance cluster of a
    few samples has a tiny σ of its own. Otherwise the fit is replaced by the single Gaussian of the
    λσ-clipped samples (iterated to its fixed point from the median and the sample std, so a
    cosmic-ray frame stays excluded).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = n_inliers / np.maximum(n_valid, 1)
        odd = (frac < _REFINE_INLIERS) | (std < _REFINE_SIGMA * sample_std)
        odd = np.isfinite(mean) & (odd | (std > _REFINE_SIGMA_HIGH * sample_std))
    idx = np.flatnonzero(odd)
    if idx.size == 0:
        return
    z = x.reshape(x.shape[0], -1)[:, idx].astype(np.float64)  # (n, k): the few odd pixels
    ok = np.isfinite(z)
    n = ok.sum(axis=0).astype(np.float64)
    z = np.where(ok, z, np.nanmedian(np.where(ok, z, np.nan), axis=0))  # NaN: weight 0 below
    wt = ok.astype(np.float64)
    mu_r, sig_r = mean.reshape(-1)[idx].astype(np.float64), std.reshape(-1)[idx].astype(np.float64)

    # single Gaussian: λσ clipping to its fixed point from the median and the sample std
    mu_w, sig_w = np.median(z, axis=0), np.maximum(sample_std.reshape(-1)[idx], 1e-3)
    consistency = truncation_factor(lam)
    for _ in range(_ROUNDS):
        w = wt * (np.abs(z - mu_w) <= lam * sig_w)
        prev = sig_w
        mu_w, sig_w = _moments(z, w, mu_w, sig_w)
        sig_w = np.maximum(sig_w / consistency, 1e-3)
        if np.allclose(sig_w, prev, rtol=1e-5):
            break
    in_w = wt * (np.abs(z - mu_w) <= lam * sig_w)

    # two Gaussians by EM, only where the robust fit reported outliers (few pixels)
    keep = np.zeros(idx.size, bool)
    em = np.flatnonzero(frac.reshape(-1)[idx] < _EM_INLIERS)
    if em.size:
        ref = 0.0 if sigma_ref is None else np.broadcast_to(sigma_ref, mean.shape).reshape(-1)
        keep[em] = _two_states(
            z[:, em],
            wt[:, em],
            n[em],
            mu_r[em],
            sig_r[em],
            mu_w[em],
            sig_w[em],
            lam,
            0.7 * (ref if np.isscalar(ref) else ref[idx[em]]),
        )
    new_mu, new_sig = np.where(keep, mu_r, mu_w), np.where(keep, sig_r, sig_w)
    new_in = np.where(keep, (wt * (np.abs(z - mu_r) <= lam * sig_r)).sum(0), in_w.sum(axis=0))
    np.put(mean, idx, new_mu)
    np.put(std, idx, new_sig)
    np.put(n_inliers, idx, new_in)


def _two_states(
    z: np.ndarray,
    wt: np.ndarray,
    n: np.ndarray,
    mu_r: np.ndarray,
    sig_r: np.ndarray,
    mu_w: np.ndarray,
    sig_w: np.ndarray,
    lam: float,
    ref: np.ndarray | float,
) -> np.ndarray:
    """True where a two-Gaussian mixture beats one Gaussian (BIC) and the robust fit is its
    major component; EM starts from the robust fit (major) and its outliers (minor)."""
    floor = np.maximum(0.05 * sig_w, 1e-3)
    major = wt * (np.abs(z - mu_r) <= lam * np.maximum(sig_r, floor))
    m1, s1 = _moments(z, major, mu_r, sig_r)
    m2, s2 = _moments(z, wt - major, mu_w, sig_w)
    p1 = major.sum(axis=0) / np.maximum(n, 1)
    for _ in range(_EM_ROUNDS):
        a = p1 * _pdf(z, m1, np.maximum(s1, floor))
        b = (1 - p1) * _pdf(z, m2, np.maximum(s2, floor))
        r = wt * a / np.maximum(a + b, 1e-300)
        p1 = np.clip(r.sum(axis=0) / np.maximum(n, 1), 1e-6, 1 - 1e-6)
        m1, s1 = _moments(z, r, m1, s1)
        m2, s2 = _moments(z, wt - r, m2, s2)
    s1, s2 = np.maximum(s1, floor), np.maximum(s2, floor)
    ll_mix = (wt * np.log(p1 * _pdf(z, m1, s1) + (1 - p1) * _pdf(z, m2, s2) + 1e-300)).sum(0)
    mu_all, sd_all = _moments(z, wt, mu_w, sig_w)
    ll_one = (wt * np.log(_pdf(z, mu_all, np.maximum(sd_all, 1e-3)) + 1e-300)).sum(axis=0)
    minor = np.minimum(p1, 1 - p1) * n
    separation = np.abs(m1 - m2) / (np.maximum(s1, ref) + np.maximum(s2, ref))
    two = (2 * (ll_mix - ll_one) > 3 * np.log(np.maximum(n, 2))) & (minor >= 3)
    two &= separation >= _SEPARATION
    return two & (np.abs(mu_r - np.where(p1 >= 0.5, m1, m2)) < 3 * np.maximum(sig_r, floor))


def _moments(
    z: np.ndarray, w: np.ndarray, mu0: np.ndarray, sig0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and std along axis 0; the previous values where the weights vanish."""
    sw = w.sum(axis=0)
    mu = (w * z).sum(axis=0) / np.maximum(sw, 1e-12)
    var = (w * (z - mu) ** 2).sum(axis=0) / np.maximum(sw - 1, 1e-12)
    good = sw >= 2
    return np.where(good, mu, mu0), np.where(good, np.sqrt(var), sig0)


def _pdf(z: np.ndarray, mu: np.ndarray, sig: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((z - mu) / sig) ** 2) / (sig * math.sqrt(2 * math.pi))


def truncation_factor(lam: float) -> float:
    """σ of a standard Gaussian truncated at ±λ (0.9866 for λ = 3)."""
    phi = math.exp(-0.5 * lam * lam) / math.sqrt(2 * math.pi)
    big_phi = math.erf(lam / math.sqrt(2))
    return math.sqrt(1 - 2 * lam * phi / big_phi)
