"""Mask files in, mask files out: open, ``diff`` and ``merge`` badpix masks.

All functions read the documented layout of ``docs/design.md`` with h5py, one module at a time,
so full AGIPD files (GB of per-cell data) never have to fit in memory. Exports to other
programs' formats are in :mod:`badpix.maskexport`.

Examples
--------
>>> from badpix.masktools import open_mask, diff_masks  # doctest: +SKIP
>>> with open_mask("a.h5") as a, open_mask("b.h5") as b:  # doctest: +SKIP
...     print(diff_masks(a, b)["totals"])
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from badpix.classify import BadPixel
from badpix.exceptions import MaskFileError
from badpix.maskfile import read_mask

#: EuXFEL ``BadPixels`` names by bit (badpix's :class:`~badpix.classify.BadPixel`, including its
#: bits 23 and 24) and ``USER1``. Used when a file has no ``/bit_names`` group (plain masks) and
#: to name bits that a file does not list.
KNOWN_BITS: dict[str, int] = {b.name: int(b) for b in BadPixel if b.name}
#: EuXFEL's ``USER1`` bit: what ``merge`` sets for pixels that a plain (non-badpix) mask marks bad.
EXTERNAL_BIT = 1 << 30
KNOWN_BITS["USER1"] = EXTERNAL_BIT

FORMAT = "badpix-mask"


@dataclass
class MaskHandle:
    """An open badpix mask file: metadata read eagerly, arrays read on demand.

    Attributes
    ----------
    path : Path
    file : h5py.File
        Open read-only; closed by :func:`open_mask`'s context manager.
    detector : str
    shape : tuple of int
        Static mask shape ``(M, ss, fs)``.
    cells : ndarray or None
        Memory-cell IDs of ``/mask_per_cell``, None when the file has no per-cell mask.
    gain_stages : list of str
    bits : dict of str to int
        Bit names and values (``/bit_names``, completed with :data:`KNOWN_BITS`).
    provenance : dict
        ``/provenance`` attributes, JSON strings decoded.
    """

    path: Path
    file: h5py.File
    detector: str
    shape: tuple[int, int, int]
    cells: np.ndarray | None
    gain_stages: list[str]
    bits: dict[str, int]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_modules(self) -> int:
        return self.shape[0]

    def static(self) -> np.ndarray:
        """The static mask ``(M, ss, fs)`` as uint32."""
        return self.file["mask"][()].astype(np.uint32)

    def per_cell(self, module: int) -> np.ndarray | None:
        """``(C, ss, fs)`` per-cell mask of one module, or None without per-cell data."""
        if self.cells is None:
            return None
        return self.file["mask_per_cell"][module].astype(np.uint32)

    def has(self, name: str) -> bool:
        return name in self.file

    def bit_name(self, value: int) -> str:
        for name, v in self.bits.items():
            if v == value:
                return name
        return f"BIT_{int(value).bit_length() - 1}"


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.loads(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


@contextlib.contextmanager
def open_mask(path: str | Path) -> Iterator[MaskHandle]:
    """Open a badpix mask file for reading; raise :class:`MaskFileError` if it is not one.

    Examples
    --------
    >>> with open_mask("mask.h5") as m:  # doctest: +SKIP
    ...     print(m.detector, m.shape)
    AGIPD1M (16, 512, 128)
    """
    path = Path(path)
    read_mask(path).close()  # full validation of the layout, one clear line if wrong
    f = h5py.File(path, "r")
    try:
        yield _describe(path, f)
    finally:
        f.close()


def _describe(path: Path, f: h5py.File) -> MaskHandle:
    """Metadata of a file that :func:`~badpix.maskfile.read_mask` validated."""
    shape = tuple(int(n) for n in f["mask"].shape)
    cells = f["cells"][()] if "mask_per_cell" in f and "cells" in f else None
    bits = dict(KNOWN_BITS)
    if "bit_names" in f:
        bits.update(
            {k: int(v) for k, v in f["bit_names"].attrs.items() if np.ndim(v) == 0
             and np.issubdtype(np.asarray(v).dtype, np.integer)}
        )
    prov = {k: _attr(v) for k, v in f["provenance"].attrs.items()} if "provenance" in f else {}
    gains = _strings(f["gain_stages"][()]) if "gain_stages" in f else []
    return MaskHandle(
        path=path,
        file=f,
        detector=str(_attr(f.attrs.get("detector", "unknown"))),
        shape=shape,  # type: ignore[arg-type]
        cells=cells,
        gain_stages=gains,
        bits=dict(sorted(bits.items(), key=lambda kv: kv[1])),
        provenance=prov,
    )


def bits_present(mask: np.ndarray) -> list[int]:
    """The single-bit values set anywhere in ``mask``, lowest first.

    Examples
    --------
    >>> bits_present(np.array([0, 1, 6], dtype=np.uint32))
    [1, 2, 4]
    """
    total = int(np.bitwise_or.reduce(mask.ravel())) if mask.size else 0
    return [1 << i for i in range(32) if total >> i & 1]


def count_bits(mask: np.ndarray) -> dict[int, int]:
    """Number of entries of ``mask`` with each bit set (only bits that occur).

    Examples
    --------
    >>> count_bits(np.array([0, 1, 3], dtype=np.uint32))
    {1: 2, 2: 1}
    """
    return {b: int(np.count_nonzero(mask & b)) for b in bits_present(mask)}


# --- diff ---------------------------------------------------------------------------------


def _check_compatible(a: MaskHandle, b: MaskHandle) -> None:
    if a.shape != b.shape:
        raise MaskFileError(
            f"incompatible shapes: {a.path} is {a.shape}, {b.path} is {b.shape}"
        )
    if a.detector != b.detector:
        raise MaskFileError(
            f"different detectors: {a.path} is {a.detector}, {b.path} is {b.detector}"
        )


def _change_counts(old: np.ndarray, new: np.ndarray, axis: tuple[int, ...]) -> dict[str, Any]:
    bad_old, bad_new = old != 0, new != 0
    return {
        "new_bad": np.count_nonzero(~bad_old & bad_new, axis=axis),
        "no_longer_bad": np.count_nonzero(bad_old & ~bad_new, axis=axis),
        "changed_reason": np.count_nonzero(bad_old & bad_new & (old != new), axis=axis),
    }


def diff_masks(a: MaskHandle, b: MaskHandle) -> dict[str, Any]:
    """What changed from mask ``a`` to mask ``b`` (JSON-ready dict).

    Keys: ``a``, ``b`` (paths), ``totals`` and ``per_module`` (static mask: ``new_bad``,
    ``no_longer_bad``, ``changed_reason``, ``bad_a``, ``bad_b``), ``per_bit`` (static pixels
    gaining / losing each bit), ``per_cell`` (the same three counts per memory cell, summed over
    modules, only when both files have per-cell masks for the same cells; else null) and
    ``identical`` (static and per-cell masks equal).
    """
    _check_compatible(a, b)
    ma, mb = a.static(), b.static()
    per_mod = _change_counts(ma, mb, (1, 2))
    totals = {k: int(v.sum()) for k, v in per_mod.items()}
    totals["bad_a"], totals["bad_b"] = int(np.count_nonzero(ma)), int(np.count_nonzero(mb))
    per_bit = []
    for bit in bits_present(ma | mb):
        gained = int(np.count_nonzero(~ma & mb & bit))
        lost = int(np.count_nonzero(ma & ~mb & bit))
        if gained or lost:
            per_bit.append({"bit": bit, "name": a.bit_name(bit), "gained": gained, "lost": lost})
    per_cell = None
    cells_equal = True
    if a.cells is not None and b.cells is not None and np.array_equal(a.cells, b.cells):
        sums = {k: np.zeros(len(a.cells), dtype=np.int64) for k in per_mod}
        for m in range(a.n_modules):
            for k, v in _change_counts(a.per_cell(m), b.per_cell(m), (1, 2)).items():
                sums[k] += v
        per_cell = [
            {"cell": int(c), **{k: int(v[i]) for k, v in sums.items()}}
            for i, c in enumerate(a.cells)
        ]
        cells_equal = not any(sum(r[k] for k in sums) for r in per_cell)
    elif (a.cells is None) != (b.cells is None) or a.cells is not None:
        cells_equal = False
    return {
        "a": str(a.path),
        "b": str(b.path),
        "identical": bool(np.array_equal(ma, mb) and cells_equal),
        "totals": totals,
        "per_module": [
            {"module": m, **{k: int(v[m]) for k, v in per_mod.items()},
             "bad_a": int(np.count_nonzero(ma[m])), "bad_b": int(np.count_nonzero(mb[m]))}
            for m in range(a.n_modules)
        ],
        "per_bit": per_bit,
        "per_cell": per_cell,
    }


def format_diff(d: dict[str, Any], top: int = 10) -> str:
    """Human-readable text for a :func:`diff_masks` result."""
    if d["identical"]:
        return "no differences"
    t = d["totals"]
    lines = [
        f"A: {d['a']}  ({t['bad_a']} bad pixels)",
        f"B: {d['b']}  ({t['bad_b']} bad pixels)",
        f"static mask: {t['new_bad']} new bad, {t['no_longer_bad']} no longer bad, "
        f"{t['changed_reason']} changed reason",
    ]
    keys = ("new_bad", "no_longer_bad", "changed_reason")
    rows = sorted((r for r in d["per_module"] if any(r[k] for k in keys)),
                  key=lambda r: -sum(r[k] for k in keys))
    if rows:
        lines.append(f"\n{'module':>6} {'new bad':>9} {'no longer':>9} {'changed':>9}")
        lines += [f"{r['module']:>6} {r['new_bad']:>9} {r['no_longer_bad']:>9} "
                  f"{r['changed_reason']:>9}" for r in rows[:top]]
    if d["per_bit"]:
        lines.append(f"\n{'bit':<26} {'gained':>9} {'lost':>9}")
        lines += [f"{r['name']:<26} {r['gained']:>9} {r['lost']:>9}" for r in d["per_bit"]]
    cells = [r for r in d["per_cell"] or [] if any(r[k] for k in keys)]
    if cells:
        cells.sort(key=lambda r: -sum(r[k] for k in keys))
        lines.append(f"\n{'cell':>6} {'new bad':>9} {'no longer':>9} {'changed':>9}")
        lines += [f"{r['cell']:>6} {r['new_bad']:>9} {r['no_longer_bad']:>9} "
                  f"{r['changed_reason']:>9}" for r in cells[:top]]
    elif d["per_cell"] is None:
        lines.append("\nper-cell masks not compared (missing, or different memory cells)")
    return "\n".join(lines)


# --- merge --------------------------------------------------------------------------------


@dataclass
class PlainMask:
    """A mask from another tool: one HDF5 dataset, ``(M, ss, fs)`` or ``(M*ss, fs)``."""

    spec: str
    polarity: str  # "0-good" or "1-good"


def _read_plain(p: PlainMask, shape: tuple[int, int, int]) -> np.ndarray:
    """Bad pixels of a plain mask as ``EXTERNAL_BIT`` values, shaped like the static mask."""
    fname, _, dset = p.spec.rpartition(":")
    if not fname or not dset.startswith("/"):
        raise MaskFileError(f"{p.spec}: give a plain mask as FILE:/dataset/path")
    try:
        with h5py.File(fname, "r") as f:
            data = f[dset][()]
    except (OSError, KeyError) as err:
        raise MaskFileError(f"cannot read {p.spec}: {err}") from None
    if data.size != np.prod(shape) or data.shape not in (shape, (shape[0] * shape[1], shape[2])):
        raise MaskFileError(
            f"incompatible shapes: {p.spec} is {data.shape}, expected {shape} or "
            f"{(shape[0] * shape[1], shape[2])}"
        )
    bad = data == 0 if p.polarity == "1-good" else data != 0
    return np.where(bad.reshape(shape), EXTERNAL_BIT, 0).astype(np.uint32)


def _copy_attrs(src: h5py.AttributeManager, dst: h5py.AttributeManager) -> None:
    for k, v in src.items():
        dst[k] = v


def merge_masks(
    inputs: list[str | Path | PlainMask],
    out: Path,
    *,
    final_path: str | Path | None = None,
    command_line: str = "",
) -> dict[str, Any]:
    """OR-combine masks into a new badpix mask file ``out`` (a path to write, e.g. a temp file).

    ``final_path`` is where the file will live (for the CrystFEL lines); default ``out``.

    What is kept: ``/mask`` and ``/mask_stacked`` are the OR of every input (a plain mask adds
    :data:`EXTERNAL_BIT` = ``USER1``, bit 30, where it marks a pixel bad); ``/mask_per_cell`` is
    the OR of the badpix inputs' per-cell masks and ``/bits`` the OR of their per-gain bits,
    with the static plain masks ORed into every cell (so the badpix inputs must share memory
    cells and gain stages). ``/stats`` and ``/scores`` are **not** kept: statistics of different
    runs cannot be combined, and those of one input would not explain the merged bits; inspect
    the sources for them. Each source's provenance is copied to ``/provenance/sources/<i>``
    (with ``path`` and ``kind``), and ``/provenance`` gets ``merged_from`` (JSON list).

    Returns a short summary dict (``bad``, ``sources``).
    """
    from badpix import __version__
    from badpix.crystfel import mask_geometry_lines

    handles: list[MaskHandle] = []
    plains = [p for p in inputs if isinstance(p, PlainMask)]
    with contextlib.ExitStack() as stack:
        for p in inputs:
            if not isinstance(p, PlainMask):
                handles.append(stack.enter_context(open_mask(p)))
        if not handles:
            raise MaskFileError("merge needs at least one badpix mask file (to know the detector)")
        first = handles[0]
        for h in handles[1:]:
            _check_compatible(first, h)
        static = np.zeros(first.shape, dtype=np.uint32)
        for h in handles:
            static |= h.static()
        extra = np.zeros(first.shape, dtype=np.uint32)
        for p in plains:
            extra |= _read_plain(p, first.shape)
        static |= extra
        for h in handles[1:]:
            # Per-cell masks and per-gain bits can only be ORed axis by axis.
            if h.cells is None or not np.array_equal(h.cells, first.cells) \
                    or h.gain_stages != first.gain_stages:
                raise MaskFileError(
                    f"incompatible shapes: {h.path} has other memory cells or gain stages "
                    f"than {first.path}; merge masks of the same cells and gain stages"
                )
        bits = {}
        for h in handles:
            bits.update(h.bits)
        if plains:
            bits["USER1"] = EXTERNAL_BIT
        sources = [{"path": str(h.path), "kind": FORMAT} for h in handles] + [
            {"path": p.spec, "kind": "hdf5", "polarity": p.polarity} for p in plains
        ]
        with h5py.File(out, "w") as f:
            f.attrs.update(format=FORMAT, format_version=1, detector=first.detector,
                           polarity="0=good")
            f.create_dataset("mask", data=static).attrs["dims"] = ("module", "ss", "fs")
            f.create_dataset("mask_stacked", data=static.reshape(-1, static.shape[2]))
            processed = np.zeros(first.n_modules, bool)
            for h in handles:
                if h.has("modules_processed"):
                    processed |= h.file["modules_processed"][()].astype(bool)
            f.create_dataset("modules_processed", data=processed)
            f.create_dataset("gain_stages", data=first.gain_stages, dtype=h5py.string_dtype())
            f.create_dataset("cells", data=first.cells)
            for name in ("mask_per_cell", "bits"):
                src = first.file[name]
                d = f.create_dataset(name, shape=src.shape, dtype=np.uint32,
                                     chunks=(1,) * (src.ndim - 2) + src.shape[-2:],
                                     compression="gzip", compression_opts=1, shuffle=True)
                d.attrs["dims"] = src.attrs.get("dims", "")
                for mod in range(first.n_modules):
                    acc = np.broadcast_to(extra[mod], src.shape[1:]).copy()
                    for h in handles:
                        acc |= h.file[name][mod].astype(np.uint32)
                    d[mod] = acc
            g = f.create_group("bit_names")
            g.attrs.update({k: np.uint32(v) for k, v in bits.items()})
            g.attrs["description"] = "bit name -> value; 0 = good; USER1 = bad in a plain mask"
            prov = f.create_group("provenance")
            policies = {str(h.provenance.get("cell_policy", "")) for h in handles}
            prov.attrs.update(
                badpix_version=__version__, command_line=command_line,
                created=_now(), detector=first.detector, merged_from=json.dumps(sources),
                # OR of "any" masks is again "any"; other policies do not commute with OR
                cell_policy="any" if policies == {"any"} else "merged",
            )
            for i, h in enumerate(handles):
                sg = prov.create_group(f"sources/{i}")
                if "provenance" in h.file:
                    _copy_attrs(h.file["provenance"].attrs, sg.attrs)
                sg.attrs.update(path=str(h.path), kind=FORMAT)
            for i, p in enumerate(plains, start=len(handles)):
                prov.create_group(f"sources/{i}").attrs.update(
                    path=p.spec, kind="hdf5", polarity=p.polarity)
            bad_bits = int(np.bitwise_or.reduce(list(bits.values()))) & 0x7FFFFFFF
            where = str(Path(final_path or out).resolve())
            lines = mask_geometry_lines(where, layout="vds", bad_bits=bad_bits)
            f.create_dataset("crystfel/geometry_lines", data="\n".join(lines))
    return {"bad": int(np.count_nonzero(static)), "sources": sources}


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
