"""Precision and recall of a static mask against a simulated ground truth (``truth.h5``).

For each planted class with expected bits B: **recall** = fraction of the class's pixels whose
mask has all bits of B; **precision** = TP / (TP + FP), where FP counts the *good* pixels (every
class whose expected bits are 0: good, good_spiky, good_some_nan) that carry any bit of B.
Classes expected to stay good report how many of their pixels were flagged at all.

>>> import numpy as np
>>> from types import SimpleNamespace
>>> truth = SimpleNamespace(class_code=np.array([[0, 1, 1]]), class_names=("good", "hot"),
...                         expected_bits=np.array([[0, 1, 1]], np.uint32))
>>> [(r.name, r.recall, r.precision) for r in evaluate(np.array([[1, 1, 0]], np.uint32), truth)]
[('good', None, None), ('hot', 0.5, 0.5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassScore:
    name: str
    n_pixels: int
    expected_bits: int
    recall: float | None  # None for classes that must stay good
    precision: float | None
    false_positives: int  # good pixels with any expected bit (or: this class's flagged pixels)


def evaluate(mask: np.ndarray, truth: Any) -> list[ClassScore]:
    """Score a static ``(M, ss, fs)`` mask against ``truth`` (``simulate.load_truth``)."""
    good = truth.expected_bits == 0
    out = []
    for code, name in enumerate(truth.class_names):
        sel = truth.class_code == code
        n = int(sel.sum())
        if n == 0:
            continue
        bits = int(truth.expected_bits[sel][0])
        if bits == 0:
            flagged = int(np.count_nonzero(mask[sel]))
            out.append(ClassScore(name, n, 0, None, None, flagged))
            continue
        tp = int(np.count_nonzero((mask[sel] & np.uint32(bits)) == bits))
        fp = int(np.count_nonzero(good & ((mask & np.uint32(bits)) != 0)))
        out.append(ClassScore(name, n, bits, tp / n, tp / max(tp + fp, 1), fp))
    return out


def format_table(scores: list[ClassScore]) -> str:
    """A plain-text table of :func:`evaluate` results."""
    rows = [f"{'class':<16}{'pixels':>8}  {'bits':>10}  {'recall':>8}  {'precision':>9}  {'FP':>6}"]
    for s in scores:
        if s.recall is None:
            rows.append(
                f"{s.name:<16}{s.n_pixels:>8}  {'(good)':>10}  {'':>8}  {'':>9}  "
                f"{s.false_positives:>6}"
            )
        else:
            rows.append(
                f"{s.name:<16}{s.n_pixels:>8}  {s.expected_bits:>#10x}  {s.recall:>8.2%}  "
                f"{s.precision:>9.2%}  {s.false_positives:>6}"
            )
    return "\n".join(rows)
