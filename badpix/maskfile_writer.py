"""Writing the badpix mask file: :class:`MaskWriter`, unit by unit (hyperslabs), then the
static mask, provenance and geometry lines.

The file is read back by :func:`badpix.maskfile.read_mask`; :mod:`badpix.maskfile` re-exports
:class:`MaskWriter` and :data:`COMPRESSION_CHOICES`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix import __version__
from badpix.classify import BIT_DESCRIPTIONS, BadPixel, CellPolicy, parse_cell_policy
from badpix.maskfile_layout import FORMAT, FORMAT_VERSION, PARTIAL_FORMAT, MaskLayout

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
