"""The dark-run model: :class:`DarkSet` (the validated runs of one detector, one per gain
stage) and :class:`DarkRun` (one run of it).

:func:`badpix.runs.open_dark_set` builds them (and :mod:`badpix.runs` re-exports both);
:mod:`badpix.read` and :mod:`badpix.pipeline` only consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from badpix.detectors import DetectorSpec
from badpix.read import ModuleIndex


@dataclass
class DarkRun:
    """One dark run of a :class:`DarkSet`.

    Attributes
    ----------
    path : Path
        Run folder.
    gain_stage : str
        Gain stage name (one of ``spec.gain_stages``).
    gain_stage_from : {"metadata", "order", "option"}
        How the gain stage was found.
    gain_mode : {"adaptive", "fixed"} or None
        From the control device where recorded (AGIPD ``gainModeIndex``), else None.
    kind : {"raw", "proc"}
    spec : DetectorSpec
    detector_id : str
        Karabo id, e.g. ``SPB_DET_AGIPD1M-1``.
    sources : dict of int to str
        Module number -> instrument source of every module present.
    module_index : dict of int to ModuleIndex
        Frame positions of the selected modules present in this run.
    train_ids : (n,) uint64 ndarray
        Selected trains: those with data for any selected module, the first ``max_trains``.
    cell_ids : (n,) uint16 ndarray
        Memory cells found in the run (all modules).
    """

    path: Path
    gain_stage: str
    gain_stage_from: str
    gain_mode: str | None
    kind: str
    spec: DetectorSpec
    detector_id: str
    sources: dict[int, str]
    module_index: dict[int, ModuleIndex]
    train_ids: np.ndarray
    cell_ids: np.ndarray

    @property
    def modules(self) -> list[int]:
        """Selected modules with data in this run."""
        return sorted(m for m, ix in self.module_index.items() if ix.train_ids.size)

    def module_train_ids(self, module: int) -> np.ndarray:
        """Selected trains in which ``module`` has data."""
        ix = self.module_index.get(module)
        if ix is None:
            return np.zeros(0, np.uint64)
        return ix.train_ids[np.isin(ix.train_ids, self.train_ids)]


@dataclass
class DarkSet:
    """Validated dark runs of one detector, one per gain stage, ordered like ``spec.gain_stages``.

    Attributes
    ----------
    spec : DetectorSpec
    detector_id : str
    runs : list of DarkRun
    modules : list of int
        Selected modules with data in every run.
    missing_modules : list of int
        Selected modules without data in at least one run (to be marked NO_DARK_DATA).
    cell_ids : (n,) uint16 ndarray
        Selected memory cells, increasing.
    max_trains : int or None
    """

    spec: DetectorSpec
    detector_id: str
    runs: list[DarkRun]
    modules: list[int]
    missing_modules: list[int]
    cell_ids: np.ndarray
    max_trains: int | None = None
    selected_modules: list[int] = field(default_factory=list)

    @property
    def gain_stages(self) -> list[str]:
        """Gain stages of the runs, in order."""
        return [r.gain_stage for r in self.runs]

    @property
    def kind(self) -> str:
        """``"raw"`` or ``"proc"`` (the same for every run)."""
        return self.runs[0].kind
