"""Tests of badpix.detectors: built-in configs, overrides and validation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from badpix import detectors
from badpix.detectors import CONFIG_DIR, available_detectors, load_detector
from badpix.exceptions import ConfigError

EXPECTED = {  # name: (n_modules, module_shape, asic_shape, n_asics, max_cells, gain stages)
    "AGIPD1M": (16, (512, 128), (64, 64), 16, 352, 3),
    "AGIPD500K": (8, (512, 128), (64, 64), 16, 352, 3),
    "LPD1M": (16, (256, 256), (32, 128), 16, 512, 3),
    "DSSC1M": (16, (128, 512), (64, 64), 16, 800, 1),
    "JUNGFRAU": (8, (512, 1024), (256, 256), 8, 16, 3),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin(name):
    spec = load_detector(name.lower())
    n_mod, shape, asic, n_asics, cells, n_gain = EXPECTED[name]
    assert (spec.name, spec.n_modules, spec.module_shape, spec.asic_shape) == (
        name, n_mod, shape, asic)
    assert (spec.n_asics, spec.max_cells, spec.n_gain_stages) == (n_asics, cells, n_gain)
    assert spec.frame_shape == shape
    amap = spec.asic_map()
    assert amap.shape == shape and set(np.unique(amap)) == set(range(n_asics))
    for a in range(n_asics):
        assert (amap[spec.asic_slices(a)] == a).all()
    for key in ("offset_snr", "noise_snr", "min_valid_samples"):
        assert key in spec.thresholds
    assert {"likely_ratio", "certain_ratio", "msse_lambda"} <= set(spec.stats)
    assert spec.config_path.parent == CONFIG_DIR and spec.config_text


def test_available_and_encodings():
    assert set(available_detectors()) == set(EXPECTED)
    assert load_detector("AGIPD1M").gain_encoding == "digital_channel"
    lpd, jf = load_detector("LPD1M"), load_detector("JUNGFRAU")
    assert (lpd.gain_encoding, lpd.adc_bits, lpd.adc_mask) == ("adc_bits", 12, 0xFFF)
    assert (jf.gain_encoding, jf.adc_bits, jf.first_module) == ("adc_bits", 14, 1)
    assert load_detector("DSSC1M").gain_encoding == "none"
    agipd = load_detector("AGIPD1M")
    assert agipd.thresholds["offset_hard_high"] == (3000, 7000)
    assert dict(agipd.gain_mode_fixed) == {1: "high", 2: "medium", 3: "low"}
    m = re.match(agipd.raw_source_pattern, "SPB_DET_AGIPD1M-1/DET/13CH0:xtdf")
    assert m["karabo_id"] == "SPB_DET_AGIPD1M-1" and m["module"] == "13"
    assert agipd.matches_karabo_id("MID_DET_AGIPD1M-1")
    assert not agipd.matches_karabo_id("HED_DET_AGIPD500K2G")


def test_overrides():
    spec = load_detector("AGIPD1M", {"thresholds.noise_snr": 4.0,
                                     "stats": {"msse_lambda": 2.5},
                                     "detector.max_cells": 64})
    assert spec.thresholds["noise_snr"] == 4.0 and spec.stats["msse_lambda"] == 2.5
    assert spec.max_cells == 64
    assert load_detector("AGIPD1M").thresholds["noise_snr"] == 5.0  # not shared state
    with pytest.raises(ConfigError, match=r"unknown key detector\.colour"):
        load_detector("AGIPD1M", {"detector.colour": "red"})
    with pytest.raises(ConfigError, match=r"must be 'section\.key'"):
        load_detector("AGIPD1M", {"noise_snr": 4})
    with pytest.raises(ConfigError, match=r"unknown section \[magic\]"):
        load_detector("AGIPD1M", {"magic.x": 1})
    with pytest.raises(ConfigError, match=r"detector\.n_modules must be a positive integer"):
        load_detector("AGIPD1M", {"detector.n_modules": 0})


def test_unknown_detector():
    known = "AGIPD1M, AGIPD500K, DSSC1M, JUNGFRAU, LPD1M"
    with pytest.raises(ConfigError, match=f"unknown detector 'EPIX9'; known detectors: {known}$"):
        load_detector("EPIX9")
    with pytest.raises(ConfigError, match="does not exist"):
        load_detector("/nonexistent/x.toml")


def test_other_settings_in_the_config_folder_are_no_detector():
    # configs/slurm.toml (badpix slurm's settings) sits beside the detector files
    assert (CONFIG_DIR / "slurm.toml").is_file()
    assert "SLURM" not in available_detectors()
    with pytest.raises(ConfigError, match=f"unknown detector 'slurm'; known detectors: "
                                          f"{', '.join(sorted(EXPECTED))}$"):
        load_detector("slurm")


def test_config_folder_rules(tmp_path, monkeypatch):
    """Only files with a [detector] table are detectors; a broken one is reported, not hidden."""
    monkeypatch.setattr(detectors, "CONFIG_DIR", tmp_path)
    (tmp_path / "mydet.toml").write_text((CONFIG_DIR / "dssc1m.toml").read_text()
                                         .replace('name = "DSSC1M"', 'name = "MYDET"'))
    (tmp_path / "settings.toml").write_text("[default]\npartition = 'x'\n")
    (tmp_path / "broken.toml").write_text("[detector\n")
    assert available_detectors() == ["MYDET"]
    assert load_detector("mydet").name == "MYDET"
    with pytest.raises(ConfigError, match=r"unknown detector 'settings'; known detectors: "
                                          r"BROKEN, MYDET$"):
        load_detector("settings")
    with pytest.raises(ConfigError, match=r"broken\.toml: invalid TOML"):
        load_detector("broken")


def _write(tmp_path, text, old=None, new=None):
    base = (CONFIG_DIR / "agipd1m.toml").read_text()
    if old is not None:
        assert old in base
        base = base.replace(old, new)
    path = tmp_path / "det.toml"
    path.write_text(base + text)
    return path


@pytest.mark.parametrize("old, new, match", [
    ('max_cells = 352', 'max_cells = 352\ncolour = "red"', r"unknown key detector\.colour"),
    ('max_cells = 352', 'max_cells = "many"', r"detector\.max_cells must be a non-neg"),
    ('module_shape = [512, 128]', 'module_shape = [512]', r"detector\.module_shape must be"),
    ('asic_grid = [8, 2]', 'asic_grid = [4, 2]', r"does not tile module_shape"),
    ('gain_encoding = "digital_channel"', 'gain_encoding = "psychic"',
     r"detector\.gain_encoding must be one of"),
    ('gain_stages = ["high", "medium", "low"]', 'gain_stages = ["high", "high"]',
     r"detector\.gain_stages must be a non-empty list of distinct"),
    ('layout = "xtdf"', 'layout = "xyz"', r"sources\.layout must be one of"),
    ("raw = '^(?P<karabo_id>[^/]+)/DET/(?P<module>\\d+)CH0:xtdf$'", "raw = '(unclosed'",
     r"sources\.raw must be a valid regular expression"),
    ("raw = '^(?P<karabo_id>[^/]+)/DET/(?P<module>\\d+)CH0:xtdf$'", "raw = 'DET/.*'",
     r"sources\.raw must be a regular expression with groups"),
    ('max_cells = 352\n', '', r"missing key detector\.max_cells"),
    ('fixed = { 1 = "high", 2 = "medium", 3 = "low" }', 'fixed = { 1 = "ultra" }',
     r"unknown gain stage 'ultra'"),
    ('offset_snr = 5.0', 'offset_snr = { a = 1 }', r"thresholds\.offset_snr must be a number"),
])
def test_invalid_file(tmp_path, old, new, match):
    path = _write(tmp_path, "", old, new)
    with pytest.raises(ConfigError, match=match) as err:
        load_detector(path)
    assert str(path) in str(err.value)


def test_unknown_section_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section \[extras\]"):
        load_detector(_write(tmp_path, "\n[extras]\na = 1\n"))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_detector(_write(tmp_path, "\n[stats\n"))


def test_free_tables_accept_new_keys(tmp_path):
    spec = load_detector(_write(tmp_path, "", "offset_snr = 5.0",
                                "offset_snr = 5.0\nnew_rule = [1, 2.5]"))
    assert spec.thresholds["new_rule"] == (1, 2.5)


def test_jungfrau_size_from_karabo_id():
    spec = load_detector("JUNGFRAU")
    assert spec.size_from_karabo_id and not load_detector("LPD1M").size_from_karabo_id
    sizes = {k: spec.sized_for(k, [1]).n_modules
             for k in ("HED_IA1_JF500K1", "FXE_XAD_JF1M", "SPB_IRDA_JF4M")}
    assert sizes == {"HED_IA1_JF500K1": 1, "FXE_XAD_JF1M": 2, "SPB_IRDA_JF4M": 8}
    assert spec.sized_for("FXE_XAD_JF1M", [1, 3]).n_modules == 3  # never fewer than present
    assert load_detector("LPD1M").sized_for("FXE_DET_LPD1M-1", [0]).n_modules == 16


def test_size_from_karabo_id_must_be_bool(tmp_path):
    text = (CONFIG_DIR / "jungfrau.toml").read_text().replace(
        "size_from_karabo_id = true", 'size_from_karabo_id = "yes"')
    path = tmp_path / "jf.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="size_from_karabo_id must be true or false"):
        load_detector(path)
