"""The badpix mask file: :func:`read_mask` (validates, returns a :class:`MaskFile`).

The layout constants and :class:`MaskLayout` live in :mod:`badpix.maskfile_layout`, the writer
:class:`MaskWriter` in :mod:`badpix.maskfile_writer`; both are re-exported here, so
``from badpix.maskfile import MaskWriter, read_mask`` is the one import callers need.

The layout is specified in ``docs/design.md`` ("The mask file"). In short::

    /mask            (M, ss, fs)        uint32  static mask, 0 = good (contiguous, for CrystFEL)
    /mask_stacked    (M*ss, fs)         uint32  the same, stacked along ss (CrystFEL 2-D layouts)
    /mask_per_cell   (M, C, ss, fs)     uint32  OR over gain stages
    /bits            (M, G, C, ss, fs)  uint32  per gain stage and cell
    /stats/<name>    (M, G, C, ss, fs)  float32 (n_valid: int32)
    /scores/<name>   (M, G, C, ss, fs)  float32 signed scores the bits were cut from
    /cells, /gain_stages, /modules_processed, /bit_names, /provenance, /crystfel/geometry_lines

A partial result (one work unit of a SLURM job) has the same datasets at full size, with only
the unit's hyperslab written (unwritten chunks cost nothing on disk), ``format =
"badpix-partial"`` and the attributes ``unit``, ``plan`` and ``fingerprint``.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from badpix.atomic import atomic_output
>>> layout = MaskLayout("TOY", n_modules=2, module_shape=(4, 4), cells=(0, 1),
...                     gain_stages=("high",), stat_names=("offset",), score_names=("offset",))
>>> out = pathlib.Path(tempfile.mkdtemp()) / "m.h5"
>>> with atomic_output(out) as tmp, MaskWriter(tmp, layout) as w:
...     bits = np.zeros((1, 2, 4, 4), np.uint32); bits[0, 1, 2, 3] = 1
...     zeros = np.zeros((1, 2, 4, 4), np.float32)
...     w.write_unit(0, (0, 1), bits, {"offset": zeros}, {"offset": zeros})
...     w.finish()
>>> with read_mask(out) as m:
...     print(m.mask.shape, int(m.mask[0, 2, 3]), int(m.mask[1, 0, 0]), m.modules_processed)
(2, 4, 4) 1 8 [True, False]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix.exceptions import MaskFileError
from badpix.maskfile_layout import (
    FORMAT,
    FORMAT_VERSION,
    GAIN_STAT_NAMES,
    PARTIAL_FORMAT,
    STAT_NAMES,
    MaskLayout,
)
from badpix.maskfile_writer import COMPRESSION_CHOICES, MaskWriter

__all__ = [
    "COMPRESSION_CHOICES",
    "FORMAT",
    "FORMAT_VERSION",
    "GAIN_STAT_NAMES",
    "PARTIAL_FORMAT",
    "STAT_NAMES",
    "MaskFile",
    "MaskLayout",
    "MaskWriter",
    "read_mask",
]

_REQUIRED = {
    "mask": 3,
    "mask_stacked": 2,
    "mask_per_cell": 4,
    "bits": 5,
    "cells": 1,
    "gain_stages": 1,
    "modules_processed": 1,
}


@dataclass
class MaskFile:
    """An open, validated badpix mask file.

    Small things are read eagerly (``mask``, ``cells``, ``gain_stages``, ``modules_processed``,
    ``bit_names``, ``provenance``, ``geometry_lines``); the big per-cell arrays (``bits``,
    ``mask_per_cell``, ``stats[name]``, ``scores[name]``) are :class:`h5py.Dataset` objects read
    only when sliced, so the file must stay open: use ``with read_mask(path) as m: ...``.
    """

    path: Path
    file: h5py.File
    mask: np.ndarray
    cells: np.ndarray
    gain_stages: list[str]
    modules_processed: list[bool]
    detector: str
    bit_names: dict[str, int]
    provenance: dict[str, Any]
    geometry_lines: str
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def bits(self) -> h5py.Dataset:
        """``(M, G, C, ss, fs)`` uint32 per gain stage and cell (lazy)."""
        return self.file["bits"]

    @property
    def mask_per_cell(self) -> h5py.Dataset:
        """``(M, C, ss, fs)`` uint32, OR over gain stages (lazy)."""
        return self.file["mask_per_cell"]

    @property
    def mask_stacked(self) -> h5py.Dataset:
        """``(M*ss, fs)`` uint32 (lazy)."""
        return self.file["mask_stacked"]

    @property
    def stats(self) -> dict[str, h5py.Dataset]:
        """``/stats/<name>`` datasets (lazy)."""
        return dict(self.file["stats"].items())

    @property
    def scores(self) -> dict[str, h5py.Dataset]:
        """``/scores/<name>`` datasets (lazy)."""
        return dict(self.file["scores"].items()) if "scores" in self.file else {}

    @property
    def n_modules(self) -> int:
        return int(self.mask.shape[0])

    @property
    def module_shape(self) -> tuple[int, int]:
        return (int(self.mask.shape[1]), int(self.mask.shape[2]))

    def layout(self) -> MaskLayout:
        """The :class:`MaskLayout` of this file (to write a derived file with the same axes)."""
        return MaskLayout(
            detector=self.detector,
            n_modules=self.n_modules,
            module_shape=self.module_shape,
            cells=tuple(int(c) for c in self.cells),
            gain_stages=tuple(self.gain_stages),
            stat_names=tuple(self.file["stats"]),
            score_names=tuple(self.file["scores"]) if "scores" in self.file else (),
            detector_id=str(self.provenance.get("detector_id", "")),
        )

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()

    def __enter__(self) -> MaskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_mask(path: str | Path, *, allow_partial: bool = False) -> MaskFile:
    """Open and validate a badpix mask file.

    Raises
    ------
    MaskFileError
        ``"<path> is not a badpix mask file (<reason>)"`` for anything that is not one (missing,
        not HDF5, truncated, another format, a partial result, inconsistent shapes).
    """
    path = Path(path)

    def bad(reason: str) -> MaskFileError:
        return MaskFileError(f"{path} is not a badpix mask file ({reason})")

    if not path.is_file():
        raise bad("no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise bad(f"not a readable HDF5 file: {str(err).split('(')[0].strip()}") from None
    try:
        return _validate(path, f, bad, allow_partial)
    except BaseException:
        f.close()
        raise


def _validate(path: Path, f: h5py.File, bad: Any, allow_partial: bool) -> MaskFile:
    fmt = f.attrs.get("format")
    if fmt == PARTIAL_FORMAT and not allow_partial:
        raise bad("it is a partial result; put the parts together with `badpix assemble`")
    if fmt not in (FORMAT, PARTIAL_FORMAT):
        raise bad("no 'format = badpix-mask' attribute")
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise bad(f"format version {version}; this badpix reads version {FORMAT_VERSION}")
    required = dict(_REQUIRED)
    if fmt == PARTIAL_FORMAT:
        del required["mask"], required["mask_stacked"]
    try:
        for name, ndim in required.items():
            if name not in f or not isinstance(f[name], h5py.Dataset) or f[name].ndim != ndim:
                raise bad(f"dataset /{name} missing or not {ndim}-D")
        m, g, c, ss, fs = f["bits"].shape
        if f["cells"].shape != (c,) or f["gain_stages"].shape != (g,):
            raise bad("/cells or /gain_stages does not match /bits")
        if f["mask_per_cell"].shape != (m, c, ss, fs) or f["modules_processed"].shape != (m,):
            raise bad("/mask_per_cell or /modules_processed does not match /bits")
        for group in ("stats", "scores"):
            for name, ds in f.get(group, {}).items():
                if ds.shape != (m, g, c, ss, fs):
                    raise bad(f"/{group}/{name} has shape {ds.shape}, expected {(m, g, c, ss, fs)}")
        if fmt == FORMAT:
            mask = f["mask"][()]
            if mask.shape != (m, ss, fs) or f["mask_stacked"].shape != (m * ss, fs):
                raise bad("/mask or /mask_stacked does not match /bits")
        else:
            mask = np.zeros((m, ss, fs), np.uint32)
        prov = dict(f["provenance"].attrs) if "provenance" in f else {}
        geom = f["crystfel/geometry_lines"][()] if "crystfel/geometry_lines" in f else b""
        return MaskFile(
            path=path,
            file=f,
            mask=mask,
            cells=f["cells"][()],
            gain_stages=[s.decode() if isinstance(s, bytes) else str(s) for s in f["gain_stages"]],
            modules_processed=[bool(x) for x in f["modules_processed"][()]],
            detector=str(f.attrs.get("detector", "")),
            bit_names={k: int(v) for k, v in f["bit_names"].attrs.items() if k != "description"}
            if "bit_names" in f
            else {},
            provenance={k: _plain(v) for k, v in prov.items()},
            geometry_lines=geom.decode() if isinstance(geom, bytes) else str(geom),
            attrs={k: _plain(v) for k, v in f.attrs.items()},
        )
    except MaskFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:  # truncated or damaged content
        raise bad(f"damaged: {err}") from None


def _plain(value: Any) -> Any:
    """HDF5 attribute value → plain Python (numpy scalars to int/float, bytes to str)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
