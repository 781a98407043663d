"""Look inside a badpix mask file: summary, JSON, ``--check`` validation (plots: inspection_plot).

:func:`summarize` returns one JSON-ready dict (schema ``badpix-inspect/1``, documented in
``docs/inspect-json.md``); :func:`format_summary` turns it into the text ``badpix inspect``
prints; :func:`check_mask` lists what is wrong with a file. Big arrays are read one module at a
time.

JSON schema ``badpix-inspect/1`` (all counts are pixels, or pixel-cells where stated)::

    schema        "badpix-inspect/1"
    file, detector, n_modules, module_shape [ss, fs], n_pixels, cells [ids], gain_stages
    datasets      {path: {"shape": [...], "dtype": "uint32"}} for every dataset in the file
    provenance    /provenance attributes (JSON strings decoded)
    bad           {"count", "fraction"} of the static mask
    per_module    [{"module", "processed", "bad", "fraction"}] in module order
    per_asic      [{"module", "asic", "bad", "fraction"}], worst first
    per_bit       [{"bit", "index", "name", "count", "fraction"}] (static, bits that occur)
    per_cell      [{"cell", "bad", "fraction", "fraction_processed"}] from /mask_per_cell, or
                  null; fraction_processed: bad / pixels of the modules with dark data
    per_gain      [{"gain", "offset_robust", "offset_classical", "noise_robust",
                    "noise_classical", "badpix_flagged", "badpix_offset_noise",
                    "classical_flagged", "both"}] or null without /stats; medians are the
                  median over processed modules of each module's median over pixels and cells;
                  the flagged counts are pixel-cells of that gain stage
    classical_sigma  n of the classical cut median ± n·std (per module, gain and cell)

Examples
--------
>>> from badpix.masktools import open_mask  # doctest: +SKIP
>>> with open_mask("mask.h5") as m:  # doctest: +SKIP
...     print(format_summary(summarize(m), top=5))
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from badpix.masktools import MaskHandle, count_bits

SCHEMA = "badpix-inspect/1"
OFFSET_BIT, NOISE_BIT, NO_DARK_DATA = 1 << 0, 1 << 1, 1 << 3


def asic_shape(detector: str, module_shape: tuple[int, int]) -> tuple[int, int]:
    """ASIC ``(ss, fs)`` of ``detector`` from its config; 64×64 if unknown."""
    try:
        from badpix.detectors import load_detector

        shape = tuple(load_detector(detector).asic_shape)
    except Exception:  # unknown detector or detectors module unavailable: AGIPD-like ASICs
        shape = (64, 64)
    if module_shape[0] % shape[0] or module_shape[1] % shape[1]:
        return module_shape
    return shape  # type: ignore[return-value]


def _datasets(f: h5py.File) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            out["/" + name] = {"shape": list(obj.shape), "dtype": str(obj.dtype)}

    f.visititems(visit)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def summarize(m: MaskHandle, *, classical_sigma: float = 5.0) -> dict[str, Any]:
    """Everything ``badpix inspect`` reports, as a JSON-ready dict (schema in module doc)."""
    static = m.static()
    n_mod, ss, fs = m.shape
    n_pix = static.size
    bad = static != 0
    processed = (m.file["modules_processed"][()].astype(bool) if m.has("modules_processed")
                 else np.ones(n_mod, bool))
    a_ss, a_fs = asic_shape(m.detector, (ss, fs))
    per_asic_counts = bad.reshape(n_mod, ss // a_ss, a_ss, fs // a_fs, a_fs).sum(axis=(2, 4))
    asics = [
        {"module": mod, "asic": int(i), "bad": int(c), "fraction": c / (a_ss * a_fs)}
        for mod in range(n_mod) for i, c in enumerate(per_asic_counts[mod].ravel())
    ]
    asics.sort(key=lambda r: (-r["bad"], r["module"], r["asic"]))
    per_bit = [
        {"bit": b, "index": b.bit_length() - 1, "name": m.bit_name(b), "count": c,
         "fraction": c / n_pix}
        for b, c in count_bits(static).items()
    ]
    per_cell = None
    if m.cells is not None:
        counts = np.zeros(len(m.cells), np.int64)
        in_data = np.zeros(len(m.cells), np.int64)  # modules with dark data only
        for mod in range(n_mod):
            k = np.count_nonzero(m.per_cell(mod), axis=(1, 2))
            counts += k
            in_data += k if processed[mod] else 0
        n_data = max(int(processed.sum()) * ss * fs, 1)
        per_cell = [{"cell": int(c), "bad": int(k), "fraction": k / n_pix,
                     "fraction_processed": int(d) / n_data}
                    for c, k, d in zip(m.cells, counts, in_data, strict=True)]
    return {
        "schema": SCHEMA,
        "file": str(m.path),
        "detector": m.detector,
        "n_modules": n_mod,
        "module_shape": [ss, fs],
        "n_pixels": n_pix,
        "cells": None if m.cells is None else [int(c) for c in m.cells],
        "gain_stages": m.gain_stages,
        "datasets": _datasets(m.file),
        "provenance": {k: _jsonable(v) for k, v in m.provenance.items()},
        "bad": {"count": int(bad.sum()), "fraction": float(bad.mean())},
        "per_module": [
            {"module": mod, "processed": bool(processed[mod]), "bad": int(bad[mod].sum()),
             "fraction": float(bad[mod].mean())} for mod in range(n_mod)
        ],
        "per_asic": asics,
        "per_bit": per_bit,
        "per_cell": per_cell,
        "per_gain": _robust_vs_classical(m, processed, classical_sigma),
        "classical_sigma": classical_sigma,
    }


def _classical_flags(values: np.ndarray, nsigma: float) -> np.ndarray:
    """Pixels outside median ± nsigma·std of their (cell) population; values (C, ss, fs)."""
    with np.errstate(invalid="ignore"), _quiet():
        med = np.nanmedian(values, axis=(1, 2), keepdims=True)
        std = np.nanstd(values, axis=(1, 2), keepdims=True)
        return np.abs(values - med) > nsigma * std


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's all-NaN warnings (cells or modules without valid data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _robust_vs_classical(
    m: MaskHandle, processed: np.ndarray, nsigma: float
) -> list[dict[str, Any]] | None:
    needed = ("stats/offset", "stats/noise", "stats/offset_median", "stats/noise_std", "bits")
    if not all(m.has(n) for n in needed) or not processed.any():
        return None
    rows = []
    for g, gain in enumerate(m.gain_stages):
        meds: dict[str, list[float]] = {k: [] for k in ("o", "om", "n", "ns")}
        flagged = on = classical = both = 0
        for mod in np.flatnonzero(processed):
            st = {k: m.file[f"stats/{n}"][mod, g] for k, n in
                  (("o", "offset"), ("om", "offset_median"), ("n", "noise"), ("ns", "noise_std"))}
            with _quiet():
                for k, v in st.items():
                    meds[k].append(float(np.nanmedian(v)))
            bits = m.file["bits"][mod, g]
            cls = _classical_flags(st["om"], nsigma) | _classical_flags(st["ns"], nsigma)
            flagged += int(np.count_nonzero(bits))
            on += int(np.count_nonzero(bits & (OFFSET_BIT | NOISE_BIT)))
            classical += int(cls.sum())
            both += int(np.count_nonzero(cls & (bits != 0)))
        with _quiet():
            rows.append({
                "gain": gain,
                "offset_robust": float(np.nanmedian(meds["o"])),
                "offset_classical": float(np.nanmedian(meds["om"])),
                "noise_robust": float(np.nanmedian(meds["n"])),
                "noise_classical": float(np.nanmedian(meds["ns"])),
                "badpix_flagged": flagged,
                "badpix_offset_noise": on,
                "classical_flagged": classical,
                "both": both,
            })
    return rows


def format_summary(s: dict[str, Any], top: int = 10) -> str:
    """The text report of a :func:`summarize` result; tables worst first, ``top`` rows."""
    p = s["provenance"]
    out = [
        f"file       {s['file']}",
        f"detector   {s['detector']}  ({s['n_modules']} modules of "
        f"{s['module_shape'][0]} x {s['module_shape'][1]})",
    ]
    for key in ("runs", "trains", "thresholds", "cell_policy", "badpix_version", "created",
                "command_line", "merged_from"):
        if key in p:
            out.append(f"{key:<10} {_short(p[key])}")
    if s["cells"] is not None:
        out.append(f"cells      {len(s['cells'])} ({_ranges(s['cells'])}); gain stages: "
                   f"{', '.join(s['gain_stages'])}")
    out.append(f"\nbad pixels {s['bad']['count']} of {s['n_pixels']} "
               f"({100 * s['bad']['fraction']:.3f} %)")

    def table(title: str, head: str, rows: list[str], n: int) -> None:
        more = f" (top {top} of {n})" if n > top else ""
        out.extend([f"\n{title}{more}", head, *rows[:top]])

    mods = sorted(s["per_module"], key=lambda r: -r["bad"])
    table("per module, worst first", f"{'module':>6} {'bad':>9} {'%':>8}",
          [f"{r['module']:>6} {r['bad']:>9} {100 * r['fraction']:>8.3f}"
           + ("" if r["processed"] else "  no dark data") for r in mods], len(mods))
    table("per ASIC, worst first", f"{'module':>6} {'asic':>4} {'bad':>7} {'%':>8}",
          [f"{r['module']:>6} {r['asic']:>4} {r['bad']:>7} {100 * r['fraction']:>8.3f}"
           for r in s["per_asic"] if r["bad"]], sum(r["bad"] > 0 for r in s["per_asic"]))
    bits = sorted(s["per_bit"], key=lambda r: -r["count"])
    table("per reason bit", f"{'bit':>3} {'name':<26} {'pixels':>9} {'%':>8}",
          [f"{r['index']:>3} {r['name']:<26} {r['count']:>9} {100 * r['fraction']:>8.3f}"
           for r in bits], len(bits))
    if s["per_cell"]:
        cells = sorted(s["per_cell"], key=lambda r: -r["bad"])
        table("per memory cell, worst first (% of all pixels, of modules with dark data)",
              f"{'cell':>6} {'bad':>9} {'%':>8} {'% data':>8}",
              [f"{r['cell']:>6} {r['bad']:>9} {100 * r['fraction']:>8.3f} "
               f"{100 * r['fraction_processed']:>8.3f}" for r in cells], len(cells))
    if s["per_gain"]:
        out.append(f"\nrobust vs classical (medians over pixels; flagged = pixel-cells; "
                   f"classical cut: median ± {s['classical_sigma']:g}·std per module and cell)")
        out.append(f"{'gain':<8} {'offset':>9} {'median':>9} {'noise':>7} {'std':>7} "
                   f"{'badpix':>9} {'off/noise':>9} {'classical':>9} {'both':>9}")
        for r in s["per_gain"]:
            out.append(f"{r['gain']:<8} {r['offset_robust']:>9.1f} {r['offset_classical']:>9.1f} "
                       f"{r['noise_robust']:>7.2f} {r['noise_classical']:>7.2f} "
                       f"{r['badpix_flagged']:>9} {r['badpix_offset_noise']:>9} "
                       f"{r['classical_flagged']:>9} {r['both']:>9}")
    return "\n".join(out)


def _short(value: Any, width: int = 88) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _ranges(ids: list[int]) -> str:
    """Compact ``0-3, 7`` form of sorted integers.

    Examples
    --------
    >>> _ranges([0, 1, 2, 3, 7])
    '0-3, 7'
    """
    parts, start = [], None
    for i, v in enumerate(ids):
        if start is None:
            start = v
        if i + 1 == len(ids) or ids[i + 1] != v + 1:
            parts.append(f"{start}-{v}" if v != start else f"{v}")
            start = None
    return ", ".join(parts)


# --- check ---------------------------------------------------------------------------------

_PROVENANCE = ("badpix_version", "command_line", "created", "detector", "cell_policy")
_PROVENANCE_DARK = ("runs", "trains", "thresholds")


def check_mask(m: MaskHandle) -> list[str]:
    """Problems with a mask file, one line each (empty list: the file is fine).

    Checks: shapes against the detector's config; integer dtypes and values CrystFEL reads
    correctly (< 2**31); every bit named in ``/bit_names``; ``/mask_stacked`` equal to
    ``/mask``; ``/mask_per_cell`` the OR over gain stages of ``/bits``; ``/mask`` what the
    recorded ``cell_policy`` makes of ``/mask_per_cell`` (``NO_DARK_DATA`` for modules
    without data); provenance attributes present; CrystFEL lines covering the bits.
    """
    problems: list[str] = []
    f = m.file
    n_mod, ss, fs = m.shape
    try:
        from badpix.detectors import load_detector

        spec = load_detector(m.detector)
        if spec.size_from_karabo_id:  # JUNGFRAU: the module count is the detector's (run's)
            spec = spec.sized_for("", range(spec.first_module, spec.first_module + n_mod))
        if (n_mod, ss, fs) != (spec.n_modules, *spec.module_shape):
            problems.append(f"/mask has shape {m.shape}; {m.detector} needs "
                            f"{(spec.n_modules, *spec.module_shape)}")
    except Exception as err:  # unknown detector name or broken config
        problems.append(f"detector {m.detector!r} unknown to badpix ({err})")
    # only the file's own names count here (m.bits is completed with the known EuXFEL names)
    named = 0
    if m.has("bit_names"):
        for v in m.file["bit_names"].attrs.values():
            if np.ndim(v) == 0 and np.issubdtype(np.asarray(v).dtype, np.integer):
                named |= int(v)
    if not m.has("bit_names"):
        problems.append("/bit_names is missing")
    for name in ("mask", "mask_stacked", "mask_per_cell", "bits"):
        if not m.has(name):
            problems.append(f"/{name} is missing")
            continue
        ds = f[name]
        if not (np.issubdtype(ds.dtype, np.integer) and ds.dtype.itemsize <= 4):
            problems.append(f"/{name} has dtype {ds.dtype}; CrystFEL needs integers of <= 32 bit")
            continue
        top = 0
        for mod in range(ds.shape[0] if name != "mask_stacked" else 1):
            part = ds[mod] if name != "mask_stacked" else ds[()]
            top |= int(np.bitwise_or.reduce(part.astype(np.uint64).ravel()))
        if top >= 2**31:
            problems.append(f"/{name} has values >= 2**31 (CrystFEL reads them as 0x7fffffff)")
        if named and top & ~named:
            problems.append(f"/{name} uses bits 0x{top & ~named:x} not named in /bit_names")
    static = m.static()
    if m.has("mask_stacked") and not np.array_equal(
            f["mask_stacked"][()], static.reshape(n_mod * ss, fs)):
        problems.append("/mask_stacked differs from /mask stacked along ss")
    if m.has("mask_per_cell") and m.has("bits"):
        for mod in range(n_mod):
            if not np.array_equal(np.bitwise_or.reduce(f["bits"][mod], axis=0), m.per_cell(mod)):
                problems.append(f"module {mod}: /mask_per_cell is not the OR over gains of /bits")
        problems += _check_policy(m, static)
    missing = [k for k in _PROVENANCE if k not in m.provenance]
    if "merged_from" not in m.provenance:
        missing += [k for k in _PROVENANCE_DARK if k not in m.provenance]
    if missing:
        problems.append(f"/provenance lacks {', '.join(missing)}")
    problems += _check_geometry_lines(m, static)
    return problems


def _check_policy(m: MaskHandle, static: np.ndarray) -> list[str]:
    policy_text = str(m.provenance.get("cell_policy", ""))
    processed = m.file["modules_processed"][()] if m.has("modules_processed") else None
    try:
        from badpix.classify import parse_cell_policy

        policy = parse_cell_policy(policy_text)
    except Exception:  # unknown or merged policy: only "no static bit without a per-cell bit"
        policy = None
    out = []
    for mod in range(m.n_modules):
        if processed is not None and not processed[mod]:
            if not np.all(static[mod] & NO_DARK_DATA):
                out.append(f"module {mod} has no dark data but /mask lacks NO_DARK_DATA there")
            continue
        per_cell = m.per_cell(mod)
        if policy is not None:
            expected = policy.finish(policy.accumulate(None, per_cell), per_cell.shape[0])
            ok = np.array_equal(np.asarray(expected, np.uint32), static[mod])
        else:
            ok = not np.any((static[mod] != 0) & ~np.any(per_cell != 0, axis=0))
        if not ok:
            out.append(f"module {mod}: /mask does not follow from /mask_per_cell under "
                       f"cell_policy {policy_text!r}")
    return out


def _check_geometry_lines(m: MaskHandle, static: np.ndarray) -> list[str]:
    from badpix.crystfel import parse_geometry

    if not m.has("crystfel/geometry_lines"):
        return ["/crystfel/geometry_lines is missing"]
    raw = m.file["crystfel/geometry_lines"][()]
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    top, _ = parse_geometry(text)
    if "mask_bad" not in top or top.get("mask_good", "").lower() not in ("0x0", "0"):
        return ["/crystfel/geometry_lines lacks mask_good = 0x0 / mask_bad"]
    bad_bits = int(top["mask_bad"], 0)
    present = int(np.bitwise_or.reduce(static.ravel()))
    out = []
    if bad_bits >= 2**31:
        out.append(f"CrystFEL mask_bad 0x{bad_bits:x} is >= 2**31")
    if present & ~bad_bits:
        out.append(f"CrystFEL mask_bad 0x{bad_bits:x} misses bits 0x{present & ~bad_bits:x}")
    return out
