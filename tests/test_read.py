"""Tests of badpix.read: exact values, missing frames, selections (real files, no mocks)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from extra_data.tests.mockdata import write_file
from extra_data.tests.mockdata.detectors import LPDModule

from badpix.detectors import load_detector
from badpix.exceptions import NoDarkDataError
from badpix.read import bytes_per_frame, frame_shape, read_block
from badpix.runs import open_dark_set
from badpix.simulate import load_truth, module_frames, module_model


@pytest.fixture(scope="module")
def raw_set(agipd_dark_set):
    return open_dark_set([str(d) for d in agipd_dark_set.run_dirs])


@pytest.fixture(scope="module")
def proc_set(agipd_proc_set):
    return open_dark_set([str(d) for d in agipd_proc_set.run_dirs])


def _injected(sim, module, stage):
    spec = load_detector(sim.plan.detector)
    return module_frames(sim.plan, spec, module_model(sim.plan, spec, module), module, stage, 0)


@pytest.mark.parametrize("stage", [0, 2])
def test_raw_equals_injected(raw_set, agipd_dark_set, stage):
    block = read_block(raw_set.runs[stage], 0, raw_set.cell_ids)
    analog, digital = _injected(agipd_dark_set, 0, stage)
    assert block.analog.dtype == np.uint16 and block.digital.dtype == np.uint16
    assert block.analog.shape == (24, 8, 512, 128) and block.valid.all()
    np.testing.assert_array_equal(block.analog, analog)
    np.testing.assert_array_equal(block.digital, digital)
    assert block.gain_stage == raw_set.gain_stages[stage] and block.module == 0
    np.testing.assert_array_equal(block.train_ids, np.arange(10000, 10024))


def test_missing_trains_are_invalid_never_zero(raw_set, agipd_dark_set):
    block = read_block(raw_set.runs[1], 1, raw_set.cell_ids)
    missing = load_truth(agipd_dark_set.truth_path).missing_trains[1]
    gone = np.isin(block.train_ids, missing)
    assert gone.sum() == 3
    assert not block.valid[gone].any() and block.valid[~gone].all()
    assert (block.analog[gone] == 0).all()  # filler, flagged invalid
    assert (block.analog[block.valid] > 0).all()  # no zero in any valid frame
    analog, digital = _injected(agipd_dark_set, 1, 1)
    np.testing.assert_array_equal(block.analog[~gone], analog[~gone])
    np.testing.assert_array_equal(block.digital[~gone], digital[~gone])


@pytest.mark.parametrize("cells", [[3], [1, 5], [0, 1, 2, 6, 7]])
def test_cell_selection(raw_set, agipd_dark_set, cells):
    block = read_block(raw_set.runs[0], 1, cells, max_trains=9)
    analog, _ = _injected(agipd_dark_set, 1, 0)
    assert block.analog.shape == (9, len(cells), 512, 128)
    np.testing.assert_array_equal(block.cell_ids, cells)
    kept = block.valid[:, 0]
    tids = np.arange(10000, 10024)
    present = ~np.isin(tids, load_truth(agipd_dark_set.truth_path).missing_trains[1])
    np.testing.assert_array_equal(block.train_ids, tids[:9])
    np.testing.assert_array_equal(kept, present[:9])
    np.testing.assert_array_equal(block.analog[kept], analog[:9][present[:9]][:, cells])


def test_max_trains_in_set_and_block(agipd_dark_set):
    ds = open_dark_set([str(d) for d in agipd_dark_set.run_dirs], max_trains=5, cells=[4])
    block = read_block(ds.runs[0], 2, ds.cell_ids)
    assert block.analog.shape == (5, 1, 512, 128)
    assert read_block(ds.runs[0], 2, ds.cell_ids, max_trains=2).analog.shape[0] == 2


def test_absent_cell_is_invalid(raw_set):
    block = read_block(raw_set.runs[0], 0, [7, 100])
    assert block.valid[:, 0].all() and not block.valid[:, 1].any()


def test_proc_keeps_nan(proc_set, agipd_proc_set):
    block = read_block(proc_set.runs[0], 1, proc_set.cell_ids)
    assert block.analog.dtype == np.float32 and block.digital is None
    truth = load_truth(agipd_proc_set.truth_path)
    gone = np.isin(block.train_ids, truth.missing_trains[1])
    assert not block.valid[gone].any() and np.isnan(block.analog[gone]).all()
    always = truth.pixels_of("always_nan")[1]
    assert np.isnan(block.analog[block.valid][:, always]).all()
    good = truth.pixels_of("good")[1]
    assert np.isfinite(block.analog[block.valid][:, good]).all()
    analog, _ = _injected(agipd_proc_set, 1, 0)
    np.testing.assert_array_equal(block.analog[~gone], analog[~gone])


def test_errors(raw_set):
    with pytest.raises(NoDarkDataError, match="module 3 has no data"):
        read_block(raw_set.runs[0], 3, [0])
    for bad in ([], [2, 1], [1, 1], [-1], [[1, 2]]):
        with pytest.raises(ValueError, match="cell_ids"):
            read_block(raw_set.runs[0], 0, bad)
    with pytest.raises(ValueError, match="max_trains"):
        read_block(raw_set.runs[0], 0, [0], max_trains=0)


def test_sizes():
    agipd = load_detector("AGIPD1M")
    assert frame_shape(agipd) == (512, 128)
    assert bytes_per_frame(agipd, "raw") == 512 * 128 * 4  # analog + digital uint16
    assert bytes_per_frame(agipd, "proc") == 512 * 128 * 4  # float32
    assert bytes_per_frame(load_detector("DSSC1M"), "raw") == 128 * 512 * 2


def test_lpd_gain_bits(tmp_path):
    """LPD raw words: 12-bit analog, gain stage in bits 12-13."""
    run = tmp_path / "r0001"
    run.mkdir()
    fn = run / "RAW-R0001-LPD00-S00000.h5"
    write_file(str(fn), [LPDModule("FXE_DET_LPD1M-1/DET/0CH0", frames_per_train=4)],
               ntrains=3, format_version="1.0")
    rng = np.random.default_rng(0)
    analog = rng.integers(0, 4096, (12, 1, 256, 256), dtype=np.uint16)
    gain = rng.integers(0, 3, (12, 1, 256, 256), dtype=np.uint16)
    with h5py.File(fn, "r+") as f:
        f["INSTRUMENT/FXE_DET_LPD1M-1/DET/0CH0:xtdf/image/data"][...] = analog | (gain << 12)
    ds = open_dark_set([run], gain_stages=["high"])
    assert ds.spec.name == "LPD1M" and ds.kind == "raw"
    block = read_block(ds.runs[0], 0, [1, 2, 3])
    np.testing.assert_array_equal(block.analog, analog.reshape(3, 4, 256, 256)[:, 1:])
    np.testing.assert_array_equal(block.digital, gain.reshape(3, 4, 256, 256)[:, 1:])
