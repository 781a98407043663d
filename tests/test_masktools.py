"""``badpix diff``, ``merge`` and ``export`` on planted masks: exact changes, OR, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from _maskfixtures import write_planted_mask
from click.testing import CliRunner

from badpix.cli import main
from badpix.crystfel import parse_geometry
from badpix.maskexport import read_edf
from badpix.masktools import EXTERNAL_BIT


@pytest.fixture(scope="module")
def masks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tools")
    a = write_planted_mask(d / "a.h5")
    b = write_planted_mask(d / "b.h5", extra_hot=[(5, 100, 100)])  # one new bad pixel
    return a, b


def run(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def static(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["mask"][()]


def test_diff_self_is_empty(masks: tuple[Path, Path]) -> None:
    r = run("diff", masks[0], masks[0])
    assert r.exit_code == 0 and r.output.strip() == "no differences"


def test_diff_finds_exactly_the_change(masks: tuple[Path, Path]) -> None:
    r = run("diff", masks[0], masks[1], "--json")
    d = json.loads(r.output)
    assert not d["identical"]
    assert d["totals"]["new_bad"] == 1 and d["totals"]["no_longer_bad"] == 0
    assert d["totals"]["changed_reason"] == 0
    assert [m["module"] for m in d["per_module"] if m["new_bad"]] == [5]
    assert d["per_bit"] == [{"bit": 1, "name": "OFFSET_OUT_OF_THRESHOLD", "gained": 1,
                             "lost": 0}]
    assert [c["new_bad"] for c in d["per_cell"]] == [0, 1, 0]
    text = run("diff", masks[1], masks[0]).output
    assert "0 new bad, 1 no longer bad" in text


def test_merge_is_or_and_keeps_provenance(masks: tuple[Path, Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain.h5"
    good = np.ones((16 * 512, 128), np.uint8)
    good[42, 7] = 0  # module 0, ss 42, fs 7 is bad in a 1-good mask
    with h5py.File(plain, "w") as f:
        f["data/data"] = good
    out = tmp_path / "merged.h5"
    r = run("merge", masks[0], masks[1], f"{plain}:/data/data", "--polarity", "1-good",
            "-o", out)
    assert r.exit_code == 0, r.output
    expected = static(masks[0]) | static(masks[1])
    expected[0, 42, 7] |= EXTERNAL_BIT
    assert np.array_equal(static(out), expected)
    with h5py.File(out, "r") as f:
        src = f["provenance/sources"]
        assert sorted(src) == ["0", "1", "2"]
        assert src["0"].attrs["path"] == str(masks[0]) and src["0"].attrs["runs"]
        assert src["2"].attrs["polarity"] == "1-good"
        assert np.array_equal(f["mask_stacked"][()], expected.reshape(-1, 128))
    assert run("inspect", out, "--check").exit_code == 0
    assert run("merge", masks[0], "-o", out).exit_code == 1  # exists, no --force


def test_merge_refuses_incompatible_inputs(masks: tuple[Path, Path], tmp_path: Path) -> None:
    plain = tmp_path / "p.h5"
    with h5py.File(plain, "w") as f:
        f["m"] = np.zeros((8, 512, 128), np.uint8)
    r = run("merge", masks[0], f"{plain}:/m", "-o", tmp_path / "o.h5")
    assert r.exit_code == 1 and "incompatible shapes" in r.output
    other = tmp_path / "other.h5"
    other.write_bytes(masks[0].read_bytes())
    with h5py.File(other, "r+") as f:
        f.attrs["detector"] = "AGIPD500K"
    r = run("diff", masks[0], other)
    assert r.exit_code == 1 and "different detectors" in r.output
    r = run("merge", tmp_path / "nothing.h5", "-o", tmp_path / "o.h5")
    assert r.exit_code == 1 and "not a badpix mask file" in r.output
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("layout", ["vds", "stacked"])
def test_export_crystfel(masks: tuple[Path, Path], tmp_path: Path, layout: str) -> None:
    from extra_geom import AGIPD_1MGeometry

    out = tmp_path / "m.geom"
    assert run("export", masks[0], "--format", "crystfel", "--layout", layout,
               "-o", out).exit_code == 0
    text = out.read_text()
    top, _ = parse_geometry(text)
    assert top["mask_file"] == str(masks[0].resolve())
    assert top["mask"] == {"vds": "/mask", "stacked": "/mask_stacked"}[layout]
    bad_bits = int(top["mask_bad"], 0)
    assert bad_bits < 2**31 and top["mask_good"] == "0x0"
    assert int(np.bitwise_or.reduce(static(masks[0]).ravel())) & ~bad_bits == 0
    lines = text.splitlines()
    keys = [ln.split(";")[0].split("=")[0].strip() if "=" in ln.split(";")[0] else ""
            for ln in lines]
    first_panel = next(i for i, k in enumerate(keys) if "/" in k or k.startswith("rigid_group"))
    assert max(i for i, ln in enumerate(lines) if ln.startswith("mask")) < first_panel
    AGIPD_1MGeometry.from_crystfel_geom(str(out))


def test_export_pyfai_cheetah_om_nexus_round_trip(masks: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    bad = static(masks[0]) != 0
    stacked = bad.reshape(-1, 128)
    assert run("export", masks[0], "--format", "pyfai", "-o", tmp_path / "m.edf").exit_code == 0
    header, arr = read_edf(tmp_path / "m.edf")
    assert header["polarity"] == "1=masked" and np.array_equal(arr, stacked.astype(np.int8))
    run("export", masks[0], "--format", "pyfai", "-o", tmp_path / "m.npy")
    assert np.array_equal(np.load(tmp_path / "m.npy"), stacked)
    for fmt in ("cheetah", "om"):
        run("export", masks[0], "--format", fmt, "-o", tmp_path / f"{fmt}.h5")
        with h5py.File(tmp_path / f"{fmt}.h5", "r") as f:
            assert f["data/data"].attrs["polarity"].startswith("1=good")
            assert np.array_equal(f["data/data"][()] == 0, stacked)
    run("export", masks[0], "--format", "nexus", "-o", tmp_path / "nx.h5")
    with h5py.File(tmp_path / "nx.h5", "r") as f:
        pm = f["entry/instrument/detector/pixel_mask"][()]
        assert f["entry/instrument/detector"].attrs["NX_class"] == "NXdetector"
    assert np.array_equal(pm != 0, bad)
    assert pm[10, 300, 5] == 1 << 4  # noisy
    assert pm[3, 150, 100] == (1 << 1) | (1 << 6)  # BAD_ASIC: dead + cluster


def test_export_pyfai_assembled_and_bits(masks: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "a.npy"
    r = run("export", masks[0], "--format", "pyfai", "--layout", "assembled", "-o", out)
    assert r.exit_code == 0, r.output
    arr = np.load(out)
    assert arr.shape[0] > 1000 and arr.mean() > 0.0625  # gaps are masked too
    r = run("export", masks[0], "--format", "pyfai", "--bits", "0x1", "-o", tmp_path / "b.npy")
    assert np.load(tmp_path / "b.npy").sum() == 2  # only the two hot pixels
    r = run("export", masks[0], "--format", "om", "--layout", "vds", "-o", tmp_path / "c.h5")
    assert r.exit_code == 1 and "layouts" in r.output
