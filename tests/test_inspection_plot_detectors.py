"""``badpix inspect --plot`` for LPD1M, DSSC1M and JUNGFRAU masks made by ``make-mask`` from
simulated runs (``lpd_mask``, ``dssc_mask``, ``jungfrau_mask``), and the plain module grid for a
detector without a geometry.

Pixels are looked up in the PNG where extra-geom's example geometry (built here, independently
of badpix) or the grid rule puts them: the dead ASIC in BAD_ASIC's colour, the missing module in
NO_DARK_DATA's, a quiet good pixel grey. Errors that can be known before the work (a bad
``--geometry``) come before the summary; a failing plot leaves no PNG.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from badpix.cli import main
from badpix.detectors import load_detector
from badpix.inspection_geometry import ModuleGrid
from badpix.inspection_plot import GOOD_COLOUR, plot_mask
from badpix.masktools import open_mask
from badpix.simulate import SimulatedSet, load_truth

pytest.importorskip("matplotlib")
extra_geom = pytest.importorskip("extra_geom")

# detector -> (mask fixture, set fixture, extra-geom class, example() keyword arguments)
CASES = {
    "LPD1M": ("lpd_mask", "lpd_dark_set", "LPD_1MGeometry", {}),
    "DSSC1M": ("dssc_mask", "dssc_dark_set", "DSSC_1MGeometry", {}),
    "JUNGFRAU": ("jungfrau_mask", "jungfrau_dark_set", "JUNGFRAUGeometry", {"n_modules": 2}),
}


def _png_rgb(info: dict, png: np.ndarray, row: float, col: float) -> np.ndarray:
    """Colour in the PNG of (row, col) of the assembled image (imshow origin="lower")."""
    x0, y0, x1, y1 = info["bbox"]
    (c0, c1), (r0, r1) = info["xlim"], info["ylim"]
    x = x0 + (col - c0) / (c1 - c0) * (x1 - x0)
    y = y1 - (row - r0) / (r1 - r0) * (y1 - y0)
    return png[round(y), round(x), :3]


def _close(rgb: np.ndarray, colour: tuple | str) -> bool:
    from matplotlib.colors import to_rgb

    return bool(np.allclose(rgb, to_rgb(colour), atol=0.02))


def _position(geom: object, shape: tuple[int, ...], mod: int, ss: int, fs: int) -> tuple[int, int]:
    """(row, col) of one module pixel in ``geom``'s assembled image."""
    marker = np.zeros(shape, np.float32)
    marker[mod, ss, fs] = 1
    img, _ = geom.position_modules(marker)  # type: ignore[attr-defined]
    row, col = np.argwhere(img == 1)[0]
    return int(row), int(col)


def _asic_centres(static: np.ndarray, detector: str) -> list[tuple[int, int]]:
    """(ss, fs) of each ASIC's centre: away from tile gaps and from the module label (which
    sits at the module centre, an ASIC corner for these grids)."""
    a_ss, a_fs = load_detector(detector).asic_shape
    ss_n, fs_n = static.shape[1:]
    return [(ss + a_ss // 2, fs + a_fs // 2)
            for ss in range(0, ss_n, a_ss) for fs in range(0, fs_n, a_fs)]


def _quiet_pixel(static: np.ndarray, mod: int, detector: str) -> tuple[int, int]:
    """An ASIC centre with no bad pixel within 6 (bad pixels are drawn 3 x 3)."""
    bad = np.pad(static[mod] != 0, 6)
    for ss, fs in _asic_centres(static, detector):
        if not bad[ss: ss + 13, fs: fs + 13].any():
            return ss, fs
    raise AssertionError("no quiet pixel found")


@pytest.fixture(scope="module", params=list(CASES))
def plotted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    mask_fixture, set_fixture, cls_name, kwargs = CASES[request.param]
    mask: Path = request.getfixturevalue(mask_fixture)
    sim: SimulatedSet = request.getfixturevalue(set_fixture)
    out = tmp_path_factory.mktemp(f"plot_{request.param}") / "p.png"
    with open_mask(mask) as m:
        info = plot_mask(m, out)
        static = m.static()
    ref = getattr(extra_geom, cls_name).example(**kwargs)
    return request.param, sim, static, info, out, ref


def test_plot_uses_extra_geom_and_is_not_blank(plotted) -> None:
    import matplotlib.image as mpimg

    detector, _, static, info, out, ref = plotted
    assert type(info["geometry"]).__name__ == type(ref).__name__
    assert tuple(info["geometry"].expected_data_shape) == static.shape
    x0, y0, x1, y1 = (round(v) for v in info["bbox"])
    panel = mpimg.imread(out)[y0 + 2: y1 - 2, x0 + 2: x1 - 2, :3]
    colours = {tuple(c) for c in np.round(panel.reshape(-1, 3), 2)}
    assert len(colours) >= 5, detector  # good, bad reasons, no-data, gaps
    good = np.all(np.isclose(panel, np.array([0xe8, 0xe8, 0xe8]) / 255, atol=0.02), axis=-1)
    assert good.mean() > 0.02, detector  # the processed modules show


def test_dead_asic_and_missing_module_where_the_geometry_puts_them(plotted) -> None:
    import matplotlib.image as mpimg

    detector, sim, static, info, out, ref = plotted
    png = mpimg.imread(out)
    truth = load_truth(sim.truth_path)
    dmod, dss, dfs = np.nonzero(truth.pixels_of("dead_asic"))
    asic = (int(dmod[0]), int(dss.min() + dss.max() + 1) // 2, int(dfs.min() + dfs.max() + 1) // 2)
    assert static[asic] & (1 << 24)  # BAD_ASIC in the file
    missing = int(np.nonzero(truth.pixels_of("missing_module"))[0][0])
    assert missing == sim.plan.modules - 1
    # a processed module other than the dead ASIC's if there is one (JUNGFRAU has one only)
    qmod = next((m for m in range(missing) if m != asic[0]), asic[0])
    quiet = (qmod, *_quiet_pixel(static, qmod, detector))
    inside = _asic_centres(static, detector)[1]  # any ASIC centre of a no-data module
    checks = [(asic, info["colours"]["BAD_ASIC"]),
              ((missing, *inside), info["colours"]["NO_DARK_DATA"]),
              (quiet, GOOD_COLOUR)]
    if static.shape[0] == 16:  # modules never simulated are NO_DARK_DATA too
        checks.append(((12, *inside), info["colours"]["NO_DARK_DATA"]))
    for (mod, ss, fs), colour in checks:
        rgb = _png_rgb(info, png, *_position(ref, static.shape, mod, ss, fs))
        assert _close(rgb, colour), (detector, (mod, ss, fs), rgb, colour)


def test_unknown_detector_draws_a_labelled_module_grid(lpd_mask: Path, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    mask = tmp_path / "mydet.h5"
    shutil.copy(lpd_mask, mask)
    with h5py.File(mask, "r+") as f:
        f.attrs["detector"] = "MYDET"
    r = CliRunner().invoke(main, ["inspect", str(mask), "--plot", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output
    with open_mask(mask) as m:
        info = plot_mask(m, tmp_path / "p.png")
        static = m.static()
    assert isinstance(info["geometry"], ModuleGrid)
    grid = info["geometry"]
    # 16 square modules: 4 x 4, module 0 top left, ss down, fs across; origin="lower" rows
    assert grid.columns == 4
    n_rows = 4 * 256 + 3 * grid.gap

    def where(mod: int, ss: int, fs: int) -> tuple[int, int]:
        r, c = divmod(mod, 4)
        return n_rows - 1 - (r * (256 + grid.gap) + ss), c * (256 + grid.gap) + fs

    png = mpimg.imread(tmp_path / "p.png")
    dead = np.argwhere(static[0] & (1 << 24))
    asic = (0, *((dead.min(axis=0) + dead.max(axis=0) + 1) // 2))
    for (mod, ss, fs), colour in [(asic, info["colours"]["BAD_ASIC"]),
                                  ((2, 60, 60), info["colours"]["NO_DARK_DATA"]),
                                  ((1, *_quiet_pixel(static, 1, "LPD1M")), GOOD_COLOUR)]:
        assert _close(_png_rgb(info, png, *where(mod, ss, fs)), colour), (mod, ss, fs)
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_geometry_fails_before_the_summary(lpd_mask: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.geom"
    bad.write_text("this is not a geometry\n")
    agipd = tmp_path / "agipd.geom"
    extra_geom.AGIPD_1MGeometry.example().write_crystfel_geom(str(agipd))
    out = tmp_path / "p.png"
    for geom in (bad, agipd):
        r = CliRunner().invoke(main, ["inspect", str(lpd_mask), "--plot", str(out),
                                      "--geometry", str(geom)])
        assert r.exit_code == 1, r.output
        assert r.output.startswith("Error:") and r.output.count("\n") == 1, r.output
        assert "bad pixels" not in r.output and not out.exists()
    other = tmp_path / "other.h5"
    shutil.copy(lpd_mask, other)
    r = CliRunner().invoke(main, ["diff", str(lpd_mask), str(other), "--plot", str(out),
                                  "--geometry", str(bad)])
    assert r.exit_code == 1 and r.output.startswith("Error:"), r.output
    assert "no differences" not in r.output and not out.exists()


def test_failing_plot_leaves_no_png(lpd_mask: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import badpix.inspection_plot as ip

    def broken(m: object, out: Path, **kwargs: object) -> dict:
        Path(out).write_bytes(b"\x89PNG half")  # a partial file, then the failure
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(ip, "plot_mask", broken)
    out = tmp_path / "p.png"
    r = CliRunner().invoke(main, ["inspect", str(lpd_mask), "--plot", str(out)])
    assert r.exit_code != 0 and isinstance(r.exception, RuntimeError)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
