"""The description of one detector type: :class:`DetectorSpec` (frozen dataclass).

:func:`badpix.detectors.load_detector` builds it from ``configs/<name>.toml`` after validating
the file, and :mod:`badpix.detectors` re-exports it; this module holds only what a spec knows
about itself (geometry, ASIC map, the detector size in a karabo id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

# detector size in a karabo id: JF4M, JF1M, JF500K (pixels, M = 2**20, K = 2**10)
_ID_SIZE = re.compile(r"(\d+)([MK])(?![A-Za-z])")


@dataclass(frozen=True)
class DetectorSpec:
    """Static facts about one detector type.

    Attributes
    ----------
    name : str
        badpix name, e.g. ``"AGIPD1M"``.
    extra_data_class : str
        Name of the extra-data detector class (``extra_data.components``).
    karabo_id_pattern : str
        Regular expression searched in a karabo id (``SPB_DET_AGIPD1M-1``) to recognise it.
    n_modules : int
        Modules of the full detector (length of the ``module`` axis); for detectors with
        ``size_from_karabo_id`` the default, replaced per run by :meth:`sized_for`.
    first_module : int
        Number of the first module in source names (0; 1 for JUNGFRAU).
    module_shape, asic_shape, asic_grid : tuple of int
        ``(ss, fs)`` of a module and of an ASIC, and ASIC (rows, columns) per module.
    max_cells : int
        Largest number of memory cells.
    gain_stages : tuple of str
        Gain stage names in order (high, medium, low); one dark run per stage.
    gain_encoding : {"digital_channel", "adc_bits", "none"}
        How raw data carry the gain: a separate digital channel (AGIPD ``image.data[:, 1]``),
        bits above the ADC bits of the raw word (LPD, JUNGFRAU), or not at all (DSSC).
    adc_bits : int
        Bits of the analog value in the raw word (16 when the word holds only the analog value).
    size_from_karabo_id : bool
        The detector's module count varies (JUNGFRAU 500K, 1M, 4M): it is read from the size
        in the karabo id (``SPB_IRDA_JF4M`` -> 8 modules of 512 x 1024), at least the highest
        module present.
    raw_source_pattern, proc_source_pattern : str
        Regular expressions for instrument source names with groups ``karabo_id`` and ``module``.
    layout : {"xtdf", "train_cells"}
        ``xtdf``: one frame per entry, cells along the frame axis; ``train_cells``: one entry per
        train with the cells on the second axis (JUNGFRAU).
    raw_data_key, proc_data_key, raw_cells_key, proc_cells_key : str
        extra-data keys of the pixel data and of the memory-cell IDs.
    gain_mode_source_pattern, gain_mode_key : str or None
        CONTROL source regex and key recording the gain mode (AGIPD ``MDL/FPGA_COMP``).
    gain_mode_fixed : mapping of int to str
        Gain-mode values that mean a fixed gain stage (AGIPD: 1, 2, 3 -> high, medium, low).
    thresholds, stats : mapping
        Default parameters for classify.py and stats.py (validated there).
    config_path : Path or None
        The TOML file the spec was loaded from.
    config_text : str
        That file's text (for provenance).
    """

    name: str
    extra_data_class: str
    karabo_id_pattern: str
    n_modules: int
    module_shape: tuple[int, int]
    asic_shape: tuple[int, int]
    asic_grid: tuple[int, int]
    max_cells: int
    gain_stages: tuple[str, ...]
    gain_encoding: str
    adc_bits: int
    raw_source_pattern: str
    proc_source_pattern: str
    layout: str
    raw_data_key: str
    proc_data_key: str
    raw_cells_key: str
    proc_cells_key: str
    first_module: int = 0
    size_from_karabo_id: bool = False
    gain_mode_source_pattern: str | None = None
    gain_mode_key: str | None = None
    gain_mode_fixed: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    thresholds: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    stats: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    config_path: Path | None = None
    config_text: str = ""

    @property
    def n_gain_stages(self) -> int:
        """Number of gain stages (= dark runs in a set)."""
        return len(self.gain_stages)

    @property
    def n_asics(self) -> int:
        """ASICs per module."""
        return self.asic_grid[0] * self.asic_grid[1]

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(ss, fs)`` of one module frame (same as ``module_shape``)."""
        return self.module_shape

    @property
    def adc_mask(self) -> int:
        """Mask of the analog bits in a raw word."""
        return (1 << self.adc_bits) - 1

    def asic_map(self) -> np.ndarray:
        """ASIC number of each pixel, ``(ss, fs)`` int16, row-major over the ASIC grid."""
        rows = np.arange(self.module_shape[0]) // self.asic_shape[0]
        cols = np.arange(self.module_shape[1]) // self.asic_shape[1]
        return (rows[:, None] * self.asic_grid[1] + cols[None, :]).astype(np.int16)

    def asic_slices(self, asic: int) -> tuple[slice, slice]:
        """``(ss, fs)`` slices of ASIC number ``asic`` within a module."""
        if not 0 <= asic < self.n_asics:
            raise ValueError(f"asic must be in [0, {self.n_asics}), got {asic}")
        row, col = divmod(asic, self.asic_grid[1])
        ss, fs = self.asic_shape
        return slice(row * ss, (row + 1) * ss), slice(col * fs, (col + 1) * fs)

    def sized_for(self, karabo_id: str, modules_present: Iterable[int]) -> DetectorSpec:
        """This spec with the module count of detector ``karabo_id`` (``size_from_karabo_id``).

        The count is the pixel size in the id (``JF1M``: 2**20 pixels) over the module's
        pixels, rounded, and at least enough for the highest module number present; specs
        of fixed size are returned unchanged.

        >>> from badpix.detectors import load_detector
        >>> spec = load_detector("JUNGFRAU")
        >>> [spec.sized_for(k, [1]).n_modules for k in ("FXE_XAD_JF1M", "HED_IA1_JF500K1")]
        [2, 1]
        >>> spec.sized_for("SPB_IRDA_JNGFR", [1, 3]).n_modules  # no size in the id
        3
        """
        if not self.size_from_karabo_id:
            return self
        present = [m - self.first_module + 1 for m in modules_present]
        n = max(present, default=1)
        m = _ID_SIZE.search(karabo_id.rsplit("/", 1)[-1])
        if m is not None:
            pixels = int(m[1]) << (20 if m[2] == "M" else 10)
            n = max(n, round(pixels / (self.module_shape[0] * self.module_shape[1])))
        return self if n == self.n_modules else replace(self, n_modules=n)

    def matches_karabo_id(self, karabo_id: str) -> bool:
        """Whether ``karabo_id`` (e.g. ``SPB_DET_AGIPD1M-1``) is this detector type."""
        return re.search(self.karabo_id_pattern, karabo_id) is not None
