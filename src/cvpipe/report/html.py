"""A small builder for self-contained HTML reports.

A :class:`Report` is a title plus sections; each section holds blocks (text, notes,
tables, key/value metrics, images, code). :meth:`Report.save` renders them with one
Jinja2 template into a single HTML file: CSS inline, images embedded as base64 PNG data
URIs, nothing fetched from the network, so the file can be mailed or opened offline.

All text is HTML-escaped (Jinja2 autoescape); callers never write raw HTML.

Example:
    >>> r = Report("Validation of datasets/bins", subtitle="10441 images")
    >>> _ = r.section("Summary").metrics({"images": 10441, "errors": 3})
    >>> _ = r.note("3 truncated JPEGs were left out", level="warning")
    >>> html = r.to_html()
    >>> "<h1>Validation of datasets/bins</h1>" in html
    True
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2

from cvpipe.io import atomic_write_text

Level = Literal["info", "warning", "error", "ok"]
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(slots=True)
class Block:
    """One renderable piece of a section (``kind`` selects the template branch)."""

    kind: str
    data: dict[str, Any]


@dataclass(slots=True)
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


def format_value(v: Any) -> str:
    """Format a table/metric cell: floats with 4 significant digits, None as ``-``."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Report:
    """A self-contained HTML report.

    Blocks are appended to the current section (the last one opened with
    :meth:`section`; a report without sections gets an untitled one). Every adder
    returns ``self`` so calls can be chained.

    Args:
        title: the page title and top heading.
        subtitle: one line under the title (e.g. dataset path and size).
    """

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[Section] = []
        self.created = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")

    # -- structure --------------------------------------------------------------------
    def section(self, title: str) -> Report:
        """Start a new section; later blocks go into it."""
        self.sections.append(Section(title, f"s{len(self.sections) + 1}"))
        return self

    def _add(self, kind: str, **data: Any) -> Report:
        if not self.sections:
            self.sections.append(Section("", "s0"))
        self.sections[-1].blocks.append(Block(kind, data))
        return self

    # -- blocks -----------------------------------------------------------------------
    def text(self, text: str) -> Report:
        """A paragraph of plain text (blank lines start new paragraphs)."""
        paras = [p.strip() for p in str(text).split("\n\n") if p.strip()]
        return self._add("text", paragraphs=paras)

    def note(self, text: str, level: Level = "info") -> Report:
        """A highlighted remark: ``info``, ``warning``, ``error`` or ``ok``."""
        if level not in ("info", "warning", "error", "ok"):
            raise ValueError(f"note level {level!r}: use info, warning, error or ok")
        return self._add("note", text=str(text), level=level)

    def code(self, text: str) -> Report:
        """A preformatted block (a command to run, a config excerpt)."""
        return self._add("code", text=str(text))

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        caption: str | None = None,
        max_rows: int | None = None,
    ) -> Report:
        """A table; numeric columns are right-aligned.

        Args:
            headers: column names.
            rows: rows of cells (numbers, strings, None).
            caption: optional line above the table.
            max_rows: show only the first ``max_rows`` rows and say how many were hidden.

        Raises:
            ValueError: a row's length differs from the header's.
        """
        for i, r in enumerate(rows):
            if len(r) != len(headers):
                raise ValueError(f"table row {i} has {len(r)} cells, expected {len(headers)}")
        shown = list(rows) if max_rows is None else list(rows)[:max_rows]
        numeric = [
            bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows)
            for i in range(len(headers))
        ]
        return self._add(
            "table",
            headers=[str(h) for h in headers],
            rows=[[format_value(c) for c in r] for r in shown],
            numeric=numeric,
            caption=caption,
            hidden=len(rows) - len(shown),
        )

    def metrics(self, values: Mapping[str, Any], caption: str | None = None) -> Report:
        """Key figures shown as tiles (name above, value below)."""
        items = [(str(k), format_value(v)) for k, v in values.items()]
        return self._add("metrics", items=items, caption=caption)

    def image(self, png: bytes, caption: str | None = None, width: int | None = None) -> Report:
        """Embed a PNG (bytes) as a data URI.

        Args:
            png: PNG file content, e.g. from :mod:`cvpipe.report.plots`.
            caption: text under the image.
            width: display width in CSS pixels (default: natural size, at most the page).

        Raises:
            ValueError: ``png`` is not PNG data.
        """
        if not isinstance(png, (bytes, bytearray)) or not bytes(png[:8]) == _PNG_MAGIC:
            raise ValueError("Report.image expects PNG bytes (see cvpipe.report.plots.to_png)")
        uri = "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")
        return self._add("image", uri=uri, caption=caption, width=width)

    # -- output -----------------------------------------------------------------------
    def to_html(self) -> str:
        """Render the whole report as one HTML string."""
        return _template().render(report=self, css=_CSS)

    def save(self, path: str | Path) -> Path:
        """Write the report atomically to ``path`` (parent folders are created)."""
        path = Path(path)
        atomic_write_text(path, self.to_html())
        return path


_ENV: jinja2.Environment | None = None


def _template() -> jinja2.Template:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
        )
    return _ENV.from_string(_TEMPLATE)


_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#ffffff; --soft:#f6f8fa;
        --info:#0969da; --warning:#9a6700; --error:#cf222e; --ok:#1a7f37; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub, .meta, figcaption, .caption { color: var(--muted); }
nav { margin: 12px 0 0; font-size: 13px; }
nav a { color: var(--info); text-decoration: none; margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 16px; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 120px; background: var(--soft); }
.tile .k { color: var(--muted); font-size: 12px; }
.tile .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.note { border-left: 4px solid var(--info); background: var(--soft); padding: 8px 12px; margin: 8px 0; }
.note.warning { border-color: var(--warning); } .note.error { border-color: var(--error); }
.note.ok { border-color: var(--ok); }
pre { background: var(--soft); border: 1px solid var(--line); padding: 8px 12px; overflow-x: auto; }
figure { margin: 8px 0 20px; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ report.title }}</title>
<style>{{ css | safe }}</style>
</head>
<body>
<main>
<h1>{{ report.title }}</h1>
{% if report.subtitle %}<div class="sub">{{ report.subtitle }}</div>{% endif %}
<div class="meta">generated by cvpipe, {{ report.created }}</div>
{% if report.sections | selectattr("title") | list | length > 1 %}
<nav>{% for s in report.sections if s.title %}<a href="#{{ s.anchor }}">{{ s.title }}</a>{% endfor %}</nav>
{% endif %}
{% for s in report.sections %}
<section id="{{ s.anchor }}">
{% if s.title %}<h2>{{ s.title }}</h2>{% endif %}
{% for b in s.blocks %}
{% set d = b.data %}
{% if b.kind == "text" %}
{% for p in d.paragraphs %}<p>{{ p }}</p>{% endfor %}
{% elif b.kind == "note" %}
<div class="note {{ d.level }}">{{ d.text }}</div>
{% elif b.kind == "code" %}
<pre>{{ d.text }}</pre>
{% elif b.kind == "metrics" %}
{% if d.caption %}<div class="caption">{{ d.caption }}</div>{% endif %}
<div class="tiles">{% for k, v in d["items"] %}<div class="tile"><div class="k">{{ k }}</div><div class="v">{{ v }}</div></div>{% endfor %}</div>
{% elif b.kind == "table" %}
{% if d.caption %}<div class="caption">{{ d.caption }}</div>{% endif %}
<table>
<thead><tr>{% for h in d.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for r in d.rows %}<tr>{% for c in r %}<td{% if d.numeric[loop.index0] %} class="num"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
{% if d.hidden %}<div class="caption">{{ d.hidden }} more rows not shown</div>{% endif %}
{% elif b.kind == "image" %}
<figure><img src="{{ d.uri }}" alt="{{ d.caption or '' }}"{% if d.width %} style="width:{{ d.width }}px"{% endif %}>
{% if d.caption %}<figcaption>{{ d.caption }}</figcaption>{% endif %}</figure>
{% endif %}
{% endfor %}
</section>
{% endfor %}
</main>
</body>
</html>
"""
