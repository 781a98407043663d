"""Small badpix mask files with planted bad pixels, written with the real MaskWriter.

``write_planted_mask`` makes an AGIPD-1M-shaped file (16 modules, 3 cells, 2 gain stages) with:

* module 3, ASIC 5 (ss 128:192, fs 64:128): ``BAD_ASIC`` in every cell and gain;
* module 7: not processed (``NO_DARK_DATA`` everywhere, set by the writer);
* module 0, pixels (10, 20) and (11, 21): ``OFFSET_OUT_OF_THRESHOLD`` in cell 1, high gain only;
* module 10, pixels (300, 5..9): ``NOISE_OUT_OF_THRESHOLD`` in every cell, medium gain.

Statistics are Gaussian (offset 5000 ± 20, noise 10 ± 1 ADU) with the planted pixels far off,
and scores are (value - 5000) / 20 and (noise - 10) / 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from badpix.atomic import atomic_output
from badpix.classify import BadPixel
from badpix.maskfile import MaskLayout, MaskWriter

CELLS = (0, 1, 2)
GAINS = ("high", "medium")
ASIC = (3, slice(128, 192), slice(64, 128))
HOT = [(0, 10, 20), (0, 11, 21)]
NOISY = [(10, 300, fs) for fs in range(5, 10)]
UNPROCESSED = 7
THRESHOLDS = {"offset_snr": 5.0, "noise_snr": 5.0, "offset_hard_high": [3000, 7000]}


def write_planted_mask(path: Path, *, seed: int = 0, extra_hot: list | None = None) -> Path:
    rng = np.random.default_rng(seed)
    layout = MaskLayout("AGIPD1M", 16, (512, 128), CELLS, GAINS,
                        stat_names=("offset", "noise", "offset_median", "noise_std"),
                        score_names=("offset", "noise"))
    shape = (len(GAINS), len(CELLS), 512, 128)
    with atomic_output(path, force=True) as tmp, MaskWriter(tmp, layout) as w:
        for mod in range(16):
            if mod == UNPROCESSED:
                continue
            bits = np.zeros(shape, np.uint32)
            offset = rng.normal(5000, 20, shape).astype(np.float32)
            noise = rng.normal(10, 1, shape).astype(np.float32)
            if mod == ASIC[0]:
                bits[:, :, ASIC[1], ASIC[2]] |= np.uint32(BadPixel.BAD_ASIC)
            for m, ss, fs in HOT + (extra_hot or []):
                if m == mod:
                    bits[0, 1, ss, fs] |= np.uint32(BadPixel.OFFSET_OUT_OF_THRESHOLD)
                    offset[0, 1, ss, fs] = 9000
            for m, ss, fs in NOISY:
                if m == mod:
                    bits[1, :, ss, fs] |= np.uint32(BadPixel.NOISE_OUT_OF_THRESHOLD)
                    noise[1, :, ss, fs] = 80
            stats = {"offset": offset, "noise": noise, "offset_median": offset + 0.5,
                     "noise_std": noise * 1.1}
            scores = {"offset": (offset - 5000) / 20, "noise": noise - 10}
            w.write_unit(mod, CELLS, bits, stats, scores)
        w.finish(
            provenance={"command_line": "test", "runs": [{"path": "r1", "gain": "high"}],
                        "trains": [{"first": 1, "last": 10, "count": 10}],
                        "thresholds": THRESHOLDS},
            geometry_lines="mask_file = x.h5\nmask = /mask\nmask_good = 0x0\nmask_bad = 0x1ffffff",
        )
    return path
