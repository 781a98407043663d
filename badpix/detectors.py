"""Detector descriptions loaded from ``configs/<name>.toml``.

Public objects
--------------
DetectorSpec
    Frozen description of one detector type: modules, module and ASIC geometry, memory cells,
    gain stages and how the raw data encode them, source-name patterns, dataset keys, and the
    default ``thresholds`` and ``stats`` tables (free-form; ``classify``/``stats`` validate them).
load_detector(name_or_path, overrides=None) -> DetectorSpec
    Load a built-in detector by name (``"AGIPD1M"``, case-insensitive) or a TOML file.
available_detectors() -> list[str]
    Names of the built-in detector configurations.
CONFIG_DIR
    Folder of the built-in TOML files (``badpix/configs``, a link to the top-level ``configs``).
    A file there is a detector configuration only if it has a ``[detector]`` table: the folder
    also holds other settings (``slurm.toml``, read by ``badpix.slurm``), which are no detector.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from badpix.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

GAIN_ENCODINGS = ("digital_channel", "adc_bits", "none")
LAYOUTS = ("xtdf", "train_cells")

# section -> key -> (DetectorSpec field, converter)
_SCHEMA: dict[str, dict[str, str]] = {
    "detector": {
        "name": "name",
        "extra_data_class": "extra_data_class",
        "karabo_id_pattern": "karabo_id_pattern",
        "n_modules": "n_modules",
        "first_module": "first_module",
        "module_shape": "module_shape",
        "asic_shape": "asic_shape",
        "asic_grid": "asic_grid",
        "max_cells": "max_cells",
        "gain_stages": "gain_stages",
        "gain_encoding": "gain_encoding",
        "adc_bits": "adc_bits",
        "size_from_karabo_id": "size_from_karabo_id",
    },
    "sources": {
        "raw": "raw_source_pattern",
        "proc": "proc_source_pattern",
        "layout": "layout",
        "raw_data": "raw_data_key",
        "proc_data": "proc_data_key",
        "raw_cells": "raw_cells_key",
        "proc_cells": "proc_cells_key",
    },
    "gain_mode": {
        "source": "gain_mode_source_pattern",
        "key": "gain_mode_key",
        "fixed": "gain_mode_fixed",
    },
}
_FREE_SECTIONS = ("thresholds", "stats")
_OPTIONAL = {"gain_mode_source_pattern", "gain_mode_key", "gain_mode_fixed", "first_module",
             "size_from_karabo_id"}
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


def available_detectors() -> list[str]:
    """Names of the built-in detector configurations, e.g. ``["AGIPD1M", ...]``."""
    names = []
    for path in _builtin_detector_files():
        try:
            names.append(load_detector(path).name)
        except ConfigError:  # a broken file must not hide the others
            continue
    return names


def load_detector(
    name_or_path: str | Path, overrides: Mapping[str, Any] | None = None
) -> DetectorSpec:
    """Load a detector description.

    Parameters
    ----------
    name_or_path : str or Path
        A built-in name (``"AGIPD1M"``, ``"agipd500k"``, ...) or the path of a TOML file.
    overrides : mapping, optional
        Values replacing those of the file, either nested (``{"thresholds": {"noise_snr": 4}}``)
        or dotted (``{"thresholds.noise_snr": 4}``). Validated like the file.

    Returns
    -------
    DetectorSpec

    Raises
    ------
    ConfigError
        Unknown detector, unreadable TOML, unknown key, missing key or bad value; the message
        names the key and the file.

    Examples
    --------
    >>> spec = load_detector("AGIPD1M", {"thresholds.noise_snr": 4.0})
    >>> spec.n_modules, spec.module_shape, spec.thresholds["noise_snr"]
    (16, (512, 128), 4.0)
    """
    path = _find_config(name_or_path)
    try:
        text = path.read_text()
        table = tomllib.loads(text)
    except OSError as err:
        raise ConfigError(f"cannot read detector config {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    if overrides:
        _merge(table, _nest(overrides, path), path)
    return _build(table, path, text)


def _find_config(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"detector config {path} does not exist")
        return path
    candidate = CONFIG_DIR / f"{str(name_or_path).lower()}.toml"
    if candidate.is_file() and _is_detector_file(candidate):
        return candidate
    known = ", ".join(p.stem.upper() for p in _builtin_detector_files())
    raise ConfigError(f"unknown detector {name_or_path!r}; known detectors: {known}")


def _builtin_detector_files() -> list[Path]:
    """The detector configurations among the built-in TOML files, sorted by file name."""
    return [p for p in sorted(CONFIG_DIR.glob("*.toml")) if _is_detector_file(p)]


def _is_detector_file(path: Path) -> bool:
    """Whether ``path`` describes a detector (has a ``[detector]`` table).

    A file that cannot be read or parsed counts as one, so that loading it reports what is
    wrong with it instead of calling a broken built-in detector unknown.
    """
    try:
        return "detector" in tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return True


def _nest(overrides: Mapping[str, Any], path: Path) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            nested.setdefault(key, {}).update(value)
            continue
        section, dot, name = key.partition(".")
        if not dot:
            raise ConfigError(f"override {key!r} for {path} must be 'section.key'")
        nested.setdefault(section, {})[name] = value
    return nested


def _merge(table: dict[str, Any], overrides: dict[str, Any], path: Path) -> None:
    for section, values in overrides.items():
        if section not in _SCHEMA and section not in _FREE_SECTIONS:
            raise ConfigError(f"override: unknown section [{section}] for {path}")
        table.setdefault(section, {}).update(values)


def _build(table: dict[str, Any], path: Path, text: str) -> DetectorSpec:
    values: dict[str, Any] = {}
    for section, content in table.items():
        if section in _FREE_SECTIONS:
            continue
        if section not in _SCHEMA:
            allowed = ", ".join([*_SCHEMA, *_FREE_SECTIONS])
            raise ConfigError(f"{path}: unknown section [{section}] (allowed: {allowed})")
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key, value in content.items():
            if key not in _SCHEMA[section]:
                allowed = ", ".join(_SCHEMA[section])
                raise ConfigError(f"{path}: unknown key {section}.{key} (allowed: {allowed})")
            values[_SCHEMA[section][key]] = (f"{section}.{key}", value)

    required = {f for s in _SCHEMA.values() for f in s.values()} - _OPTIONAL
    for section, keys in _SCHEMA.items():
        for key, fname in keys.items():
            if fname in required and fname not in values:
                raise ConfigError(f"{path}: missing key {section}.{key}")

    spec_args = {fname: _convert(fname, label, value, path)
                 for fname, (label, value) in values.items()}
    for section in _FREE_SECTIONS:
        spec_args[section] = MappingProxyType(_free_table(table.get(section, {}), section, path))
    spec = DetectorSpec(**spec_args, config_path=path, config_text=text)
    _check_geometry(spec, path)
    return spec


def _convert(fname: str, label: str, value: Any, path: Path) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{path}: {label} must be {expected}, got {value!r}")

    if fname == "size_from_karabo_id":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if fname in ("n_modules", "max_cells", "adc_bits", "first_module"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad("a non-negative integer")
        if fname in ("n_modules", "max_cells") and value == 0:
            raise bad("a positive integer")
        if fname == "adc_bits" and not 1 <= value <= 16:
            raise bad("an integer in 1..16")
        return value
    if fname in ("module_shape", "asic_shape", "asic_grid"):
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                           for v in value)):
            raise bad("a list of two positive integers")
        return (value[0], value[1])
    if fname == "gain_stages":
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v for v in value)
                or len(set(value)) != len(value)):
            raise bad("a non-empty list of distinct names")
        return tuple(value)
    if fname == "gain_encoding":
        if value not in GAIN_ENCODINGS:
            raise bad(f"one of {', '.join(GAIN_ENCODINGS)}")
        return value
    if fname == "layout":
        if value not in LAYOUTS:
            raise bad(f"one of {', '.join(LAYOUTS)}")
        return value
    if fname == "gain_mode_fixed":
        if not isinstance(value, dict):
            raise bad("a table of mode value -> gain stage")
        try:
            return MappingProxyType({int(k): str(v) for k, v in value.items()})
        except ValueError:
            raise bad("a table with integer keys") from None
    if not isinstance(value, str) or not value:
        raise bad("a non-empty string")
    if fname.endswith("_pattern"):
        try:
            compiled = re.compile(value)
        except re.error as err:
            raise bad(f"a valid regular expression ({err})") from None
        if fname in ("raw_source_pattern", "proc_source_pattern") and not {
            "karabo_id", "module"} <= set(compiled.groupindex):
            raise bad("a regular expression with groups (?P<karabo_id>...) and (?P<module>...)")
    return value


def _free_table(content: Any, section: str, path: Path) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [{section}] must be a table")
    out: dict[str, Any] = {}
    for key, value in content.items():
        ok = _is_number(value) or isinstance(value, (bool, str)) or (
            isinstance(value, list) and all(_is_number(v) for v in value))
        if not ok:
            raise ConfigError(
                f"{path}: {section}.{key} must be a number, string, bool or list of numbers, "
                f"got {value!r}")
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_geometry(spec: DetectorSpec, path: Path) -> None:
    for axis in (0, 1):
        if spec.asic_shape[axis] * spec.asic_grid[axis] != spec.module_shape[axis]:
            raise ConfigError(
                f"{path}: detector.asic_shape x detector.asic_grid "
                f"({spec.asic_shape} x {spec.asic_grid}) does not tile module_shape "
                f"{spec.module_shape}")
    for stage in spec.gain_mode_fixed.values():
        if stage not in spec.gain_stages:
            raise ConfigError(f"{path}: gain_mode.fixed names unknown gain stage {stage!r}")
