"""dark_stats on seeded frames: robust and classical values, invalid frames, few samples."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from badpix.exceptions import ConfigError
from badpix.stats import StatsParams, dark_stats, stack_stats


def block(analog, valid=None, digital=None):
    valid = np.ones(analog.shape[:2], bool) if valid is None else valid
    return SimpleNamespace(analog=analog, digital=digital, valid=valid)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    x = rng.normal(5000, 20, (48, 3, 64, 64))
    return np.round(x).astype(np.uint16)


def test_robust_and_classical(frames):
    st = dark_stats(block(frames), StatsParams(), n_threads=1)
    assert st.offset.shape == (3, 64, 64) and st.offset.dtype == np.float32
    assert abs(np.median(st.offset) - 5000) < 1
    assert 0.95 < np.median(st.noise) / 20 < 1.05
    np.testing.assert_allclose(st.offset_median, np.median(frames, axis=0), atol=1e-3)
    np.testing.assert_allclose(st.noise_std, frames.std(axis=0), rtol=1e-4)
    assert (st.n_valid == 48).all()
    assert st.gain_level is None and "gain_level" not in st.as_dict()
    # no Gaussian pixel may look non-Gaussian or collapse (the small-n re-examination)
    assert st.inlier_fraction.min() >= 0.85
    assert np.percentile(st.noise / st.noise_std, [0.01, 99.99]).tolist() == pytest.approx(
        [1, 1], abs=0.3
    )


def test_invalid_frames_never_used(frames):
    valid = np.ones((48, 3), bool)
    valid[[3, 17, 40], 1] = False
    damaged = frames.copy()
    damaged[[3, 17, 40], 1] = 0  # what read.py fills in for missing frames
    st = dark_stats(block(damaged, valid), StatsParams())
    ref = dark_stats(block(np.ascontiguousarray(frames[valid[:, 1], 1:2])), StatsParams())
    np.testing.assert_array_equal(st.offset[1], ref.offset[0])
    np.testing.assert_array_equal(st.noise[1], ref.noise[0])
    assert (st.n_valid[1] == 45).all() and (st.n_valid[0] == 48).all()


def test_too_few_frames_not_fitted(frames):
    valid = np.ones((48, 3), bool)
    valid[5:, 2] = False
    st = dark_stats(block(frames, valid), StatsParams(min_valid_samples=10))
    assert np.isnan(st.offset[2]).all() and (st.n_valid[2] == 5).all()
    assert np.isfinite(st.offset[:2]).all()


def test_proc_nan_pixels(frames):
    x = frames.astype(np.float32) - 5000
    x[:, :, 0, 0] = np.nan  # always NaN
    x[:2, :, 1, 1] = np.nan  # two NaN frames
    st = dark_stats(block(x), StatsParams())
    assert np.isnan(st.offset[:, 0, 0]).all() and (st.n_valid[:, 0, 0] == 0).all()
    assert (st.n_valid[:, 1, 1] == 46).all() and np.isfinite(st.noise[:, 1, 1]).all()


def test_telegraph_spike_stuck_digital():
    rng = np.random.default_rng(4)
    n = 24
    x = rng.normal(5000, 20, (n, 1, 32, 32))
    high = rng.random(n) < 0.3
    x[high, 0, 0, 0] += 250  # telegraph: ~30 % of the frames in a second state
    x[5, 0, 1, 1] += 3000  # one cosmic-ray frame
    x[:, 0, 2, 2] = 5100  # stuck
    d = rng.normal(4500, 8, x.shape)
    st = dark_stats(
        block(np.round(x).astype(np.uint16), digital=np.round(d).astype(np.uint16)), StatsParams()
    )
    assert st.inlier_fraction[0, 0, 0] < 0.8
    assert abs(st.offset[0, 0, 0] - 5000) < 20 and st.noise[0, 0, 0] < 35
    assert st.inlier_fraction[0, 1, 1] > 0.95 and st.noise[0, 1, 1] < 35
    assert st.noise_std[0, 1, 1] > 300  # the classical std is ruined by the spike
    assert st.noise[0, 2, 2] == 0 and st.offset[0, 2, 2] == 5100
    assert abs(np.median(st.gain_level) - 4500) < 2 and abs(np.median(st.gain_sigma) - 8) < 1
    stacked = stack_stats([st, st])
    assert stacked["gain_level"].shape == (2, 1, 32, 32)


def test_params_validation():
    assert StatsParams.from_mapping({"likely_ratio": 0.6}).likely_ratio == 0.6
    with pytest.raises(ConfigError, match="certain_ratio < likely_ratio"):
        StatsParams.from_mapping({"certain_ratio": 0.8})
    with pytest.raises(ConfigError, match="unknown"):
        StatsParams.from_mapping({"lambda": 3})
    with pytest.raises(ConfigError, match="collapses"):
        StatsParams.from_mapping({"msse_lambda": 2})
