"""Tests for badpix.atomic: outputs appear whole or not at all."""

from pathlib import Path

import pytest

from badpix.atomic import atomic_output, check_output_path
from badpix.exceptions import OutputError, OutputExistsError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_renames_into_place(tmp_path: Path) -> None:
    out = tmp_path / "mask.h5"
    with atomic_output(out) as tmp:
        assert tmp.parent == tmp_path
        assert not out.exists()
        tmp.write_text("done")
    assert out.read_text() == "done"
    assert _leftovers(tmp_path) == ["mask.h5"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "mask.h5"
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert _leftovers(tmp_path) == []


def test_interrupt_leaves_old_file_intact(tmp_path: Path) -> None:
    out = tmp_path / "mask.h5"
    out.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_output(out, force=True) as tmp:
        tmp.write_text("new but unfinished")
        raise KeyboardInterrupt
    assert out.read_text() == "old"
    assert _leftovers(tmp_path) == ["mask.h5"]


def test_refuses_existing_without_force(tmp_path: Path) -> None:
    out = tmp_path / "mask.h5"
    out.write_text("old")
    with pytest.raises(OutputExistsError, match="--force"), atomic_output(out):
        pass
    with atomic_output(out, force=True) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"


def test_output_permissions_follow_umask(tmp_path: Path) -> None:
    out = tmp_path / "mask.h5"
    with atomic_output(out) as tmp:
        tmp.write_text("x")
    assert out.stat().st_mode & 0o044  # readable by others, unlike mkstemp's 0600


@pytest.mark.parametrize("bad", ["missing-dir/mask.h5", "."])
def test_bad_output_locations(tmp_path: Path, bad: str) -> None:
    with pytest.raises(OutputError):
        check_output_path(tmp_path / bad)
