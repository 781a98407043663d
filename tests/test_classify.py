"""Population scores and bits on seeded statistics arrays with planted pixels.

The arrays imitate one unit's statistics (G, C, ss, fs) with a realistic normal population:
ASIC-to-ASIC steps, a gradient across each ASIC and a drift over cells. Planted pixels must be
flagged with exactly their bits, and nothing else may be flagged.
"""

from __future__ import annotations

import numpy as np
import pytest

from badpix.classify import (
    BadPixel,
    Thresholds,
    apply_thresholds,
    asic_seams,
    parse_cell_policy,
    reduce_cells,
)
from badpix.exceptions import ConfigError
from badpix.population import compute_scores, gain_separation

G, C, SS, FS = 2, 3, 128, 64
ASIC = (32, 32)
N = 64  # frames per pixel
B = BadPixel


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(7)
    shape = (G, C, SS, FS)
    yy, xx = np.mgrid[0:SS, 0:FS]
    asic = (yy // 32) * 2 + xx // 32
    asic_level = rng.uniform(-300, 300, (G, 8))
    asic_level[:, 5] += 600  # an ASIC step: a normal ASIC at a different level
    gradient = 40 * ((yy % 32) / 32 - 0.5) + 30 * ((xx % 32) / 32 - 0.5)
    drift = 25 * np.sin(np.arange(C) / 2.0)
    offset = (
        5000
        + asic_level[:, None, asic]
        + gradient
        + drift[None, :, None, None]
        + rng.normal(0, 30, (1, 1, SS, FS))
    )
    noise = 20 * np.clip(1 + 0.08 * rng.standard_normal((1, 1, SS, FS)), 0.7, 1.3)
    noise = np.broadcast_to(noise, shape) * (1 + 0.05 * rng.standard_normal(shape))
    # measured: the statistics carry their estimation noise
    offset = offset + noise / np.sqrt(N) * rng.standard_normal(shape)
    n_valid = np.full(shape, N, np.int32)
    inliers = N - rng.binomial(N, 0.003, shape)
    gain_level = np.array([4500.0, 5500.0])[:, None, None, None] + rng.normal(0, 50, shape)
    gain_sigma = np.full(shape, 8.0)

    where = {}
    free = rng.permutation(np.flatnonzero(asic.ravel() != 2))  # ASIC 2 will be dead

    def take(name, k):
        idx, rest = free[:k], free[k:]
        where[name] = np.unravel_index(idx, (SS, FS))
        return rest

    for name, k in (
        ("hot", 5),
        ("cold", 5),
        ("noisy", 5),
        ("quiet", 3),
        ("stuck", 4),
        ("telegraph", 5),
        ("spiky", 8),
        ("gain", 4),
        ("nan", 2),
        ("few", 2),
    ):
        free = take(name, k)
    offset[(slice(None), slice(None), *where["hot"])] += 600
    offset[(slice(None), slice(None), *where["cold"])] -= 600
    noise = noise.copy()
    noise[(slice(None), slice(None), *where["noisy"])] *= 3
    noise[(slice(None), slice(None), *where["quiet"])] /= 4
    noise[(slice(None), slice(None), *where["stuck"])] = 0
    inliers[(slice(None), slice(None), *where["telegraph"])] = int(0.7 * N)
    inliers[(slice(None), slice(None), *where["spiky"])] = N - 2  # two cosmic-ray frames
    gain_level[(1, slice(None), *where["gain"])] = gain_level[(0, slice(None), *where["gain"])] + 5
    offset[(0, 1, *where["nan"])] = np.nan
    n_valid[(1, 2, *where["few"])] = 5  # the cell has frames; these pixels' values do not
    dead = asic == 2
    offset[:, :, dead] = 60 + rng.normal(0, 3, dead.sum())
    noise[:, :, dead] = 1.5
    stats = {
        "offset": offset.astype(np.float32),
        "noise": noise.astype(np.float32),
        "noise_std": noise.astype(np.float32),
        "inlier_fraction": (inliers / n_valid).astype(np.float32),
        "n_valid": n_valid,
        "gain_level": gain_level.astype(np.float32),
        "gain_sigma": gain_sigma.astype(np.float32),
    }
    scores = compute_scores(stats, ASIC)
    bits = apply_thresholds(
        scores, stats, Thresholds(), gain_stages=("high", "medium"), asic_shape=ASIC
    )
    return stats, scores, bits, where, dead


def pixels(bits, bit):
    """Set of (ss, fs) with ``bit`` in any gain/cell."""
    any_cell = np.bitwise_or.reduce(bits.reshape(-1, SS, FS), axis=0)
    return set(zip(*np.nonzero(any_cell & np.uint32(bit)), strict=True))


def as_set(idx):
    return set(zip(*idx, strict=True))


def test_offset_flags_exactly_hot_and_cold(planted):
    _, _, bits, where, dead = planted
    got = pixels(bits, B.OFFSET_OUT_OF_THRESHOLD) - as_set(np.nonzero(dead))
    assert got == as_set(where["hot"]) | as_set(where["cold"])


def test_noise_flags_exactly_noisy_and_quiet(planted):
    _, _, bits, where, dead = planted
    got = pixels(bits, B.NOISE_OUT_OF_THRESHOLD) - as_set(np.nonzero(dead))
    assert got == as_set(where["noisy"]) | as_set(where["quiet"])


def test_non_gaussian_only_telegraph_not_spiky(planted):
    _, scores, bits, where, _ = planted
    assert pixels(bits, B.NON_GAUSSIAN) == as_set(where["telegraph"])
    assert np.all(scores["inlier"][(slice(None), slice(None), *where["spiky"])] < 5)


def test_stuck_gain_nan_and_few_samples(planted):
    _, _, bits, where, _ = planted
    assert pixels(bits, B.DATA_STD_IS_ZERO) == as_set(where["stuck"])
    assert pixels(bits, B.GAIN_THRESHOLDING_ERROR) == as_set(where["gain"])
    # NaN fit and too few samples in a cell that had frames: evaluation error, not "no data"
    assert pixels(bits, B.OFFSET_NOISE_EVAL_ERROR) == as_set(where["nan"]) | as_set(where["few"])
    assert pixels(bits, B.NO_DARK_DATA) == set()


def test_dead_asic_flagged_step_asic_not(planted):
    _, scores, bits, _, dead = planted
    bad_asic = pixels(bits, B.BAD_ASIC)
    assert bad_asic == as_set(np.nonzero(dead))
    assert np.all(bits[:, :, dead] & np.uint32(B.OFFSET_OUT_OF_THRESHOLD | B.BAD_ASIC))
    # the ASIC at +600 ADU (index 5: rows 64-95, columns 32-63) is normal
    assert np.abs(scores["asic_offset"][:, :, 64:96, 32:64]).max() < 5


def test_nothing_else_flagged(planted):
    _, _, bits, where, dead = planted
    planted_px = set().union(*(as_set(w) for w in where.values())) | as_set(np.nonzero(dead))
    assert pixels(bits, 0xFFFFFFFF) - planted_px == set()


def test_scores_are_population_relative(planted):
    _, scores, _, _, dead = planted
    normal = ~dead
    off = scores["offset"][:, :, normal]
    assert abs(np.nanmedian(off)) < 0.2
    # the gradient and ASIC steps are absorbed: robust spread of good scores ~ 1 or less
    assert np.nanpercentile(np.abs(off), 50) < 1


def test_no_data_cell():
    shape = (1, 2, 32, 32)
    stats = {
        "offset": np.full(shape, np.nan, np.float32),
        "noise": np.full(shape, np.nan, np.float32),
        "n_valid": np.zeros(shape, np.int32),
        "inlier_fraction": np.full(shape, np.nan, np.float32),
    }
    stats["n_valid"][0, 1] = 3  # three frames only: fewer than min_valid_samples
    bits = apply_thresholds({}, stats, Thresholds())
    assert np.all(bits == B.NO_DARK_DATA)


def test_hard_limits_raw_only():
    shape = (2, 1, 1, 2)
    stats = {
        "offset": np.array([5000.0, 9000.0] * 2, np.float32).reshape(shape),
        "noise": np.full(shape, 10, np.float32),
        "n_valid": np.full(shape, 50),
    }
    t = Thresholds.from_mapping({"offset_hard_high": [3000, 7000]})
    bits = apply_thresholds({}, stats, t, gain_stages=("high", "medium"))
    assert bits[:, 0, 0].tolist() == [[0, 1], [0, 0]]
    assert not apply_thresholds({}, stats, t, gain_stages=("high", "medium"), raw=False).any()


def test_gain_separation_zero_sigma():
    level = np.array([[10.0, 10.0], [10.0, 30.0]])
    sigma = np.zeros((2, 2))
    sep = gain_separation(level, sigma)
    assert sep[:, 0].tolist() == [0.0, 0.0] and np.isinf(sep[:, 1]).all()


def test_thresholds_validation():
    with pytest.raises(ConfigError, match="unknown threshold 'offset_sn'"):
        Thresholds.from_mapping({"offset_sn": 3})
    with pytest.raises(ConfigError, match="noise_snr"):
        Thresholds.from_mapping({"noise_snr": "high"})
    with pytest.raises(ConfigError, match="low must be below high"):
        Thresholds.from_mapping({"noise_hard_low": [5, 1]})
    with pytest.raises(ConfigError, match="asic_noise_ratio"):
        Thresholds.from_mapping({"asic_noise_ratio": 0.5})
    t = Thresholds.from_mapping({"offset_snr": 4}, {"offset_snr": 6, "noise_snr": None})
    assert t.offset_snr == 6 and t.noise_snr == 5
    assert Thresholds.from_mapping(t.to_dict()) == t
    assert max(int(b) for b in BadPixel) < 2**31


def test_cell_policy_and_seams():
    per_cell = np.array([[[1]], [[1]], [[2]], [[0]]], np.uint32)
    assert reduce_cells(per_cell, "any").tolist() == [[3]]
    assert reduce_cells(per_cell, "fraction:0.5").tolist() == [[1]]
    assert reduce_cells(per_cell, "fraction:1").tolist() == [[0]]
    with pytest.raises(ConfigError, match="cell policy"):
        parse_cell_policy("fraction:2")
    seams = asic_seams((512, 128), (64, 64))
    assert np.flatnonzero(seams.any(axis=1)).tolist()[:4] == [63, 64, 127, 128]
    assert not seams[0].any() and not seams[511].any() and seams.sum() == 14 * 128
    t = Thresholds(asic_edges=True)
    stats = {
        "offset": np.zeros((1, 1, 512, 128), np.float32),
        "noise": np.ones((1, 1, 512, 128), np.float32),
        "n_valid": np.full((1, 1, 1, 1), 50),
    }
    bits = apply_thresholds({}, stats, t, asic_shape=(64, 64))
    assert np.array_equal(bits[0, 0] == B.NON_STANDARD_SIZE, seams)
