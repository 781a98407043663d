"""``badpix diff`` and ``merge`` on masks made by ``make-mask`` (and ``rethreshold``) from the
simulated runs: exact changes against the arrays and scores, OR, provenance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from badpix.cli import main
from badpix.masktools import EXTERNAL_BIT

OFFSET, NOISE = 1 << 0, 1 << 1


def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def read(path: Path, name: str = "mask") -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[name][()]


@pytest.fixture(scope="module")
def strict_mask(agipd_mask: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``agipd_mask`` re-cut with offset and noise score cuts 4 instead of 5."""
    out = tmp_path_factory.mktemp("tools") / "snr4.h5"
    r = run("rethreshold", agipd_mask, "-o", out, "--offset-snr", "4", "--noise-snr", "4", "-q")
    assert r.exit_code == 0, r.output
    return out


def test_diff_self_is_empty(agipd_mask: Path) -> None:
    r = run("diff", agipd_mask, agipd_mask)
    assert r.exit_code == 0 and r.output.strip() == "no differences"


def test_diff_of_stricter_cuts(agipd_mask: Path, strict_mask: Path) -> None:
    a, b = read(agipd_mask), read(strict_mask)
    d = json.loads(run("diff", agipd_mask, strict_mask, "--json").output)
    new = (a == 0) & (b != 0)
    assert not d["identical"]
    assert d["totals"] == {"new_bad": int(new.sum()), "no_longer_bad": 0,
                           "changed_reason": int(np.count_nonzero((a != 0) & (a != b))),
                           "bad_a": int(np.count_nonzero(a)), "bad_b": int(np.count_nonzero(b))}
    assert d["totals"]["new_bad"] > 0
    assert not np.any(a & ~b)  # lower cuts only add bits
    assert {r["name"] for r in d["per_bit"]} <= {"OFFSET_OUT_OF_THRESHOLD",
                                                 "NOISE_OUT_OF_THRESHOLD"}
    for r in d["per_bit"]:
        assert r == {"bit": r["bit"], "name": r["name"], "lost": 0,
                     "gained": int(np.count_nonzero(~a & b & r["bit"]))}
    assert [m["new_bad"] for m in d["per_module"]] == [int(new[m].sum()) for m in range(16)]
    pa, pb = read(agipd_mask, "mask_per_cell"), read(strict_mask, "mask_per_cell")
    assert [c["new_bad"] for c in d["per_cell"]] == [
        int(np.count_nonzero((pa[:, c] == 0) & (pb[:, c] != 0))) for c in range(8)]
    # each new bad pixel has a score between the two cuts in some gain stage and cell
    with h5py.File(agipd_mask, "r") as f:
        score = np.maximum(np.abs(f["scores/offset"][:3]), np.abs(f["scores/noise"][:3]))
    # fmax ignores NaN (the missing module's scores) without an all-NaN warning
    worst = np.fmax.reduce(np.fmax.reduce(score, axis=1), axis=1)[new[:3]]
    assert worst.size == new.sum() and np.all((worst > 4) & (worst <= 5))
    text = run("diff", strict_mask, agipd_mask).output
    assert f"0 new bad, {new.sum()} no longer bad" in text


def test_merge_is_or_and_keeps_provenance(agipd_mask: Path, strict_mask: Path,
                                          tmp_path: Path) -> None:
    plain = tmp_path / "plain.h5"
    good = np.ones((16 * 512, 128), np.uint8)
    good[42, 7] = 0  # module 0, ss 42, fs 7 is bad in a 1-good mask
    with h5py.File(plain, "w") as f:
        f["data/data"] = good
    out = tmp_path / "merged.h5"
    r = run("merge", agipd_mask, strict_mask, f"{plain}:/data/data", "--polarity", "1-good",
            "-o", out)
    assert r.exit_code == 0, r.output
    expected = read(agipd_mask) | read(strict_mask)
    expected[0, 42, 7] |= EXTERNAL_BIT
    assert np.array_equal(read(out), expected)
    per_cell = read(agipd_mask, "mask_per_cell") | read(strict_mask, "mask_per_cell")
    per_cell[0, :, 42, 7] |= EXTERNAL_BIT
    assert np.array_equal(read(out, "mask_per_cell"), per_cell)
    with h5py.File(out, "r") as f:
        src = f["provenance/sources"]
        assert sorted(src) == ["0", "1", "2"]
        assert src["0"].attrs["path"] == str(agipd_mask)
        assert src["0"].attrs["command_line"].startswith("badpix make-mask")
        assert src["2"].attrs["polarity"] == "1-good"
        assert np.array_equal(f["mask_stacked"][()], expected.reshape(-1, 128))
        assert "stats" not in f and list(f["modules_processed"][()]) == [True] * 3 + [False] * 13
    assert run("inspect", out, "--check").exit_code == 0
    assert run("merge", agipd_mask, "-o", out).exit_code == 1  # exists, no --force


def test_merge_refuses_incompatible_inputs(agipd_mask: Path, tmp_path: Path) -> None:
    plain = tmp_path / "p.h5"
    with h5py.File(plain, "w") as f:
        f["m"] = np.zeros((8, 512, 128), np.uint8)
    r = run("merge", agipd_mask, f"{plain}:/m", "-o", tmp_path / "o.h5")
    assert r.exit_code == 1 and "incompatible shapes" in r.output
    other = tmp_path / "other.h5"
    shutil.copy(agipd_mask, other)
    with h5py.File(other, "r+") as f:
        f.attrs["detector"] = "AGIPD500K"
    r = run("diff", agipd_mask, other)
    assert r.exit_code == 1 and "different detectors" in r.output
    r = run("merge", tmp_path / "nothing.h5", "-o", tmp_path / "o.h5")
    assert r.exit_code == 1 and "not a badpix mask file" in r.output
    assert not (tmp_path / "o.h5").exists()
