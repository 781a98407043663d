"""Put the partial results of a SLURM job together into one mask file.

Each partial (``badpix make-mask ... --partial``) holds one work unit at full layout size plus
the attributes ``unit`` (module and cell IDs), ``plan`` (modules and cells of the whole job, and
its planned units) and ``fingerprint`` (runs, train IDs, detector and options).
:func:`assemble` checks that every partial belongs to the same job, that no cell of a module
comes twice and that nothing is missing, then writes the units through the same
:class:`~badpix.maskfile.MaskWriter` as ``make_mask``: the file equals the one-process file
array for array.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from badpix.atomic import atomic_output
from badpix.exceptions import MaskFileError
from badpix.maskfile import COMPRESSION_CHOICES, PARTIAL_FORMAT, MaskWriter, read_mask


@dataclass(frozen=True)
class Partial:
    """One partial result file and its job attributes."""

    path: Path
    unit: dict[str, Any]
    plan: dict[str, Any]
    fingerprint: str


def collect_partials(paths: Sequence[str | Path]) -> list[Partial]:
    """Read the partials named by ``paths`` (files, or folders of ``*.h5``) and check the set.

    Returns them ordered by module and first cell. Raises :class:`MaskFileError` with one line
    naming what is wrong: nothing given, not a partial, another job, duplicates, missing units.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise MaskFileError(f"folder {p} holds no partial results (*.h5)")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise MaskFileError(f"{p} does not exist")
    if not files:
        raise MaskFileError("no partial results given")
    parts = [_read_attrs(f) for f in dict.fromkeys(files)]
    first = parts[0]
    for part in parts[1:]:
        if part.fingerprint != first.fingerprint or part.plan != first.plan:
            raise MaskFileError(
                f"{part.path} belongs to another job than {first.path} (different runs, trains, "
                "cells or options); assemble the partials of one job only"
            )
    _check_coverage(parts)
    return sorted(parts, key=lambda p: (p.unit["module"], p.unit["cells"][0]))


def _read_attrs(path: Path) -> Partial:
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError:
        raise MaskFileError(
            f"{path} is not a badpix partial result (not a readable HDF5 file)"
        ) from None
    fmt = attrs.get("format")
    if fmt != PARTIAL_FORMAT:
        what = "a complete mask file" if fmt == "badpix-mask" else f"format {fmt!r}"
        raise MaskFileError(f"{path} is not a badpix partial result ({what})")
    try:
        return Partial(
            path=path,
            unit=json.loads(attrs["unit"]),
            plan=json.loads(attrs["plan"]),
            fingerprint=str(attrs["fingerprint"]),
        )
    except (KeyError, ValueError):
        raise MaskFileError(f"{path} is a damaged partial result (unit/plan attributes)") from None


def _ranges(cells: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0:3,5:6' (B exclusive, like --cells)."""
    out: list[list[int]] = []
    for c in sorted(cells):
        if out and c == out[-1][1]:
            out[-1][1] = c + 1
        else:
            out.append([c, c + 1])
    return ",".join(f"{a}:{b}" for a, b in out)


def _check_coverage(parts: list[Partial]) -> None:
    plan = parts[0].plan
    want = set(plan["cells"])
    seen: dict[tuple[int, int], Path] = {}
    for part in parts:
        module = part.unit["module"]
        if module not in plan["modules"]:
            raise MaskFileError(f"{part.path}: module {module} is not part of the job's plan")
        extra = set(part.unit["cells"]) - want
        if extra:
            raise MaskFileError(f"{part.path}: cells {_ranges(extra)} are not in the job's plan")
        for c in part.unit["cells"]:
            other = seen.setdefault((module, c), part.path)
            if other != part.path:
                raise MaskFileError(
                    f"duplicate unit: module {module} cell {c} is in both {other} and {part.path}"
                )
    missing = []
    for module in plan["modules"]:
        cells = [c for c in plan["cells"] if (module, c) not in seen]
        if cells:
            missing.append(f"module {module} cells {_ranges(cells)}")
    if missing:
        n_units = len(plan.get("units", []))
        raise MaskFileError(
            f"incomplete set of partial results ({len(parts)} given, {n_units} planned): "
            f"missing {'; '.join(missing)}"
        )


def assemble(
    partial_paths: Sequence[str | Path],
    out: str | Path,
    *,
    force: bool = False,
    command_line: str = "",
) -> Path:
    """Check the partials and write the assembled mask file atomically to ``out``."""
    from badpix.pipeline import geometry_lines

    parts = collect_partials(partial_paths)
    lines = geometry_lines(out)
    with read_mask(parts[0].path, allow_partial=True) as m0:
        layout = m0.layout()
        prov = dict(m0.provenance)
        train_ids = {k: v[()] for k, v in m0.file["provenance/train_ids"].items()}
        compression = str(m0.attrs.get("compression", "auto"))  # as make-mask was asked
    for key in ("created", "elapsed_s", "host"):
        prov.pop(key, None)
    for key, value in prov.items():  # JSON attributes back to objects (finish re-encodes)
        if isinstance(value, str) and value.startswith(("[", "{")):
            prov[key] = json.loads(value)
    prov["command_line"] = command_line or prov.get("command_line", "")
    first_module = int(parts[0].plan.get("first_module", 0))
    with (
        atomic_output(out, force=force) as tmp,
        MaskWriter(
            tmp,
            layout,
            cell_policy=str(prov.get("cell_policy", "any")),
            compression=compression if compression in COMPRESSION_CHOICES else "auto",
        ) as writer,
    ):
        for part in parts:
            module = part.unit["module"] - first_module
            sel = layout.cell_index(part.unit["cells"])
            try:
                with read_mask(part.path, allow_partial=True) as m:
                    if m.layout() != layout:
                        raise MaskFileError(f"{part.path} has another layout than {parts[0].path}")
                    bits = m.bits[module, :, sel]
                    stats = {k: ds[module, :, sel] for k, ds in m.stats.items()}
                    scores = {k: ds[module, :, sel] for k, ds in m.scores.items()}
            except OSError as err:
                raise MaskFileError(f"{part.path} is damaged ({err})") from None
            writer.write_unit(module, part.unit["cells"], bits, stats, scores)
        writer.finish(provenance=prov, train_ids=train_ids, geometry_lines=lines)
    return Path(out)
