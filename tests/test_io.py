from __future__ import annotations

from pathlib import Path

import pytest

from cvpipe.io import atomic_open, atomic_write_text, read_json, write_json


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    p = tmp_path / "a" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]


def test_failed_write_leaves_old_content_and_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    write_json(p, {"ok": 1})
    with pytest.raises(RuntimeError), atomic_open(p) as f:
        f.write("half")
        raise RuntimeError("killed")
    assert read_json(p) == {"ok": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"]


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    p = tmp_path / "m.jsonl"
    atomic_write_text(p, "x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert os.stat(p).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
