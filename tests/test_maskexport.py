"""``badpix export`` of a mask made by ``make-mask`` (``agipd_mask``): every format read back."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from badpix.cli import main
from badpix.crystfel import parse_geometry
from badpix.maskexport import NEXUS_DEFAULT, read_edf

OFFSET, NOISE, BAD_ASIC = 1 << 0, 1 << 1, 1 << 24


def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def static(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["mask"][()]


@pytest.mark.parametrize("layout", ["vds", "stacked"])
def test_export_crystfel(agipd_mask: Path, tmp_path: Path, layout: str) -> None:
    from extra_geom import AGIPD_1MGeometry

    out = tmp_path / "m.geom"
    assert run("export", agipd_mask, "--format", "crystfel", "--layout", layout,
               "-o", out).exit_code == 0
    text = out.read_text()
    top, _ = parse_geometry(text)
    assert top["mask_file"] == str(agipd_mask.resolve())
    assert top["mask"] == {"vds": "/mask", "stacked": "/mask_stacked"}[layout]
    bad_bits = int(top["mask_bad"], 0)
    assert bad_bits < 2**31 and top["mask_good"] == "0x0"
    assert int(np.bitwise_or.reduce(static(agipd_mask).ravel())) & ~bad_bits == 0
    lines = text.splitlines()
    keys = [ln.split(";")[0].split("=")[0].strip() if "=" in ln.split(";")[0] else ""
            for ln in lines]
    first_panel = next(i for i, k in enumerate(keys) if "/" in k or k.startswith("rigid_group"))
    assert max(i for i, ln in enumerate(lines) if ln.startswith("mask")) < first_panel
    AGIPD_1MGeometry.from_crystfel_geom(str(out))


def test_export_pyfai_cheetah_om_nexus_round_trip(agipd_mask: Path, tmp_path: Path) -> None:
    mask = static(agipd_mask)
    bad = mask != 0
    stacked = bad.reshape(-1, 128)
    assert run("export", agipd_mask, "--format", "pyfai", "-o", tmp_path / "m.edf").exit_code == 0
    header, arr = read_edf(tmp_path / "m.edf")
    assert header["polarity"] == "1=masked" and np.array_equal(arr, stacked.astype(np.int8))
    run("export", agipd_mask, "--format", "pyfai", "-o", tmp_path / "m.npy")
    assert np.array_equal(np.load(tmp_path / "m.npy"), stacked)
    for fmt in ("cheetah", "om"):
        run("export", agipd_mask, "--format", fmt, "-o", tmp_path / f"{fmt}.h5")
        with h5py.File(tmp_path / f"{fmt}.h5", "r") as f:
            assert f["data/data"].attrs["polarity"].startswith("1=good")
            assert np.array_equal(f["data/data"][()] == 0, stacked)
    run("export", agipd_mask, "--format", "nexus", "-o", tmp_path / "nx.h5")
    with h5py.File(tmp_path / "nx.h5", "r") as f:
        pm = f["entry/instrument/detector/pixel_mask"][()]
        assert f["entry/instrument/detector"].attrs["NX_class"] == "NXdetector"
    assert np.array_equal(pm != 0, bad)
    assert np.all(pm[mask == NOISE] == 1 << 4)  # noisy
    assert np.all(pm[5] == NEXUS_DEFAULT)  # a module without dark data: "dead"
    asic = (mask & BAD_ASIC) != 0
    assert asic.sum() == 4096 and np.all(pm[asic] & (1 << 6))  # part of a bad cluster


def test_export_pyfai_assembled_and_bits(agipd_mask: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.npy"
    r = run("export", agipd_mask, "--format", "pyfai", "--layout", "assembled", "-o", out)
    assert r.exit_code == 0, r.output
    arr = np.load(out)
    assert arr.shape == (1256, 1092)  # extra-geom's assembled AGIPD 1M example
    assert arr.mean() > np.mean(static(agipd_mask) != 0)  # gaps are masked too
    r = run("export", agipd_mask, "--format", "pyfai", "--bits", "0x1", "-o", tmp_path / "b.npy")
    assert r.exit_code == 0
    assert np.load(tmp_path / "b.npy").sum() == np.count_nonzero(static(agipd_mask) & OFFSET)
    r = run("export", agipd_mask, "--format", "om", "--layout", "vds", "-o", tmp_path / "c.h5")
    assert r.exit_code == 1 and "layouts" in r.output


@pytest.mark.parametrize("layout", ["vds", "stacked"])
def test_export_crystfel_jungfrau_has_the_masks_modules(jungfrau_mask: Path, tmp_path: Path,
                                                        layout: str) -> None:
    """JUNGFRAU's default geometry has the mask's module count (a JF1M: 2 x 8 panels)."""
    from extra_geom import JUNGFRAUGeometry

    out = tmp_path / "jf.geom"
    r = run("export", jungfrau_mask, "--format", "crystfel", "--layout", layout, "-o", out)
    assert r.exit_code == 0, r.output
    top, panels = parse_geometry(out.read_text())
    assert top["mask_file"] == str(jungfrau_mask.resolve()) and top["mask_good"] == "0x0"
    assert len(panels) == 16
    # vds: module 1 is dim1 = 1 of (frame, module, ss, fs); stacked: rows 512-1023 of (M*ss, fs)
    if layout == "vds":
        assert panels["p1a7"]["dim1"] == "1" and panels["p1a7"]["max_ss"] == "511"
    else:
        assert panels["p1a7"]["dim1"] == "ss" and panels["p1a7"]["max_ss"] == "1023"
    assert JUNGFRAUGeometry.from_crystfel_geom(str(out)).expected_data_shape == (2, 512, 1024)


def test_export_lpd_assembled_and_unknown_detector(lpd_mask: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "a.npy"
    r = run("export", lpd_mask, "--format", "pyfai", "--layout", "assembled", "-o", out)
    assert r.exit_code == 0, r.output
    arr = np.load(out)
    assert arr.ndim == 2 and arr.mean() > np.mean(static(lpd_mask) != 0)
    other = tmp_path / "mydet.h5"
    shutil.copy(lpd_mask, other)
    with h5py.File(other, "r+") as f:
        f.attrs["detector"] = "MYDET"
    geom = tmp_path / "m.geom"
    r = run("export", other, "--format", "crystfel", "-o", geom)
    assert r.exit_code == 1 and "--geometry" in r.output and r.output.count("\n") == 1
    assert not geom.exists()
