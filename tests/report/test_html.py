"""Report: one self-contained HTML file; plots return PNG bytes without pyplot state."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cvpipe.report import Report, plots
from cvpipe.report.gallery import grid, thumbnail
from cvpipe.report.html import format_value

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_renders_blocks_escaped_and_offline(tmp_path: Path) -> None:
    png = plots.bar(["a", "b"], [1, 2], title="t")
    r = Report("Title <b>", subtitle="sub")
    r.section("One").text("first\n\nsecond <script>alert(1)</script>").note("careful", "warning")
    r.metrics({"acc": 0.912345, "n": 10, "none": None}).code("cvpipe split ds")
    r.table(["name", "value"], [["x", 1], ["y", 2.5]], caption="cap")
    r.section("Two").image(png, "a plot", width=300)
    path = r.save(tmp_path / "sub" / "report.html")
    html = path.read_text()
    assert "<h1>Title &lt;b&gt;</h1>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<p>first</p>" in html and 'class="note warning"' in html
    assert '<td class="num">2.5</td>' in html and "0.9123" in html
    assert 'href="#s1"' in html and 'href="#s2"' in html
    (uri,) = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert base64.b64decode(uri) == png
    assert not re.search(r"https?://", html)
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # atomic: no temp file left


def test_report_rejects_bad_input() -> None:
    r = Report("x")
    with pytest.raises(ValueError, match="PNG"):
        r.image(b"GIF89a....")
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        r.table(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="level"):
        r.note("x", "fatal")  # type: ignore[arg-type]


def test_table_max_rows_and_untitled_section() -> None:
    html = Report("x").table(["i"], [[i] for i in range(10)], max_rows=3).to_html()
    assert html.count("<tr>") == 4 and "7 more rows not shown" in html


def test_format_value() -> None:
    assert [format_value(v) for v in (None, True, 1, 0.5, 1e-5, 123456.0, float("nan"))] == [
        "-", "yes", "1", "0.5", "1.000e-05", "1.235e+05", "nan",
    ]  # fmt: skip


def test_every_plot_returns_png() -> None:
    pngs = [
        plots.bar(["a"], [1]),
        plots.grouped_bar(["a", "b"], {"train": [1, 2], "val": [0, 1]}),
        plots.histogram([1.0, 2.0, 2.0]),
        plots.histogram([]),
        plots.boxplots({"a": [1, 2, 3], "b": []}),
        plots.boxplots({}, panels={"w": {"a": [1, 2]}, "h": {"a": [3, 4]}}),
        plots.scatter({"a": ([1, 2], [3, 4])}),
        plots.lines({"loss": ([0, 1], [2.0, 1.0])}, log_y=True),
        plots.heatmap([[3, 1], [0, 5]], ["a", "b"], ["a", "b"]),
    ]
    assert all(p.startswith(PNG) for p in pngs)


def test_importing_plots_leaves_pyplot_alone() -> None:
    code = (
        "import sys, cvpipe.report.plots, cvpipe.report; print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_gallery_draws_tiles_and_marks_unreadable(tmp_path: Path, make_image) -> None:
    p = make_image(tmp_path / "a.jpg", (40, 20))
    tile = thumbnail(
        p, 64, boxes=[[0, 0, 20, 10]], box_labels=["cat"], box_classes=[0], caption="a"
    )
    assert tile.size == (64, 64)
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    bad = thumbnail(tmp_path / "bad.jpg", 64)
    assert bad.size == (64, 64)
    png = grid([tile, bad, tile], columns=2)
    assert png.startswith(PNG)
    assert grid([]).startswith(PNG)
