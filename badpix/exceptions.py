"""Errors that badpix reports to users.

Each error subclasses :class:`BadpixError` and the builtin it specialises, so callers can catch
either. The command line turns a ``BadpixError`` into one ``Error: ...`` line and exit code 1;
messages therefore say what is wrong and, where possible, how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class BadpixError(Exception):
    """Base class of every error badpix reports to a user."""


class ConfigError(BadpixError, ValueError):
    """A configuration file or option value is invalid."""


class RunError(BadpixError, ValueError):
    """An input run cannot be used (not a run, no detector, inconsistent set of runs)."""


class NoDarkDataError(RunError):
    """A run holds no usable dark frames for the requested selection."""


class DataReadError(BadpixError, OSError):
    """An input file could not be read (truncated, corrupt or unreadable)."""


class MaskFileError(BadpixError, ValueError):
    """A file is not a badpix mask file, or not a compatible one."""


class OutputExistsError(BadpixError, FileExistsError):
    """The output path exists and ``--force`` was not given."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return f"{self.path} already exists; use --force to overwrite it"


class OutputError(BadpixError, OSError):
    """The output cannot be written where it was asked for."""


class SlurmError(BadpixError, RuntimeError):
    """A SLURM command failed, or submitted jobs did not all succeed."""
