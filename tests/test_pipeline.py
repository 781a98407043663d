"""Planning, one-process runs, partial results and their assembly (Python API)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from badpix.assembly import assemble
from badpix.classify import Thresholds
from badpix.exceptions import ConfigError, MaskFileError
from badpix.maskfile import read_mask
from badpix.pipeline import (
    MaskOptions,
    WorkUnit,
    bytes_per_cell,
    fingerprint,
    make_mask,
    plan_units,
    write_partial,
)
from badpix.runs import open_dark_set
from badpix.stats import StatsParams

# the tiny proposal set has 8 trains: let 5 valid frames suffice
OPTS = MaskOptions(Thresholds(min_valid_samples=5), StatsParams(min_valid_samples=5))


@pytest.fixture(scope="module")
def tiny(agipd_proposal_root):
    return open_dark_set(agipd_proposal_root.run_dirs)


def test_plan_units_fits_memory(agipd_dark_set):
    ds = open_dark_set(agipd_dark_set.run_dirs)
    per_cell = bytes_per_cell(ds)
    assert per_cell > 24 * 512 * 128 * 4  # at least one run's frames (analog + digital)
    whole = plan_units(ds, 1 << 40)
    assert [(u.module, u.cell_ids) for u in whole] == [(m, tuple(range(8))) for m in (0, 1, 2)]
    budget = (512 << 20) + 3 * per_cell  # room for 3 cells: 8 cells -> 3 blocks of 3, 3, 2
    units = plan_units(ds, budget)
    assert [u.cell_ids for u in units[:3]] == [(0, 1, 2), (3, 4, 5), (6, 7)]
    assert len(units) == 9
    with pytest.raises(ConfigError, match="too small"):
        plan_units(ds, 1 << 20)


def test_work_unit_cells():
    assert WorkUnit(3, (4, 5, 6)).cells == "4:7"
    assert WorkUnit(3, (1, 5)).cells == "1,5"
    assert WorkUnit(0, (0, 1)).to_json() == {"module": 0, "cells": [0, 1]}


def test_fingerprint_changes_with_options(tiny):
    a = fingerprint(tiny, OPTS)
    assert a == fingerprint(tiny, OPTS)
    other = MaskOptions(Thresholds(min_valid_samples=5, offset_snr=7), OPTS.stats_params)
    assert fingerprint(tiny, other) != a


def test_partials_assemble_equal_one_process(tiny, tmp_path):
    whole = make_mask(tiny, tmp_path / "whole.h5", OPTS)
    parts = [write_partial(tiny, WorkUnit(0, (c,)), tmp_path / f"p{c}.h5", OPTS) for c in (0, 1)]
    out = assemble(parts[::-1], tmp_path / "asm.h5")
    with read_mask(whole) as a, read_mask(out) as b:
        assert a.modules_processed == b.modules_processed
        for name in ("mask", "mask_per_cell", "bits"):
            np.testing.assert_array_equal(a.file[name][()], b.file[name][()])
        for name in a.stats:
            np.testing.assert_array_equal(a.stats[name][()], b.stats[name][()])
        assert a.provenance["thresholds"] == b.provenance["thresholds"]
    with pytest.raises(MaskFileError, match="partial result; put the parts together"):
        read_mask(parts[0])

    with pytest.raises(MaskFileError, match=r"missing module 0 cells 1:2"):
        assemble(parts[:1], tmp_path / "x.h5")
    dup = write_partial(tiny, WorkUnit(0, (0, 1)), tmp_path / "dup.h5", OPTS)
    with pytest.raises(MaskFileError, match="duplicate unit: module 0 cell 0"):
        assemble([*parts, dup], tmp_path / "x.h5")
    other = MaskOptions(Thresholds(min_valid_samples=5, noise_snr=3), OPTS.stats_params)
    foreign = write_partial(tiny, WorkUnit(0, (1,)), tmp_path / "f.h5", other)
    with pytest.raises(MaskFileError, match="another job"):
        assemble([parts[0], foreign], tmp_path / "x.h5")
    with pytest.raises(MaskFileError, match="no partial results"):
        os.mkdir(tmp_path / "empty")
        assemble([tmp_path / "empty"], tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_failure_mid_way_leaves_nothing(tiny, tmp_path):
    def progress(units):
        for i, unit in enumerate(units):
            if i == 1:
                raise RuntimeError("disk on fire")
            yield unit

    one_cell = (512 << 20) + bytes_per_cell(tiny, overlap=True)  # one unit per cell: 2 units
    opts = MaskOptions(OPTS.thresholds, OPTS.stats_params, max_memory=one_cell)
    with pytest.raises(RuntimeError, match="disk on fire"):
        make_mask(tiny, tmp_path / "m.h5", opts, progress=progress)
    assert os.listdir(tmp_path) == []


def test_partial_of_unknown_cells(tiny, tmp_path):
    with pytest.raises(ConfigError, match="not in the runs"):
        write_partial(tiny, WorkUnit(0, (5,)), tmp_path / "p.h5", OPTS)


def test_overlap_plans_for_the_prefetched_block_and_pending_result(tiny):
    """make_mask holds two blocks and one unit's results more: its units are smaller."""
    one = bytes_per_cell(tiny)
    both = bytes_per_cell(tiny, overlap=True)
    assert both > one
    budget = (512 << 20) + one  # one cell per unit alone does not fit with the overlap
    with pytest.raises(ConfigError, match="too small"):
        plan_units(tiny, budget, overlap=True)


def test_stage_times_and_overlap_give_the_same_file(tiny, tmp_path):
    """Prefetch + writer thread: same arrays as run_unit one by one; the stages are timed."""
    from badpix.pipeline import StageTimes, run_unit

    one_cell = (512 << 20) + bytes_per_cell(tiny, overlap=True)  # several units: overlap
    opts = MaskOptions(OPTS.thresholds, OPTS.stats_params, max_memory=one_cell)
    times = StageTimes()
    out = make_mask(tiny, tmp_path / "m.h5", opts, timings=times)
    assert times.read > 0 and times.core > 0 and times.scores > 0 and times.write > 0
    assert times.read_bytes > 0 and times.total > 0
    with read_mask(out) as m:
        for unit in plan_units(tiny, opts.max_memory, overlap=True):
            want = run_unit(tiny, unit, opts)
            sel = m.layout().cell_index(unit.cell_ids)
            got = m.bits[unit.module - tiny.spec.first_module, :, sel]
            np.testing.assert_array_equal(got, want.bits)
            np.testing.assert_array_equal(
                m.stats["noise"][unit.module - tiny.spec.first_module, :, sel], want.stats["noise"]
            )
