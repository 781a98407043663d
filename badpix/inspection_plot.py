"""Pictures of badpix mask files: ``badpix inspect --plot`` and ``badpix diff --plot``.

:func:`plot_mask` draws the assembled detector coloured by reason, histograms of offset and
noise (values and scores, with the cuts of the file's thresholds) and the bad fraction per memory
cell; :func:`plot_diff` draws what changed between two masks. Where the modules go comes from
:func:`badpix.inspection_geometry.plot_layout` (extra-geom, or a plain module grid);
:func:`prepare_plot` resolves it and checks matplotlib before any work, so that commands can fail
before printing. matplotlib and extra-geom are imported only then (optional extra
``badpix[plot]``).

Examples
--------
>>> from badpix.masktools import open_mask  # doctest: +SKIP
>>> with open_mask("mask.h5") as m:  # doctest: +SKIP
...     plot_mask(m, "mask.png")["colours"]["BAD_ASIC"]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from badpix.inspection import NO_DARK_DATA
from badpix.masktools import MaskHandle, bits_present

GOOD_COLOUR = "#e8e8e8"

#: Colour of each reason. A pixel with several bits gets the colour of its first bit in this
#: order (whole modules and ASICs first, because they explain the pixel bits they come with);
#: bits not listed follow in bit order with :data:`OTHER_COLOURS`.
REASON_COLOURS: dict[str, str] = {
    "NO_DARK_DATA": "#4d4d4d",
    "BAD_ASIC": "#9467bd",
    "OFFSET_NOISE_EVAL_ERROR": "#8c564b",
    "DATA_STD_IS_ZERO": "#17becf",
    "GAIN_THRESHOLDING_ERROR": "#e377c2",
    "NON_GAUSSIAN": "#bcbd22",
    "NOISE_OUT_OF_THRESHOLD": "#ff7f0e",
    "OFFSET_OUT_OF_THRESHOLD": "#d62728",
    "USER1": "#1f77b4",
}
OTHER_COLOURS = ("#2ca02c", "#aec7e8", "#98df8a", "#ffbb78", "#c5b0d5", "#c49c94", "#7f7f7f")

#: Bad pixels with at most this many bad pixels in their 3×3 neighbourhood (themselves included)
#: are drawn as (2 WIDEN + 1)² squares, for display only: the assembled AGIPD 1M is ~1300 pixels
#: high but drawn ~800 screen pixels high, so a single pixel would fall between screen pixels.
#: 3×3 keeps them visible (2 screen pixels) without making a 1 % mask look like 10 %.
ISOLATED_MAX = 3
WIDEN = 1

DIFF_CATEGORIES = (("unchanged bad", "#b4b4b4"), ("new bad", "#d62728"),
                   ("no longer bad", "#2ca02c"), ("changed reason", "#ff7f0e"))


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a display
        import matplotlib.pyplot as plt
    except ImportError as err:
        from badpix.exceptions import ConfigError

        raise ConfigError("plots need matplotlib and extra-geom: "
                          "pip install 'badpix[plot]'") from err
    return plt


def prepare_plot(m: MaskHandle, geometry_file: Any = None) -> tuple[Any, str | None]:
    """Check matplotlib and choose the layout for pictures of ``m``: ``(geometry, note)``.

    ``note`` is None for an extra-geom geometry, else why a plain module grid is drawn.
    Raises :class:`~badpix.exceptions.ConfigError` for what the user must fix (matplotlib
    missing, a bad ``--geometry``).
    """
    from badpix.inspection_geometry import plot_layout

    _pyplot()
    return plot_layout(m.detector, m.shape, geometry_file)


def _grid_title(note: str | None) -> str:
    return "" if note is None else (f"\nplain module grid ({note}): modules side by side, "
                                    "ss down, fs across each")


def reason_categories(static: np.ndarray, bit_name: Any) -> tuple[np.ndarray, list[int]]:
    """Category image (0 = good, i + 1 = ``bits[i]``) and the bits in display order.

    Examples
    --------
    >>> from badpix.masktools import KNOWN_BITS
    >>> name = {v: k for k, v in KNOWN_BITS.items()}.get
    >>> cat, bits = reason_categories(np.array([0, 1, 1 | 1 << 24], np.uint32), name)
    >>> cat.tolist(), [name(b) for b in bits]
    ([0, 2, 1], ['BAD_ASIC', 'OFFSET_OUT_OF_THRESHOLD'])
    """
    order = list(REASON_COLOURS)
    present = bits_present(static)
    bits = sorted(present, key=lambda b: (order.index(bit_name(b)) if bit_name(b) in order
                                          else len(order), b))
    cat = np.zeros(static.shape, np.int32)
    for i in reversed(range(len(bits))):  # the first bit in display order is written last
        cat[(static & np.uint32(bits[i])) != 0] = i + 1
    return cat, bits


def widen_isolated(cat: np.ndarray, radius: int = WIDEN,
                   only: tuple[int, ...] | None = None) -> np.ndarray:
    """Grow isolated bad pixels of ``cat`` (M, ss, fs) into squares over good pixels.

    For display only; never crosses module edges; blocks (bad ASICs, modules) keep their shape.
    ``only`` limits the growth to these categories.

    Examples
    --------
    >>> cat = np.zeros((1, 5, 5), np.int32); cat[0, 2, 2] = 3
    >>> int((widen_isolated(cat, 1) == 3).sum())
    9
    """
    bad = np.pad(cat != 0, ((0, 0), (1, 1), (1, 1)))
    ss, fs = cat.shape[1:]
    near = sum(bad[:, 1 + dy: 1 + dy + ss, 1 + dx: 1 + dx + fs]
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    grow = (cat != 0) & (near <= ISOLATED_MAX)
    if only is not None:
        grow &= np.isin(cat, only)
    src = np.pad(np.where(grow, cat, 0),
                 ((0, 0), (radius, radius), (radius, radius)))
    out = cat.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = src[:, radius + dy: radius + dy + ss, radius + dx: radius + dx + fs]
            fill = (out == 0) & (shifted != 0)
            out[fill] = shifted[fill]
    return out


def _detector_panel(ax: Any, geom: Any, cat: np.ndarray, colours: list[str],
                    labels: list[str], note: str) -> dict[str, Any]:
    """Assemble category image ``cat`` (M, ss, fs; 0 = good) with ``geom`` and draw it,
    isolated bad pixels widened (:func:`widen_isolated`), modules numbered."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    img, _ = geom.position_modules(widen_isolated(cat).astype(np.float32))
    cmap = ListedColormap([GOOD_COLOUR, *colours]).with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(img), cmap=cmap, vmin=-0.5, vmax=len(colours) + 0.5,
              interpolation="nearest", origin="lower")
    modno, _ = geom.position_modules(
        np.broadcast_to(np.arange(cat.shape[0], dtype=np.float32)[:, None, None], cat.shape))
    for mod in range(cat.shape[0]):
        rows, cols = np.nonzero(modno == mod)
        if rows.size:
            ax.text(cols.mean(), rows.mean(), str(mod), ha="center", va="center", fontsize=9,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.7})
    ax.set_xticks([])
    ax.set_yticks([])
    handles = [Patch(color=GOOD_COLOUR, label="good")] + [
        Patch(color=c, label=lab) for c, lab in zip(colours, labels, strict=True)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.005), ncol=3,
              fontsize=9, frameon=False, title=note, title_fontsize=9)
    return {"image_shape": img.shape}


def _axes_info(fig: Any, ax: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Where the detector image is in the PNG: pixel (row, col) of the assembled image →
    PNG x = x0 + (col - xlim0) / (xlim1 - xlim0) * width, y from the top likewise."""
    fig.canvas.draw()
    bb = ax.get_window_extent()
    height = fig.canvas.get_width_height()[1]
    return {**info, "bbox": (bb.x0, height - bb.y1, bb.x1, height - bb.y0),
            "xlim": ax.get_xlim(), "ylim": ax.get_ylim()}


def _processed(m: MaskHandle) -> np.ndarray:
    return (m.file["modules_processed"][()].astype(bool) if m.has("modules_processed")
            else np.ones(m.n_modules, bool))


def _sample(m: MaskHandle, group: str, name: str, g: int, processed: np.ndarray) -> np.ndarray:
    """A subsample of ``/group/name`` for gain ``g``: two cells, every 2nd pixel, per module."""
    ds = m.file[f"{group}/{name}"]
    cells = sorted({0, ds.shape[2] // 2})
    parts = [ds[mod, g, cells, ::2, ::2].ravel() for mod in np.flatnonzero(processed)]
    out = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return out[np.isfinite(out)]


def _histograms(axes: list[Any], m: MaskHandle, processed: np.ndarray) -> None:
    """Values with the hard limits per gain stage, scores with the ± cut shaded outside."""
    thr = m.provenance.get("thresholds", {})
    thr = thr if isinstance(thr, dict) else {}
    panels = [(axes[0], "stats", "offset", "robust offset [ADU]", "offset_hard_{}"),
              (axes[1], "scores", "offset", "offset score [σ]", "offset_snr"),
              (axes[2], "stats", "noise", "robust noise [ADU]", "noise_hard_{}"),
              (axes[3], "scores", "noise", "noise score [σ]", "noise_snr")]
    for ax, group, name, label, key in panels:
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("pixels (sample)", fontsize=8)
        ax.tick_params(labelsize=8)
        if not m.has(f"{group}/{name}"):
            ax.text(0.5, 0.5, f"no /{group}/{name}", ha="center", transform=ax.transAxes)
            continue
        cut = thr.get(key)
        for g, gain in enumerate(m.gain_stages):
            values = _sample(m, group, name, g, processed)
            limit = thr.get(key.format(gain))
            hard = isinstance(limit, list) and len(limit) == 2
            text = f"{gain}: bad outside {limit[0]:g}–{limit[1]:g}" if hard else gain
            if values.size:
                if isinstance(cut, (int, float)):  # far outliers into the edge bins
                    edge = max(4 * cut, float(np.percentile(np.abs(values), 99.9)))
                    values = np.clip(values, -edge, edge)
                ax.hist(values, bins=100, histtype="step", color=f"C{g}", label=text, log=True)
            if hard:
                for x in limit:
                    ax.axvline(x, color=f"C{g}", ls="--", lw=1.2)
        if isinstance(cut, (int, float)) and cut > 0:
            lo, hi = ax.get_xlim()
            ax.axvspan(lo, -cut, color="#d62728", alpha=0.1, lw=0)
            ax.axvspan(cut, hi, color="#d62728", alpha=0.1, lw=0, label=f"bad: |score| > {cut:g}")
            ax.set_xlim(lo, hi)
            for x in (-cut, cut):
                ax.axvline(x, color="k", ls="--", lw=1)
            ax.set_title(f"{name} score, cut ±{cut:g}σ (shaded = bad)", fontsize=9)
        else:
            ax.set_title(f"{name}, dashed = hard limits per gain (raw data)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")


def _per_cell_panel(ax: Any, m: MaskHandle, processed: np.ndarray, bits: list[int],
                    colours: list[str]) -> None:
    """Bad % per memory cell over the modules with dark data: all reasons and each reason."""
    from matplotlib.ticker import FuncFormatter

    ax.set_title("bad pixels per memory cell (modules with dark data)", fontsize=9)
    ax.set_xlabel("memory cell", fontsize=9)
    ax.set_ylabel("bad [% of pixels]", fontsize=9)
    ax.tick_params(labelsize=8)
    if m.cells is None or not processed.any():
        ax.text(0.5, 0.5, "no per-cell mask", ha="center", transform=ax.transAxes)
        return
    total = np.zeros(len(m.cells), np.int64)
    per_bit = np.zeros((len(bits), len(m.cells)), np.int64)
    for mod in np.flatnonzero(processed):
        pc = m.per_cell(mod)
        total += np.count_nonzero(pc, axis=(1, 2))
        for i, b in enumerate(bits):
            per_bit[i] += np.count_nonzero(pc & np.uint32(b), axis=(1, 2))
    n = int(processed.sum()) * m.shape[1] * m.shape[2]
    ax.plot(m.cells, 100 * total / n, ".-", color="k", label="any reason")
    for i, b in enumerate(bits):
        if per_bit[i].any():
            ax.plot(m.cells, 100 * per_bit[i] / n, ".-", color=colours[i], lw=1,
                    label=m.bit_name(b))
    # from 0, with room for the legend above the lines
    ax.set_ylim(0, 1.6 * max(100 * total.max() / n, 1e-3))
    # plain percentages: never an offset such as "+6.6413" above the axis
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.legend(fontsize=7, ncol=4, loc="upper center")


def plot_mask(m: MaskHandle, out: Any, *, geometry_file: Any = None,
              layout: tuple[Any, str | None] | None = None) -> dict[str, Any]:
    """Draw the detector with bad pixels coloured by reason (first bit in
    :data:`REASON_COLOURS` order), histograms of offset and noise (values and scores, cuts
    marked) and the bad fraction per memory cell, as a PNG.

    ``layout`` is :func:`prepare_plot`'s result (made from ``geometry_file`` if not given).
    Returns where the detector image sits in the PNG (see :func:`_axes_info`), the RGBA
    colour of each reason, and ``geometry`` (what placed the modules), so tests can check pixels.
    """
    from matplotlib.colors import to_rgba

    plt = _pyplot()
    geom, note = layout if layout is not None else prepare_plot(m, geometry_file)
    static = m.static()
    cat, bits = reason_categories(static, m.bit_name)
    spare = iter(OTHER_COLOURS * 4)
    colours = [REASON_COLOURS.get(m.bit_name(b)) or next(spare) for b in bits]
    labels = [f"{m.bit_name(b)}: {np.count_nonzero(cat == i + 1)}" for i, b in enumerate(bits)]
    processed = _processed(m)
    fig = plt.figure(figsize=(17, 10), dpi=100)
    gs = fig.add_gridspec(3, 3, width_ratios=[2.0, 1, 1], hspace=0.45, wspace=0.25,
                          left=0.02, right=0.98, top=0.92, bottom=0.16)
    ax = fig.add_subplot(gs[:, 0])
    n_bad = int(np.count_nonzero(static))
    no_data = [mod for mod in range(m.n_modules) if np.all(static[mod] & NO_DARK_DATA)]
    in_data = int(np.count_nonzero(static[processed])) if processed.any() else 0
    n_data = int(processed.sum()) * m.shape[1] * m.shape[2]
    fig.suptitle(f"{m.path.name} ({m.detector}): {n_bad} bad pixels of {static.size}; "
                 f"{len(no_data)} module(s) without dark data; in the others "
                 f"{in_data} bad ({100 * in_data / max(n_data, 1):.2f} %)", fontsize=12)
    ax.set_title("colour = reason (first in legend order); numbers = modules" + _grid_title(note),
                 fontsize=10)
    info = _detector_panel(ax, geom, cat, colours, labels,
                           f"reason: pixels   (isolated bad pixels drawn {2 * WIDEN + 1}×"
                           f"{2 * WIDEN + 1} for visibility)")
    _histograms([fig.add_subplot(gs[r, c]) for r in (0, 1) for c in (1, 2)], m, processed)
    _per_cell_panel(fig.add_subplot(gs[2, 1:]), m, processed, bits, colours)
    info = _axes_info(fig, ax, info)
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return {**info, "geometry": geom,
            "colours": {m.bit_name(b): to_rgba(colours[i]) for i, b in enumerate(bits)}}


def plot_diff(a: MaskHandle, b: MaskHandle, out: Any, *, geometry_file: Any = None,
              layout: tuple[Any, str | None] | None = None) -> dict[str, Any]:
    """Draw the static-mask changes from ``a`` to ``b`` on the assembled detector
    (``layout``: :func:`prepare_plot` of ``a``, made from ``geometry_file`` if not given)."""
    from matplotlib.colors import to_rgba

    plt = _pyplot()
    geom, note = layout if layout is not None else prepare_plot(a, geometry_file)
    ma, mb = a.static(), b.static()
    cat = np.zeros(ma.shape, np.int32)
    cat[(ma != 0) & (mb != 0)] = 1
    cat[(ma == 0) & (mb != 0)] = 2
    cat[(ma != 0) & (mb == 0)] = 3
    cat[(ma != 0) & (mb != 0) & (ma != mb)] = 4
    counts = [np.count_nonzero(cat == i + 1) for i in range(len(DIFF_CATEGORIES))]
    # changes are what the picture is about: 5×5 for them (3×3 for everything else below)
    cat = widen_isolated(cat, 2, only=(2, 3, 4))
    colours = [c for _, c in DIFF_CATEGORIES]
    labels = [f"{n}: {k}" for (n, _), k in zip(DIFF_CATEGORIES, counts, strict=True)]
    fig, ax = plt.subplots(figsize=(10, 11), dpi=100)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.93, bottom=0.1)
    ax.set_title(f"A = {a.path.name} → B = {b.path.name}\nnew bad = bad in B only, "
                 "no longer bad = bad in A only" + _grid_title(note), fontsize=10)
    info = _axes_info(fig, ax, _detector_panel(
        ax, geom, cat, colours, labels,
        "change: pixels   (isolated changes drawn 5×5, other bad pixels 3×3)"))
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return {**info, "geometry": geom, "colours": {n: to_rgba(c) for n, c in DIFF_CATEGORIES}}
