"""badpix: robust bad-pixel masks for European XFEL detectors from dark runs.

The data flow of ``badpix make-mask`` follows the module names::

    runs.py      find the dark runs, the detector and each run's gain stage
    read.py      stream (module, memory-cell block) pieces of a run
    stats.py     robust per-pixel, per-cell offset / noise statistics (robust.py, _core)
    classify.py  score pixels against their normal population, set BadPixel bits
    maskfile.py  write the mask file (CrystFEL-ready) atomically (maskfile_writer.py), read it back
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("badpix")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
