"""Layout of the badpix mask file: format names and :class:`MaskLayout`, what the axes hold.

Shared by the writer (:mod:`badpix.maskfile_writer`) and the reader (:mod:`badpix.maskfile`),
which re-exports everything here; the datasets are listed in ``docs/design.md`` ("The mask
file").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FORMAT = "badpix-mask"
PARTIAL_FORMAT = "badpix-partial"
FORMAT_VERSION = 1
#: Statistics every mask file has; raw AGIPD adds ``GAIN_STAT_NAMES``.
STAT_NAMES = ("offset", "noise", "inlier_fraction", "offset_median", "noise_std", "n_valid")
GAIN_STAT_NAMES = ("gain_level", "gain_sigma")


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
