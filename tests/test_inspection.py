"""``badpix inspect`` on a mask made by ``make-mask`` from simulated runs (``agipd_mask``).

Summary numbers are checked against the file's arrays and against the simulation's truth (the
dead ASIC, the missing modules); ``--check`` must pass on the real file and catch each damage.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from badpix.cli import main
from badpix.inspection import check_mask, summarize
from badpix.masktools import open_mask
from badpix.simulate import SimulatedSet, Truth, load_truth

BAD_ASIC, NO_DARK_DATA, OFFSET, NOISE = 1 << 24, 1 << 3, 1 << 0, 1 << 1


@pytest.fixture(scope="module")
def truth(agipd_dark_set: SimulatedSet) -> Truth:
    return load_truth(agipd_dark_set.truth_path)


@pytest.fixture(scope="module")
def summary(agipd_mask: Path) -> dict:
    with open_mask(agipd_mask) as m:
        return summarize(m)


def _dead_asic(truth: Truth) -> tuple[int, int]:
    """(module, ASIC number row-major over the 8 x 2 grid of 64 x 64) of the dead ASIC."""
    mod, ss, fs = np.nonzero(truth.pixels_of("dead_asic"))
    assert np.unique(mod).size == 1 and ss.size == 64 * 64
    return int(mod[0]), int(ss[0] // 64 * 2 + fs[0] // 64)


def test_summary_counts_match_arrays(agipd_mask: Path, summary: dict) -> None:
    with h5py.File(agipd_mask, "r") as f:
        static, per_cell = f["mask"][()], f["mask_per_cell"][()]
    assert summary["bad"]["count"] == np.count_nonzero(static)
    assert [r["bad"] for r in summary["per_module"]] == [
        int(np.count_nonzero(static[m])) for m in range(16)]
    assert {r["bit"]: r["count"] for r in summary["per_bit"]} == {
        1 << i: int(np.count_nonzero(static & (1 << i)))
        for i in range(32) if np.any(static & (1 << i))}
    assert [r["bad"] for r in summary["per_cell"]] == [
        int(np.count_nonzero(per_cell[:, c])) for c in range(8)]
    assert [r["fraction_processed"] for r in summary["per_cell"]] == pytest.approx(
        [np.count_nonzero(per_cell[:3, c]) / (3 * 65536) for c in range(8)])
    assert max(r["fraction_processed"] for r in summary["per_cell"]) < 0.05
    assert summary["cells"] == list(range(8))
    assert summary["gain_stages"] == ["high", "medium", "low"]


def test_summary_finds_the_simulated_defects(summary: dict, truth: Truth) -> None:
    missing = truth.pixels_of("missing_module")
    mods = {r["module"]: r for r in summary["per_module"]}
    assert [m for m, r in mods.items() if not r["processed"]] == list(range(3, 16))
    assert all(mods[m]["bad"] == 65536 for m in range(3, 16))
    bits = {r["name"]: r["count"] for r in summary["per_bit"]}
    assert bits["NO_DARK_DATA"] == np.count_nonzero(missing) == 13 * 65536
    assert bits["BAD_ASIC"] == np.count_nonzero(truth.pixels_of("dead_asic")) == 4096
    mod, asic = _dead_asic(truth)
    rows = [r for r in summary["per_asic"] if r["module"] == mod]
    assert max(rows, key=lambda r: r["bad"]) == {"module": mod, "asic": asic, "bad": 4096,
                                                  "fraction": 1.0}
    # every other ASIC of that module has only scattered bad pixels
    assert sorted(r["bad"] for r in rows)[-2] < 100


def test_robust_vs_classical_recomputed(agipd_mask: Path, summary: dict) -> None:
    with h5py.File(agipd_mask, "r") as f:
        offset, bits = f["stats/offset"][:3], f["bits"][:3]
    for g, row in enumerate(summary["per_gain"]):
        assert row["gain"] == ["high", "medium", "low"][g]
        want = np.median([np.nanmedian(offset[m, g]) for m in range(3)])
        assert row["offset_robust"] == pytest.approx(want, rel=1e-6)
        assert row["badpix_flagged"] == np.count_nonzero(bits[:, g])
        assert row["badpix_offset_noise"] == np.count_nonzero(bits[:, g] & (OFFSET | NOISE))
        assert 0 < row["both"] <= min(row["classical_flagged"], row["badpix_flagged"])
    # the high-gain noise of the simulation is larger than the medium and low ones
    assert summary["per_gain"][0]["noise_robust"] > summary["per_gain"][1]["noise_robust"]


def test_text_and_json_outputs(agipd_mask: Path, summary: dict) -> None:
    r = CliRunner().invoke(main, ["inspect", str(agipd_mask), "--top", "2"])
    assert r.exit_code == 0, r.output
    assert "per module, worst first (top 2 of 16)" in r.output
    assert "no dark data" in r.output and "robust vs classical" in r.output
    assert f"bad pixels {summary['bad']['count']} of 1048576" in r.output
    r = CliRunner().invoke(main, ["inspect", str(agipd_mask), "--json"])
    data = json.loads(r.output)
    assert data["schema"] == "badpix-inspect/1"
    assert data["datasets"]["/mask"] == {"shape": [16, 512, 128], "dtype": "uint32"}
    assert data["bad"] == summary["bad"]
    assert data["provenance"]["thresholds"]["offset_snr"] == 5.0


def test_check_ok_then_each_problem(agipd_mask: Path, tmp_path: Path) -> None:
    with open_mask(agipd_mask) as m:
        assert check_mask(m) == []  # what make-mask writes is valid
    bad = tmp_path / "bad.h5"
    shutil.copy(agipd_mask, bad)
    with h5py.File(bad, "r+") as f:
        f["mask_stacked"][0, 0] ^= 1  # stacked differs from static
        f["mask"][0, 200, 0] = 1 << 29  # unnamed bit, and not from per-cell
        f["mask"][5, 0, 0] = 0  # an unprocessed module loses NO_DARK_DATA
        del f["provenance"].attrs["runs"]
    r = CliRunner().invoke(main, ["inspect", str(bad), "--check"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    text = "\n".join(lines)
    assert "not named in /bit_names" in text
    assert "/mask_stacked differs" in text
    assert "module 0: /mask does not follow from /mask_per_cell" in text
    assert "module 5 has no dark data but /mask lacks NO_DARK_DATA" in text
    assert "/provenance lacks runs" in text
    assert "misses bits 0x20000000" in text
    assert all(ln.startswith(str(bad)) for ln in lines)
    r = CliRunner().invoke(main, ["inspect", str(agipd_mask), "--check"])
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
