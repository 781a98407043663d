"""``badpix inspect``: summary numbers vs the arrays, JSON, --check, and the plot's pixels."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from _maskfixtures import ASIC, HOT, NOISY, UNPROCESSED, write_planted_mask
from click.testing import CliRunner

from badpix.cli import main
from badpix.inspection import check_mask, plot_mask, summarize
from badpix.masktools import open_mask


@pytest.fixture(scope="module")
def mask(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_planted_mask(tmp_path_factory.mktemp("insp") / "mask.h5")


def test_summary_matches_arrays(mask: Path) -> None:
    with open_mask(mask) as m:
        s = summarize(m)
        static = m.file["mask"][()]
        per_cell = m.file["mask_per_cell"][()]
    assert s["bad"]["count"] == np.count_nonzero(static) == 65536 + 4096 + len(HOT) + len(NOISY)
    mods = {r["module"]: r for r in s["per_module"]}
    assert mods[UNPROCESSED]["bad"] == 65536 and not mods[UNPROCESSED]["processed"]
    assert mods[ASIC[0]]["bad"] == 4096 and mods[0]["bad"] == len(HOT)
    assert s["per_asic"][0]["bad"] == 4096
    assert {"module": 3, "asic": 5, "bad": 4096, "fraction": 1.0} in s["per_asic"]
    bits = {r["name"]: r["count"] for r in s["per_bit"]}
    assert bits == {"NO_DARK_DATA": 65536, "BAD_ASIC": 4096, "OFFSET_OUT_OF_THRESHOLD": 2,
                    "NOISE_OUT_OF_THRESHOLD": 5}
    assert [r["bad"] for r in s["per_cell"]] == [
        int(np.count_nonzero(per_cell[:, c])) for c in range(3)]
    assert s["per_cell"][1]["bad"] - s["per_cell"][0]["bad"] == len(HOT)  # hot only in cell 1
    high, medium = s["per_gain"]
    assert high["badpix_offset_noise"] == len(HOT) and medium["badpix_offset_noise"] == 3 * 5
    assert abs(high["offset_robust"] - 5000) < 1 and abs(high["offset_classical"] - 5000.5) < 1
    assert medium["both"] == 3 * 5  # the classical cut also finds the 80-ADU noisy pixels


def test_text_and_json_outputs(mask: Path) -> None:
    r = CliRunner().invoke(main, ["inspect", str(mask), "--top", "2"])
    assert r.exit_code == 0, r.output
    assert "per module, worst first (top 2 of 16)" in r.output
    assert "BAD_ASIC" in r.output and "robust vs classical" in r.output
    r = CliRunner().invoke(main, ["inspect", str(mask), "--json"])
    data = json.loads(r.output)
    assert data["schema"] == "badpix-inspect/1"
    assert data["datasets"]["/mask"] == {"shape": [16, 512, 128], "dtype": "uint32"}
    assert data["bad"]["count"] == 65536 + 4096 + 7


def test_check_ok_then_each_problem(mask: Path, tmp_path: Path) -> None:
    with open_mask(mask) as m:
        assert check_mask(m) == []
    bad = tmp_path / "bad.h5"
    bad.write_bytes(mask.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["mask_stacked"][0, 0] = 1  # stacked differs from static
        f["mask"][0, 200, 0] = 1 << 29  # unnamed bit, and not from per-cell
        del f["provenance"].attrs["runs"]
    r = CliRunner().invoke(main, ["inspect", str(bad), "--check"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    text = "\n".join(lines)
    assert "not named in /bit_names" in text
    assert "/mask_stacked differs" in text
    assert "module 0: /mask does not follow from /mask_per_cell" in text
    assert "/provenance lacks runs" in text
    assert "misses bits 0x20000000" in text
    assert all(ln.startswith(str(bad)) for ln in lines)
    r = CliRunner().invoke(main, ["inspect", str(mask), "--check"])
    assert r.exit_code == 0 and r.output.strip().endswith("OK")


def test_not_a_mask_file(tmp_path: Path) -> None:
    txt = tmp_path / "x.h5"
    txt.write_text("hello")
    r = CliRunner().invoke(main, ["inspect", str(txt)])
    assert r.exit_code == 1 and "is not a badpix mask file" in r.output
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["data"] = 1
    r = CliRunner().invoke(main, ["inspect", str(tmp_path / "y.h5")])
    assert r.exit_code == 1 and "is not a badpix mask file" in r.output


def _png_rgb(info: dict, png: np.ndarray, row: float, col: float) -> np.ndarray:
    x0, y0, x1, y1 = info["bbox"]
    (c0, c1), (r0, r1) = info["xlim"], info["ylim"]
    x = x0 + (col - c0) / (c1 - c0) * (x1 - x0)
    y = y1 - (row - r0) / (r1 - r0) * (y1 - y0)  # origin="lower": row 0 at the bottom
    return png[round(y), round(x), :3]


def test_plot_puts_bad_pixels_where_the_geometry_says(mask: Path, tmp_path: Path) -> None:
    import matplotlib.image as mpimg
    from extra_geom import AGIPD_1MGeometry

    out = tmp_path / "p.png"
    with open_mask(mask) as m:
        info = plot_mask(m, out)
    png = mpimg.imread(out)
    assert png.std() > 0.05  # not blank
    geom = AGIPD_1MGeometry.example()
    marker = np.zeros((16, 512, 128), np.float32)
    marker[ASIC[0], 160, 96] = 1  # centre of the planted ASIC
    marker[UNPROCESSED, 256, 64] = 2  # centre of the unprocessed module
    marker[0, 256, 64] = 3  # a good pixel
    img, _ = geom.position_modules(marker)
    for value, name in ((1, "BAD_ASIC"), (2, "NO_DARK_DATA"), (3, None)):
        row, col = np.argwhere(img == value)[0]
        rgb = _png_rgb(info, png, row, col)
        want = (np.array([0xE8] * 3) / 255 if name is None
                else np.array(info["colours"][name][:3]))
        assert np.allclose(rgb, want, atol=0.02), (name, rgb, want)


def test_plot_cli_refuses_existing_file(mask: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    out.write_bytes(b"old")
    r = CliRunner().invoke(main, ["inspect", str(mask), "--plot", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output and out.read_bytes() == b"old"
    r = CliRunner().invoke(main, ["inspect", str(mask), "--plot", str(out), "--force"])
    assert r.exit_code == 0 and out.read_bytes()[:4] == b"\x89PNG"
