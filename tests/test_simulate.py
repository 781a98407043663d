"""Tests of badpix.simulate(_pixels) and ``badpix simulate``: layout, truth, planted pixels."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from extra_data import RunDirectory

from badpix.cli import main
from badpix.detectors import load_detector
from badpix.exceptions import ConfigError, OutputExistsError
from badpix.simulate import load_truth, simulate_dark_set
from badpix.simulate_pixels import CLASSES, EXPECTED_BITS, module_frames, module_model


def test_layout_opens_with_extra_data(agipd_dark_set):
    sim = agipd_dark_set
    assert [d.name for d in sim.run_dirs] == ["r0001", "r0002", "r0003"]
    run = RunDirectory(str(sim.run_dirs[0]))
    det = {s for s in run.instrument_sources if "AGIPD1M" in s}
    assert det == {f"SPB_DET_AGIPD1M-1/DET/{m}CH0:xtdf" for m in (0, 1, 2)}
    assert len(run.train_ids) == 24
    counts = run["SPB_DET_AGIPD1M-1/DET/1CH0:xtdf", "image.data"].data_counts(labelled=False)
    assert (counts == 0).sum() == 3  # missing trains of module 1
    assert set(np.unique(counts)) == {0, 8}


def test_truth_file(agipd_dark_set):
    truth = load_truth(agipd_dark_set.truth_path)
    assert truth.class_code.shape == (16, 512, 128)
    assert truth.class_names == CLASSES
    assert truth.pixels_of("missing_module")[3:].all()
    assert not truth.pixels_of("missing_module")[:3].any()
    dead = truth.pixels_of("dead_asic")
    assert dead[0].sum() == 64 * 64 and dead[1:].sum() == 0
    for name in ("hot", "cold", "noisy", "stuck", "telegraph", "gain_bit_error", "good_spiky"):
        per_module = truth.pixels_of(name)[:3].sum(axis=(1, 2))
        assert (per_module >= 20).all() and (per_module <= 500).all(), name
    assert truth.pixels_of("always_nan").sum() == 0  # raw: no NaN classes
    bits = np.array([EXPECTED_BITS[c] for c in CLASSES], np.uint32)
    np.testing.assert_array_equal(truth.expected_bits, bits[truth.class_code])
    assert list(truth.missing_trains) == [1] and len(truth.missing_trains[1]) == 3


def _pixels(sim, module, name):
    truth = load_truth(sim.truth_path)
    return np.argwhere(truth.class_code[module] == CLASSES.index(name))


def _frames(sim, module, stage):
    spec = load_detector(sim.plan.detector)
    model = module_model(sim.plan, spec, module)
    return module_frames(sim.plan, spec, model, module, stage, 0)


def test_planted_pixels_behave(agipd_dark_set):
    sim = agipd_dark_set
    analog, digital = _frames(sim, 0, 0)
    a = analog.astype(np.float32)
    med = np.median(a, axis=0)  # (cells, ss, fs)
    std = a.std(axis=0)
    good = _pixels(sim, 0, "good")
    good_std = np.median(std[:, good[:, 0], good[:, 1]])
    assert 15 < good_std < 25  # ~20 ADU high-gain noise
    for name, check in [
        ("hot", lambda p: med[:, p[:, 0], p[:, 1]] > 5500),
        ("noisy", lambda p: std[:, p[:, 0], p[:, 1]] > 2.5 * good_std),
        ("stuck", lambda p: std[:, p[:, 0], p[:, 1]] == 0),
    ]:
        assert np.mean(check(_pixels(sim, 0, name))) > 0.9, name
    dead = _pixels(sim, 0, "dead_asic")
    assert med[:, dead[:, 0], dead[:, 1]].max() < 200
    # digital levels separate the stages; gain-bit errors overlap high and medium
    dig_med = [np.median(_frames(sim, 0, s)[1][:, :, :64, :64]) for s in range(3)]
    assert dig_med[0] + 800 < dig_med[1] < dig_med[2] - 800
    gbe = _pixels(sim, 0, "gain_bit_error")
    hi = np.median(digital[:, :, gbe[:, 0], gbe[:, 1]], axis=(0, 1))
    mid = np.median(_frames(sim, 0, 1)[1][:, :, gbe[:, 0], gbe[:, 1]], axis=(0, 1))
    assert np.all(np.abs(mid.astype(float) - hi) < 100)


def test_proc_nan_classes(agipd_proc_set):
    analog, digital = _frames(agipd_proc_set, 0, 0)
    assert digital is None and analog.dtype == np.float32
    always = _pixels(agipd_proc_set, 0, "always_nan")
    assert np.isnan(analog[:, :, always[:, 0], always[:, 1]]).all()
    some = _pixels(agipd_proc_set, 0, "good_some_nan")
    n_nan = np.isnan(analog[:, :, some[:, 0], some[:, 1]]).sum(axis=(0, 1))
    assert (n_nan >= 1).all() and (n_nan <= 3).all()
    good = _pixels(agipd_proc_set, 0, "good")
    assert abs(np.nanmedian(analog[:, :, good[:, 0], good[:, 1]])) < 5


def test_seeded_and_refuses_existing(tmp_path):
    a = simulate_dark_set(tmp_path / "a", modules=1, cells=2, trains=6, seed=5,
                          n_missing_trains=0)
    b = simulate_dark_set(tmp_path / "b", modules=1, cells=2, trains=6, seed=5,
                          n_missing_trains=0)
    np.testing.assert_array_equal(load_truth(a.truth_path).class_code,
                                  load_truth(b.truth_path).class_code)
    with pytest.raises(OutputExistsError):
        simulate_dark_set(tmp_path / "a", modules=1, cells=2, trains=6)
    simulate_dark_set(tmp_path / "a", modules=1, cells=2, trains=6, seed=6, force=True,
                      n_missing_trains=0)
    assert not list(tmp_path.glob(".*part"))  # no temp folder left


@pytest.mark.parametrize("kwargs, match", [
    ({"modules": 17}, "--modules"),
    ({"cells": 0}, "--cells"),
    ({"trains": 2}, "--trains"),
    ({"kind": "corr"}, "--kind"),
    ({"detector": "JUNGFRAU", "kind": "proc"}, "AGIPD only"),
    ({"detector": "LPD1M", "gain_mode": "fixed"}, "records no gain mode"),
    ({"detector": "DSSC1M", "cells": 801}, "--cells"),
    ({"counts": {"sparkly": 3}}, "unknown pixel class"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        simulate_dark_set(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "demo"
    res = runner.invoke(main, ["simulate", str(out), "--modules", "2", "--cells", "2",
                               "--trains", "6", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (out / "truth.h5").is_file() and (out / "raw" / "r0003").is_dir()
    res = runner.invoke(main, ["simulate", str(out), "--quiet"])
    assert res.exit_code == 1 and "already exists" in res.output
