"""Tests of badpix.runs: resolving, opening and validating dark runs (real files, no mocks)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from extra_data.tests.mockdata import write_file
from extra_data.tests.mockdata.detectors import LPDModule

from badpix.exceptions import DataReadError, NoDarkDataError, RunError
from badpix.runs import open_dark_set, resolve_run


def _runs(sim):
    return [str(d) for d in sim.run_dirs]


def test_open_raw_set(agipd_dark_set):
    ds = open_dark_set(_runs(agipd_dark_set))
    assert ds.spec.name == "AGIPD1M" and ds.detector_id == "SPB_DET_AGIPD1M-1"
    assert ds.kind == "raw" and ds.gain_stages == ["high", "medium", "low"]
    assert ds.modules == [0, 1, 2]
    assert ds.missing_modules == list(range(3, 16))
    np.testing.assert_array_equal(ds.cell_ids, np.arange(8))
    for run in ds.runs:
        assert run.gain_stage_from == "order" and run.gain_mode == "adaptive"
        assert run.train_ids.size == 24
        assert run.module_train_ids(1).size == 21 and run.module_train_ids(0).size == 24
        assert sorted(run.sources) == [0, 1, 2]


def test_open_proc_set(agipd_proc_set):
    ds = open_dark_set(_runs(agipd_proc_set))
    assert ds.kind == "proc" and ds.modules == [0, 1, 2]
    assert ds.runs[0].gain_mode is None  # proc runs carry no control data
    assert ds.runs[0].sources[0] == "SPB_DET_AGIPD1M-1/CORR/0CH0:output"


def test_gain_stage_from_metadata_in_any_order(agipd500k_dark_set):
    runs = _runs(agipd500k_dark_set)[::-1]  # low, medium, high
    ds = open_dark_set(runs)
    assert ds.spec.name == "AGIPD500K"
    assert ds.gain_stages == ["high", "medium", "low"]
    assert [r.path.name for r in ds.runs] == ["r0001", "r0002", "r0003"]
    assert all(r.gain_stage_from == "metadata" and r.gain_mode == "fixed" for r in ds.runs)
    assert ds.missing_modules == list(range(2, 8))


def test_gain_stages_option_overrides(agipd_dark_set):
    runs = _runs(agipd_dark_set)
    ds = open_dark_set(runs[:1], gain_stages=["medium"])
    assert ds.gain_stages == ["medium"] and ds.runs[0].gain_stage_from == "option"
    with pytest.raises(RunError, match="unknown gain stage 'ultra'"):
        open_dark_set(runs[:1], gain_stages=["ultra"])
    with pytest.raises(RunError, match="2 gain stages given for 1 runs"):
        open_dark_set(runs[:1], gain_stages=["high", "low"])


def test_selections(agipd_dark_set):
    ds = open_dark_set(_runs(agipd_dark_set), modules=[1, 3], cells=[5, 2], max_trains=10)
    assert ds.modules == [1] and ds.missing_modules == [3]
    np.testing.assert_array_equal(ds.cell_ids, [2, 5])
    assert all(r.train_ids.size == 10 for r in ds.runs)
    assert list(ds.runs[0].module_index) == [1]
    with pytest.raises(RunError, match=r"memory cells 9 are not in the runs \(cells 0-7\)"):
        open_dark_set(_runs(agipd_dark_set), cells=[1, 9])
    with pytest.raises(RunError, match=r"modules must be in 0\.\.15"):
        open_dark_set(_runs(agipd_dark_set), modules=[16])
    with pytest.raises(RunError, match="--max-trains must be positive"):
        open_dark_set(_runs(agipd_dark_set), max_trains=0)


def test_no_module_left(agipd_dark_set):
    with pytest.raises(NoDarkDataError, match="no trains with detector data left"):
        open_dark_set(_runs(agipd_dark_set), modules=[3])


def test_not_a_run(tmp_path):
    with pytest.raises(RunError, match="is not a run: no EuXFEL HDF5 files"):
        open_dark_set([tmp_path] * 3)
    with pytest.raises(RunError, match="neither a run folder nor PROPOSAL:RUN"):
        open_dark_set([tmp_path / "nope"])
    with pytest.raises(RunError, match="no dark runs given"):
        open_dark_set([])


def test_no_detector(tmp_path, agipd_dark_set):
    run = tmp_path / "r0001"
    run.mkdir()
    ctrl = next(agipd_dark_set.run_dirs[0].glob("*CTRL*"))
    shutil.copy(ctrl, run)
    with pytest.raises(RunError, match=r"no detector data in .*r0001"):
        open_dark_set([run] * 3)


def test_several_detectors(run_copy):
    for i, run in enumerate(run_copy):
        write_file(str(run / f"RAW-R{i + 1:04d}-LPD00-S00000.h5"),
                   [LPDModule("FXE_DET_LPD1M-1/DET/0CH0", frames_per_train=8)],
                   ntrains=24, format_version="1.0")
    with pytest.raises(RunError, match=r"several detectors in .*: FXE_DET_LPD1M-1 \(LPD1M\), "
                                       r"SPB_DET_AGIPD1M-1 \(AGIPD1M\); choose one with"):
        open_dark_set(run_copy)
    assert open_dark_set(run_copy, detector="AGIPD1M").detector_id == "SPB_DET_AGIPD1M-1"
    assert open_dark_set(run_copy, detector="FXE_DET_LPD1M-1").spec.name == "LPD1M"
    with pytest.raises(RunError, match="no detector 'DSSC1M' data"):
        open_dark_set(run_copy, detector="DSSC1M")


def test_wrong_number_of_runs(agipd_dark_set):
    with pytest.raises(RunError, match=r"AGIPD1M needs 3 dark runs \(one per gain stage: "
                                       r"high, medium, low\), got 2"):
        open_dark_set(_runs(agipd_dark_set)[:2])


def test_duplicate_gain_stage(agipd_dark_set, agipd500k_dark_set):
    runs = _runs(agipd_dark_set)
    with pytest.raises(RunError, match="are both high gain"):
        open_dark_set(runs, gain_stages=["high", "high", "low"])
    r500 = _runs(agipd500k_dark_set)
    with pytest.raises(RunError, match=r"are both medium gain \(metadata\)"):
        open_dark_set([r500[0], r500[1], r500[1]])


def test_mismatched_runs(agipd_dark_set, agipd500k_dark_set, agipd_proposal_root,
                         agipd_proc_set):
    runs = _runs(agipd_dark_set)
    with pytest.raises(RunError, match="runs are from different detectors"):
        open_dark_set([runs[0], runs[1], str(agipd500k_dark_set.run_dirs[2])])
    with pytest.raises(RunError, match=r"different memory cells: .* has 8 \(0-7\), .* has 2"):
        open_dark_set([runs[0], runs[1], str(agipd_proposal_root.run_dirs[2])])
    with pytest.raises(RunError, match="runs mix raw and proc data"):
        open_dark_set([runs[0], runs[1], str(agipd_proc_set.run_dirs[2])])


def test_truncated_file(run_copy):
    victim = run_copy[1] / "RAW-R0002-AGIPD01-S00000.h5"
    os.truncate(victim, victim.stat().st_size // 2)
    with pytest.raises(DataReadError, match=r"RAW-R0002-AGIPD01-S00000\.h5"):
        open_dark_set(run_copy)


def test_corrupt_file(run_copy):
    victim = run_copy[2] / "RAW-R0003-AGIPD00-S00000.h5"
    with open(victim, "r+b") as f:
        f.write(b"\x00garbage!" * 100)
    with pytest.raises(DataReadError, match=r"cannot read .*RAW-R0003-AGIPD00-S00000.h5"):
        open_dark_set(run_copy)


def test_proposal_run(monkeypatch, agipd_proposal_root, agipd_proc_set):
    root = agipd_proposal_root.root
    monkeypatch.setenv("EXTRA_DATA_DATA_ROOT", str(root))
    assert resolve_run("900001:2") == agipd_proposal_root.run_dirs[1]
    assert resolve_run("p900001:r0003") == agipd_proposal_root.run_dirs[2]
    ds = open_dark_set(["900001:1", "900001:2", "900001:3"])
    assert ds.modules == [0] and ds.gain_stages == ["high", "medium", "low"]
    with pytest.raises(RunError, match="run 7 of proposal 900001 has no raw or proc folder"):
        resolve_run("900001:7")
    with pytest.raises(RunError, match="run 1 of proposal 900001 has no proc folder"):
        resolve_run("900001:1", data="proc")
    with pytest.raises(RunError, match="proposal 123 not found under"):
        resolve_run("123:1")
    # a proposal with proc data only: auto falls back to proc
    proc_only = Path(root) / "SPB" / "202601" / "p900002" / "proc"
    proc_only.mkdir(parents=True)
    (proc_only / "r0001").symlink_to(agipd_proc_set.run_dirs[0])
    assert resolve_run("900002:1") == proc_only / "r0001"
    with pytest.raises(RunError, match="has no raw folder"):
        resolve_run("900002:1", data="raw")
