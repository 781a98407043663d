"""The simulated detector: a physical pixel model with planted bad pixels, frame by frame.

Everything here is pure and seeded (no files): :mod:`badpix.simulate` writes what it computes
into runs in the EuXFEL layout and the ground truth into ``truth.h5``.

Public objects
--------------
CLASSES, EXPECTED_BITS, DEFAULT_COUNTS
    Class names (index = code), their expected static-mask bits, and the number of pixels of
    each class planted per module.
MODEL_PARAMETERS
    The model's constants, as recorded in ``truth.h5``.
SimPlan
    Everything that determines the simulated data (the arguments of ``simulate_dark_set``).
ModuleModel, module_model(plan, spec, module) -> ModuleModel
    The per-pixel maps of one module: class of each pixel, offset, noise, digital level, ...
module_frames(plan, spec, model, module, stage, chunk) -> (analog, digital)
    The frames written for one train chunk, regenerated deterministically (tests compare with it).
iter_classes()
    ``(code, name, expected_bits)`` of every class.

Pixel model (ADU), per module, gain stage, memory cell and pixel: stage level + module level +
ASIC level (ASICs differ by a few hundred ADU) + a smooth gradient across each ASIC + per-cell
drift + per-pixel spread, plus Gaussian noise of a per-pixel sigma. AGIPD raw has a digital
(gain) channel at a per-stage level that separates the stages. Proc data are the analog values
minus the (smooth) offset model: float32 around 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from badpix.detectors import DetectorSpec

CLASSES: tuple[str, ...] = (
    "good", "hot", "cold", "noisy", "stuck", "telegraph", "gain_bit_error", "dead_asic",
    "always_nan", "good_spiky", "good_some_nan", "missing_module",
)
_CODE = {name: code for code, name in enumerate(CLASSES)}

_NON_GAUSSIAN = 1 << 23
_BAD_ASIC = 1 << 24
EXPECTED_BITS: Mapping[str, int] = {
    "good": 0,
    "hot": 0x1,  # OFFSET_OUT_OF_THRESHOLD
    "cold": 0x1,
    "noisy": 0x2,  # NOISE_OUT_OF_THRESHOLD
    "stuck": 0x4000,  # DATA_STD_IS_ZERO
    "telegraph": _NON_GAUSSIAN,
    "gain_bit_error": 0x2000,  # GAIN_THRESHOLDING_ERROR
    "dead_asic": 0x1 | _BAD_ASIC,
    "always_nan": 0x4,  # OFFSET_NOISE_EVAL_ERROR
    "good_spiky": 0,  # 1-2 cosmic-like frames: must not be flagged
    "good_some_nan": 0,  # a few NaN frames in proc: must not be flagged
    "missing_module": 0x8,  # NO_DARK_DATA
}

# Pixels planted per present module (of 65536 for AGIPD). Classes that do not apply to a data
# kind are skipped: gain_bit_error needs a digital channel (raw AGIPD), the NaN classes proc.
DEFAULT_COUNTS: Mapping[str, int] = {
    "hot": 60, "cold": 60, "noisy": 100, "stuck": 40, "telegraph": 60, "gain_bit_error": 50,
    "always_nan": 30, "good_spiky": 150, "good_some_nan": 80,
}

@dataclass(frozen=True)
class DetectorModel:
    """Per-detector constants of the pixel model (ADU; tuples are indexed by gain stage).

    The levels sit inside each detector's ADC range and its config's hard limits, so that the
    planted classes stay what they are (a cold pixel must not clip to 0 and look stuck).
    """

    analog_level: tuple[float, ...]
    pixel_spread: tuple[float, ...]
    noise: tuple[float, ...]
    asic_range: float  # ASIC levels uniform in [-asic_range, asic_range]
    gradient: float  # slopes across an ASIC uniform in [-gradient, gradient]
    module_spread: float  # sigma of the module level
    drift: float  # amplitude of the per-cell drift
    dead_level: float
    adc_max: int  # largest analog value (ADC range)
    gain_codes: tuple[int, ...] = ()  # gain bits of each stage in raw words (adc_bits encoding)


_MODELS: Mapping[str, DetectorModel] = {
    # AGIPD: analog + digital channel, 16-bit words
    "AGIPD": DetectorModel((5000.0, 7500.0, 8200.0), (40.0, 25.0, 20.0), (20.0, 10.0, 7.0),
                           300.0, 40.0, 150.0, 30.0, 60.0, 65535),
    # LPD: 12-bit ADC, gain stage in bits 12-13 (0 high, 1 medium, 2 low); hard limits 400-1500
    "LPD": DetectorModel((1000.0, 1050.0, 1100.0), (20.0, 15.0, 12.0), (8.0, 6.0, 5.0),
                         100.0, 15.0, 40.0, 10.0, 60.0, 4095, (0, 1, 2)),
    # DSSC: 8/9-bit ADC, one gain stage, noise of 1-2 ADU; hard limits 0-512
    "DSSC": DetectorModel((150.0,), (4.0,), (1.5,), 8.0, 3.0, 8.0, 3.0, 10.0, 511),
    # JUNGFRAU: 14-bit ADC, gain in bits 14-15 (G0 = 0, G1 = 1, G2 = 3)
    "JUNGFRAU": DetectorModel((2500.0, 11000.0, 12000.0), (40.0, 30.0, 30.0), (12.0, 6.0, 5.0),
                              200.0, 30.0, 80.0, 20.0, 60.0, 16383, (0, 1, 3)),
}

# Digital channel of AGIPD (per stage), and chunking of the generated frames
_DIGITAL_LEVEL = (4500.0, 5500.0, 6500.0)
_DIGITAL_SPREAD = 60.0
_DIGITAL_NOISE = 8.0
_CHUNK_BYTES = 64 << 20  # float32 bytes generated at once per module and stage


def detector_model(name: str) -> DetectorModel:
    """The model constants of detector type ``name`` (``"AGIPD1M"``, ``"LPD1M"``, ...)."""
    for prefix, model in _MODELS.items():
        if name.upper().startswith(prefix):
            return model
    raise KeyError(f"no simulation model for detector {name!r}")


def model_parameters(name: str) -> dict[str, Any]:
    """The model's constants for detector ``name`` (recorded in ``truth.h5`` as ``model``)."""
    m = detector_model(name)
    return {
        "analog_level": m.analog_level, "pixel_spread": m.pixel_spread, "noise": m.noise,
        "digital_level": _DIGITAL_LEVEL, "digital_spread": _DIGITAL_SPREAD,
        "digital_noise": _DIGITAL_NOISE, "dead_asic_level": m.dead_level,
        "asic_level_range": [-m.asic_range, m.asic_range],
        "gradient_range": [-m.gradient, m.gradient], "module_level_sigma": m.module_spread,
        "cell_drift": m.drift, "adc_max": m.adc_max, "gain_codes": m.gain_codes,
        "hot_cold_shift_in_pixel_spreads": [15, 30], "noisy_factor": [3, 5],
        "telegraph_fraction": [0.2, 0.4], "telegraph_amplitude_in_sigma": [8, 15],
        "spike_in_sigma": 100, "spikes_per_pixel": [1, 2], "nan_frames_per_pixel": [1, 3],
    }


#: The AGIPD model's constants (see :func:`model_parameters` for the other detectors).
MODEL_PARAMETERS: Mapping[str, Any] = model_parameters("AGIPD")


@dataclass(frozen=True)
class SimPlan:
    """Everything that determines the simulated data (stored in ``truth.h5``)."""

    detector: str
    modules: int
    cells: int
    trains: int
    kind: str
    seed: int
    gain_mode: str
    proposal: int | None
    missing_module: int | None
    missing_trains_module: int | None
    n_missing_trains: int
    dead_asic_module: int | None
    first_train: int = 10000
    frame_pixels: int = 512 * 128  # pixels of one module frame (sizes the generated chunks)
    counts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTS))

    @property
    def present_modules(self) -> list[int]:
        return [m for m in range(self.modules) if m != self.missing_module]

    @property
    def train_ids(self) -> np.ndarray:
        return np.arange(self.first_train, self.first_train + self.trains, dtype=np.uint64)

    @property
    def trains_per_chunk(self) -> int:
        return max(1, _CHUNK_BYTES // (self.cells * self.frame_pixels * 4))

    def missing_train_ids(self) -> np.ndarray:
        """Train IDs absent for ``missing_trains_module``: spread over the run, never the ends."""
        if self.missing_trains_module is None or self.n_missing_trains == 0:
            return np.zeros(0, np.uint64)
        rng = np.random.default_rng([self.seed, 7777])
        idx = rng.choice(np.arange(1, self.trains - 1), self.n_missing_trains, replace=False)
        return np.sort(self.train_ids[idx])


@dataclass
class ModuleModel:
    """Per-pixel maps of one module (flattened pixels), shared by all gain stages."""

    classes: np.ndarray  # (P,) uint8 class codes
    offset: np.ndarray  # (G, C, P) float32 mean analog value
    smooth: np.ndarray  # (G, C, P) float32 the offset model a correction removes (proc)
    sigma: np.ndarray  # (G, P) float32 noise
    digital: np.ndarray  # (G, P) float32 digital level
    telegraph_frac: np.ndarray  # (P,) fraction of frames at the second level (telegraph)
    telegraph_amp: np.ndarray  # (G, P)
    spikes: np.ndarray  # (n, 3) int: train index, cell, pixel of cosmic-like spikes
    nan_frames: np.ndarray  # (n, 3) int: train index, cell, pixel of isolated NaN (proc)


def _classes_applicable(spec: DetectorSpec, kind: str) -> list[str]:
    names = ["hot", "cold", "noisy", "stuck", "telegraph", "good_spiky"]
    if kind == "raw" and spec.gain_encoding == "digital_channel" and spec.n_gain_stages > 1:
        names.append("gain_bit_error")
    if kind == "proc":
        names += ["always_nan", "good_some_nan"]
    return names


def module_model(plan: SimPlan, spec: DetectorSpec, module: int) -> ModuleModel:
    """Build the deterministic pixel model of one module (see the module docstring)."""
    rng = np.random.default_rng([plan.seed, module, 1])
    par = detector_model(spec.name)
    ss, fs = spec.module_shape
    n_pix = ss * fs
    n_gain, n_cells = spec.n_gain_stages, plan.cells
    asic = spec.asic_map().ravel()
    loc_ss = (np.arange(ss) % spec.asic_shape[0]) / spec.asic_shape[0] - 0.5
    loc_fs = (np.arange(fs) % spec.asic_shape[1]) / spec.asic_shape[1] - 0.5
    loc_ss = np.repeat(loc_ss, fs)
    loc_fs = np.tile(loc_fs, ss)

    classes = np.zeros(n_pix, np.uint8)
    if module == plan.dead_asic_module:
        dead = int(rng.integers(spec.n_asics))
        classes[asic == dead] = _CODE["dead_asic"]
    free = np.flatnonzero(classes == 0)
    names = _classes_applicable(spec, plan.kind)
    wanted = [(n, plan.counts[n]) for n in names]
    chosen = rng.choice(free, sum(n for _, n in wanted), replace=False)
    start = 0
    for name, n in wanted:
        classes[chosen[start:start + n]] = _CODE[name]
        start += n

    offset = np.empty((n_gain, n_cells, n_pix), np.float32)
    smooth = np.empty_like(offset)
    sigma = np.empty((n_gain, n_pix), np.float32)
    digital = np.empty((n_gain, n_pix), np.float32)
    pix_z = rng.standard_normal(n_pix).astype(np.float32)
    noise_z = rng.standard_normal(n_pix).astype(np.float32)
    dig_z = rng.standard_normal(n_pix).astype(np.float32)
    cells = np.arange(n_cells)
    for g in range(n_gain):
        asic_level = rng.uniform(-par.asic_range, par.asic_range, spec.n_asics)
        slopes = rng.uniform(-par.gradient, par.gradient, (spec.n_asics, 2))
        module_level = rng.normal(0, par.module_spread)
        base = (par.analog_level[g] + module_level + asic_level[asic]
                + slopes[asic, 0] * loc_ss + slopes[asic, 1] * loc_fs)
        phase = rng.uniform(0, 2 * np.pi)
        drift = par.drift * (np.sin(2 * np.pi * cells / 37 + phase) + cells / 150)
        smooth[g] = base[None, :] + drift[:, None]
        offset[g] = smooth[g] + par.pixel_spread[g] * pix_z[None, :]
        sigma[g] = par.noise[g] * np.clip(1 + 0.08 * noise_z, 0.6, 1.4)
        digital[g] = _DIGITAL_LEVEL[g] + rng.normal(0, 50) + _DIGITAL_SPREAD * dig_z

    for name in ("hot", "cold"):
        idx = np.flatnonzero(classes == _CODE[name])
        shift = rng.uniform(15, 30, idx.size) * np.array(par.pixel_spread)[:, None]
        offset[:, :, idx] += (shift if name == "hot" else -shift)[:, None, :]
    idx = np.flatnonzero(classes == _CODE["noisy"])
    sigma[:, idx] *= rng.uniform(3, 5, idx.size)
    idx = np.flatnonzero(classes == _CODE["stuck"])
    sigma[:, idx] = 0
    offset[:, :, idx] = np.round(offset[:, :, idx])
    idx = np.flatnonzero(classes == _CODE["gain_bit_error"])
    if idx.size and n_gain > 1:  # medium-gain digital level on top of the high-gain one
        digital[1, idx] = digital[0, idx] + rng.normal(0, 10, idx.size)
    idx = np.flatnonzero(classes == _CODE["dead_asic"])
    offset[:, :, idx] = par.dead_level + rng.normal(0, 3, idx.size)
    sigma[:, idx] = 1.5

    telegraph_frac = np.zeros(n_pix, np.float32)
    telegraph_amp = np.zeros((n_gain, n_pix), np.float32)
    idx = np.flatnonzero(classes == _CODE["telegraph"])
    telegraph_frac[idx] = rng.uniform(0.2, 0.4, idx.size)
    telegraph_amp[:, idx] = rng.uniform(8, 15, idx.size) * sigma[:, idx]

    def events(name: str, low: int, high: int) -> np.ndarray:
        pix = np.flatnonzero(classes == _CODE[name])
        reps = rng.integers(low, high + 1, pix.size)
        pix = np.repeat(pix, reps)
        return np.stack([rng.integers(0, plan.trains, pix.size),
                         rng.integers(0, n_cells, pix.size), pix], axis=1)

    return ModuleModel(classes, offset, smooth, sigma, digital, telegraph_frac, telegraph_amp,
                        events("good_spiky", 1, 2), events("good_some_nan", 1, 3))


def module_frames(plan: SimPlan, spec: DetectorSpec, model: ModuleModel, module: int,
                  stage: int, chunk: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames of trains ``chunk * plan.trains_per_chunk ...`` for one module and gain stage.

    Returns ``(analog, digital)`` shaped (trains, cells, ss, fs), as ``read.read_block`` gives
    them: raw uint16 analog (clipped to the detector's ADC range) and, where the detector
    encodes the gain, uint16 ``digital`` (AGIPD's digital channel, or the gain bits of LPD and
    JUNGFRAU raw words); float32 and None for proc. Deterministic: the same plan gives the same
    frames.
    """
    par = detector_model(spec.name)
    t0 = chunk * plan.trains_per_chunk
    t1 = min(plan.trains, t0 + plan.trains_per_chunk)
    n_t, n_c = t1 - t0, plan.cells
    n_pix = model.classes.size
    rng = np.random.default_rng([plan.seed, module, stage, chunk, 2])
    frames = rng.standard_normal((n_t, n_c, n_pix), dtype=np.float32)
    frames *= model.sigma[stage]
    frames += model.offset[stage]

    tele = np.flatnonzero(model.telegraph_frac)
    if tele.size:
        high = rng.random((n_t, n_c, tele.size)) < model.telegraph_frac[tele]
        frames[:, :, tele] += high * model.telegraph_amp[stage, tele]
    for t, c, p in model.spikes:
        if t0 <= t < t1:
            frames[t - t0, c, p] += 100 * max(model.sigma[stage, p], 1.0)

    shape = (n_t, n_c, *spec.module_shape)
    if plan.kind == "proc":
        frames -= model.smooth[stage]
        frames -= np.float32(0.95 * par.pixel_spread[stage]) * _pixel_z(model, stage, par)
        frames[:, :, model.classes == _CODE["always_nan"]] = np.nan
        for t, c, p in model.nan_frames:
            if t0 <= t < t1:
                frames[t - t0, c, p] = np.nan
        return frames.reshape(shape), None

    analog = _to_uint16(frames, par.adc_max).reshape(shape)
    if spec.gain_encoding == "adc_bits":  # every pixel reports the run's gain stage
        return analog, np.full(shape, par.gain_codes[stage], np.uint16)
    if spec.gain_encoding != "digital_channel":
        return analog, None
    dig = rng.standard_normal((n_t, n_c, n_pix), dtype=np.float32)
    dig *= np.float32(_DIGITAL_NOISE)
    dig += model.digital[stage]
    return analog, _to_uint16(dig).reshape(shape)


def _pixel_z(model: ModuleModel, stage: int, par: DetectorModel) -> np.ndarray:
    # the per-pixel spread as the correction's offset constant knows it (stuck/hot/... excluded)
    # offset anomalies (hot, cold, stuck, dead ASIC) are not in the constant, so they stay
    known = ~np.isin(model.classes, [_CODE[c] for c in ("hot", "cold", "stuck", "dead_asic")])
    return (model.offset[stage, 0] - model.smooth[stage, 0]) * known / np.float32(
        par.pixel_spread[stage])


def _to_uint16(values: np.ndarray, top: int = 65535) -> np.ndarray:
    np.clip(values, 0, top, out=values)  # the ADC saturates at its range
    values += 0.5
    return values.astype(np.uint16)


def iter_classes() -> Iterator[tuple[int, str, int]]:
    """Yield ``(code, name, expected_bits)`` for every class."""
    for code, name in enumerate(CLASSES):
        yield code, name, EXPECTED_BITS[name]
