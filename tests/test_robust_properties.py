"""Property tests of fit_value (hypothesis): equivariance, invariance, NaN, bounded influence."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from badpix.robust import fit_value

SETTINGS = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def _sample(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    k = n // 5
    x[:k] = rng.uniform(-50, 50, k)
    return x


@SETTINGS
@given(seeds, st.integers(8, 200), st.floats(-1e4, 1e4), st.floats(1e-3, 1e3))
def test_shift_and_scale_equivariance(seed: int, n: int, shift: float, scale: float) -> None:
    x = _sample(seed, n)
    a = fit_value(x)
    b = fit_value(x * scale + shift)
    tol = 1e-6 * (abs(shift) + scale * (abs(a.mean) + a.std + 1))
    assert abs(b.mean - (a.mean * scale + shift)) <= tol
    assert abs(b.std - a.std * scale) <= tol
    assert b.n_inliers == a.n_inliers


@SETTINGS
@given(seeds, st.integers(3, 200))
def test_permutation_invariance(seed: int, n: int) -> None:
    x = _sample(seed, n)
    perm = np.random.default_rng(seed + 1).permutation(n)
    assert fit_value(x) == fit_value(x[perm])


@SETTINGS
@given(seeds, st.integers(3, 100), st.integers(1, 50))
def test_nan_and_inf_ignored(seed: int, n: int, n_bad: int) -> None:
    x = _sample(seed, n)
    bad = np.random.default_rng(seed).choice([np.nan, np.inf, -np.inf], n_bad)
    y = np.concatenate([x, bad])
    np.random.default_rng(seed + 2).shuffle(y)
    assert fit_value(y) == fit_value(x)


@SETTINGS
@given(seeds, st.integers(60, 300), st.floats(0.0, 0.45), st.floats(1e3, 1e12))
def test_bounded_influence(seed: int, n: int, frac: float, far: float) -> None:
    # Fewer than half outliers, anywhere (even absurdly far): the mean stays in the inliers' range
    # and the scale does not explode.
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    k = int(frac * n)
    x[:k] = far * rng.choice([-1, 1]) * (1 + rng.random(k))
    f = fit_value(x)
    inl = x[k:]
    assert inl.min() <= f.mean <= inl.max()
    assert f.std < 10
