"""CrystFEL geometry lines: content, placement before panels, values < 2**31, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from badpix.crystfel import (
    default_geometry,
    insert_mask_lines,
    mask_geometry_lines,
    parse_geometry,
)
from badpix.exceptions import ConfigError


def _first_panel_line(text: str) -> int:
    for i, line in enumerate(text.splitlines()):
        key = line.split(";")[0].split("=")[0].strip()
        if "/" in key or key.startswith(("rigid_group", "group_")):
            return i
    raise AssertionError("no panel lines")


def _line_of(text: str, start: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines()) if ln.startswith(start))


@pytest.mark.parametrize(("layout", "dataset"), [("vds", "/mask"), ("stacked", "/mask_stacked")])
def test_mask_lines(layout: str, dataset: str) -> None:
    lines = mask_geometry_lines("/d/m.h5", layout=layout, bad_bits=(1 << 25) - 1)
    top, _ = parse_geometry("\n".join(lines))
    assert top == {"mask_file": "/d/m.h5", "mask": dataset, "mask_good": "0x0",
                   "mask_bad": "0x1ffffff"}
    assert any("0.10" in ln if layout == "vds" else "0.9" in ln for ln in lines if ln[0] == ";")


@pytest.mark.parametrize("bits", [0, 2**31, -1])
def test_mask_lines_refuse_values_crystfel_cannot_read(bits: int) -> None:
    with pytest.raises(ConfigError):
        mask_geometry_lines("m.h5", layout="vds", bad_bits=bits)


def test_insert_comments_out_old_mask_lines_and_goes_before_panels() -> None:
    geom = ("data = /d\nmask = /entry_1/data_1/mask\nmask_bad = 0xffff\ndim0 = %\n"
            "rigid_group_p0 = p0a0\np0a0/min_fs = 0\np0a0/mask = /x\n")
    out = insert_mask_lines(geom, mask_geometry_lines("m.h5", layout="vds", bad_bits=7))
    top, panels = parse_geometry(out)
    assert top["mask"] == "/mask" and top["mask_bad"] == "0x7"
    assert "mask" not in panels["p0a0"]
    assert out.count("; badpix: superseded") == 3
    assert _line_of(out, "mask_bad = 0x7") < _first_panel_line(out)


def test_insert_needs_panels() -> None:
    with pytest.raises(ConfigError, match="no panel"):
        insert_mask_lines("data = /d\n", ["mask = /mask"])


@pytest.mark.parametrize("layout", ["vds", "stacked"])
def test_default_geometry_round_trips_through_extra_geom(layout: str, tmp_path: Path) -> None:
    from extra_geom import AGIPD_1MGeometry

    text = default_geometry("AGIPD1M", layout, mask_file="/d/m.h5", bad_bits=0x1ffffff)
    assert _line_of(text, "mask_bad") < _first_panel_line(text)
    top, panels = parse_geometry(text)
    assert int(top["mask_bad"], 0) < 2**31 and top["mask_good"] == "0x0"
    assert len(panels) == 128
    if layout == "vds":
        assert panels["p15a7"]["dim1"] == "15" and panels["p15a7"]["max_ss"] == "511"
    else:
        assert "dim3" not in panels["p15a7"] and panels["p15a7"]["max_ss"] == "8191"
    path = tmp_path / "g.geom"
    path.write_text(text)
    geom = AGIPD_1MGeometry.from_crystfel_geom(str(path))
    assert geom.metadata["crystfel"]["mask"] == ("/mask" if layout == "vds" else "/mask_stacked")
    ref = AGIPD_1MGeometry.example().get_pixel_positions()
    assert abs(geom.get_pixel_positions() - ref).max() < 1e-9


def test_default_geometry_500k_and_unknown_detector() -> None:
    _, panels = parse_geometry(default_geometry("AGIPD500K", "stacked"))
    assert len(panels) == 64 and panels["p7a7"]["max_ss"] == "4095"
    with pytest.raises(ConfigError, match=r"no default geometry.*--geometry"):
        default_geometry("PNCCD", "vds")


# detector, n_modules, extra-geom class, panels, (last panel, its max_ss in vds and stacked)
OTHERS = [("LPD1M", None, "LPD_1MGeometry", 256, ("p15a15", "255", "4095")),
          ("DSSC1M", None, "DSSC_1MGeometry", 32, ("p15a1", "127", "2047")),
          ("JUNGFRAU", 2, "JUNGFRAUGeometry", 16, ("p1a7", "511", "1023"))]


@pytest.mark.parametrize(("detector", "n_modules", "cls", "n_panels", "last"), OTHERS)
@pytest.mark.parametrize("layout", ["vds", "stacked"])
def test_default_geometry_lpd_dssc_jungfrau_round_trip(
        detector: str, n_modules: int | None, cls: str, n_panels: int,
        last: tuple[str, str, str], layout: str, tmp_path: Path) -> None:
    """extra-geom's example geometry, written for CrystFEL, reads back to the same pixels."""
    import extra_geom

    text = default_geometry(detector, layout, mask_file="/d/m.h5", bad_bits=0x1ffffff,
                            n_modules=n_modules)
    assert _line_of(text, "mask_bad") < _first_panel_line(text)
    top, panels = parse_geometry(text)
    assert top["mask"] == ("/mask" if layout == "vds" else "/mask_stacked")
    assert len(panels) == n_panels
    name, vds_max_ss, stacked_max_ss = last
    assert panels[name]["max_ss"] == (vds_max_ss if layout == "vds" else stacked_max_ss)
    path = tmp_path / "g.geom"
    path.write_text(text)
    geom_cls = getattr(extra_geom, cls)
    ref = geom_cls.example(**({"n_modules": n_modules} if n_modules else {}))
    back = geom_cls.from_crystfel_geom(str(path))
    assert abs(back.get_pixel_positions() - ref.get_pixel_positions()).max() < 1e-9


def test_detector_geometry_checks_module_count() -> None:
    from badpix.crystfel import detector_geometry, has_default_geometry

    assert detector_geometry("JUNGFRAU", n_modules=8).expected_data_shape == (8, 512, 1024)
    with pytest.raises(ConfigError, match="16 modules; the data have 4"):
        detector_geometry("LPD1M", n_modules=4)
    assert has_default_geometry("dssc") and not has_default_geometry("ePix100")
