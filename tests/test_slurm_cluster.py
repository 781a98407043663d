"""``badpix slurm --submit --wait`` on a real SLURM cluster (``pytest -m slurm``).

Skipped, with the reason, where ``sbatch`` is missing or the cluster does not answer; CI starts
a single-node SLURM (``.ci/slurm.sh``) and sets ``BADPIX_REQUIRE_SLURM=1``, which turns that
skip into a failure. Nothing is mocked: the jobs run ``python -m badpix make-mask --partial`` and
``badpix assemble`` through sbatch, and the merged mask is compared with ``badpix make-mask``
run in one process on the same runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner, Result

from badpix.cli import main
from badpix.simulate import SimulatedSet
from badpix.slurm import JobLayout

pytestmark = pytest.mark.slurm

#: Provenance that differs between any two runs of the same job (when, where, how long, how).
VOLATILE_PROVENANCE = {"created", "elapsed_s", "host", "command_line", "assembled_from"}


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (no SLURM here; CI runs these tests via .ci/slurm.sh)"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"the SLURM cluster does not answer: {err}"
    if proc.returncode != 0 or "up" not in proc.stdout:
        return f"the SLURM cluster does not answer: {proc.stderr.strip() or proc.stdout.strip()}"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = _cluster_problem()
    if problem:
        if os.environ.get("BADPIX_REQUIRE_SLURM") == "1":
            pytest.fail(f"BADPIX_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)


def invoke(args: list[str]) -> Result:
    result = CliRunner().invoke(main, args)
    print(f"$ badpix {' '.join(args)}\n{result.output}")  # shown by pytest -v on failure
    return result


def datasets(path: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, np.asarray(obj[()]))
                     if isinstance(obj, h5py.Dataset) else None)
    return found


def attributes(path: Path) -> dict[str, object]:
    with h5py.File(path, "r") as f:
        attrs = {f"/{k}": v for k, v in f.attrs.items()}
        attrs.update({f"/provenance/{k}": v for k, v in f["provenance"].attrs.items()
                      if k not in VOLATILE_PROVENANCE})
    return attrs


def assert_same_mask(got: Path, want: Path) -> None:
    a, b = datasets(got), datasets(want)
    assert sorted(a) == sorted(b)
    # the CrystFEL lines name the mask file itself
    lines = str(a.pop("crystfel/geometry_lines").item().decode())
    assert lines == b.pop("crystfel/geometry_lines").item().decode().replace(str(want), str(got))
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert attributes(got) == attributes(want)


def test_slurm_mask_equals_one_process_mask_and_a_rerun_completes_it(
    cluster: None, agipd_dark_set: SimulatedSet, tmp_path: Path
) -> None:
    runs = [str(p) for p in agipd_dark_set.run_dirs]
    single = tmp_path / "single.h5"
    assert invoke(["make-mask", *runs, "-o", str(single)]).exit_code == 0

    out = tmp_path / "mask.h5"  # no white space: CrystFEL could not read it
    layout = JobLayout(tmp_path / "cluster job")  # a space: quoting in #SBATCH lines and bash
    # a planning budget for 4 of the 8 cells (30 MiB each + 512 MiB overhead): 2 units a module
    args = ["slurm", *runs, "-o", str(out), "--workdir", str(layout.workdir),
            "--max-memory", "640M", "--partition", "exfel",
            "--mem", "1G", "--merge-mem", "1G", "--cpus-per-task", "1", "--time", "00:10:00",
            "--poll", "0.5",
            "--timeout", "900"]

    written = invoke(args)
    assert written.exit_code == 0
    n_units = int(re.search(r"(\d+) work units", written.output)[1])  # type: ignore[index]
    assert n_units == 2 * len(agipd_dark_set.plan.present_modules)
    assert layout.array_script.is_file() and layout.merge_script.is_file()

    # A real failure: unit 1's output path is taken by a folder, so its make-mask cannot write.
    blocker = layout.part(1)
    blocker.mkdir(parents=True)
    failed = invoke([*args, "--wait"])
    assert failed.exit_code == 1
    assert f"Error: 1 of {n_units} units failed" in failed.output
    assert "unit 1 (module 0, cells " in failed.output
    assert f"log {layout.unit_log(1)}" in failed.output
    assert "is a directory" in failed.output  # the tail of the unit's log
    assert "merge job: not run (a unit failed)" in failed.output
    assert not out.exists()
    assert sorted(p.name for p in layout.parts.glob("unit-*.h5") if p.is_file()) == [
        layout.part(i).name for i in range(n_units) if i != 1]

    blocker.rmdir()
    rerun = invoke([*args, "--wait"])
    assert rerun.exit_code == 0
    assert f"({n_units - 1} already done, 1 to run)" in rerun.output
    assert "(units 1)" in rerun.output
    assert f"done: {out}" in rerun.output
    assert_same_mask(out, single)

    # Everything present: a rerun with --force submits only the merge.
    merge_only = invoke([*args, "--force", "--wait"])
    assert merge_only.exit_code == 0
    assert "submitted array job" not in merge_only.output
    assert f"({n_units} already done, 0 to run)" in merge_only.output
    assert_same_mask(out, single)
