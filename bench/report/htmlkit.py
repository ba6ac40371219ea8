"""Building blocks for the self-contained HTML pages: one inline stylesheet, escaped tables, tiles.

No template engine and no external asset: every page is one file that opens offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, Final

CSS: Final = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f9fafb;--ok:#15803d;--okbg:#dcfce7;
--bad:#b91c1c;
--badbg:#fee2e2;--warn:#92400e;--warnbg:#fef3c7;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1080px;margin:0 auto;padding:24px 20px 60px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px;color:var(--muted)}
.sub{color:var(--muted);margin:0 0 16px}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin:12px 0}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.tile .k{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.tile .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
.tile .n{font-size:11px;color:var(--muted)}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:10px 0}
table{border-collapse:collapse;width:100%;background:#fff;font-variant-numeric:tabular-nums}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{font-size:12px;color:var(--muted);font-weight:600;background:#f3f4f6}
th:first-child,td:first-child{text-align:left}
td.l,th.l{text-align:left;white-space:normal}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.ok{color:var(--ok);background:var(--okbg)}.bad{color:var(--bad);background:var(--badbg)}
.warn{color:var(--warn);background:var(--warnbg)}.muted{color:var(--muted)}
.banner{padding:10px 14px;border-radius:8px;margin:12px 0;font-weight:600}
.fig{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px;margin:10px 0}
.fig svg{width:100%;height:auto;display:block}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:10px}
@media(max-width:800px){.grid2{grid-template-columns:1fr}}
pre{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px;overflow:auto;font-size:12px}
details summary{cursor:pointer;color:var(--accent)}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"""


def page(title: str, body: Iterable[str]) -> str:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def h(tag: str, content: str, cls: str = "") -> str:
    """Wrap already-safe ``content`` in a tag."""
    attr = f' class="{cls}"' if cls else ""
    return f"<{tag}{attr}>{content}</{tag}>"


def text(tag: str, value: object, cls: str = "") -> str:
    """Wrap ``value``, escaped, in a tag."""
    return h(tag, escape(str(value)), cls)


def badge(label: str, kind: str) -> str:
    return text("span", label, f"badge {kind}")


def tile(key: str, value: str, note: str = "", cls: str = "") -> str:
    inner = text("div", key, "k") + h("div", value, f"v {cls}".strip()) + (text("div", note, "n") if note else "")
    return h("div", inner, "tile")


def tiles(items: Iterable[str]) -> str:
    return h("div", "".join(items), "tiles")


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    raw_columns: Sequence[int] = (),
    left_columns: Sequence[int] = (),
) -> str:
    """An HTML table; cells are escaped except in ``raw_columns`` (already-built HTML). Numbers align
    right; the first column and ``left_columns`` (text) align left."""
    head = "".join(text("th", col, "l" if i in left_columns else "") for i, col in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "l" if i in left_columns else ""
            cells.append(h("td", str(cell), cls) if i in raw_columns else text("td", cell, cls))
        body.append(h("tr", "".join(cells)))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(pairs: Iterable[tuple[str, object]]) -> str:
    rows = "".join(h("tr", text("th", k, "l") + text("td", fmt_field(k, v), "l")) for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


def figure(svg: str | None, caption: str) -> str:
    if not svg:
        return ""
    return h("div", text("h3", caption) + svg, "fig")


def fmt(value: object, digits: int = 3) -> str:
    """Numbers for people: 3 significant digits for floats, thousands separators for counts."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 10**digits:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


_IDENTIFIERS: Final = ("port", "pid", "seed", "_epoch_s", "commit")


def fmt_field(key: str, value: object) -> str:
    """A value beside its name: identifiers (ports, pids) without thousands separators, nested data as JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, int | float) and not isinstance(value, bool) and key.endswith(_IDENTIFIERS):
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    return fmt(value)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``python.version``), for two-column tables."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
