"""Write outputs so that a reader never sees a half-written file.

Every file badpix writes goes through :func:`atomic_output`: the data is written to a temporary
file in the target folder (same file system, so the final rename is atomic) and renamed into
place only when the writer finished without error. An interrupted or failed run leaves the old
file, or nothing, but never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from badpix.exceptions import OutputError, OutputExistsError


def check_output_path(path: str | Path, *, force: bool = False) -> Path:
    """Validate an output path before any heavy work starts.

    Raises :class:`OutputExistsError` if ``path`` exists and ``force`` is false, and
    :class:`OutputError` if its folder is missing or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name for the output")
    if path.exists() and not force:
        raise OutputExistsError(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    Examples
    --------
    >>> import h5py, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "mask.h5"
    >>> with atomic_output(out) as tmp:
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = 1
    >>> out.exists()
    True
    """
    path = check_output_path(path, force=force)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if path.exists() and not force:  # appeared while we were working
            raise OutputExistsError(path)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
