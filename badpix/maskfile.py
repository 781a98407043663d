"""The badpix mask file: layout constants, :class:`MaskWriter` and :func:`read_mask`.

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

import json
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix import __version__
from badpix.classify import BIT_DESCRIPTIONS, BadPixel, CellPolicy, parse_cell_policy
from badpix.exceptions import MaskFileError

FORMAT = "badpix-mask"
PARTIAL_FORMAT = "badpix-partial"
FORMAT_VERSION = 1
#: Statistics every mask file has; raw AGIPD adds ``GAIN_STAT_NAMES``.
STAT_NAMES = ("offset", "noise", "inlier_fraction", "offset_median", "noise_std", "n_valid")
GAIN_STAT_NAMES = ("gain_level", "gain_sigma")
_CHUNK_OPTS = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
#: ``MaskWriter(compression=...)`` / ``make-mask --compression``: which per-cell datasets are
#: gzip-compressed. ``bits`` and ``mask_per_cell`` always are (50-100x smaller, cheap).
#: "auto": also the integer-like and sparse ones (:data:`_CHEAP_GZIP`); the noisy float32
#: statistics and scores are stored uncompressed (gzip made them only 1.2-1.8x smaller at
#: ~50 MB/s, 90 % of the write time; tests/benchmarks/README.md, "make-mask").
#: "gzip": every dataset (smallest file). "none": only bits and masks.
COMPRESSION_CHOICES = ("auto", "gzip", "none")
_CHEAP_GZIP = {
    "stats": {"n_valid", "inlier_fraction", "offset_median"},
    "scores": {"inlier", "asic_offset", "asic_noise"},
}
_NO_DATA = int(BadPixel.NO_DARK_DATA)


@dataclass(frozen=True)
class MaskLayout:
    """Shape of a mask file: what the axes hold.

    ``cells`` are memory-cell IDs in increasing order; ``gain_stages`` names in order
    high, medium, low; ``stat_names``/``score_names`` the datasets under ``/stats`` and ``/scores``.
    """

    detector: str
    n_modules: int
    module_shape: tuple[int, int]
    cells: tuple[int, ...]
    gain_stages: tuple[str, ...]
    stat_names: tuple[str, ...] = STAT_NAMES
    score_names: tuple[str, ...] = ()
    detector_id: str = ""

    @property
    def per_cell_shape(self) -> tuple[int, ...]:
        """``(M, G, C, ss, fs)``."""
        return (self.n_modules, len(self.gain_stages), len(self.cells), *self.module_shape)

    def cell_index(self, cell_ids: Sequence[int]) -> slice | list[int]:
        """Positions of ``cell_ids`` on the file's cell axis (a slice when contiguous)."""
        lookup = {c: i for i, c in enumerate(self.cells)}
        try:
            idx = [lookup[int(c)] for c in cell_ids]
        except KeyError as err:
            raise ValueError(f"memory cell {err.args[0]} is not in this mask file") from None
        if idx == list(range(idx[0], idx[-1] + 1)):
            return slice(idx[0], idx[-1] + 1)
        return idx


class MaskWriter:
    """Write a mask file (or a partial result) unit by unit.

    Open it on the temporary path that :func:`badpix.atomic.atomic_output` yields, call
    :meth:`write_unit` for each (module, cell block) and :meth:`finish` once. The static mask is
    accumulated while units arrive, so :meth:`finish` never re-reads the per-cell arrays.

    Parameters
    ----------
    path : path-like
        File to create (overwritten).
    layout : MaskLayout
        Axes and dataset names.
    cell_policy : str or CellPolicy, optional
        How per-cell masks reduce to ``/mask``: ``"any"`` (default) or ``"fraction:F"``.
    partial : dict, optional
        ``{"unit": ..., "plan": ..., "fingerprint": ...}`` to write a partial result instead.
    compression : {"auto", "gzip", "none"}, optional
        Which ``/stats`` and ``/scores`` datasets are gzip-compressed (:data:`COMPRESSION_CHOICES`);
        stored in the root attribute ``compression``.
    """

    def __init__(
        self,
        path: str | Path,
        layout: MaskLayout,
        *,
        cell_policy: str | CellPolicy = "any",
        partial: Mapping[str, Any] | None = None,
        compression: str = "auto",
    ) -> None:
        if compression not in COMPRESSION_CHOICES:
            raise ValueError(
                f"compression must be one of {COMPRESSION_CHOICES}, got {compression!r}"
            )
        self.compression = compression
        self.layout = layout
        self.policy = (
            cell_policy if isinstance(cell_policy, CellPolicy) else parse_cell_policy(cell_policy)
        )
        self.partial = dict(partial) if partial is not None else None
        self._t0 = time.monotonic()
        self._processed = np.zeros(layout.n_modules, bool)
        # per-module static accumulators: bit counts over cells (fraction) or an OR (any)
        self._acc: dict[int, np.ndarray] = {}
        self._f = h5py.File(path, "w")
        try:
            self._create_datasets()
        except BaseException:
            self._f.close()
            raise

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._f.id.valid:
            self._f.close()

    def _create_datasets(self) -> None:
        lay, f = self.layout, self._f
        full = lay.per_cell_shape
        chunk = (1, 1, 1, *lay.module_shape)
        dims5 = ("module", "gain", "cell", "ss", "fs")
        f.create_dataset("bits", full, np.uint32, chunks=chunk, fillvalue=_NO_DATA, **_CHUNK_OPTS)
        f["bits"].attrs["dims"] = dims5
        f.create_dataset(
            "mask_per_cell",
            (full[0], *full[2:]),
            np.uint32,
            chunks=(1, *chunk[2:]),
            fillvalue=_NO_DATA,
            **_CHUNK_OPTS,
        )
        f["mask_per_cell"].attrs["dims"] = ("module", "cell", "ss", "fs")
        for group, names in (("stats", lay.stat_names), ("scores", lay.score_names)):
            g = f.create_group(group, track_order=True)  # keep the layout's order
            for name in names:
                dtype, fill = (np.int32, 0) if name == "n_valid" else (np.float32, np.nan)
                opts = _CHUNK_OPTS if self._compress(group, name) else {}
                g.create_dataset(name, full, dtype, chunks=chunk, fillvalue=fill, **opts)
                g[name].attrs["dims"] = dims5
        f["cells"] = np.asarray(lay.cells, np.uint16)
        f.create_dataset("gain_stages", data=list(lay.gain_stages), dtype=h5py.string_dtype())
        bn = f.create_group("bit_names")
        for bit in BadPixel:
            if bit.value:
                bn.attrs[bit.name] = np.uint32(bit.value)
        bn.attrs["description"] = json.dumps(BIT_DESCRIPTIONS)
        f.attrs["format"] = PARTIAL_FORMAT if self.partial is not None else FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["detector"] = lay.detector
        f.attrs["polarity"] = "0=good"
        f.attrs["compression"] = self.compression
        if self.partial is not None:
            for key in ("unit", "plan", "fingerprint"):
                value = self.partial[key]
                f.attrs[key] = value if isinstance(value, str) else json.dumps(value)

    def _compress(self, group: str, name: str) -> bool:
        if self.compression == "auto":
            return name in _CHEAP_GZIP[group]
        return self.compression == "gzip"

    def write_unit(
        self,
        module: int,
        cell_ids: Sequence[int],
        bits: np.ndarray,
        stats: Mapping[str, np.ndarray],
        scores: Mapping[str, np.ndarray],
    ) -> None:
        """Write one unit: arrays of shape ``(G, n_cells, ss, fs)`` for ``module``, ``cell_ids``."""
        lay, f = self.layout, self._f
        sel = lay.cell_index(cell_ids)
        expected = (len(lay.gain_stages), len(cell_ids), *lay.module_shape)
        if bits.shape != expected:
            raise ValueError(f"unit bits have shape {bits.shape}, expected {expected}")
        f["bits"][module, :, sel] = bits
        per_cell = np.bitwise_or.reduce(bits, axis=0)
        f["mask_per_cell"][module, sel] = per_cell
        for group, names, arrays in (
            ("stats", lay.stat_names, stats),
            ("scores", lay.score_names, scores),
        ):
            for name in names:
                f[group][name][module, :, sel] = arrays[name]
        self._processed[module] = True
        self._acc[module] = self.policy.accumulate(self._acc.get(module), per_cell)

    def finish(
        self,
        *,
        provenance: Mapping[str, Any] | None = None,
        train_ids: Mapping[str, np.ndarray] | None = None,
        geometry_lines: str = "",
    ) -> None:
        """Write the static masks, provenance and geometry lines, then close the file.

        ``provenance`` values that are not strings or numbers are stored as JSON. ``created``,
        ``host``, ``badpix_version`` and ``elapsed_s`` are filled in unless given.
        """
        lay, f = self.layout, self._f
        n_cells = len(lay.cells)
        static = np.full((lay.n_modules, *lay.module_shape), _NO_DATA, np.uint32)
        for module, acc in self._acc.items():
            static[module] = self.policy.finish(acc, n_cells)
        if self.partial is None:
            f.create_dataset("mask", data=static)
            f["mask"].attrs["dims"] = ("module", "ss", "fs")
            f.create_dataset("mask_stacked", data=static.reshape(-1, lay.module_shape[1]))
            f["mask_stacked"].attrs["dims"] = ("module_ss", "fs")
        f["modules_processed"] = self._processed
        prov = f.create_group("provenance")
        defaults = {
            "badpix_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "detector": lay.detector,
            "detector_id": lay.detector_id,
            "cell_policy": self.policy.text,
            "host": socket.gethostname(),
            "elapsed_s": round(time.monotonic() - self._t0, 3),
        }
        for key, value in {**defaults, **(provenance or {})}.items():
            prov.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        tids = prov.create_group("train_ids")
        for gain, ids in (train_ids or {}).items():
            tids[gain] = np.asarray(ids, np.uint64)
        f.create_group("crystfel").create_dataset(
            "geometry_lines", data=geometry_lines, dtype=h5py.string_dtype()
        )
        self.close()


# ------------------------------------------------------------------------------------ reading
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
