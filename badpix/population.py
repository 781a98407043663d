"""Scores: how far each pixel is from the normal population of its ASIC and module.

The normal population is not flat: offsets step from ASIC to ASIC, drift across an ASIC and over
memory cells. So every statistic is judged per (gain stage, memory cell, ASIC) against a robust
**plane** fitted over the ASIC's pixels (start: the core's FLkOS/MSSE fit of the ASIC's values;
then a few rounds of least squares on the pixels within 3 σ of the plane, σ corrected for the
truncation). ASICs are then compared with each other within the module and cell.

Score definitions (all float32, shape ``(G, C, ss, fs)``, NaN where undefined)::

    offset      (x_p - plane_B) / (sigma_p + sigma_B),  sigma_p = noise_p / sqrt(n_valid_p)
    noise       same on y = noise**(2/3) (Wilson-Hilferty), sigma_p = plane_B sqrt(2 / (9 k_p)),
                k_p = (n_valid_p - 1) / 1.10**2 (effective degrees of freedom of the MSSE sigma)
    inlier      (f_p - mu_B) / (sigma_p + sigma_B)  on f = 1 - inlier fraction,
                sigma_p = sqrt(max(mu_B, 1/n) (1 - mu_B) / n)   (binomial)
    gain        min over neighbouring stages s' of |g_s - g_s'| / (sigma_s + sigma_s')  (raw AGIPD)
    asic_offset (L_a - median_a L) / (1.4826 MAD_a L + sigma_B,a), L_a = the ASIC plane's level
    asic_noise  log noise level of the ASIC - median over the module's ASICs (a log ratio);
                -inf when most of the ASIC's pixels have zero noise (dead)

The noise score is a test of "this pixel has its population's noise": under it, k s^2 / sigma^2
is chi-square with k degrees of freedom, and the cube root of s^2 (Wilson-Hilferty) is close to
Gaussian in *both* tails with relative sd sqrt(2 / (9 k)), taken at the population's level
(the null), not at the pixel's own. On log(noise) (before) the right tail was too short (a 3x
noisy pixel at n = 24 scored ~4.5, its chi-square z is ~10) and the left tail too long (a good
pixel whose 21 samples happen to have s = sigma / 3, p ~ 1e-7, scored -5.5: the false
positives). k: the MSSE sigma of n Gaussian samples has sd(log sigma) = 1.07-1.11 x
1 / sqrt(2 (n - 1)) for n = 10-256 (the sample std's: 1.00-1.06), measured with
``stats.dark_stats``; 1.10 is used. With the sample std's 1 / sqrt(2 (n - 1)) the population's
sigma_B absorbed the excess (0.107 instead of the true 0.08 in log units at n = 24).

The scale-appropriate form for the offset: sigma_p is the pixel's *standard error*
(noise / sqrt(n)), not its noise. Both terms of the denominator are then uncertainties of the same
quantity, the pixel's mean level: sigma_B is the population's intrinsic spread of levels and
sigma_p the pixel's measurement error. With the pixel noise itself a hot pixel that is also
noisy would hide behind its own noise, and the score would no longer measure separability of
levels. sigma_B is the observed spread around the plane with the pixels' mean squared
measurement error removed in quadrature, so measurement noise is not counted twice.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> shape = (1, 1, 16, 16)
>>> stats = {"offset": rng.normal(100, 2, shape).astype(np.float32),
...          "noise": np.full(shape, 4, np.float32), "n_valid": np.full(shape, 64, np.int32),
...          "inlier_fraction": np.ones(shape, np.float32)}
>>> stats["offset"][0, 0, 3, 3] += 40
>>> sc = compute_scores(stats, asic_shape=(8, 8))
>>> bool(sc["offset"][0, 0, 3, 3] > 10), bool(np.abs(np.delete(sc["offset"].ravel(), 51)).max() < 5)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from badpix.robust import fit_value_tensor
from badpix.stats import truncation_factor

SCORE_NAMES = ("offset", "noise", "inlier", "gain", "asic_offset", "asic_noise")
_CLIP = 3.0
_CLIP_CONSISTENCY = truncation_factor(_CLIP)  # sigma of N(0,1) truncated at +-3 sigma
_PLANE_ROUNDS = 3
#: sd of log(MSSE sigma) of n Gaussian samples over the sample std's 1/sqrt(2 (n - 1)):
#: 1.07-1.11 for n = 10-256 (measured; module docstring)
_MSSE_LOG_SD = 1.10
_WH_POWER = 2.0 / 3.0  # y = noise**(2/3) = (s^2)**(1/3), the Wilson-Hilferty transform


def compute_scores(
    stats: Mapping[str, np.ndarray],
    asic_shape: tuple[int, int],
    *,
    gain_check: bool = True,
    n_threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Score every pixel of one unit against its population.

    Parameters
    ----------
    stats : mapping of name → (G, C, ss, fs) array
        ``offset``, ``noise``, ``n_valid``, ``inlier_fraction``; optional ``gain_level`` and
        ``gain_sigma`` (digital channel) for the ``gain`` score.
    asic_shape : (int, int)
        ASIC size (ss, fs); the module must be a whole grid of ASICs.
    gain_check : bool, optional
        Compute the ``gain`` score (adaptive-gain raw data). The default is True.
    n_threads : int, optional
        Threads of the robust core.

    Returns
    -------
    dict of str → (G, C, ss, fs) float32
        The scores in :data:`SCORE_NAMES` that apply.
    """
    offset = np.asarray(stats["offset"], np.float32)
    noise = np.asarray(stats["noise"], np.float32)
    n = np.asarray(stats["n_valid"], np.float32)
    tiler = _Tiler(offset.shape, asic_shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_p = noise / np.sqrt(n)
        # zero noise (stuck: DATA_STD_IS_ZERO) has no noise score, as on the log scale before
        y_noise = np.where(noise > 0, noise**_WH_POWER, np.nan).astype(np.float32)
        y_rel = _noise_rel_error(n)

        off_fit = _plane_population(tiler, offset, sigma_p, n_threads)
        noise_fit = _plane_population(tiler, y_noise, y_rel, n_threads, relative=True)
        scores = {
            "offset": off_fit.score(offset, sigma_p),
            "noise": noise_fit.score(y_noise, y_rel),
            "inlier": _inlier_score(tiler, stats["inlier_fraction"], n, n_threads),
        }
        if gain_check and stats.get("gain_level") is not None and offset.shape[0] > 1:
            scores["gain"] = gain_separation(stats["gain_level"], stats["gain_sigma"])
        scores["asic_offset"], scores["asic_noise"] = _asic_scores(tiler, off_fit, noise_fit, noise)
    return {k: v.astype(np.float32, copy=False) for k, v in scores.items()}


def _noise_rel_error(n: np.ndarray) -> np.ndarray:
    """Relative sd of noise**(2/3) for an MSSE sigma of ``n`` samples: sqrt(2 / (9 k))."""
    k = np.maximum(n - 1, 1) / _MSSE_LOG_SD**2
    return np.sqrt(2.0 / (9.0 * k)).astype(np.float32)


def gain_separation(level: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Separation of each stage's digital level from its neighbours, in units of σ_s + σ_s'.

    >>> lv = np.array([[100.0], [110.0], [300.0]]); sg = np.ones((3, 1))
    >>> gain_separation(lv, sg).ravel().tolist()
    [5.0, 5.0, 95.0]
    """
    level = np.asarray(level, np.float32)
    sigma = np.asarray(sigma, np.float32)
    out = np.full(level.shape, np.inf, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in range(level.shape[0] - 1):
            diff = np.abs(level[s] - level[s + 1])
            sep = diff / (sigma[s] + sigma[s + 1])
            sep = np.where(diff == 0, 0.0, sep)  # equal levels are never separable (even σ = 0)
            np.minimum(out[s], sep, out=out[s])
            np.minimum(out[s + 1], sep, out=out[s + 1])
    out[~(np.isfinite(level) & np.isfinite(sigma))] = np.nan
    return out


class _Tiler:
    """Reshape (G, C, ss, fs) ↔ (P, K): P pixels of an ASIC along axis 0, K = G·C·ASICs tiles."""

    def __init__(self, shape: tuple[int, ...], asic_shape: tuple[int, int]) -> None:
        g, c, ss, fs = shape
        ar, ac = asic_shape
        if ss % ar or fs % ac:
            raise ValueError(f"module shape {(ss, fs)} is not a grid of ASICs {asic_shape}")
        self.shape = shape
        self.grid = (ss // ar, fs // ac)
        self.asic_shape = asic_shape
        self.n_tiles = g * c * self.grid[0] * self.grid[1]
        # pixel coordinates inside an ASIC, centred: the plane's constant is the ASIC's level
        u, v = np.meshgrid(
            np.arange(ar) - (ar - 1) / 2, np.arange(ac) - (ac - 1) / 2, indexing="ij"
        )
        self.u = (u.ravel() / ar).astype(np.float32)[:, None]
        self.v = (v.ravel() / ac).astype(np.float32)[:, None]

    def tiles(self, x: np.ndarray) -> np.ndarray:
        g, c = self.shape[:2]
        (nr, nc), (ar, ac) = self.grid, self.asic_shape
        t = np.asarray(x, np.float32).reshape(g, c, nr, ar, nc, ac).transpose(3, 5, 0, 1, 2, 4)
        return np.ascontiguousarray(t).reshape(ar * ac, self.n_tiles)

    def untile(self, t: np.ndarray) -> np.ndarray:
        g, c = self.shape[:2]
        (nr, nc), (ar, ac) = self.grid, self.asic_shape
        x = np.broadcast_to(t, (ar * ac, self.n_tiles)).reshape(ar, ac, g, c, nr, nc)
        return x.transpose(2, 3, 4, 0, 5, 1).reshape(self.shape)

    def per_asic(self, k: np.ndarray) -> np.ndarray:
        """(K,) tile values → (G, C, n_asics)."""
        g, c = self.shape[:2]
        return k.reshape(g, c, -1)


class _PlaneFit:
    def __init__(
        self, tiler: _Tiler, coef: np.ndarray, sigma_b: np.ndarray, relative: bool = False
    ) -> None:
        self.tiler, self.coef, self.sigma_b, self.relative = tiler, coef, sigma_b, relative

    @property
    def level(self) -> np.ndarray:
        return self.coef[0]

    def plane(self) -> np.ndarray:
        t = self.tiler
        return self.coef[0] + self.coef[1] * t.u + self.coef[2] * t.v

    def score(self, x: np.ndarray, sigma_p: np.ndarray) -> np.ndarray:
        t = self.tiler
        plane = self.plane()
        sp = t.tiles(sigma_p) * (np.abs(plane) if self.relative else 1)
        return t.untile((t.tiles(x) - plane) / (sp + self.sigma_b))


def _plane_population(
    tiler: _Tiler,
    x: np.ndarray,
    sigma_p: np.ndarray,
    n_threads: int | None,
    *,
    relative: bool = False,
) -> _PlaneFit:
    """Robust plane per tile; sigma_B = intrinsic spread (measurement error removed).

    ``relative``: ``sigma_p`` is relative to the plane's value at the pixel (the population's
    level: the error under the null hypothesis), not absolute.
    """
    z = tiler.tiles(x)
    sp = tiler.tiles(sigma_p)
    start = fit_value_tensor(z, axis=0, n_threads=n_threads)
    # fit in float32 around the robust start level (values then are residual-sized)
    base = np.where(np.isfinite(start.mean), start.mean, 0).astype(np.float32)
    finite = np.isfinite(z)
    z0 = np.where(finite, z - base, 0).astype(np.float32)
    design = np.concatenate([np.ones_like(tiler.u), tiler.u, tiler.v], axis=1)  # (P, 3)
    outer = (design[:, :, None] * design[:, None, :]).reshape(-1, 9)  # (P, 9)
    coef = np.zeros((3, tiler.n_tiles), np.float32)
    sigma = start.std.astype(np.float32)
    for _ in range(_PLANE_ROUNDS):
        w = finite & (np.abs(z0 - design @ coef) <= _CLIP * sigma)
        wf = w.astype(np.float32)
        # weighted least squares, normal equations batched over tiles (BLAS)
        ata = (wf.T @ outer).reshape(-1, 3, 3).astype(np.float64)
        atb = ((wf * z0).T @ design).astype(np.float64)
        ok = wf.sum(axis=0) >= 10
        ata[~ok] = np.eye(3)
        coef = np.linalg.solve(ata, atb[..., None])[..., 0].T.astype(np.float32)
        resid = z0 - design @ coef
        w = finite & (np.abs(resid) <= _CLIP * sigma)
        nw = w.sum(axis=0)
        ss_in = np.einsum("pk,pk->k", np.where(w, resid, 0), resid, dtype=np.float64)
        sigma = (np.sqrt(ss_in / np.maximum(nw - 3, 1)) / _CLIP_CONSISTENCY).astype(np.float32)
        sigma[(nw < 10) | ~ok] = np.nan
    coef[0] += base
    coef[:, np.isnan(sigma)] = np.nan
    if relative:
        sp = sp * np.abs(design @ coef)
    ms_err = np.where(w, sp, 0).astype(np.float64)
    ms_err = np.einsum("pk,pk->k", ms_err, ms_err) / np.maximum(nw, 1)
    sigma_b = np.sqrt(np.maximum(sigma.astype(np.float64) ** 2 - ms_err, 0))
    return _PlaneFit(tiler, coef, sigma_b.astype(np.float32), relative)


def _inlier_score(
    tiler: _Tiler, inlier_fraction: np.ndarray, n: np.ndarray, n_threads: int | None
) -> np.ndarray:
    f = tiler.tiles(1.0 - np.asarray(inlier_fraction, np.float32))
    nt = tiler.tiles(n)
    fit = fit_value_tensor(f, axis=0, n_threads=n_threads)
    mu = np.clip(fit.mean, 0, 1)
    sigma_p = np.sqrt(np.maximum(mu, 1.0 / np.maximum(nt, 1)) * (1 - mu) / np.maximum(nt, 1))
    binom_var = np.nanmean(np.where(np.isfinite(f), sigma_p**2, np.nan), axis=0)
    sigma_b = np.sqrt(np.maximum(fit.std**2 - binom_var, 0))
    return tiler.untile((f - mu) / (sigma_p + sigma_b))


def _asic_scores(
    tiler: _Tiler, off: _PlaneFit, noise_fit: _PlaneFit, noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Compare each ASIC's level and noise with the module's other ASICs (same gain, cell)."""
    level = tiler.per_asic(off.level)
    med = np.nanmedian(level, axis=-1, keepdims=True)
    spread = 1.4826 * np.nanmedian(np.abs(level - med), axis=-1, keepdims=True)
    asic_off = (level - med) / (spread + tiler.per_asic(off.sigma_b))

    with np.errstate(divide="ignore"):  # the plane is on noise**(2/3): back to log noise
        log_level = np.log(tiler.per_asic(noise_fit.level)) / _WH_POWER
    asic_noise = log_level - np.nanmedian(log_level, axis=-1, keepdims=True)
    dead = tiler.per_asic((tiler.tiles(noise) <= 0).mean(axis=0)) > 0.5
    asic_noise[dead] = -np.inf
    return (
        tiler.untile(asic_off.reshape(1, -1)),
        tiler.untile(asic_noise.reshape(1, -1)),
    )
