"""The triage report: one self-contained HTML page (no file or script from elsewhere).

A table of the buckets (click a heading to sort by it), a stacked bar chart of dumps per bucket
over time (SVG, drawn here), the dumps that could not be analysed, and for each bucket its members
and the ``!analyze -v`` page of its first dump.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter

from notmyfault.triage.db import Bucket, Database, now

COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
STEPS = (60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
"""Bar widths the chart may use (a minute to a month): the smallest that gives at most 40 bars."""

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
th { cursor: pointer; background: #f4f4f4; user-select: none; } th:hover { background: #e8e8e8; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f8f8f8; padding: 1em; overflow-x: auto; font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
"""
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), numeric = th.dataset.type === 'number';
    var down = th.dataset.order !== 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.key || a.cells[col].textContent;
      var y = b.cells[col].dataset.key || b.cells[col].textContent;
      var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return down ? -c : c;
    });
    th.dataset.order = down ? 'desc' : 'asc';
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _time(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _chart(buckets: list[Bucket], timeline: list[tuple[str, str]]) -> str:
    """Stacked bars of dumps per bucket over time, as inline SVG."""
    color = {b.id: COLORS[i % len(COLORS)] for i, b in enumerate(buckets)}
    points = [(bid, t) for bid, text in timeline if (t := _time(text)) is not None and bid in color]
    if not points:
        return "<p>No dated dumps to chart.</p>"
    start, end = min(t for _, t in points), max(t for _, t in points)
    span = (end - start).total_seconds()
    step = next((s for s in STEPS if span / s < 40), STEPS[-1])
    origin = int(start.timestamp()) // step * step
    bars: Counter[tuple[int, str]] = Counter((int(t.timestamp() - origin) // step, bid) for bid, t in points)
    n_bars = max(i for i, _ in bars) + 1
    per_bar = Counter[int]()
    for (i, _), n in bars.items():
        per_bar[i] += n
    tallest = max(per_bar.values())
    width, height, left, bottom = 760, 220, 40, 30
    bar_w = (width - left) / n_bars
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom}" role="img">']
    out.append(
        f'<text x="0" y="12" font-size="11">{tallest}</text><text x="0" y="{height}" font-size="11">0</text>'
    )
    for i in range(n_bars):
        y = float(height)
        for b in buckets:
            n = bars.get((i, b.id), 0)
            if not n:
                continue
            h = n / tallest * (height - 10)
            y -= h
            out.append(
                f'<rect x="{left + i * bar_w + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{color[b.id]}"><title>{html.escape(b.key)}: {n}</title></rect>'
            )
    label = dt.datetime.fromtimestamp(origin, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    out.append(
        f'<text x="{left}" y="{height + 20}" font-size="11">{label} UTC, one bar per {_span(step)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


def _span(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}s" if n > 1 else unit
    return f"{seconds} s"


def html_report(db: Database) -> str:
    """The whole page."""
    buckets = db.buckets(examples=1000)
    failures = db.failures()
    total = sum(b.count for b in buckets)
    e = html.escape
    rows = []
    for i, b in enumerate(buckets):
        swatch = f'<span class="swatch" style="background:{COLORS[i % len(COLORS)]}"></span>'
        rows.append(
            f'<tr><td class="n" data-key="{b.count}">{b.count}</td><td>{swatch}<a href="#b-{b.id}">{e(b.id)}</a></td>'
            f"<td>{e(b.crash_class)}</td><td>{e(b.signature)}</td><td>{e(b.first_seen[:19])}</td>"
            f"<td>{e(b.last_seen[:19])}</td></tr>"
        )
    sections = []
    for b in buckets:
        members = "".join(f"<li>{e(p)}</li>" for p in b.examples)
        sections.append(
            f'<h2 id="b-{b.id}">{e(b.key)} ({b.count})</h2><p>Bucket {e(b.id)}, first seen {e(b.first_seen[:19])}, '
            f"last seen {e(b.last_seen[:19])}.</p><details><summary>{b.count} dumps</summary><ul>{members}</ul>"
            f"</details><pre>{e(db.example_text(b.id))}</pre>"
        )
    failed = "".join(f"<tr><td>{e(p)}</td><td>{e(r)}</td></tr>" for p, r in failures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>notmyfault triage</title><style>{STYLE}</style></head>
<body>
<h1>notmyfault triage: {total} dumps in {len(buckets)} buckets</h1>
<p>Generated {e(now()[:19])} UTC. {len(failures)} dumps could not be analysed.</p>
<table class="sortable" id="buckets"><thead><tr><th data-type="number">count</th><th>bucket</th>
<th>crash class</th><th>signature</th><th>first seen</th><th>last seen</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
<h2>Dumps over time</h2>
{_chart(buckets, db.timeline())}
{"<h2>Not analysed</h2><table><tbody>" + failed + "</tbody></table>" if failures else ""}
{"".join(sections)}
<script>{SCRIPT}</script>
</body></html>
"""
