from __future__ import annotations

from pathlib import Path

import pytest

from cvpipe.io import atomic_link_or_copy, atomic_open, atomic_write_text, read_json, write_json


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


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "copy"])
def test_link_or_copy_keeps_its_content_when_the_source_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    import os

    if not links:

        def no_links(src: object, dst: object) -> None:
            raise OSError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_write_text(last, "epoch 1")
    atomic_write_text(best, "epoch 0")
    atomic_link_or_copy(last, best)
    assert best.read_text() == "epoch 1"
    atomic_write_text(last, "epoch 2")  # the next epoch's save
    assert best.read_text() == "epoch 1"
    assert last.read_text() == "epoch 2"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert os.stat(best).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
