"""The private compiled core through its bindings: tiny series, edge cases, strict input checks."""

from __future__ import annotations

import numpy as np
import pytest

from badpix import _core, robust

P = (0.5, 0.35, 3.0, 12, 0.0)  # likely, certain, lambda, opt_iters, min_residual


@pytest.mark.parametrize("n", range(6))
def test_zero_to_five_elements(n: int) -> None:
    x = np.arange(n, dtype=np.float64)
    m, s, k = _core.fit_value(x, None, *P)
    if n < _core.MIN_SAMPLES:
        assert np.isnan(m) and np.isnan(s) and k == 0
    else:
        assert x.min() <= m <= x.max() and s >= 0 and 2 <= k <= n
    t = _core.fit_value_tensor(x.astype(np.float32)[:, None], 1, *P, True)
    assert t[3][0] == n
    if n:
        assert t[4][0] == np.median(x)


def test_edge_series() -> None:
    nan = np.full(10, np.nan)
    assert _core.fit_value(nan, None, *P)[2] == 0
    assert _core.fit_value(np.array([3.0]), None, *P)[2] == 0
    assert _core.fit_value(np.full(9, 2.5), None, *P) == (2.5, 0.0, 9)
    u = np.full((40, 1), 1234, np.uint16)
    mean, std, n_in, n_valid = _core.fit_value_tensor(u, 1, *P, False)
    assert (mean[0], std[0], n_in[0], n_valid[0]) == (1234.0, 0.0, 40, 40)
    i16 = np.array([-5, -5, -5, 4, -5, -5, 32767, -32768], np.int16)[:, None]
    assert _core.fit_value_tensor(i16, 1, *P, False)[0][0] == -5.0
    # heavy ties (quantised data) never go quadratic (RGFLib's quicksort did) and stay in range
    q = np.repeat(np.arange(3.0), 100_000)
    m, s, k = _core.fit_value(q, None, *P)
    assert 0 <= m <= 2 and s < 1.5 and k >= 100_000
    m, s, k = _core.fit_value(np.repeat([0.0, 1.0, 1.0, 1.0, 2.0], 1000), None, *P)
    assert m == pytest.approx(1.0) and k >= 3000


def test_msse_and_line_plane_tiny() -> None:
    assert np.isnan(_core.msse(np.array([1.0, 2.0]), 1, 3.0, 0.0)[0])
    assert np.isnan(_core.fit_line(np.arange(3.0), np.arange(3.0), *P)[0])
    assert _core.fit_line(np.arange(4.0), 2 * np.arange(4.0) + 1, *P)[:2] == pytest.approx((2, 1))
    assert np.isnan(_core.fit_plane(np.arange(4.0), np.arange(4.0), np.arange(4.0), *P)[0])
    # degenerate x (all equal): no crash, NaN or a finite answer
    r = _core.fit_line(np.ones(10), np.arange(10.0), *P)
    assert len(r) == 4


@pytest.mark.parametrize(
    "bad",
    [
        np.arange(10.0)[::2],  # non-contiguous
        np.arange(10.0).reshape(2, 5),  # wrong ndim
        np.arange(10, dtype=">f8"),  # big-endian
        np.arange(10, dtype=np.float32),  # wrong dtype for the 1-D core
    ],
)
def test_core_refuses_silent_conversion(bad: np.ndarray) -> None:
    with pytest.raises((TypeError, ValueError)):
        _core.fit_value(bad, None, *P)


@pytest.mark.parametrize(
    ("likely", "certain"), [(0.3, 0.35), (0.5, 0.5), (1.5, 0.2), (0.5, -0.1), (np.nan, 0.1)]
)
def test_ratios_validated(likely: float, certain: float) -> None:
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="certain_ratio"):
        _core.fit_value(x, None, likely, certain, 3.0, 12, 0.0)
    with pytest.raises(ValueError, match="certain_ratio"):
        robust.fit_value(x, likely_ratio=likely, certain_ratio=certain)
    with pytest.raises(ValueError, match="certain_ratio"):
        robust.fit_value_tensor(x[:, None], likely_ratio=likely, certain_ratio=certain)


def test_public_api_bad_inputs() -> None:
    x = np.zeros((10, 3), np.float32)
    with pytest.raises(TypeError, match="float32, float64, uint16 or int16"):
        robust.fit_value_tensor(x.astype(np.int32))
    with pytest.raises(TypeError, match="byte order"):
        robust.fit_value_tensor(x.astype(">f4"))
    with pytest.raises(TypeError):
        robust.fit_value_tensor(x.tolist())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="axis"):
        robust.fit_value_tensor(x, axis=2)
    with pytest.raises(ValueError, match="dimension"):
        robust.fit_value_tensor(np.ones((), np.float32))
    with pytest.raises(ValueError, match="n_threads"):
        robust.fit_value_tensor(x, n_threads=0)
    with pytest.raises(ValueError, match="1-D"):
        robust.fit_value(np.zeros((3, 3)))
    with pytest.raises(TypeError):
        robust.fit_value(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="weights"):
        robust.fit_value(np.zeros(5), np.ones(4))
    with pytest.raises(ValueError, match="msse_lambda"):
        robust.fit_value(np.zeros(5), msse_lambda=0)
    with pytest.raises(ValueError, match="opt_iters"):
        robust.fit_value(np.zeros(5), opt_iters=-1)
    with pytest.raises(ValueError, match="same length"):
        robust.fit_line(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="2-D"):
        robust.fit_background(np.zeros(5))
    with pytest.raises(TypeError, match="boolean"):
        robust.fit_background(np.zeros((5, 5)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="model"):
        robust.fit_background(np.zeros((5, 5)), model="cubic")
    with pytest.raises(ValueError, match="window"):
        robust.fit_background(np.zeros((5, 5)), window=(0, 3))
    with pytest.raises(ValueError, match="connectivity"):
        robust.remove_islands(np.zeros((5, 5), bool), 3, connectivity=6)
    with pytest.raises(TypeError, match="boolean"):
        robust.remove_islands(np.zeros((5, 5)), 3)
    # empty inputs give NaN / empty outputs, not errors or garbage
    assert robust.fit_value([]).n_inliers == 0
    assert robust.fit_value_tensor(np.zeros((0, 4), np.float32)).n_valid.tolist() == [0] * 4
    assert robust.fit_value_tensor(np.zeros((5, 0), np.float32)).mean.shape == (0,)
    assert robust.fit_background(np.zeros((0, 0))).mean.shape == (0, 0)
