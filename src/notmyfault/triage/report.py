"""The triage report: one self-contained HTML page (no file or script from elsewhere).

What a crash-stats user expects of it: a table of the buckets (click a heading to sort by it; a
search box filters it) with each bucket's count, share of all dumps, trend (the last 7 days of the
data against the 7 before) and first and last seen; a stacked bar chart of dumps per bucket over
time (SVG, drawn here); the dumps that could not be analysed; and for each bucket its split by
executable, build id, version and host, its first dumps (at most ``EXAMPLES``, then the command
that lists the rest) and the ``!analyze -v`` page of its first dump. Every bucket has a colour no
other bucket on the page has. The page is bounded: at most ``SECTIONS`` bucket sections.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter

from notmyfault.render.safe import terminal_safe
from notmyfault.triage.db import Bucket, Database, Filter, now


def _e(text: str) -> str:
    """A string from a dump for the page: control characters (but newlines and tabs) and bidi
    overrides as escapes (they are no text; an override reorders what is shown), then HTML-escaped."""
    return html.escape(terminal_safe(text))


PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac",
)  # fmt: skip
EXAMPLES = 20
"""Dumps named per bucket; the rest are one command away."""
SECTIONS = 100
"""Buckets with a section of their own (the biggest); the table lists every one."""
TREND_DAYS = 7


def color(i: int) -> str:
    """The ``i``-th bucket's colour: Tableau's ten, then hues a golden angle (137.508 degrees) apart,
    in thousandths of a degree: no hue comes back before the 30,000th (137508 * n is a multiple of
    360000 first at n = 30000), so no two buckets on a page share a colour."""
    if i < len(PALETTE):
        return PALETTE[i]
    j = i - len(PALETTE)
    hue = j * 137_508 % 360_000
    return f"hsl({hue // 1000}.{hue % 1000:03d}, 55%, {(45, 60, 35)[j % 3]}%)"


def trends(timeline: list[tuple[str, str]], days: int = TREND_DAYS) -> dict[str, tuple[int, int]]:
    """For each bucket id: (dumps in the last ``days`` days of the data, dumps in the ``days`` before),
    counted back from the newest dump (not from today, so an old fleet still shows its trend)."""
    points = [(bid, t) for bid, text in timeline if (t := _time(text)) is not None]
    if not points:
        return {}
    end = max(t for _, t in points)
    window = dt.timedelta(days=days)
    out: dict[str, tuple[int, int]] = {}
    for bid, t in points:
        recent, before = out.get(bid, (0, 0))
        if t > end - window:
            recent += 1
        elif t > end - 2 * window:
            before += 1
        out[bid] = (recent, before)
    return out


def _trend_text(recent: int, before: int) -> str:
    if not before:
        return f"new ({recent})" if recent else "none lately"
    change = (recent - before) / before * 100
    arrow = "&#x2191;" if recent > before else ("&#x2193;" if recent < before else "=")
    return f"{arrow} {recent} vs {before} ({change:+.0f}%)"


STEPS = (60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
"""Bar widths the chart may use (a minute to a month): the smallest that gives at most 40 bars."""

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
th { cursor: pointer; background: #f4f4f4; user-select: none; } th:hover { background: #e8e8e8; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
#buckets td { white-space: nowrap; } #buckets td.sig { white-space: normal; }
pre { background: #f8f8f8; padding: 1em; overflow-x: auto; font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
table.split th { cursor: default; background: none; font-weight: normal; color: #666; }
input#search { font: inherit; padding: 4px 8px; width: 24em; }
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
document.getElementById('search').addEventListener('input', function (ev) {
  var text = ev.target.value.toLowerCase();
  document.querySelectorAll('#buckets tbody tr').forEach(function (tr) {
    tr.hidden = text !== '' && tr.textContent.toLowerCase().indexOf(text) < 0;
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
    colors = {b.id: color(i) for i, b in enumerate(buckets)}
    points = [(bid, t) for bid, text in timeline if (t := _time(text)) is not None and bid in colors]
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
                f'fill="{colors[b.id]}"><title>{_e(b.key)}: {n}</title></rect>'
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


def _day(iso: str) -> str:
    """An ISO 8601 time as the table shows it: 2026-12-02 06:05:30."""
    return iso[:19].replace("T", " ")


def _split(split: dict[str, Counter[str]]) -> str:
    """A bucket's breakdown by executable, build id, version and host, as a small table."""
    e = _e
    rows = []
    for what, counts in split.items():
        top = counts.most_common(5)
        more = sum(counts.values()) - sum(n for _, n in top)
        cells = ", ".join(f"{e(name)} ({n})" for name, n in top) + (f", other ({more})" if more else "")
        rows.append(f"<tr><th>{e(what.replace('_', ' '))}</th><td>{cells}</td></tr>")
    return f'<table class="split">{"".join(rows)}</table>'


def html_report(db: Database, where: Filter | None = None) -> str:
    """The whole page (``where``: only the dumps it covers)."""
    buckets = db.buckets(where, examples=EXAMPLES)
    failures = db.failures()
    cut = db.failures("truncated")
    timeline = db.timeline(where)
    trend = trends(timeline)
    split = db.breakdown(where)
    total = sum(b.count for b in buckets)
    e = _e
    rows = []
    for i, b in enumerate(buckets):
        swatch = f'<span class="swatch" style="background:{color(i)}"></span>'
        recent, before = trend.get(b.id, (0, 0))
        share = b.count / total * 100 if total else 0.0
        rows.append(
            f'<tr><td class="n" data-key="{b.count}">{b.count}</td><td class="n" data-key="{share:.4f}">{share:.1f}%</td>'
            f'<td>{swatch}<a href="#b-{b.id}">{e(b.id)}</a></td><td>{e(b.crash_class)}</td><td>{e(b.program)}</td>'
            f'<td class="sig">{e(b.signature)}</td><td data-key="{recent - before}">{_trend_text(recent, before)}</td>'
            f"<td>{e(_day(b.first_seen))}</td><td>{e(_day(b.last_seen))}</td></tr>"
        )
    sections = []
    for b in buckets[:SECTIONS]:
        members = "".join(f"<li>{e(p)}</li>" for p in b.examples)
        if b.count > len(b.examples):
            members += f"<li>... and {b.count - len(b.examples)} more: <code>notmyfault triage show {e(b.id)}</code></li>"
        sections.append(
            f'<h2 id="b-{b.id}">{e(b.key)} ({b.count})</h2><p>Bucket {e(b.id)}, first seen {e(b.first_seen[:19])}, '
            f"last seen {e(b.last_seen[:19])}.</p>{_split(split.get(b.id, {}))}<details><summary>{b.count} dumps"
            f"</summary><ul>{members}</ul></details><pre>{e(db.example_text(b.id))}</pre>"
        )
    if len(buckets) > SECTIONS:
        sections.append(
            f"<p>{len(buckets) - SECTIONS} smaller buckets have no section here: "
            "<code>notmyfault triage show ID</code> lists one.</p>"
        )
    failed = "".join(f"<tr><td>{e(p)}</td><td>{e(r)}</td></tr>" for p, r, _ in failures)
    truncated = "".join(f"<tr><td>{e(p)}</td><td>{e(r)}</td></tr>" for p, r, _ in cut)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>notmyfault triage</title><style>{STYLE}</style></head>
<body>
<h1>notmyfault triage: {total} dumps in {len(buckets)} buckets</h1>
<p>Generated {e(now()[:19])} UTC. {len(failures)} dumps could not be analysed, {len(cut)} are truncated.
Trend: the last {TREND_DAYS} days of the data against the {TREND_DAYS} before.</p>
<p><input id="search" type="search" placeholder="search buckets" aria-label="search buckets"></p>
<table class="sortable" id="buckets"><thead><tr><th data-type="number">count</th><th data-type="number">share</th>
<th>bucket</th><th>crash class</th><th>program</th><th>signature</th><th data-type="number">trend</th>
<th>first seen</th><th>last seen</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
<h2>Dumps over time</h2>
{_chart(buckets, timeline)}
{"<h2>Not analysed</h2><table><tbody>" + failed + "</tbody></table>" if failures else ""}
{"<h2>Truncated (not counted above)</h2><table><tbody>" + truncated + "</tbody></table>" if cut else ""}
{"".join(sections)}
<script>{SCRIPT}</script>
</body></html>
"""
