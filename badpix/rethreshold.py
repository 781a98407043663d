"""Re-cut a mask file's stored scores with new thresholds, without reading the runs again.

The scores and statistics in ``/scores`` and ``/stats`` are everything
:func:`badpix.classify.apply_thresholds` needs, so the new bits equal those ``make-mask`` would
give with the same thresholds. The statistics and scores are copied unchanged; the
provenance records the new thresholds and the file it came from. Limits: pixels not fitted
because of ``min_valid_samples`` stay unfitted (raising it works, lowering it cannot recover
them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from badpix.atomic import atomic_output
from badpix.classify import Thresholds, apply_thresholds, parse_cell_policy
from badpix.detectors import load_detector
from badpix.exceptions import ConfigError, MaskFileError
from badpix.maskfile import MaskWriter, read_mask

_CELLS_PER_STEP = 16  # cells re-cut at once: bounded memory


def rethreshold(
    mask: str | Path,
    out: str | Path,
    thresholds: Thresholds | Callable[[dict[str, Any]], Thresholds],
    cell_policy: str | None = None,
    *,
    force: bool = False,
    command_line: str = "",
) -> Path:
    """Write ``out``: ``mask`` with bits re-cut by ``thresholds``.

    ``thresholds`` is a :class:`Thresholds` or a function of the file's stored thresholds
    (a config-style dict) returning one. ``cell_policy`` defaults to the file's.
    """
    with read_mask(mask) as m:
        if not m.scores:
            raise MaskFileError(f"{mask} has no /scores; make it again with badpix make-mask")
        prov = {k: _json(v) for k, v in m.provenance.items()}
        old = prov.get("thresholds") or {}
        new = thresholds(old) if callable(thresholds) else thresholds
        try:
            spec = load_detector(m.detector)
        except ConfigError:
            raise MaskFileError(f"{mask}: unknown detector {m.detector!r}") from None
        layout = m.layout()
        raw = all(r.get("kind", "raw") == "raw" for r in prov.get("runs", []))
        policy = parse_cell_policy(cell_policy or prov.get("cell_policy", "any"))
        for key in ("created", "elapsed_s", "host"):
            prov.pop(key, None)
        prov.update(
            thresholds=new.to_dict(),
            cell_policy=policy.text,
            command_line=command_line,
            rethresholded_from=str(Path(mask).resolve()),
        )
        train_ids = {k: v[()] for k, v in m.file["provenance/train_ids"].items()}
        cells = list(layout.cells)
        with (
            atomic_output(out, force=force) as tmp,
            MaskWriter(tmp, layout, cell_policy=policy) as writer,
        ):
            for module, done in enumerate(m.modules_processed):
                if not done:
                    continue
                for start in range(0, len(cells), _CELLS_PER_STEP):
                    sl = slice(start, start + _CELLS_PER_STEP)
                    stats = {k: ds[module, :, sl] for k, ds in m.stats.items()}
                    scores = {k: ds[module, :, sl] for k, ds in m.scores.items()}
                    bits = apply_thresholds(
                        scores,
                        stats,
                        new,
                        gain_stages=layout.gain_stages,
                        asic_shape=tuple(spec.asic_shape),
                        raw=raw,
                    )
                    writer.write_unit(module, cells[sl], bits, stats, scores)
            writer.finish(provenance=prov, train_ids=train_ids, geometry_lines=_lines(out))
    return Path(out)


def _lines(out: str | Path) -> str:
    from badpix.pipeline import geometry_lines

    return geometry_lines(out)


def _json(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(("[", "{")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
