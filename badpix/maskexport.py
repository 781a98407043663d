"""Write badpix masks for other programs: CrystFEL, pyFAI, Cheetah/OM, NeXus.

:func:`export_mask` is what ``badpix export`` runs; :func:`write_edf` / :func:`read_edf` are the
small EDF writer (pyFAI/fabio read it) and reader (tests); :data:`NEXUS_BITS` maps badpix bits
to NeXus ``pixel_mask`` bits.

Examples
--------
>>> from badpix.masktools import open_mask  # doctest: +SKIP
>>> with open_mask("mask.h5") as m:  # doctest: +SKIP
...     export_mask(m, "pyfai", Path("mask.edf"))["bad"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix.exceptions import MaskFileError
from badpix.masktools import KNOWN_BITS, MaskHandle, bits_present

__all__ = ["EXPORT_FORMATS", "KNOWN_BITS", "NEXUS_BITS", "NEXUS_DEFAULT", "assemble",
           "export_mask", "read_edf", "to_nexus", "write_edf"]

#: Export formats, the layouts each accepts (first = default) and the polarity written.
EXPORT_FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "crystfel": (("vds", "stacked"), "0=good, bits=reasons (mask_good=0x0, mask_bad=<bits>)"),
    "pyfai": (("stacked", "assembled"), "1=masked, 0=valid"),
    "cheetah": (("stacked",), "1=good, 0=bad"),
    "om": (("stacked",), "1=good, 0=bad"),
    "nexus": (("modules",), "0=good, NeXus pixel_mask bits"),
}

#: badpix/EuXFEL bit -> NeXus NXdetector ``pixel_mask`` bit. Bits not listed map to NeXus bit 1
#: ("dead", the generic "do not use"); NON_STANDARD_SIZE is informational and maps to nothing.
NEXUS_BITS: dict[str, int] = {
    "NOISE_OUT_OF_THRESHOLD": 1 << 4, "NOISY_ADC": 1 << 4, "NON_GAUSSIAN": 1 << 4,  # noisy
    "BAD_ASIC": (1 << 1) | (1 << 6),  # dead + part of a cluster of problematic pixels
    "INTERPOLATED": 1 << 31,  # virtual pixel (NeXus pixel_mask is uint32; not for CrystFEL)
    "USER1": 1 << 8, "USER2": 1 << 8,  # user-defined mask
    "NON_STANDARD_SIZE": 0,
}
NEXUS_DEFAULT = 1 << 1


def to_nexus(static: np.ndarray, bits: dict[str, int]) -> np.ndarray:
    """Map a badpix static mask to NeXus ``pixel_mask`` bits (see :data:`NEXUS_BITS`).

    Examples
    --------
    >>> to_nexus(np.array([0, 2, 1], dtype=np.uint32), KNOWN_BITS).tolist()
    [0, 16, 2]
    """
    out = np.zeros(static.shape, dtype=np.uint32)
    names = {v: k for k, v in bits.items()}
    for bit in bits_present(static):
        out[(static & bit) != 0] |= np.uint32(NEXUS_BITS.get(names.get(bit, ""), NEXUS_DEFAULT))
    return out


def write_edf(path: Path, data: np.ndarray, header: dict[str, str]) -> None:
    """Write a 2-D array as an ESRF data format (EDF) file, as fabio/pyFAI read it.

    The header is ASCII ``key = value ;`` lines in braces, padded to a multiple of 512 bytes.
    """
    types = {np.dtype("int8"): "SignedByte", np.dtype("uint8"): "UnsignedByte"}
    data = np.ascontiguousarray(data)
    keys = {
        "HeaderID": "EH:000001:000000:000000", "Image": "1", "ByteOrder": "LowByteFirst",
        "DataType": types[data.dtype], "Dim_1": str(data.shape[1]), "Dim_2": str(data.shape[0]),
        "Size": str(data.nbytes), **header,
    }
    text = "{\n" + "".join(f"{k} = {v} ;\n" for k, v in keys.items())
    pad = -(len(text) + 2) % 512
    path.write_bytes((text + " " * pad + "}\n").encode("ascii") + data.tobytes())


def read_edf(path: str | Path) -> tuple[dict[str, str], np.ndarray]:
    """Read a file written by :func:`write_edf` (header dict, 2-D array)."""
    raw = Path(path).read_bytes()
    end = raw.index(b"}\n") + 2
    header = {}
    for line in raw[:end].decode("ascii").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            header[k.strip()] = v.strip().rstrip(";").strip()
    dtype = {"SignedByte": np.int8, "UnsignedByte": np.uint8}[header["DataType"]]
    shape = (int(header["Dim_2"]), int(header["Dim_1"]))
    return header, np.frombuffer(raw[end:], dtype=dtype).reshape(shape)


def assemble(static_bad: np.ndarray, geometry: Any) -> np.ndarray:
    """Place a per-module boolean mask in the lab frame; pixels between modules are masked."""
    img, _ = geometry.position_modules(static_bad.astype(np.float32))
    return np.where(np.isnan(img), 1, img > 0.5).astype(np.int8)


def export_mask(
    m: MaskHandle,
    fmt: str,
    out: Path,
    *,
    layout: str | None = None,
    geometry_file: str | Path | None = None,
    bad_bits: int | None = None,
    suffix: str | None = None,
) -> dict[str, Any]:
    """Write mask ``m`` for another program; return a summary (format, layout, shape, bad).

    Formats (polarity is also written into each file's attributes or header):

    ``crystfel``
        A full ``.geom`` whose mask lines point at the mask file (absolute path), ``/mask``
        for ``layout="vds"`` (4-D data, CrystFEL 0.10+) or ``/mask_stacked`` for
        ``"stacked"`` (CrystFEL 0.9+), placed before the panels. Panels from ``geometry_file``
        (its mask lines are replaced) or extra-geom's example geometry (AGIPD, LPD, DSSC,
        JUNGFRAU with the mask's module count; other detectors need ``geometry_file``).
    ``pyfai``
        int8, 1 = masked, 0 = valid (pyFAI's ``mask=`` convention): stacked ``(M*ss, fs)`` or
        ``"assembled"`` (lab frame via the geometry; gaps masked). Written by extension:
        ``.edf`` (read by fabio / ``pyFAI-calib2 -m``), ``.npy``, or ``.h5`` (dataset
        ``/mask``, pass ``FILE.h5::/mask``).
    ``cheetah``, ``om``
        HDF5 dataset ``/data/data`` (Cheetah's default path; set OM's
        ``bad_pixel_map_hdf5_path`` to it), uint8 1 = good, 0 = bad, stacked ``(M*ss, fs)``.
    ``nexus``
        ``/entry/instrument/detector/pixel_mask`` (NXentry/NXinstrument/NXdetector), uint32
        ``(M, ss, fs)``, NeXus bits via :data:`NEXUS_BITS`.

    ``bad_bits`` chooses which badpix bits count as bad (default: all); pixels with only other
    bits are good in the export. ``suffix`` names the file type when ``out`` is a temporary
    name (default: ``out``'s suffix).
    """
    from badpix.crystfel import (
        default_geometry,
        detector_geometry,
        insert_mask_lines,
        mask_geometry_lines,
    )

    if fmt not in EXPORT_FORMATS:
        known = ", ".join(EXPORT_FORMATS)
        raise MaskFileError(f"unknown export format {fmt!r}; use one of {known}")
    layouts, polarity = EXPORT_FORMATS[fmt]
    layout = layout or layouts[0]
    if layout not in layouts:
        raise MaskFileError(f"format {fmt} has layouts {', '.join(layouts)}, not {layout!r}")
    static = m.static()
    if bad_bits is None:
        bad_bits = int(np.bitwise_or.reduce([*m.bits.values(), *bits_present(static)]))
    bad_bits &= 0x7FFFFFFF  # CrystFEL reads masks as int32; badpix writes no higher bit
    selected = static & np.uint32(bad_bits)
    bad = selected != 0
    stacked = bad.reshape(-1, bad.shape[2])
    shape: tuple[int, ...]
    if fmt == "crystfel":
        lines = mask_geometry_lines(str(m.path.resolve()), layout=layout, bad_bits=bad_bits)
        if geometry_file is not None:
            text = insert_mask_lines(Path(geometry_file).read_text(), lines)
        else:
            text = insert_mask_lines(
                default_geometry(m.detector, layout, n_modules=m.n_modules), lines)
        out.write_text(text)
        shape = m.shape if layout == "vds" else stacked.shape
    elif fmt == "pyfai":
        arr = stacked.astype(np.int8)
        if layout == "assembled":
            arr = assemble(bad, detector_geometry(m.detector, geometry_file,
                                                  n_modules=m.n_modules))
        suffix = (suffix or out.suffix or ".npy").lower()  # out may be a temp name
        if suffix == ".edf":
            write_edf(out, arr, {"polarity": "1=masked", "badpix_source": m.path.name})
        elif suffix in (".h5", ".hdf5"):
            with h5py.File(out, "w") as f:
                f.create_dataset("mask", data=arr).attrs.update(polarity="1=masked, 0=valid")
        else:
            with out.open("wb") as fh:  # np.save would append .npy to a temp name
                np.save(fh, arr)
        shape = arr.shape
    elif fmt in ("cheetah", "om"):
        with h5py.File(out, "w") as f:
            d = f.create_dataset("data/data", data=(~stacked).astype(np.uint8))
            d.attrs.update(polarity=polarity, source=str(m.path))
        shape = stacked.shape
    else:
        with h5py.File(out, "w") as f:
            f.attrs["default"] = "entry"
            det = f.create_group("entry/instrument/detector")
            f["entry"].attrs["NX_class"] = "NXentry"
            f["entry/instrument"].attrs["NX_class"] = "NXinstrument"
            det.attrs["NX_class"] = "NXdetector"
            d = det.create_dataset("pixel_mask", data=to_nexus(selected, m.bits))
            d.attrs.update(polarity=polarity, source=str(m.path), badpix_bit_mapping=json.dumps(
                {k: NEXUS_BITS.get(k, NEXUS_DEFAULT) for k in m.bits}))
        shape = m.shape
    return {"format": fmt, "layout": layout, "shape": list(shape), "bad": int(bad.sum()),
            "polarity": polarity, "bad_bits": f"0x{bad_bits:x}"}
