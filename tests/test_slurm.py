"""badpix.slurm, slurm_scripts and slurm_jobs without a cluster: settings, script
rendering, partial sets, failure reports.

The scripts are checked by bash itself (``bash -n``) and by running them outside SLURM with a
stand-in for badpix that records its argv, so quoting is tested by the shell that will run it.
Submission against a real SLURM is in ``test_slurm_cluster.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner, Result

from badpix import slurm, slurm_jobs, slurm_scripts
from badpix.cli import main
from badpix.exceptions import BadpixError, ConfigError, SlurmError
from badpix.simulate import SimulatedSet
from badpix.slurm import JobLayout, JobSpec, SlurmSettings, Unit

SPACEY = "dir with 'quotes' $HOME and spaces"


# ----------------------------------------------------------------------------------- settings
def test_default_settings_come_from_the_builtin_file() -> None:
    s = slurm.load_settings()
    assert s.time == "01:00:00" and s.cpus_per_task == 1 and s.partition == ""


def test_detector_table_overrides_default_case_insensitively() -> None:
    s = slurm.load_settings("agipd1m")
    assert (s.partition, s.mem, s.cpus_per_task) == ("exfel", "32G", 8)
    assert s.merge_time == "00:30:00"  # not in [AGIPD1M]: from [default]


def test_options_override_the_file_and_none_is_ignored() -> None:
    s = slurm.load_settings("AGIPD1M", {"partition": "upex", "cpus-per-task": 4, "time": None})
    assert (s.partition, s.cpus_per_task, s.time) == ("upex", 4, "02:00:00")


def test_unknown_detector_uses_default() -> None:
    assert slurm.load_settings("NOSUCHDET") == slurm.load_settings()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[default]\npartitoin = 'x'\n", "unknown SLURM setting 'partitoin'"),
        ("[default]\ncpus-per-task = 0\n", "cpus-per-task"),
        ("[default]\nmem = 8\n", "mem must be a string"),
        ("[default]\nmem = 'lots'\n", "not a size"),
        ("[default]\nextra-sbatch = '--x'\n", "list of strings"),
        ("[default\n", "invalid TOML"),
    ],
)
def test_bad_settings_file_is_a_config_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        slurm.load_settings(None, path=path)


def test_planning_budget_defaults_to_three_quarters_of_mem() -> None:
    assert SlurmSettings(mem="8G").max_memory_bytes == 6 * 2**30
    assert SlurmSettings(mem="8G", max_memory="1G").max_memory_bytes == 2**30


@pytest.mark.parametrize(
    ("text", "n"), [("8G", 8 * 2**30), ("500M", 500 * 2**20), ("4096", 4096 * 2**20),
                    ("1.5g", 3 * 2**29), ("64K", 64 * 2**10), ("2T", 2 * 2**40)]
)
def test_parse_mem(text: str, n: int) -> None:
    assert slurm.parse_mem(text) == n


@pytest.mark.parametrize(("indices", "text"), [([0], "0"), ([0, 1, 2, 5], "0-2,5"),
                                                ([7, 3, 4, 3], "3-4,7"), ([], "")])
def test_array_ranges(indices: list[int], text: str) -> None:
    assert slurm_jobs.array_ranges(indices) == text


# ---------------------------------------------------------------------------------- rendering
@pytest.fixture
def fake_badpix(tmp_path: Path) -> Path:
    """A stand-in for ``python -m badpix`` that records argv, cwd and one variable as JSON."""
    script = tmp_path / "fake badpix.py"
    script.write_text(
        "import json, os, sys\n"
        "with open(os.environ['RECORD'], 'w') as f:\n"
        "    json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "               'root': os.environ.get('EXTRA_DATA_DATA_ROOT')}, f)\n"
    )
    return script


def make_spec(tmp_path: Path, fake: Path, **kw: object) -> JobSpec:
    base = tmp_path / SPACEY
    (base / "cwd").mkdir(parents=True)
    args = dict(
        units=(Unit(0, 0, "0:4"), Unit(1, 0, "4:8"), Unit(2, 5, "0:4")),
        make_mask_args=(str(base / "run 1"), "p900001:r0012", "--detector", "AGIPD1M",
                        "--threshold", "noise_snr=5; rm -rf /"),
        output=base / "mask file.h5",
        layout=JobLayout(base / "mask file.h5.slurm"),
        settings=SlurmSettings(partition="upex", account="p900001", time="00:10:00",
                               mem="2G", cpus_per_task=3, merge_mem="1G",
                               extra_sbatch=("--constraint=Gold 6240", "--exclusive")),
        badpix=(sys.executable, str(fake)),
        env=(("EXTRA_DATA_DATA_ROOT", str(base / "data root")),),
        cwd=base / "cwd",
        command_line="badpix slurm 'run 1' -o 'mask file.h5'",
    )
    args.update(kw)
    return JobSpec(**args)  # type: ignore[arg-type]


def run_script(path: Path, env: dict[str, str], record: Path) -> dict[str, object]:
    subprocess.run(["bash", str(path)], env={**os.environ, **env, "RECORD": str(record)},
                   check=True, capture_output=True, text=True)
    return json.loads(record.read_text())


def test_scripts_are_valid_bash(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix)
    slurm_scripts.write_scripts(spec)
    for path in (spec.layout.array_script, spec.layout.merge_script):
        subprocess.run(["bash", "-n", str(path)], check=True)
        assert path.stat().st_mode & stat.S_IXUSR
        text = path.read_text()
        assert text.startswith("#!/bin/bash\n# badpix SLURM")
        assert "\nset -euo pipefail\n" in text


def test_sbatch_options_are_honoured(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix)
    lines = slurm_scripts.render_array_script(spec).splitlines()
    directives = [ln for ln in lines if ln.startswith("#SBATCH")]
    logs = str(spec.layout.logs)
    assert directives == [
        "#SBATCH --job-name=badpix-units",
        "#SBATCH --array=0-2",
        f'#SBATCH --output="{logs}/unit-%4a.out"',
        "#SBATCH --partition=upex",
        "#SBATCH --account=p900001",
        "#SBATCH --time=00:10:00",
        "#SBATCH --mem=2G",
        "#SBATCH --cpus-per-task=3",
        '#SBATCH --constraint="Gold 6240"',
        "#SBATCH --exclusive",
    ]
    # sbatch stops reading directives at the first command: they must all come before it
    first_command = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    assert max(lines.index(d) for d in directives) < first_command
    merge = slurm_scripts.render_merge_script(spec)
    assert "#SBATCH --mem=1G" in merge and "#SBATCH --time=00:30:00" in merge
    assert "#SBATCH --kill-on-invalid-dep=yes" in merge


def test_unset_settings_write_no_directive(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix, settings=SlurmSettings())
    text = slurm_scripts.render_array_script(spec)
    assert "--partition" not in text.split("set -euo")[0].replace("# ", "")
    assert "#SBATCH --account" not in text


def test_percent_in_folder_is_escaped_for_sbatch(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix, layout=JobLayout(tmp_path / "100%"))
    text = slurm_scripts.render_array_script(spec)
    assert f'--output={tmp_path}/100%%/logs/unit-%4a.out' in text


def test_quote_in_sbatch_value_is_refused(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix, layout=JobLayout(tmp_path / 'a"b'))
    with pytest.raises(ConfigError, match="quotes"):
        slurm_scripts.render_array_script(spec)


def test_array_task_runs_its_unit_with_exact_arguments(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix)
    slurm_scripts.write_scripts(spec)
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_CPUS_PER_TASK": "3"}
    got = run_script(spec.layout.array_script, env, tmp_path / "r.json")
    part = str(spec.layout.part(2))
    assert got["argv"] == ["make-mask", "--threads", "3", *spec.make_mask_args,
                           "--modules", "5", "--cells", "0:4", "--partial", "--force", "-o", part]
    assert got["cwd"] == str(spec.cwd)
    assert got["root"] == str(tmp_path / SPACEY / "data root")


def test_array_task_out_of_range_fails(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix)
    slurm_scripts.write_scripts(spec)
    for task in ("3", ""):
        proc = subprocess.run(["bash", str(spec.layout.array_script)],
                              env={**os.environ, "SLURM_ARRAY_TASK_ID": task},
                              capture_output=True, text=True)
        assert proc.returncode != 0


def test_merge_runs_assemble_on_the_parts(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix, force=True)
    slurm_scripts.write_scripts(spec)
    got = run_script(spec.layout.merge_script, {}, tmp_path / "r.json")
    assert got["argv"] == ["assemble", str(spec.layout.parts), "-o", str(spec.output), "--force"]


def test_environment_capture_picks_relevant_variables() -> None:
    env = {"PATH": "/p", "HOME": "/h", "EXTRA_DATA_DATA_ROOT": "/d", "BADPIX_X": "1"}
    assert slurm.capture_environment(env) == (
        ("PATH", "/p"), ("EXTRA_DATA_DATA_ROOT", "/d"), ("BADPIX_X", "1"))


def test_dry_run_commands_submit_only_the_missing_units(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, Path("x"))
    array, merge = slurm_jobs.sbatch_commands(spec, [0, 2])
    assert array == ["sbatch", "--parsable", "--array=0,2", str(spec.layout.array_script)]
    assert merge[-2:] == ["--dependency=afterok:<ARRAY_JOB_ID>", str(spec.layout.merge_script)]
    (merge_only,) = slurm_jobs.sbatch_commands(spec, [])
    assert merge_only == ["sbatch", "--parsable", str(spec.layout.merge_script)]


def test_no_sbatch_is_one_clear_slurm_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    spec = make_spec(tmp_path, Path("x"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(SlurmError, match=r"^sbatch not found: run this on a SLURM login node$"):
        slurm_jobs.submit(spec, [0, 1])
    assert issubclass(SlurmError, BadpixError) and issubclass(SlurmError, RuntimeError)


# ------------------------------------------------------------------------------- partial sets
def write_fake_partial(path: Path, unit: dict[str, object], fingerprint: str) -> None:
    """Only the attributes :func:`partial_status` reads (a real partial is tested on SLURM)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "badpix-partial"
        f.attrs["unit"] = json.dumps(unit)
        f.attrs["fingerprint"] = fingerprint


def test_scan_partials_finds_done_missing_and_stale(tmp_path: Path) -> None:
    lay = JobLayout(tmp_path)
    expected = {i: {"unit": {"module": i, "cells": [0, 1]}, "fingerprint": "abc"}
                for i in range(5)}
    write_fake_partial(lay.part(0), {"module": 0, "cells": [0, 1]}, "abc")   # valid
    write_fake_partial(lay.part(1), {"module": 1, "cells": [0, 1]}, "OLD")   # other job
    write_fake_partial(lay.part(2), {"module": 9, "cells": [0, 1]}, "abc")   # other unit
    lay.part(3).write_bytes(b"not hdf5")                                     # corrupt
    write_fake_partial(lay.part(7), {"module": 7, "cells": [0, 1]}, "abc")   # not planned
    (lay.parts / ".unit-0004.h5.tmp.part").write_bytes(b"")                 # in-flight temp
    scan = slurm_jobs.scan_partials(lay, expected)
    assert scan.done == (0,)
    assert scan.todo == (1, 2, 3, 4)
    why = {p.name: w for p, w in scan.invalid}
    assert set(why) == {"unit-0001.h5", "unit-0002.h5", "unit-0003.h5"}
    assert "fingerprint differs" in why["unit-0001.h5"]
    assert "unit differs" in why["unit-0002.h5"]
    assert "unreadable" in why["unit-0003.h5"]
    assert scan.foreign == (lay.part(7),)


def test_scan_of_a_new_folder_runs_everything(tmp_path: Path) -> None:
    scan = slurm_jobs.scan_partials(JobLayout(tmp_path / "new"), {0: {}, 1: {}})
    assert (scan.done, scan.todo, scan.invalid, scan.foreign) == ((), (0, 1), (), ())


def test_a_mask_file_is_not_a_partial(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "badpix-mask"
    assert "not a badpix partial" in str(slurm_jobs.partial_status(path, {}))


# ---------------------------------------------------------------------------- failure report
def test_failures_name_units_logs_and_log_tails(tmp_path: Path, fake_badpix: Path) -> None:
    spec = make_spec(tmp_path, fake_badpix)
    spec.layout.logs.mkdir(parents=True)
    spec.layout.unit_log(1).write_text("".join(f"line {i}\n" for i in range(30)))
    # no job ids SLURM knows: states come from the files alone, as after MinJobAge
    sub = slurm_jobs.Submission("999999991", "999999992", (0, 1), 0.0)
    found = slurm_jobs.failures(spec, sub, lambda i: i == 0, tail_lines=3)
    assert [f.unit.index if f.unit else None for f in found] == [1, None]
    text = slurm_jobs.format_failures(found)
    assert f"unit 1 (module 0, cells 4:8): no valid partial written; log {spec.layout.unit_log(1)}"\
        in text
    assert "    | line 29" in text and "line 26" not in text
    assert "merge job: not run (a unit failed)" in text


# ------------------------------------------------- the command, with tasks run by hand (no SLURM)
def slurm_cli(args: list[str]) -> Result:
    result = CliRunner().invoke(main, ["slurm", *args])
    print(result.output)
    return result


@pytest.fixture
def small_job(agipd500k_dark_set: SimulatedSet, tmp_path: Path) -> list[str]:
    """`badpix slurm` arguments for 4 units: 2 modules x 2 blocks of the 4 cells.

    One cell needs about 27 MiB here (12 trains), plus 512 MiB fixed: 570M fits 2 cells.
    """
    runs = [str(p) for p in agipd500k_dark_set.run_dirs]
    return [*runs, "-o", str(tmp_path / "mask.h5"), "--max-memory", "570M"]


def test_dry_run_writes_nothing_and_shows_the_plan(small_job: list[str], tmp_path: Path) -> None:
    result = slurm_cli([*small_job, "--dry-run", "--partition", "upex"])
    assert result.exit_code == 0
    assert "4 work units of HED_DET_AGIPD500K2G (0 already done, 4 to run)" in result.output
    assert "#SBATCH --partition=upex" in result.output
    assert '"0 0:2"  # 0' in result.output and '"1 2:4"  # 3' in result.output
    assert "--max-memory 570M" in result.output.replace("\n    ", " ")
    assert f"sbatch --parsable --array=0-3 {tmp_path}/mask.h5.slurm/array.sh" in result.output
    assert not (tmp_path / "mask.h5.slurm").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--modules", "0"], "--modules: not with badpix slurm"),
        (["--partial"], "--partial: not with badpix slurm"),
        (["--no-such-option"], "--no-such-option"),
        (["--dry-run", "--submit"], "--dry-run cannot be combined"),
    ],
)
def test_usage_errors(small_job: list[str], extra: list[str], message: str) -> None:
    result = slurm_cli([*small_job, *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_mask_path_crystfel_cannot_read_is_refused_first(
    agipd500k_dark_set: SimulatedSet, tmp_path: Path
) -> None:
    runs = [str(p) for p in agipd500k_dark_set.run_dirs]
    result = slurm_cli([*runs, "-o", str(tmp_path / "my mask.h5")])
    assert result.exit_code == 1
    assert "white space" in result.output
    assert not (tmp_path / "my mask.h5.slurm").exists()


def run_task(layout: JobLayout, task: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(layout.array_script)], capture_output=True, text=True,
                          env={**os.environ, "SLURM_ARRAY_TASK_ID": str(task)})


@pytest.mark.slow
def test_tasks_run_by_hand_rerun_detection_and_merge_refusals(
    small_job: list[str], tmp_path: Path
) -> None:
    layout = JobLayout(tmp_path / "mask.h5.slurm")
    assert slurm_cli(small_job).exit_code == 0
    for task in (0, 1, 3):
        assert run_task(layout, task).returncode == 0

    # the merge refuses an incomplete set and names the missing unit
    merge = subprocess.run(["bash", str(layout.merge_script)], capture_output=True, text=True)
    assert merge.returncode == 1
    assert "Error: incomplete set of partial results (3 given, 4 planned): missing module 1 "\
        "cells 0" in merge.stderr
    assert not (tmp_path / "mask.h5").exists()

    # a rerun would submit only unit 2
    again = slurm_cli([*small_job, "--dry-run"])
    assert "(3 already done, 1 to run)" in again.output
    assert "--array=2 " in again.output

    # a partial of another job (other options) in a planned slot is run again ...
    other = tmp_path / "other.h5"
    shutil.copy(layout.part(3), other)
    with h5py.File(layout.part(3), "a") as f:
        f.attrs["fingerprint"] = "0" * 32
    assert "(2 already done, 2 to run)" in slurm_cli([*small_job, "--dry-run"]).output
    shutil.copy(other, layout.part(3))

    # ... and a file of another plan is refused, or deleted with --force
    shutil.copy(other, layout.parts / "unit-0009.h5")
    refused = slurm_cli(small_job)
    assert refused.exit_code == 1
    assert "holds partial results of another plan (unit-0009.h5)" in refused.output
    assert slurm_cli([*small_job, "--force"]).exit_code == 0
    assert not (layout.parts / "unit-0009.h5").exists()

    # the merge also refuses a duplicated unit: a copy under another name
    assert run_task(layout, 2).returncode == 0
    shutil.copy(layout.part(0), layout.parts / "copy-of-unit-0000.h5")
    merge = subprocess.run(["bash", str(layout.merge_script)], capture_output=True, text=True)
    assert merge.returncode == 1
    assert "Error: duplicate unit: module 0 cell 0" in merge.stderr
    (layout.parts / "copy-of-unit-0000.h5").unlink()
    merge = subprocess.run(["bash", str(layout.merge_script)], capture_output=True, text=True)
    assert merge.returncode == 0, merge.stderr
    assert (tmp_path / "mask.h5").is_file()
