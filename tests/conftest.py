"""Shared fixtures: small simulated dark-run sets, written once per test session.

Every set is made by :func:`badpix.simulate.simulate_dark_set` (extra-data's mock writer plus
injected pixel data), seeded, and small enough for the whole suite to stay fast on 2 cores.
Each fixture returns a :class:`badpix.simulate.SimulatedSet`: ``.run_dirs`` (one per gain stage,
high/medium/low), ``.truth_path`` (``truth.h5``: per-pixel class codes and expected bits, read
with :func:`badpix.simulate.load_truth`), ``.plan`` (all parameters) and ``.detector_id``.
Treat them as read-only: copy a run (``shutil.copytree``) before modifying it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from badpix.simulate import SimulatedSet, simulate_dark_set


@pytest.fixture(scope="session")
def agipd_dark_set(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSet:
    """AGIPD1M raw dark set: 3 runs (high, medium, low), adaptive gain mode (gainModeIndex 0).

    Layout: ``<tmp>/agipd/raw/r0001`` (high), ``r0002`` (medium), ``r0003`` (low), files
    ``RAW-R000N-AGIPD0M-S00000.h5`` for modules 0, 1, 2 plus ``RAW-R000N-AGIPD1MCTRL00-...``;
    module 3 is absent (missing module), modules 4-15 are not simulated (also absent).
    8 memory cells (0-7), 24 trains (10000-10023); module 1 misses 3 trains in every run
    (``truth.missing_trains``). Planted per present module: hot, cold, noisy, stuck, telegraph,
    gain-bit-error pixels, cosmic-like spikes in good pixels (``good_spiky``), and a dead ASIC
    in module 0 (see ``badpix.simulate.DEFAULT_COUNTS``). Truth: ``<tmp>/agipd/truth.h5``.
    """
    out = tmp_path_factory.mktemp("sim") / "agipd"
    return simulate_dark_set(out, detector="AGIPD1M", modules=4, cells=8, trains=24, seed=1)


@pytest.fixture(scope="session")
def agipd_proc_set(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSet:
    """AGIPD1M proc (corrected) dark set: float32 around 0, with NaN.

    Layout: ``<tmp>/agipd_proc/proc/r0001`` .. ``r0003``, files ``CORR-R000N-AGIPD0M-S00000.h5``
    with sources ``SPB_DET_AGIPD1M-1/CORR/<m>CH0:output`` (and the legacy ``/DET/...:xtdf``
    names as soft links); no control device, so gain stages come from the order. Modules 0-2,
    module 3 missing; 8 cells, 24 trains; module 1 misses 3 trains. Planted as in
    ``agipd_dark_set`` except gain-bit errors, plus ``always_nan`` pixels and ``good_some_nan``
    pixels (1-3 NaN frames, must not be flagged). Truth: ``<tmp>/agipd_proc/truth.h5``.
    """
    out = tmp_path_factory.mktemp("sim") / "agipd_proc"
    return simulate_dark_set(out, detector="AGIPD1M", modules=4, cells=8, trains=24, seed=2,
                             kind="proc")


@pytest.fixture(scope="session")
def agipd500k_dark_set(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSet:
    """AGIPD500K raw dark set in fixed gain mode (gainModeIndex 1/2/3 in the control device).

    Layout: ``<tmp>/agipd500k/raw/r0001`` .. ``r0003`` (karabo id ``HED_DET_AGIPD500K2G``),
    modules 0 and 1 present, no missing module, 4 cells, 12 trains; module 1 misses 2 trains.
    The gain stage of each run is in the metadata, so the runs may be given in any order.
    Truth: ``<tmp>/agipd500k/truth.h5``.
    """
    out = tmp_path_factory.mktemp("sim") / "agipd500k"
    return simulate_dark_set(out, detector="AGIPD500K", modules=2, cells=4, trains=12, seed=3,
                             gain_mode="fixed", missing_module=None, n_missing_trains=2)


@pytest.fixture(scope="session")
def agipd_proposal_root(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSet:
    """A tiny AGIPD1M raw set in the proposal layout, for ``PROPOSAL:RUN`` resolution.

    Layout: ``<root>/SPB/202601/p900001/raw/r0001`` .. ``r0003``; use
    ``monkeypatch.setenv("EXTRA_DATA_DATA_ROOT", str(sim.root))`` and ``900001:1``.
    One module (0), 2 cells, 8 trains, no missing trains. Truth: ``<root>/truth.h5``.
    """
    out = tmp_path_factory.mktemp("sim") / "proposal_root"
    return simulate_dark_set(out, detector="AGIPD1M", modules=1, cells=2, trains=8, seed=4,
                             proposal=900001, n_missing_trains=0)


@pytest.fixture()
def run_copy(tmp_path: Path, agipd_dark_set: SimulatedSet) -> list[Path]:
    """A private copy of the three ``agipd_dark_set`` runs, safe to damage in a test."""
    import shutil

    out = []
    for run_dir in agipd_dark_set.run_dirs:
        dest = tmp_path / run_dir.name
        shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("karabo_data_map.json"))
        out.append(dest)
    return out


def _make_mask(sim: SimulatedSet, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``badpix make-mask`` of all runs of ``sim`` into ``<tmp>/<name>/mask.h5``."""
    from click.testing import CliRunner

    from badpix.cli import main

    out = tmp_path_factory.mktemp(name) / "mask.h5"
    args = ["make-mask", *map(str, sim.run_dirs), "-o", str(out), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # -q: no summary, no progress
    return out


@pytest.fixture(scope="session")
def agipd_mask(agipd_dark_set: SimulatedSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``badpix make-mask`` of ``agipd_dark_set`` (default thresholds), made once per session.

    ``<tmp>/agipd_mask/mask.h5``: 16 modules, modules 0-2 processed (module 0 with the dead ASIC),
    3-15 ``NO_DARK_DATA``; 8 cells, gain stages high, medium, low. Compare with
    ``load_truth(agipd_dark_set.truth_path)``. Read-only: copy it before modifying it.
    """
    return _make_mask(agipd_dark_set, tmp_path_factory, "agipd_mask")


@pytest.fixture(scope="session")
def lpd_dark_set(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSet:
    """LPD1M raw dark set: 3 runs (high, medium, low; stages from the run order).

    Sources ``FXE_DET_LPD1M-1/DET/<m>CH0:xtdf``, ``image.data`` (N, 1, 256, 256) uint16 with
    the 12-bit ADC value and the gain stage (0, 1, 2) in bits 12-13. Modules 0 and 1 present,
    module 2 missing, 3-15 absent; 8 cells, 24 trains; module 1 misses 3 trains. Planted: hot,
    cold, noisy, stuck, telegraph, good_spiky, a dead tile ("ASIC", 32 x 128) in module 0.
    """
    out = tmp_path_factory.mktemp("sim") / "lpd"
    return simulate_dark_set(out, detector="LPD1M", modules=3, cells=8, trains=24, seed=11)


@pytest.fixture(scope="session")
def dssc_dark_set(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSet:
    """DSSC1M raw dark set: one run (single gain), ``image.data`` (N, 1, 128, 512) uint16.

    Sources ``SCS_DET_DSSC1M-1/DET/<m>CH0:xtdf``, 9-bit ADC values (noise ~1.5 ADU). Modules 0
    and 1 present, module 2 missing; 8 cells, 40 trains (one gain stage gives the telegraph
    test a single chance, so more trains than for AGIPD); module 1 misses 3 trains; a dead
    64 x 64 ASIC in module 0.
    """
    out = tmp_path_factory.mktemp("sim") / "dssc"
    return simulate_dark_set(out, detector="DSSC1M", modules=3, cells=8, trains=40, seed=12)


@pytest.fixture(scope="session")
def jungfrau_dark_set(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSet:
    """JUNGFRAU raw dark set (a JF1M: karabo id ``FXE_XAD_JF1M``, 2 modules), runs G0, G1, G2.

    Source ``FXE_XAD_JF1M/DET/JNGFR01:daqOutput`` (JNGFR02 missing): ``data.adc`` (trains, 2,
    512, 1024) uint16 with the 14-bit ADC value and the gain (0, 1, 3) in bits 14-15, one entry
    per train with 2 memory cells on axis 1 (``data.memoryCell``). 32 trains, 3 of them missing
    for JNGFR01; a dead 256 x 256 ASIC in JNGFR01. Module axis 0 of the truth is JNGFR01.
    """
    out = tmp_path_factory.mktemp("sim") / "jungfrau"
    return simulate_dark_set(out, detector="JUNGFRAU", modules=2, cells=2, trains=32, seed=13)


@pytest.fixture(scope="session")
def lpd_mask(lpd_dark_set: SimulatedSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``badpix make-mask`` of ``lpd_dark_set``: 16 modules of 256 x 256, modules 0-1 processed
    (dead 32 x 128 tile in module 0), 2-15 ``NO_DARK_DATA``; 8 cells, 3 gain stages. Read-only.
    """
    return _make_mask(lpd_dark_set, tmp_path_factory, "lpd_mask")


@pytest.fixture(scope="session")
def dssc_mask(dssc_dark_set: SimulatedSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``badpix make-mask`` of ``dssc_dark_set``: 16 modules of 128 x 512, modules 0-1 processed
    (dead 64 x 64 ASIC in module 0), 2-15 ``NO_DARK_DATA``; 8 cells, one gain stage. Read-only.
    """
    return _make_mask(dssc_dark_set, tmp_path_factory, "dssc_mask")


@pytest.fixture(scope="session")
def jungfrau_mask(jungfrau_dark_set: SimulatedSet,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``badpix make-mask`` of ``jungfrau_dark_set`` (JF1M): 2 modules of 512 x 1024, axis 0 =
    JNGFR01 processed (dead 256 x 256 ASIC), axis 1 = JNGFR02 ``NO_DARK_DATA``; 2 cells,
    3 gain stages. Read-only.
    """
    return _make_mask(jungfrau_dark_set, tmp_path_factory, "jungfrau_mask")
