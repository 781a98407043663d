"""Mask file layout: write units, finish, read back; validation of foreign files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from badpix.atomic import atomic_output
from badpix.classify import BadPixel
from badpix.exceptions import MaskFileError
from badpix.maskfile import FORMAT, MaskLayout, MaskWriter, read_mask

LAYOUT = MaskLayout(
    "TOY",
    n_modules=3,
    module_shape=(8, 4),
    cells=(0, 1, 2, 5),
    gain_stages=("high", "medium"),
    stat_names=("offset", "noise", "n_valid"),
    score_names=("offset",),
)


def _unit(cells, seed):
    rng = np.random.default_rng(seed)
    shape = (2, len(cells), 8, 4)
    bits = np.zeros(shape, np.uint32)
    bits[0, 0, 1, 1] = BadPixel.OFFSET_OUT_OF_THRESHOLD
    bits[1, -1, 2, 3] = BadPixel.NOISE_OUT_OF_THRESHOLD
    stats = {
        "offset": rng.normal(size=shape).astype(np.float32),
        "noise": rng.normal(size=shape).astype(np.float32),
        "n_valid": np.full(shape, 50, np.int32),
    }
    return bits, stats, {"offset": rng.normal(size=shape).astype(np.float32)}


def write(path, policy="any", units=((1, (0, 1)), (1, (2, 5)))):
    written = {}
    with atomic_output(path) as tmp, MaskWriter(tmp, LAYOUT, cell_policy=policy) as w:
        for i, (module, cells) in enumerate(units):
            bits, stats, scores = _unit(cells, i)
            w.write_unit(module, cells, bits, stats, scores)
            written[(module, cells)] = (bits, stats, scores)
        w.finish(
            provenance={"runs": [{"path": "/x", "gain": "high"}], "command_line": "badpix x"},
            train_ids={"high": np.arange(3), "medium": np.arange(4)},
            geometry_lines="mask_file = x.h5\n",
        )
    return written


def test_round_trip(tmp_path):
    out = tmp_path / "m.h5"
    written = write(out)
    with read_mask(out) as m:
        assert m.detector == "TOY"
        assert m.gain_stages == ["high", "medium"]
        assert m.cells.tolist() == [0, 1, 2, 5]
        assert m.modules_processed == [False, True, False]
        bits_a, stats_a, _ = written[(1, (0, 1))]
        np.testing.assert_array_equal(m.bits[1, :, 0:2], bits_a)
        np.testing.assert_array_equal(m.stats["offset"][1, :, 0:2], stats_a["offset"])
        np.testing.assert_array_equal(
            m.scores["offset"][1, :, 2:4], written[(1, (2, 5))][2]["offset"]
        )
        # modules never written carry NO_DARK_DATA everywhere
        assert (m.bits[0] == BadPixel.NO_DARK_DATA).all()
        assert (m.mask[0] == BadPixel.NO_DARK_DATA).all()
        assert np.isnan(m.stats["offset"][2]).all()
        # per-cell OR over gains, static OR over cells
        assert m.mask_per_cell[1, 0, 1, 1] == BadPixel.OFFSET_OUT_OF_THRESHOLD
        assert m.mask_per_cell[1, 1, 2, 3] == BadPixel.NOISE_OUT_OF_THRESHOLD
        expected = np.zeros((8, 4), np.uint32)
        expected[1, 1] = 1
        expected[2, 3] = 2
        np.testing.assert_array_equal(m.mask[1], expected)
        np.testing.assert_array_equal(m.mask_stacked[8:16], expected)
        assert m.bit_names["BAD_ASIC"] == 1 << 24
        assert max(m.bit_names.values()) < 2**31
        assert m.provenance["command_line"] == "badpix x"
        assert m.geometry_lines == "mask_file = x.h5\n"
        assert m.file["provenance/train_ids/medium"][()].tolist() == [0, 1, 2, 3]
        assert m.attrs["format"] == FORMAT and m.attrs["polarity"] == "0=good"
        assert m.file["mask"].chunks is None  # CrystFEL reads it: contiguous
        assert m.file["bits"].compression == "gzip"
        assert m.layout() == LAYOUT


def test_fraction_policy(tmp_path):
    out = tmp_path / "m.h5"
    write(out, policy="fraction:0.75")
    with read_mask(out) as m:
        # each bit is set in 2 of 4 cells: below 3/4
        assert (m.mask[1] == 0).all()
        assert m.provenance["cell_policy"] == "fraction:0.75"


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"hello", "not a readable HDF5 file"),
        (None, "no 'format = badpix-mask' attribute"),
    ],
)
def test_foreign_files_refused(tmp_path, content, reason):
    path = tmp_path / "x.h5"
    if content is None:
        with h5py.File(path, "w") as f:
            f["data"] = 1
    else:
        path.write_bytes(content)
    with pytest.raises(MaskFileError, match=f"is not a badpix mask file .*{reason}"):
        read_mask(path)


def test_truncated_and_missing(tmp_path):
    out = tmp_path / "m.h5"
    write(out)
    data = out.read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(MaskFileError, match="not a badpix mask file"):
        read_mask(tmp_path / "t.h5")
    with pytest.raises(MaskFileError, match="no such file"):
        read_mask(tmp_path / "nope.h5")


def test_inconsistent_shapes_refused(tmp_path):
    out = tmp_path / "m.h5"
    write(out)
    with h5py.File(out, "r+") as f:
        del f["cells"]
        f["cells"] = np.arange(7, dtype=np.uint16)
    with pytest.raises(MaskFileError, match="/cells"):
        read_mask(out)


@pytest.mark.parametrize("compression", ["auto", "gzip", "none"])
def test_compression_choices(tmp_path, compression):
    """bits/masks always gzip; auto: only the cheap stats/scores; the values are the same."""
    from badpix.atomic import atomic_output
    from badpix.maskfile import MaskLayout, MaskWriter

    lay = MaskLayout("TOY", 1, (4, 4), (0,), ("high",), stat_names=("offset", "n_valid"),
                     score_names=("noise", "inlier"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 1, 4, 4)).astype(np.float32)
    out = tmp_path / "m.h5"
    with atomic_output(out) as tmp, MaskWriter(tmp, lay, compression=compression) as w:
        w.write_unit(0, (0,), np.zeros((1, 1, 4, 4), np.uint32),
                     {"offset": x, "n_valid": np.ones_like(x, np.int32)},
                     {"noise": x, "inlier": x})
        w.finish()
    with read_mask(out) as m:
        assert m.attrs["compression"] == compression
        assert m.bits.compression == "gzip" and m.mask_per_cell.compression == "gzip"
        gz = {k: m.file[k].compression == "gzip"
              for k in ("stats/offset", "stats/n_valid", "scores/noise", "scores/inlier")}
        np.testing.assert_array_equal(m.stats["offset"][0], x)
    want = {"auto": {"stats/offset": False, "stats/n_valid": True, "scores/noise": False,
                     "scores/inlier": True},
            "gzip": dict.fromkeys(gz, True), "none": dict.fromkeys(gz, False)}[compression]
    assert gz == want
