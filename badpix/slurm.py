"""Run ``badpix make-mask`` as SLURM jobs: the settings and the description of a job.

One mask is split into work units (one module x a block of memory cells, planned by
:func:`badpix.pipeline.plan_units`). A job folder holds::

    array.sh            array job: task i runs `badpix make-mask ... --partial` for unit i
    merge.sh            runs `badpix assemble parts -o MASK.h5` once every task succeeded
    parts/unit-0007.h5  the partial result of unit 7
    logs/unit-0007.out  the log of unit 7 (stdout and stderr); logs/merge.out for the merge

This module reads the sbatch settings (:func:`load_settings`, ``configs/slurm.toml``) and
describes a job (:class:`JobSpec`: its units, folder layout, settings and environment).
:mod:`badpix.slurm_scripts` renders the two scripts from a ``JobSpec`` (pure, text out) and
writes them; :mod:`badpix.slurm_jobs` talks to SLURM (which partials exist, submission, waiting,
the failure report).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from badpix.exceptions import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

#: The built-in settings (``configs/slurm.toml``, reached through the ``badpix/configs`` link).
CONFIG_PATH = Path(__file__).resolve().parent / "configs" / "slurm.toml"

#: Environment variables a job needs to run the same badpix on the same data as its submitter.
#: They are written into the scripts because a script resubmitted by hand from another shell
#: (or by a cluster that starts jobs with a clean environment) must still find them.
ENV_VARS = (
    "PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "LD_LIBRARY_PATH",
    "EXTRA_DATA_DATA_ROOT",
    "HDF5_USE_FILE_LOCKING",
)


# ----------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SlurmSettings:
    """sbatch settings of one job (see ``configs/slurm.toml`` for every key).

    Empty strings mean "not set": the cluster's default partition, no account, and a planning
    budget of 75 % of ``mem``.
    """

    partition: str = ""
    account: str = ""
    time: str = "01:00:00"
    mem: str = "4G"
    cpus_per_task: int = 1
    max_memory: str = ""
    merge_time: str = "00:30:00"
    merge_mem: str = "4G"
    extra_sbatch: tuple[str, ...] = ()

    @property
    def max_memory_bytes(self) -> int:
        """Memory one work unit may use, in bytes (planning budget)."""
        if self.max_memory:
            return parse_mem(self.max_memory)
        # headroom for the interpreter, h5py buffers and the output arrays' copies
        return parse_mem(self.mem) * 3 // 4


_KEYS = {f.name.replace("_", "-"): f.name for f in fields(SlurmSettings)}


def load_settings(
    detector: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> SlurmSettings:
    """Settings for ``detector``: ``[default]``, then the detector's table, then ``overrides``.

    Parameters
    ----------
    detector : str, optional
        Detector name (case-insensitive), e.g. ``"AGIPD1M"``. None uses ``[default]`` only.
    overrides : mapping, optional
        Values that win over the file, keyed like the file (``"cpus-per-task"``) or like the
        fields (``"cpus_per_task"``); None values are ignored (an option not given).
    path : str or Path, optional
        TOML file to read instead of the built-in ``configs/slurm.toml``.

    Returns
    -------
    SlurmSettings

    Raises
    ------
    ConfigError
        Unreadable file, unknown key or a value of the wrong type.

    Examples
    --------
    >>> s = load_settings("agipd1m", {"partition": "upex"})
    >>> s.partition, s.cpus_per_task
    ('upex', 8)
    """
    path = Path(path) if path is not None else CONFIG_PATH
    try:
        table = tomllib.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read SLURM settings {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    values: dict[str, Any] = {}
    sections = {name.lower(): name for name in table}
    chosen = ["default"] + ([detector.lower()] if detector else [])
    for key in chosen:
        section = table.get(sections.get(key, ""), {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{sections[key]}] must be a table")
        for name, value in section.items():
            values[_field(name, f"{path} [{sections[key]}]")] = value
    for name, value in (overrides or {}).items():
        if value is not None:
            values[_field(name, "option")] = value
    return _checked(values, path)


def _field(name: str, where: str) -> str:
    key = name.replace("_", "-")
    if key not in _KEYS:
        raise ConfigError(f"{where}: unknown SLURM setting {name!r}; known: {', '.join(_KEYS)}")
    return _KEYS[key]


def _checked(values: dict[str, Any], path: Path) -> SlurmSettings:
    for name, value in values.items():
        if name == "cpus_per_task":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{path}: cpus-per-task must be an integer >= 1, not {value!r}")
        elif name == "extra_sbatch":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: extra-sbatch must be a list of strings")
            values[name] = tuple(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{path}: {name.replace('_', '-')} must be a string, not {value!r}")
    settings = SlurmSettings(**values)
    for key in ("mem", "merge_mem", "max_memory"):
        if getattr(settings, key):
            parse_mem(getattr(settings, key))  # fail now, not at submit time
    return settings


_MEM_UNITS = {"": 2**20, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_mem(text: str) -> int:
    """Bytes in an sbatch ``--mem`` value (``"8G"``, ``"500M"``; a plain number is MB).

    Examples
    --------
    >>> parse_mem("8G"), parse_mem("512")
    (8589934592, 536870912)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ConfigError(f"memory {text!r} is not a size like 8G, 500M or 4096 (MB)")
    return int(float(match[1]) * _MEM_UNITS[match[2].upper()])


# ---------------------------------------------------------------------------------- job layout
@dataclass(frozen=True)
class Unit:
    """One array task: work unit ``index`` of the plan, as the scripts pass it to make-mask."""

    index: int
    module: int
    cells: str  # the value of make-mask's --cells, e.g. "0:64"


@dataclass(frozen=True)
class JobLayout:
    """Where a job folder keeps its scripts, partials and logs."""

    workdir: Path

    @property
    def array_script(self) -> Path:
        return self.workdir / "array.sh"

    @property
    def merge_script(self) -> Path:
        return self.workdir / "merge.sh"

    @property
    def parts(self) -> Path:
        return self.workdir / "parts"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def part(self, index: int) -> Path:
        return self.parts / f"unit-{index:04d}.h5"

    def unit_log(self, index: int) -> Path:
        return self.logs / f"unit-{index:04d}.out"

    @property
    def merge_log(self) -> Path:
        return self.logs / "merge.out"


@dataclass(frozen=True)
class JobSpec:
    """Everything the two scripts need.

    Attributes
    ----------
    units : tuple of Unit
        Every unit of the plan (a rerun submits a subset with ``sbatch --array=...``).
    make_mask_args : tuple of str
        The runs and make-mask options shared by every unit (paths absolute).
    output : Path
        The mask file the merge job writes (absolute).
    layout : JobLayout
    settings : SlurmSettings
    badpix : tuple of str
        The command that runs badpix: ``(sys.executable, "-m", "badpix")``.
    env : tuple of (str, str)
        Environment variables exported by the scripts.
    cwd : Path
        Folder the jobs run in (where ``badpix slurm`` ran).
    command_line : str
        The ``badpix slurm`` command line, quoted in the scripts' header.
    force : bool
        Let the merge job overwrite an existing mask file.
    job_name : str
    """

    units: tuple[Unit, ...]
    make_mask_args: tuple[str, ...]
    output: Path
    layout: JobLayout
    settings: SlurmSettings
    badpix: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: Path = field(default_factory=Path.cwd)
    command_line: str = ""
    force: bool = False
    job_name: str = "badpix"


def capture_environment(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The variables of :data:`ENV_VARS` (and any ``BADPIX_*``) that are set in ``environ``."""
    environ = os.environ if environ is None else environ
    names = [n for n in ENV_VARS if n in environ]
    names += sorted(n for n in environ if n.startswith("BADPIX_"))
    return tuple((n, environ[n]) for n in names)
