"""``badpix inspect --plot`` / ``badpix diff --plot``: the PNG's pixels where extra-geom puts them.

Runs on ``agipd_mask`` (make-mask of the simulated set): the dead ASIC must show as BAD_ASIC
(although its pixels also carry OFFSET_OUT_OF_THRESHOLD), the missing module as NO_DARK_DATA, a
single hot pixel must stay visible at the picture's resolution, a good pixel stays grey.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from badpix.cli import main
from badpix.inspection_plot import GOOD_COLOUR, plot_diff, plot_mask, widen_isolated
from badpix.masktools import open_mask
from badpix.simulate import SimulatedSet, load_truth

pytest.importorskip("matplotlib")
pytest.importorskip("extra_geom")

OFFSET, BAD_ASIC = 1 << 0, 1 << 24


def _png_rgb(info: dict, png: np.ndarray, row: float, col: float) -> np.ndarray:
    x0, y0, x1, y1 = info["bbox"]
    (c0, c1), (r0, r1) = info["xlim"], info["ylim"]
    x = x0 + (col - c0) / (c1 - c0) * (x1 - x0)
    y = y1 - (row - r0) / (r1 - r0) * (y1 - y0)  # origin="lower": row 0 at the bottom
    return png[round(y), round(x), :3]


def _assembled_position(mod: int, ss: int, fs: int) -> tuple[int, int]:
    """(row, col) of a module pixel in extra-geom's assembled example geometry."""
    from extra_geom import AGIPD_1MGeometry

    marker = np.zeros((16, 512, 128), np.float32)
    marker[mod, ss, fs] = 1
    img, _ = AGIPD_1MGeometry.example().position_modules(marker)
    row, col = np.argwhere(img == 1)[0]
    return int(row), int(col)


def _quiet_pixel(static: np.ndarray, mod: int) -> tuple[int, int]:
    """A good pixel with no bad pixel within 6, away from the module centre (the number)."""
    bad = np.pad(static[mod] != 0, 6)
    for ss in range(20, 200, 3):
        for fs in range(10, 118, 3):
            if not bad[ss: ss + 13, fs: fs + 13].any():
                return ss, fs
    raise AssertionError("no quiet pixel found")


def _lone_hot_pixel(static: np.ndarray, sim: SimulatedSet) -> tuple[int, int, int]:
    """A simulated hot pixel flagged OFFSET only, with no bad pixel within 4 pixels."""
    hot = np.argwhere(load_truth(sim.truth_path).pixels_of("hot"))
    for mod, ss, fs in hot:
        inside = 4 <= ss < 508 and 4 <= fs < 124 and abs(ss - 256) > 40
        if inside and static[mod, ss, fs] == OFFSET \
                and np.count_nonzero(static[mod, ss - 4: ss + 5, fs - 4: fs + 5]) == 1:
            return int(mod), int(ss), int(fs)
    raise AssertionError("no lone hot pixel")


def _close(rgb: np.ndarray, colour: tuple | str) -> bool:
    from matplotlib.colors import to_rgb

    return bool(np.allclose(rgb, to_rgb(colour), atol=0.02))


def test_plot_mask_shows_each_reason_where_the_geometry_says(
        agipd_mask: Path, agipd_dark_set: SimulatedSet, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    out = tmp_path / "p.png"
    with open_mask(agipd_mask) as m:
        info = plot_mask(m, out)
        static = m.static()
    png = mpimg.imread(out)
    truth = load_truth(agipd_dark_set.truth_path)
    dmod, dss, dfs = (int(v[0]) for v in np.nonzero(truth.pixels_of("dead_asic")))
    # those pixels carry lower bits too (OFFSET, here also NOISE): BAD_ASIC must win
    assert static[dmod, dss + 30, dfs + 30] & (OFFSET | BAD_ASIC) == OFFSET | BAD_ASIC
    hot = _lone_hot_pixel(static, agipd_dark_set)
    good = (1, *_quiet_pixel(static, 1))
    checks = [((dmod, dss + 30, dfs + 30), info["colours"]["BAD_ASIC"]),
              ((3, 100, 30), info["colours"]["NO_DARK_DATA"]),
              ((12, 400, 100), info["colours"]["NO_DARK_DATA"]),
              (hot, info["colours"]["OFFSET_OUT_OF_THRESHOLD"]),
              (good, GOOD_COLOUR)]
    for (mod, ss, fs), colour in checks:
        rgb = _png_rgb(info, png, *_assembled_position(mod, ss, fs))
        assert _close(rgb, colour), ((mod, ss, fs), rgb, colour)
    assert len({info["colours"][n] for n in info["colours"]}) == len(info["colours"])


def test_per_cell_axis_shows_plain_percentages(agipd_mask: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from badpix.inspection_plot import _per_cell_panel, _processed, reason_categories

    with open_mask(agipd_mask) as m:
        _, bits = reason_categories(m.static(), m.bit_name)
        fig, ax = plt.subplots()
        _per_cell_panel(ax, m, _processed(m), bits, ["C0"] * len(bits))
        fig.canvas.draw()
    assert ax.yaxis.get_offset_text().get_text() == ""
    assert ax.get_ylim()[0] == 0
    total = ax.get_lines()[0].get_ydata()  # "any reason", % of pixels of modules 0-2
    with h5py.File(agipd_mask, "r") as f:
        want = [100 * np.count_nonzero(f["mask_per_cell"][:3, c]) / (3 * 65536) for c in range(8)]
    assert np.allclose(total, want)
    assert all(float(t.get_text()) >= 0 for t in ax.get_yticklabels() if t.get_text())
    plt.close(fig)


def test_widen_isolated_grows_lone_pixels_only() -> None:
    cat = np.zeros((2, 20, 20), np.int32)
    cat[0, 5, 5] = 2  # lone pixel
    cat[0, 10:16, 10:16] = 1  # a block (an ASIC): stays as it is
    cat[1, 0, 19] = 3  # at a module corner: no growth into the next module
    out = widen_isolated(cat, 1)
    assert np.count_nonzero(out == 2) == 9 and out[0, 4:7, 4:7].min() == 2
    assert np.array_equal(out == 1, cat == 1)
    assert np.count_nonzero(out == 3) == 4 and not (out[0] == 3).any()


@pytest.fixture(scope="module")
def changed_mask(agipd_mask: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``agipd_mask`` with one more bad pixel (module 1, a quiet spot)."""
    out = tmp_path_factory.mktemp("diffplot") / "b.h5"
    shutil.copy(agipd_mask, out)
    with h5py.File(out, "r+") as f:
        ss, fs = _quiet_pixel(f["mask"][()], 1)
        f["mask"][1, ss, fs] = OFFSET
        f["mask"].attrs["planted"] = (1, ss, fs)
    return out


def test_plot_diff_marks_the_new_bad_pixel(agipd_mask: Path, changed_mask: Path,
                                          tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    with h5py.File(changed_mask, "r") as f:
        mod, ss, fs = (int(v) for v in f["mask"].attrs["planted"])
    with open_mask(agipd_mask) as a, open_mask(changed_mask) as b:
        info = plot_diff(a, b, tmp_path / "d.png")
    png = mpimg.imread(tmp_path / "d.png")
    assert _close(_png_rgb(info, png, *_assembled_position(mod, ss, fs)),
                  info["colours"]["new bad"])
    assert _close(_png_rgb(info, png, *_assembled_position(3, 100, 30)),
                  info["colours"]["unchanged bad"])
    r = CliRunner().invoke(main, ["diff", str(agipd_mask), str(changed_mask), "--json"])
    assert '"new_bad": 1' in r.output


def test_plot_cli_refuses_existing_file(agipd_mask: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    out.write_bytes(b"old")
    r = CliRunner().invoke(main, ["inspect", str(agipd_mask), "--plot", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output and out.read_bytes() == b"old"
    r = CliRunner().invoke(main, ["inspect", str(agipd_mask), "--plot", str(out), "--force"])
    assert r.exit_code == 0 and out.read_bytes()[:4] == b"\x89PNG"
