"""Bad-pixel bits, thresholds, and cutting scores into bits.

:class:`BadPixel` holds EuXFEL's ``BadPixels`` values (0 = good) plus two badpix bits.
:func:`apply_thresholds` is the one place where scores (see :mod:`badpix.population`) and
statistics (see :mod:`badpix.stats`) become bits; ``badpix make-mask`` and ``badpix rethreshold``
both call it, so a mask re-cut from its stored scores equals a mask made from the runs with the
same thresholds. :class:`CellPolicy` reduces per-cell masks to the static mask.

Examples
--------
>>> BadPixel(3)
<BadPixel.OFFSET_OUT_OF_THRESHOLD|NOISE_OUT_OF_THRESHOLD: 3>
>>> t = Thresholds.from_mapping({"offset_snr": 6}, {"noise_snr": 4.5})
>>> (t.offset_snr, t.noise_snr)
(6.0, 4.5)
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from badpix.exceptions import ConfigError


class BadPixel(enum.IntFlag):
    """Reasons a pixel is bad; 0 = good. Values of EuXFEL's ``BadPixels`` plus badpix bits 23-24."""

    OFFSET_OUT_OF_THRESHOLD = 1 << 0
    NOISE_OUT_OF_THRESHOLD = 1 << 1
    OFFSET_NOISE_EVAL_ERROR = 1 << 2
    NO_DARK_DATA = 1 << 3
    CI_GAIN_OF_OF_THRESHOLD = 1 << 4
    CI_LINEAR_DEVIATION = 1 << 5
    CI_EVAL_ERROR = 1 << 6
    FF_GAIN_EVAL_ERROR = 1 << 7
    FF_GAIN_DEVIATION = 1 << 8
    FF_NO_ENTRIES = 1 << 9
    CI2_EVAL_ERROR = 1 << 10
    VALUE_IS_NAN = 1 << 11
    VALUE_OUT_OF_RANGE = 1 << 12
    GAIN_THRESHOLDING_ERROR = 1 << 13
    DATA_STD_IS_ZERO = 1 << 14
    ASIC_STD_BELOW_NOISE = 1 << 15
    INTERPOLATED = 1 << 16
    NOISY_ADC = 1 << 17
    OVERSCAN = 1 << 18
    NON_SENSITIVE = 1 << 19
    NON_LIN_RESPONSE_REGION = 1 << 20
    WRONG_GAIN_VALUE = 1 << 21
    NON_STANDARD_SIZE = 1 << 22
    #: badpix: a steady fraction of frames lies off the pixel's Gaussian (telegraph, Poisson-like).
    NON_GAUSSIAN = 1 << 23
    #: badpix: the whole ASIC is dead or abnormal; set with the reason bit (offset or noise).
    BAD_ASIC = 1 << 24


#: One line per bit that badpix sets, stored in the mask file's ``/bit_names``.
BIT_DESCRIPTIONS = {
    "OFFSET_OUT_OF_THRESHOLD": "offset far from its ASIC's local population (or hard limits)",
    "NOISE_OUT_OF_THRESHOLD": "noise far from its ASIC's population (or hard limits)",
    "OFFSET_NOISE_EVAL_ERROR": "robust fit gave no finite offset or noise",
    "NO_DARK_DATA": "module not in the runs, or fewer than min_valid_samples valid frames",
    "GAIN_THRESHOLDING_ERROR": "digital levels of neighbouring gain stages not separable",
    "DATA_STD_IS_ZERO": "noise is zero (stuck value)",
    "NON_STANDARD_SIZE": "double-size pixel at an ASIC seam (only with --asic-edges)",
    "NON_GAUSSIAN": "too many frames off the pixel's Gaussian (telegraph or Poisson-like noise)",
    "BAD_ASIC": "whole ASIC abnormal compared with the module's other ASICs",
}


@dataclass(frozen=True)
class Thresholds:
    """Cuts applied to the scores; loaded from the detector config ``[thresholds]`` table.

    Attributes
    ----------
    offset_snr, noise_snr : float
        Flag a pixel whose offset (noise) score exceeds this in magnitude. Default 5.
    inlier_snr : float
        NON_GAUSSIAN needs an inlier score above this (default 5) ...
    inlier_fraction_min : float
        ... and an inlier fraction below this (default 0.9: at least 10 % of the frames off the
        Gaussian), so a pixel with a few cosmic-ray frames is never flagged.
    gain_separation_sigma : float
        GAIN_THRESHOLDING_ERROR below this separation of neighbouring stages (default 5; 0 = off).
    asic_noise_ratio : float
        BAD_ASIC when an ASIC's noise level differs from the module's ASIC median by more than
        this factor (default 1.5; 0 = off).
    asic_offset_snr : float
        BAD_ASIC when an ASIC's offset level score exceeds this (default 10; 0 = off).
    min_valid_samples : int
        Fewer valid frames → NO_DARK_DATA, no fit (default 16).
    offset_hard, noise_hard : dict of gain stage → (low, high)
        Optional absolute limits per gain stage for raw data (pycalibration style); empty =
        none. In a config table they are written ``offset_hard_<stage> = [low, high]``.
    asic_edges : bool
        Set NON_STANDARD_SIZE on the double-size pixels at ASIC seams (default False).
    """

    offset_snr: float = 5.0
    noise_snr: float = 5.0
    inlier_snr: float = 5.0
    inlier_fraction_min: float = 0.9
    gain_separation_sigma: float = 5.0
    asic_noise_ratio: float = 1.5
    asic_offset_snr: float = 10.0
    min_valid_samples: int = 16
    offset_hard: dict[str, tuple[float, float]] = field(default_factory=dict)
    noise_hard: dict[str, tuple[float, float]] = field(default_factory=dict)
    asic_edges: bool = False

    @classmethod
    def from_mapping(
        cls, config: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Thresholds:
        """Build from a config table, then ``overrides`` (CLI options; ``None`` values skipped).

        Raises :class:`~badpix.exceptions.ConfigError` naming an unknown key or a bad value.
        """
        merged = dict(config or {})
        merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {"offset_hard": {}, "noise_hard": {}}
        for key, raw in merged.items():
            hard = re.fullmatch(r"(offset|noise)_hard_(\w+)", key)
            if hard:  # offset_hard_high = [lo, hi]
                pair = _convert(f"{hard[1]}_hard", {hard[2]: raw})
                values[f"{hard[1]}_hard"].update(pair)
            elif key in names:
                converted = _convert(key, raw)
                if key in ("offset_hard", "noise_hard"):
                    values[key].update(converted)
                else:
                    values[key] = converted
            else:
                known = ", ".join(sorted(names - {"offset_hard", "noise_hard"}))
                raise ConfigError(
                    f"unknown threshold {key!r}; known: {known}, offset_hard_<stage>, "
                    "noise_hard_<stage>"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (stored in the mask file's provenance)."""
        d = dataclasses.asdict(self)
        for key in ("offset_hard", "noise_hard"):
            for gain, pair in d.pop(key).items():
                d[f"{key}_{gain}"] = list(pair)
        return d


def _convert(key: str, raw: Any) -> Any:
    def fail(why: str) -> ConfigError:
        return ConfigError(f"threshold {key} = {raw!r}: {why}")

    if key == "asic_edges":
        if not isinstance(raw, bool):
            raise fail("expected true or false")
        return raw
    if key in ("offset_hard", "noise_hard"):
        if not isinstance(raw, Mapping):
            raise fail("expected a table of gain stage = [low, high]")
        out = {}
        for gain, pair in raw.items():
            try:
                lo, hi = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise fail(f"{gain}: expected [low, high]") from None
            if not lo < hi:
                raise fail(f"{gain}: low must be below high")
            out[str(gain)] = (lo, hi)
        return out
    if isinstance(raw, bool):
        raise fail("expected a number")
    try:
        value = int(raw) if key == "min_valid_samples" else float(raw)
    except (TypeError, ValueError):
        raise fail("expected a number") from None
    if key == "min_valid_samples" and value < 2:
        raise fail("need at least 2")
    if key == "inlier_fraction_min" and not 0 <= value <= 1:
        raise fail("expected a fraction between 0 and 1")
    if key == "asic_noise_ratio" and value != 0 and value <= 1:
        raise fail("expected a ratio above 1, or 0 to switch it off")
    if not math.isfinite(value) or value < 0:
        raise fail("expected a finite number >= 0")
    return value


# ------------------------------------------------------------------------------ bits from scores
def apply_thresholds(
    scores: Mapping[str, np.ndarray],
    stats: Mapping[str, np.ndarray],
    thresholds: Thresholds,
    *,
    gain_stages: Sequence[str] = (),
    asic_shape: tuple[int, int] | None = None,
    raw: bool = True,
) -> np.ndarray:
    """Cut scores and statistics into bits. Pure: no I/O, no fitting.

    Parameters
    ----------
    scores : mapping of name → (G, C, ss, fs) float32
        ``offset``, ``noise``, ``inlier``, ``gain``, ``asic_offset``, ``asic_noise`` (see
        :func:`badpix.population.compute_scores`); missing names are skipped.
    stats : mapping of name → (G, C, ss, fs)
        ``offset``, ``noise``, ``noise_std``, ``inlier_fraction``, ``n_valid``.
    thresholds : Thresholds
    gain_stages : sequence of str
        Names of the G stages (for the hard limits).
    asic_shape : (int, int), optional
        ASIC size in pixels (for ``asic_edges``).
    raw : bool, optional
        Raw ADU data: the hard limits apply (they mean nothing for corrected data).

    Too few valid samples is NO_DARK_DATA when the whole cell lacks frames (missing trains or
    cells) and OFFSET_NOISE_EVAL_ERROR when the frames exist but the pixel's values do not
    (proc NaN) or the fit failed.

    Returns
    -------
    bits : (G, C, ss, fs) uint32

    Examples
    --------
    >>> z = np.zeros((1, 1, 1, 2), np.float32)
    >>> sc = {"offset": np.array([[[[0.0, 9.0]]]], np.float32)}
    >>> st = {"offset": z, "noise": z + 1, "noise_std": z + 1, "n_valid": z + 100}
    >>> apply_thresholds(sc, st, Thresholds()).ravel().tolist()
    [0, 1]
    """
    t = thresholds
    offset, noise = stats["offset"], stats["noise"]
    bits = np.zeros(offset.shape, np.uint32)

    def flag(cond: np.ndarray, bit: BadPixel) -> None:
        bits[np.broadcast_to(cond, bits.shape)] |= np.uint32(bit)

    with np.errstate(invalid="ignore"):
        n_valid = np.asarray(stats["n_valid"])
        too_few = n_valid < t.min_valid_samples
        cell_frames = n_valid.max(axis=(-2, -1), keepdims=True)  # frames the cell had
        no_data = too_few & (cell_frames < t.min_valid_samples)
        flag(no_data, BadPixel.NO_DARK_DATA)
        finite = np.isfinite(offset) & np.isfinite(noise)
        flag(~no_data & (too_few | ~finite), BadPixel.OFFSET_NOISE_EVAL_ERROR)
        flag((noise <= 0) | (stats.get("noise_std", noise) <= 0), BadPixel.DATA_STD_IS_ZERO)
        for name, cut, bit in (
            ("offset", t.offset_snr, BadPixel.OFFSET_OUT_OF_THRESHOLD),
            ("noise", t.noise_snr, BadPixel.NOISE_OUT_OF_THRESHOLD),
        ):
            if name in scores and cut > 0:
                flag(np.abs(scores[name]) > cut, bit)
        for hard, values, bit in (
            (t.offset_hard, offset, BadPixel.OFFSET_OUT_OF_THRESHOLD),
            (t.noise_hard, noise, BadPixel.NOISE_OUT_OF_THRESHOLD),
        ):
            for g, gain in enumerate(gain_stages):
                if raw and gain in hard:
                    lo, hi = hard[gain]
                    bits[g][(values[g] < lo) | (values[g] > hi)] |= np.uint32(bit)
        if "inlier" in scores and t.inlier_snr > 0:
            low = stats["inlier_fraction"] < t.inlier_fraction_min
            cond = (scores["inlier"] > t.inlier_snr) & low
            flag(cond, BadPixel.NON_GAUSSIAN)
        if "gain" in scores and t.gain_separation_sigma > 0:
            flag(scores["gain"] < t.gain_separation_sigma, BadPixel.GAIN_THRESHOLDING_ERROR)
        if "asic_noise" in scores and t.asic_noise_ratio > 0:
            cond = np.abs(scores["asic_noise"]) > math.log(t.asic_noise_ratio)
            flag(cond, BadPixel.BAD_ASIC | BadPixel.NOISE_OUT_OF_THRESHOLD)
        if "asic_offset" in scores and t.asic_offset_snr > 0:
            cond = np.abs(scores["asic_offset"]) > t.asic_offset_snr
            flag(cond, BadPixel.BAD_ASIC | BadPixel.OFFSET_OUT_OF_THRESHOLD)
    if t.asic_edges and asic_shape is not None:
        flag(asic_seams(bits.shape[-2:], asic_shape), BadPixel.NON_STANDARD_SIZE)
    return bits


def asic_seams(module_shape: tuple[int, int], asic_shape: tuple[int, int]) -> np.ndarray:
    """Double-size pixels: both rows at each inner ASIC boundary along ss.

    This matches ``extra_geom.agipd_asic_seams()`` for AGIPD (rows 63/64, 127/128, ...; the outer
    rows 0 and 511 are normal).

    >>> np.flatnonzero(asic_seams((8, 2), (4, 2)).any(axis=1)).tolist()
    [3, 4]
    """
    seams = np.zeros(module_shape, bool)
    step = asic_shape[0]
    seams[step::step] = True
    seams[step - 1 : module_shape[0] - 1 : step] = True
    return seams


# ------------------------------------------------------------------------------- cell reduction
@dataclass(frozen=True)
class CellPolicy:
    """How per-cell masks reduce to the static mask.

    ``any``: a bit is set if it is set in any memory cell. ``fraction:F``: a bit is set if it is
    set in at least a fraction F of the cells (0 < F <= 1).

    >>> p = parse_cell_policy("fraction:0.5")
    >>> acc = p.accumulate(None, np.array([[1, 3]], np.uint32))
    >>> acc = p.accumulate(acc, np.array([[0, 2]], np.uint32))
    >>> p.finish(acc, n_cells=2).tolist()
    [1, 3]
    """

    fraction: float | None = None  # None = any

    @property
    def text(self) -> str:
        return "any" if self.fraction is None else f"fraction:{self.fraction:g}"

    def accumulate(self, acc: np.ndarray | None, per_cell: np.ndarray) -> np.ndarray:
        """Fold a block of per-cell masks ``(n_cells, ss, fs)`` into the accumulator."""
        if self.fraction is None:
            block = np.bitwise_or.reduce(per_cell, axis=0)
            return block if acc is None else acc | block
        if acc is None:
            acc = np.zeros((32, *per_cell.shape[1:]), np.uint32)
        for b in range(32):
            acc[b] += ((per_cell >> np.uint32(b)) & np.uint32(1)).sum(axis=0, dtype=np.uint32)
        return acc

    def finish(self, acc: np.ndarray, n_cells: int) -> np.ndarray:
        """The static mask ``(ss, fs)`` uint32 from the accumulator."""
        if self.fraction is None:
            return acc.astype(np.uint32)
        need = max(1, math.ceil(self.fraction * n_cells - 1e-9))
        out = np.zeros(acc.shape[1:], np.uint32)
        for b in range(32):
            out[acc[b] >= need] |= np.uint32(1 << b)
        return out


def parse_cell_policy(text: str) -> CellPolicy:
    """``"any"`` or ``"fraction:F"`` → :class:`CellPolicy`; :class:`ConfigError` otherwise."""
    text = text.strip().lower()
    if text == "any":
        return CellPolicy()
    if text.startswith("fraction:"):
        try:
            f = float(text.split(":", 1)[1])
        except ValueError:
            f = -1.0
        if 0 < f <= 1:
            return CellPolicy(f)
    raise ConfigError(f"cell policy {text!r}: expected 'any' or 'fraction:F' with 0 < F <= 1")


def reduce_cells(per_cell: np.ndarray, policy: str | CellPolicy = "any") -> np.ndarray:
    """Reduce ``(C, ss, fs)`` per-cell masks to a static ``(ss, fs)`` mask by ``policy``."""
    p = policy if isinstance(policy, CellPolicy) else parse_cell_policy(policy)
    return p.finish(p.accumulate(None, per_cell), per_cell.shape[0])
