"""CrystFEL geometry text for badpix mask files.

CrystFEL reads a mask through HDF5 as native ``int`` and calls a pixel bad when
``(value & mask_good) != mask_good`` or ``(value & mask_bad) != 0``. badpix masks are 0 = good with
reason bits, so the lines are always ``mask_good = 0x0`` and a ``mask_bad`` that covers the bits
badpix writes. Three facts shape this module (see ``docs/design.md`` and the CrystFEL reference):

* the legacy keywords ``mask``/``mask_file``/``mask_good``/``mask_bad`` are read by every
  CrystFEL from 0.9.1 to 0.12, whereas ``maskN_*`` are unknown to 0.9 (silently ignored);
* CrystFEL 0.10+ **rejects** a geometry whose top-level mask lines follow the panel definitions,
  so the lines always go before the first panel (and before any group line naming panels);
* the static ``(M, 512, 128)`` mask ``/mask`` fits the 4-D VDS layout (``dim1 = <module>``) in
  0.10+ only, while the stacked ``(M*512, 128)`` mask ``/mask_stacked`` fits the 2-D layout in
  0.9.1 and later.

Examples
--------
>>> lines = mask_geometry_lines("/data/mask.h5", layout="vds", bad_bits=0x1ff)
>>> [ln for ln in lines if not ln.startswith(";")]
['mask_file = /data/mask.h5', 'mask = /mask', 'mask_good = 0x0', 'mask_bad = 0x1ff']
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from badpix.exceptions import ConfigError

Layout = Literal["vds", "stacked"]

#: Data path of EuXFEL virtual CXI files (``extra-data-make-virtual-cxi``).
DATA_PATH = "/entry_1/instrument_1/detector_1/data"

#: Mask dataset in a badpix mask file for each data layout.
MASK_DATASETS: dict[str, str] = {"vds": "/mask", "stacked": "/mask_stacked"}

#: extra-geom ``dims`` for each layout: 4-D (frame, module, ss, fs) or stacked (frame, ss, fs).
LAYOUT_DIMS: dict[str, tuple[str, ...]] = {
    "vds": ("frame", "modno", "ss", "fs"),
    "stacked": ("frame", "ss", "fs"),
}

_VERSION_NOTE = {
    "vds": "static (M, ss, fs) mask for the 4-D VDS layout (dim1 = <module>): "
    "read by CrystFEL 0.10 and later only (0.9 ignores it silently)",
    "stacked": "static (M*ss, fs) mask for the stacked 2-D layout: read by CrystFEL 0.9 and later",
}

# Top-level keys that choose a mask; an earlier choice would replace or add to badpix's mask.
_MASK_KEY = re.compile(
    r"^(mask|mask_file|mask_good|mask_bad|mask\d+_(data|file|goodbits|badbits))$", re.ASCII
)
_MARKER = "; badpix:"


def _check_layout(layout: str) -> str:
    if layout not in MASK_DATASETS:
        raise ConfigError(f"unknown layout {layout!r}; use 'vds' or 'stacked'")
    return layout


def mask_geometry_lines(
    mask_file: str | Path,
    *,
    layout: Layout,
    bad_bits: int,
    dataset: str | None = None,
) -> list[str]:
    """Return the geometry lines that make CrystFEL use a badpix mask file.

    Parameters
    ----------
    mask_file : str or Path
        The mask file as CrystFEL should open it: absolute, or relative to the folder CrystFEL
        runs in.
    layout : {"vds", "stacked"}
        ``"vds"``: data ``(N, M, ss, fs)`` with ``dim1 = <module>``, mask ``/mask``
        (CrystFEL 0.10+). ``"stacked"``: data ``(N, M*ss, fs)``, mask ``/mask_stacked`` (0.9+).
    bad_bits : int
        Reason bits that make a pixel bad (``mask_bad``); 0 < bad_bits < 2**31 because CrystFEL
        reads masks as signed 32-bit ``int``.
    dataset : str, optional
        Mask dataset path instead of the default for ``layout``.

    Returns
    -------
    list of str
        Comment lines, then ``mask_file``, ``mask``, ``mask_good = 0x0`` and ``mask_bad``;
        to be placed before the first panel definition (see :func:`insert_mask_lines`).

    Examples
    --------
    >>> mask_geometry_lines("m.h5", layout="stacked", bad_bits=0xf)[-3:]
    ['mask = /mask_stacked', 'mask_good = 0x0', 'mask_bad = 0xf']
    """
    layout = _check_layout(layout)
    bad_bits = int(bad_bits)
    if not 0 < bad_bits < 2**31:
        raise ConfigError(
            f"mask_bad 0x{bad_bits:x} is not usable: CrystFEL needs 0 < mask_bad < 2**31"
        )
    dataset = dataset or MASK_DATASETS[layout]
    if not dataset.startswith("/"):
        raise ConfigError(f"mask dataset {dataset!r} must be an absolute HDF5 path ('/...')")
    mask_file = str(mask_file)
    if any(c.isspace() for c in mask_file):
        # CrystFEL splits geometry values at white space.
        raise ConfigError(
            f"mask file path {mask_file!r} contains white space; CrystFEL cannot read it"
        )
    return [
        f"{_MARKER} bad-pixel mask (0 = good, nonzero bits = reasons)",
        f"; {_VERSION_NOTE[layout]}",
        f"mask_file = {mask_file}",
        f"mask = {dataset}",
        "mask_good = 0x0",
        f"mask_bad = 0x{bad_bits:x}",
    ]


def _key_of(line: str) -> str | None:
    """The key of a ``key = value`` geometry line, or None for comments and blank lines."""
    text = line.split(";", 1)[0].strip()
    if "=" not in text:
        return None
    return text.split("=", 1)[0].strip()


def _names_panels(key: str) -> bool:
    """True for a line that defines or names panels: ``panel/field``, ``(rigid_)group_*``."""
    if "/" in key:
        return True
    return key.startswith(("rigid_group", "group_"))


def insert_mask_lines(geom_text: str, lines: Iterable[str]) -> str:
    """Return a copy of a CrystFEL geometry with ``lines`` inserted before the first panel.

    Existing mask directives (``mask``, ``mask_file``, ``mask_good``, ``mask_bad``,
    ``maskN_*``), top-level or per panel, are commented out with a note, because any of them
    would replace or weaken the inserted mask. The lines go before the first line that defines
    or names a panel (``pXaY/...``, ``rigid_group...``, ``group_...``): CrystFEL 0.10+ applies
    top-level lines only to panels defined after them and rejects trailing ones.

    Examples
    --------
    >>> geom = "mask_bad = 0xffff\\ndim0 = %\\np0a0/min_fs = 0\\n"
    >>> print(insert_mask_lines(geom, ["mask_good = 0x0"]), end="")
    ; badpix: superseded by the badpix mask lines: mask_bad = 0xffff
    dim0 = %
    mask_good = 0x0
    <BLANKLINE>
    p0a0/min_fs = 0
    """
    src = geom_text.splitlines()
    out: list[str] = []
    inserted = False
    for line in src:
        key = _key_of(line)
        if key is not None and not inserted and _names_panels(key):
            out.extend(lines)
            out.append("")
            inserted = True
        if key is not None and _MASK_KEY.match(key.rsplit("/", 1)[-1]):
            out.append(f"{_MARKER} superseded by the badpix mask lines: {line.strip()}")
            continue
        out.append(line)
    if not inserted:
        raise ConfigError("the geometry has no panel definitions (no 'panel/field = value' lines)")
    return "\n".join(out) + "\n"


# --- default geometries -------------------------------------------------------------------

#: extra-geom class of each detector badpix knows (key: name lower-case, letters and digits).
#: All of them have extra-geom's documented ``example()`` geometry (nominal positions) and
#: ``write_crystfel_geom``; DSSC's hexagonal pixels are written as square ones, as extra-geom does.
_GEOMETRY_CLASSES = {
    "agipd1m": "AGIPD_1MGeometry",
    "agipd500k": "AGIPD_500K2GGeometry",
    "lpd1m": "LPD_1MGeometry",
    "dssc1m": "DSSC_1MGeometry",
    "jungfrau": "JUNGFRAUGeometry",
}
_ALIASES = {"agipd": "agipd1m", "agipd500k2g": "agipd500k", "agipd05m": "agipd500k",
            "lpd": "lpd1m", "dssc": "dssc1m", "jf": "jungfrau"}
#: Detectors whose module count is the run's (extra-geom's example takes it as ``n_modules``).
_SIZED_BY_RUN = {"jungfrau"}


def _geometry_key(detector: str) -> str | None:
    key = re.sub(r"[^a-z0-9]", "", detector.lower())
    key = _ALIASES.get(key, key)
    return key if key in _GEOMETRY_CLASSES else None


def has_default_geometry(detector: str) -> bool:
    """True if badpix has an extra-geom geometry for ``detector`` (extra-geom itself may still
    be missing).

    Examples
    --------
    >>> has_default_geometry("LPD1M"), has_default_geometry("PNCCD")
    (True, False)
    """
    return _geometry_key(detector) is not None


def _detector_key(detector: str) -> str:
    key = _geometry_key(detector)
    if key is None:
        raise ConfigError(
            f"no default geometry for detector {detector!r} (known: AGIPD1M, AGIPD500K, "
            "LPD1M, DSSC1M, JUNGFRAU); pass a CrystFEL geometry file with --geometry"
        )
    return key


def _import_extra_geom() -> Any:
    try:
        import extra_geom
    except ImportError as err:  # optional extra [plot]
        raise ConfigError(
            "extra-geom is needed for detector geometries; install it with "
            "`pip install 'badpix[plot]'`"
        ) from err
    return extra_geom


def detector_geometry(
    detector: str, geom_file: str | Path | None = None, *, n_modules: int | None = None
) -> Any:
    """Return an extra-geom geometry object for ``detector``.

    With ``geom_file`` the geometry is read from that CrystFEL file, otherwise extra-geom's
    example geometry for the detector is used (nominal positions: good for pictures, not for
    indexing). ``n_modules`` is the module count of the data (a mask's module axis): JUNGFRAU's
    example gets that many modules, and any geometry with another count is refused.

    Raises
    ------
    ConfigError
        Unknown detector, extra-geom missing, unreadable file, or a module count other than
        ``n_modules``.

    Examples
    --------
    >>> detector_geometry("AGIPD1M").expected_data_shape
    (16, 512, 128)
    >>> detector_geometry("JUNGFRAU", n_modules=2).expected_data_shape
    (2, 512, 1024)
    """
    key = _detector_key(detector)
    cls = getattr(_import_extra_geom(), _GEOMETRY_CLASSES[key], None)
    if cls is None:  # extra-geom older than the class
        raise ConfigError(f"this extra-geom has no {_GEOMETRY_CLASSES[key]}; upgrade extra-geom")
    if geom_file is None:
        sized = {"n_modules": n_modules or 1} if key in _SIZED_BY_RUN else {}
        try:
            geom = cls.example(**sized)
        except (AttributeError, TypeError) as err:  # extra-geom before these examples
            raise ConfigError(f"this extra-geom has no example {detector} geometry ({err}); "
                              "upgrade extra-geom or pass --geometry") from err
        where = f"extra-geom's example {detector} geometry"
    else:
        try:
            geom = cls.from_crystfel_geom(str(geom_file))
        except Exception as err:  # extra-geom raises many types for unreadable files
            raise ConfigError(f"cannot read geometry {geom_file}: {err}") from err
        where = f"geometry {geom_file}"
    have = tuple(geom.expected_data_shape)
    if n_modules is not None and have[0] != n_modules:
        raise ConfigError(f"{where} has {have[0]} modules; the data have {n_modules}")
    return geom


def default_geometry(
    detector: str,
    layout: Layout,
    *,
    mask_file: str | Path | None = None,
    bad_bits: int | None = None,
    geometry: Any = None,
    n_modules: int | None = None,
) -> str:
    """Return a full CrystFEL geometry for ``detector`` in the given data layout.

    The panels come from ``geometry`` (an extra-geom object) or extra-geom's example geometry,
    with data path :data:`DATA_PATH` and dims ``(frame, modno, ss, fs)`` for ``"vds"`` or
    ``(frame, ss, fs)`` for ``"stacked"``. With ``mask_file`` (and ``bad_bits``) the badpix
    mask lines are inserted before the panels. ``n_modules``: the data's module count (needed
    for JUNGFRAU, whose size is the run's; see :func:`detector_geometry`).

    Examples
    --------
    >>> text = default_geometry("AGIPD1M", "stacked", mask_file="m.h5", bad_bits=0xff)
    >>> text.index("mask_bad = 0xff") < text.index("p0a0/min_fs")
    True
    """
    layout = _check_layout(layout)
    geom = (geometry if geometry is not None
            else detector_geometry(detector, n_modules=n_modules))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "det.geom"
        geom.write_crystfel_geom(str(path), data_path=DATA_PATH, dims=LAYOUT_DIMS[layout])
        text = path.read_text()
    if mask_file is None:
        return text
    if bad_bits is None:
        raise ConfigError("bad_bits is needed together with mask_file")
    return insert_mask_lines(text, mask_geometry_lines(mask_file, layout=layout, bad_bits=bad_bits))


def parse_geometry(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Split geometry text into top-level and per-panel key/value pairs (comments dropped).

    Only for checks and tests: later assignments of the same key win, as in CrystFEL.

    Examples
    --------
    >>> top, panels = parse_geometry("mask_bad = 0x3 ; c\\np0a0/min_fs = 0\\n")
    >>> top["mask_bad"], panels["p0a0"]["min_fs"]
    ('0x3', '0')
    """
    top: dict[str, str] = {}
    panels: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        key = _key_of(line)
        if key is None:
            continue
        value = line.split(";", 1)[0].split("=", 1)[1].strip()
        if "/" in key:
            name, field = key.split("/", 1)
            panels.setdefault(name, {})[field] = value
        else:
            top[key] = value
    return top, panels
