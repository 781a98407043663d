"""Detector descriptions loaded from ``configs/<name>.toml``: finding, reading and validating
the files (the :class:`DetectorSpec` itself is in :mod:`badpix.detector_spec`, re-exported here).

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
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from badpix.detector_spec import DetectorSpec
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
