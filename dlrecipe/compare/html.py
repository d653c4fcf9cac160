"""The report's HTML pieces: the page with its inline stylesheet, tables, inline images, notes.

Everything is inline (CSS, pictures as ``data:`` URIs), so the page opens from a file and asks the network for
nothing: no script, no font, no external URL.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

CSS = """
:root { --fg: #1d2330; --muted: #5d6675; --line: #d8dde6; --band: #f4f6fa; --accent: #2b5fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 16px; margin: 22px 0 8px; color: var(--accent); }
p.meta, p.note { color: var(--muted); margin: 4px 0 10px; }
p.note code, td code { background: var(--band); padding: 1px 5px; border-radius: 4px; }
nav { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; margin: 14px 0; }
nav { display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: var(--band); font-weight: 600; white-space: normal; vertical-align: bottom; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
td.text { text-align: left; white-space: normal; }
td small { color: var(--muted); display: block; }
tr.summary td { font-weight: 700; background: #eef3fb; }
td.differs { color: #0b6e6e; font-weight: 600; }
img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; margin: 4px 0 10px;
      display: block; }
img.narrow { max-width: 640px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
pre { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
      font-size: 12.5px; line-height: 1.4; overflow-x: auto; max-height: 520px; }
details summary { cursor: pointer; color: var(--muted); margin: 4px 0; }
.verdict { font-size: 17px; font-weight: 700; }
section.run { border-top: 1px solid var(--line); margin-top: 28px; }
ul { margin: 4px 0 10px; padding-left: 22px; }
"""


def esc(value: Any) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """A complete HTML document: ``title``, the inline stylesheet and ``body`` inside ``<main>``."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def section(kind: str, anchor: str, title: str, content: str, level: int = 3) -> str:
    """``<section class="{kind}" id="{anchor}">`` with its heading."""
    return (f'<section class="{esc(kind)}" id="{esc(anchor)}">\n<h{level}>{esc(title)}</h{level}>\n{content}\n'
            "</section>\n")


def note(text: str) -> str:
    """A muted paragraph; ``text`` is HTML (escape what comes from files)."""
    return f'<p class="note">{text}</p>'


def code(text: str) -> str:
    return f"<code>{esc(text)}</code>"


def image(png: bytes, alt: str, narrow: bool = False) -> str:
    """An ``<img>`` holding ``png`` inline as a base64 ``data:`` URI (``narrow``: at most 640 px wide)."""
    data = base64.b64encode(png).decode("ascii")
    cls = ' class="narrow"' if narrow else ""
    return f'<img{cls} alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def number(value: Any) -> str:
    """A cell: floats to 4 significant decimals, integers as they are, anything else as text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    if isinstance(value, (int, str)):
        return esc(value)
    if value is None:
        return "n/a"
    return esc(json.dumps(value))


def recipe_value(value: Any) -> str:
    """A recipe value: ``—`` where the recipe has none, a seed group's seeds joined by commas."""
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return esc(",".join(str(v) for v in value))
    if isinstance(value, float):
        return esc(f"{value:.6g}")
    return number(value)


def breakable(text: str) -> str:
    """``text`` escaped, with line-break opportunities after ``/`` (long run labels)."""
    return esc(text).replace("/", "/<wbr>")


def table(headers: list[str], rows: list[list[str]], classes: list[str] | None = None,
          cell_classes: list[str] | None = None) -> str:
    """A table; the cells of ``rows`` are HTML. ``classes``: per row (``summary``); ``cell_classes``: per column."""
    head = "".join(f"<th>{esc(h).replace('_', '_<wbr>').replace('.', '.<wbr>')}</th>" for h in headers)
    body = []
    for i, cells in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        tds = "".join(f'<td class="{cell_classes[j]}">{c}</td>' if cell_classes and cell_classes[j] else f"<td>{c}</td>"
                      for j, c in enumerate(cells))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n' + "\n".join(body) + "\n</table></div>"


def key_values(data: dict[str, Any]) -> str:
    """A two-column table of a flat mapping."""
    return table(["key", "value"], [[esc(k), number(v)] for k, v in data.items()], cell_classes=["", "text"])
