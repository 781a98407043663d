"""Where each module goes in the pictures of ``badpix inspect --plot`` / ``badpix diff --plot``.

:func:`plot_layout` chooses, before any work is done: the CrystFEL file given with
``--geometry`` (read by extra-geom; errors are the user's to fix, so they are raised), else
extra-geom's example geometry for the detector, else — for a detector extra-geom does not know,
or without extra-geom — a :class:`ModuleGrid` (modules side by side, ss × fs each) with a note
for the picture's title. Both have ``position_modules(data) -> (image, centre)``, the one
method the pictures use.

Examples
--------
>>> grid = ModuleGrid(3, (2, 4), gap=1)
>>> img, _ = grid.position_modules(np.arange(3.0)[:, None, None] * np.ones((3, 2, 4)))
>>> img.shape
(5, 9)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from badpix.exceptions import ConfigError


@dataclass(frozen=True)
class ModuleGrid:
    """Modules as plain ``ss × fs`` tiles in a near-square grid, module 0 top left, rows of
    modules from the top, ``ss`` downwards and ``fs`` to the right in each tile (as the arrays
    print), ``gap`` pixels of NaN between tiles.

    The image is meant for ``imshow(..., origin="lower")``, as extra-geom's assembled images.
    """

    n_modules: int
    module_shape: tuple[int, int]
    gap: int = 8

    @property
    def columns(self) -> int:
        """Tiles per row: about as many tile heights as widths, so the picture is square-ish."""
        ss, fs = self.module_shape
        return max(1, min(self.n_modules, math.ceil(math.sqrt(self.n_modules * ss / fs))))

    @property
    def expected_data_shape(self) -> tuple[int, int, int]:
        """``(modules, ss, fs)`` as extra-geom geometries name it."""
        return (self.n_modules, *self.module_shape)

    def position_modules(self, data: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Place ``data`` (M, ss, fs) into one float image; NaN outside the tiles.

        Returns the image (row 0 at the bottom, for ``origin="lower"``) and its centre
        ``(row, col)``, as extra-geom's ``position_modules`` does.
        """
        if data.shape != self.expected_data_shape:
            raise ValueError(f"data shape {data.shape} is not {self.expected_data_shape}")
        ss, fs = self.module_shape
        cols = self.columns
        rows = -(-self.n_modules // cols)
        img = np.full((rows * ss + (rows - 1) * self.gap, cols * fs + (cols - 1) * self.gap),
                      np.nan, np.float32)
        for mod in range(self.n_modules):
            r, c = divmod(mod, cols)
            top, left = r * (ss + self.gap), c * (fs + self.gap)
            img[top: top + ss, left: left + fs] = data[mod]
        # built top-down as printed; flipped so that origin="lower" shows it that way
        return img[::-1], (img.shape[0] / 2, img.shape[1] / 2)


def plot_layout(detector: str, shape: tuple[int, int, int],
                geometry_file: str | Path | None = None) -> tuple[Any, str | None]:
    """The layout to draw a mask of ``shape`` (M, ss, fs) with, and a note for the title.

    Returns ``(geometry, None)`` for an extra-geom geometry, ``(ModuleGrid, note)`` when no
    sensible default exists (unknown detector, extra-geom missing, or a module count extra-geom
    cannot place).

    Raises
    ------
    ConfigError
        ``geometry_file`` given but unreadable, for a detector badpix has no extra-geom class
        for, or with another module count or module shape than ``shape``.
    """
    from badpix.crystfel import detector_geometry, has_default_geometry

    n_modules, ss, fs = shape
    if geometry_file is not None:
        if not has_default_geometry(detector):
            raise ConfigError(f"cannot read --geometry for detector {detector!r}: extra-geom "
                              "knows AGIPD1M, AGIPD500K, LPD1M, DSSC1M and JUNGFRAU only")
        geom = detector_geometry(detector, geometry_file, n_modules=n_modules)
        _check_module_shape(geom, shape, f"geometry {geometry_file}")
        return geom, None
    if not has_default_geometry(detector):
        return ModuleGrid(n_modules, (ss, fs)), f"no geometry known for {detector}"
    try:
        geom = detector_geometry(detector, n_modules=n_modules)
        _check_module_shape(geom, shape, f"extra-geom's {detector} geometry")
    except ConfigError as err:  # extra-geom missing or too old, or a non-standard mask shape
        return ModuleGrid(n_modules, (ss, fs)), str(err).split(";")[0]
    return geom, None


def _check_module_shape(geom: Any, shape: tuple[int, int, int], where: str) -> None:
    have = tuple(geom.expected_data_shape)
    if have != tuple(shape):
        raise ConfigError(f"{where} is for data of shape {have}; the mask is {tuple(shape)}")
