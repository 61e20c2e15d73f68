"""The daily effect-data report: one local day's totals and a fixed set of breakdowns,
exported as a tidy CSV (for spreadsheets) and as one self-contained HTML file (for email).

The breakdowns are declared once in SECTIONS. The server and the CLI differ only in how they
run a funnel query, so each hands `daily_report` a callable and both get the same numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tuijian.analytics.cube import MEASURES, RATIOS, UTC_OFFSET_H, day_bounds, last_closed_day
from tuijian.analytics.funnel import FunnelQuery, Query, finish_row
from tuijian.data.vocab import CONVERT_SUBTYPES
from tuijian.experiments.model import LAUNCH, STAGES

Format = Literal["json", "csv", "html"]


@dataclass(slots=True)
class Section:
    title: str
    dims: tuple[str, ...]
    rows: list[dict[str, Any]]


@dataclass(slots=True)
class DailyReport:
    date: str  # ISO local date
    totals: dict[str, Any]  # one funnel row without dimensions
    sections: list[Section]
    # tracking alarms, each with at least alarm, key, severity, message
    alarms: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SectionSpec:
    title: str
    dims: tuple[str, ...]
    limit: int | None = None  # keep only the rows with most exposures
    by_dims: bool = False  # rows in dimension order (a time axis), not most exposures first


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("By slot", ("slot",)),
    SectionSpec("Slot × platform", ("slot", "platform")),
    SectionSpec("By hour", ("hour",), by_dims=True),
    SectionSpec("Scene × recall strategy", ("scene", "recall_id")),
    SectionSpec("By recall source", ("source",)),
    SectionSpec("By business line", ("line",)),
    SectionSpec("Top 20 cities", ("city",), limit=20),
    SectionSpec("By rank strategy", ("rank_id",)),
    *(SectionSpec(f"Experiments: {layer} layer", (f"exp_{layer}",))
      for layer in (*STAGES, LAUNCH)),
)


def parse_day(text: str | None) -> dt.date:
    """An ISO date; absent, yesterday's local date (the last complete business day).
    ValueError names the field, as FunnelQuery.parse does, so callers report it alike."""
    if not text:
        return last_closed_day(time.time())
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date: {text!r} is not an ISO date (YYYY-MM-DD)") from None


def daily_report(query: Query, day: dt.date) -> DailyReport:
    """Every section of SECTIONS over the local day (midnight to midnight, UTC+8).

    A section none of whose rows has a value for its dimensions (a layer with no experiment
    running that day) breaks nothing down and is left out."""
    start, end = day_bounds(day)
    sections = []
    for spec in SECTIONS:
        rows = query(FunnelQuery(list(spec.dims), start=start, end=end))
        if not any(r[d] is not None for r in rows for d in spec.dims):
            continue
        if spec.by_dims:
            rows.sort(key=lambda r: tuple((r[d] is None, r[d]) for d in spec.dims))
        sections.append(Section(spec.title, spec.dims, rows[:spec.limit]))
    totals = query(FunnelQuery([], start=start, end=end))
    # a day without traffic: counts are zero, statistics undefined
    empty = finish_row({m.name: 0 if m.additive else None for m in MEASURES})
    return DailyReport(day.isoformat(), totals[0] if totals else empty, sections)


def to_json(report: DailyReport) -> str:
    return json.dumps(asdict(report), ensure_ascii=False)


CSV_MEASURES: tuple[str, ...] = (
    "exposures", "lists", "clicks", "ctr", "conversions", "cvr",
    *(f"conversions_{s}" for s in CONVERT_SUBTYPES),
    "dwell_sum", "dwell_mean", "dwell_p50", "users")
_RATIO_NAMES = frozenset(name for name, _, _ in RATIOS)


def to_csv(report: DailyReport) -> str:
    """One tidy table, the day's total first and then a row per section and dimension values,
    so a spreadsheet filters by section and pivots without reshaping."""
    dims = list(dict.fromkeys(d for s in report.sections for d in s.dims))
    out = io.StringIO()
    writer = csv.DictWriter(out, ["date", "section", *dims, *CSV_MEASURES], restval="",
                            extrasaction="ignore")
    writer.writeheader()
    for title, row in [("total", report.totals),
                       *((s.title, r) for s in report.sections for r in s.rows)]:
        writer.writerow({**{k: _csv_value(k, v) for k, v in row.items()},
                         "date": report.date, "section": title})
    return out.getvalue()


def _csv_value(name: str, v: Any) -> Any:
    if v is None:
        return ""
    return f"{v:.6g}" if name in _RATIO_NAMES else v


def _count(v: Any) -> str:
    return "–" if v is None else f"{v:,}"


def _pct(v: Any) -> str:
    return "–" if v is None else f"{v:.2%}"


def _secs(v: Any) -> str:
    return "–" if v is None else f"{v:,.1f} s"


def _label(v: Any) -> str:
    return "(none)" if v is None else str(v)


def _e(v: object) -> str:
    return html.escape(str(v))


Fmt = Callable[[Any], str]
_HEADLINE: tuple[tuple[str, str, Fmt], ...] = (
    ("exposures", "Exposures", _count), ("clicks", "Clicks", _count), ("ctr", "CTR", _pct),
    ("conversions", "Conversions", _count), ("cvr", "CVR", _pct), ("users", "Users", _count),
    ("dwell_mean", "Mean dwell", _secs))
_COLUMNS = (*_HEADLINE, ("share", "Share of exposures", _pct))
_ALARM_KEYS = ("alarm", "key", "severity", "message")
_BLUE = "#3b6fc4"
_STYLE = """
body{font:14px/1.4 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222;margin:24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 6px}
.note{color:#666;margin:0 0 16px}
.kpi{display:inline-block;margin:0 24px 12px 0;color:#555}
.kpi b{display:block;font-size:22px;color:#222}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg{display:block;margin:8px 0}svg text{font-size:11px;fill:#333}
"""


def to_html(report: DailyReport) -> str:
    """One HTML document that survives being emailed: inline style and SVG, no script,
    nothing fetched. Every value is escaped, since dimension values come from clients."""
    total = report.totals.get("exposures") or 0
    body = [f"<h1>Tuijian daily report · {_e(report.date)}</h1>",
            f'<p class="note">Local day, UTC+{UTC_OFFSET_H}.</p>',
            "".join(f'<div class="kpi">{_e(label)}<b>{_e(fmt(report.totals.get(k)))}</b></div>'
                    for k, label, fmt in _HEADLINE),
            "<h2>Tracking alarms</h2>",
            _table(_ALARM_KEYS, [[_label(a.get(k)) for k in _ALARM_KEYS] for a in report.alarms],
                   len(_ALARM_KEYS)) if report.alarms else "<p>no alarms</p>"]
    for s in report.sections:
        rows = [{**r, "share": r["exposures"] / total if total else None} for r in s.rows]
        body += [f"<h2>{_e(s.title)}</h2>", *_charts(s.dims, rows),
                 _table([*s.dims, *(label for _, label, _ in _COLUMNS)],
                        [[_label(r[d]) for d in s.dims] + [fmt(r.get(k)) for k, _, fmt in _COLUMNS]
                         for r in rows], len(s.dims))]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Tuijian daily report {_e(report.date)}</title><style>{_STYLE}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], first_numeric: int) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    numeric = ' class="n"'
    body = "".join("<tr>" + "".join(f"<td{numeric if i >= first_numeric else ''}>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _charts(dims: tuple[str, ...], rows: list[dict[str, Any]]) -> list[str]:
    """The charts a section gets: placements and sources compare as bars, hours as a line."""
    if dims == ("hour",):
        return [_hourly("Exposures by hour", rows, "exposures", _count),
                _hourly("CTR by hour", rows, "ctr", _pct)]
    if dims in (("slot",), ("source",)):
        return [_bars(title, [(_label(r[dims[0]]), r.get(key)) for r in rows], fmt)
                for title, key, fmt in (("CTR", "ctr", _pct),
                                        ("Share of exposures", "share", _pct))]
    return []


def _bars(title: str, bars: list[tuple[str, float | None]], fmt: Fmt) -> str:
    """Horizontal bars scaled to the largest value, each labelled and titled with its value."""
    step, label_w, bar_w = 18, 150, 300
    top = max((v or 0 for _, v in bars), default=0) or 1
    parts = [f'<text x="0" y="12" font-weight="bold">{_e(title)}</text>']
    for i, (label, v) in enumerate(bars, 1):
        y, w = i * step, bar_w * (v or 0) / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{step - 4}" '
            f'fill="{_BLUE}"><title>{_e(f"{label}: {fmt(v)}")}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}">{_e(fmt(v))}</text>')
    return (f'<svg width="{label_w + bar_w + 80}" height="{(len(bars) + 1) * step + 4}" '
            f'role="img" aria-label="{_e(title)}">{"".join(parts)}</svg>')


def _hourly(title: str, rows: list[dict[str, Any]], key: str, fmt: Fmt) -> str:
    """A polyline over the local hours 0-23, each point titled with its value."""
    points = sorted((r["hour"], r[key]) for r in rows if r.get(key) is not None)
    if not points:
        return ""
    x0, y0, w, h = 60, 24, 480, 120
    top = max(v for _, v in points) or 1
    xy = [(x0 + w * hour / 23, y0 + h - h * v / top) for hour, v in points]
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{_BLUE}">'
                   f'<title>{_e(f"{hour:02d}:00 {fmt(v)}")}</title></circle>'
                   for (x, y), (hour, v) in zip(xy, points, strict=True))
    ticks = "".join(f'<text x="{x0 + w * hour / 23:.1f}" y="{y0 + h + 16}" '
                    f'text-anchor="middle">{hour:02d}h</text>' for hour in (0, 6, 12, 18, 23))
    return (f'<svg width="{x0 + w + 20}" height="{y0 + h + 24}" role="img" '
            f'aria-label="{_e(title)}"><text x="0" y="12" font-weight="bold">{_e(title)}</text>'
            f'<text x="{x0 - 6}" y="{y0 + 4}" text-anchor="end">{_e(fmt(top))}</text>'
            f'<text x="{x0 - 6}" y="{y0 + h + 4}" text-anchor="end">0</text>'
            f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#999"/>'
            f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in xy)}" fill="none" '
            f'stroke="{_BLUE}" stroke-width="2"/>{dots}{ticks}</svg>')


FORMATS: dict[str, tuple[Callable[[DailyReport], str], str]] = {
    "json": (to_json, "application/json"),
    "csv": (to_csv, "text/csv; charset=utf-8"),
    "html": (to_html, "text/html; charset=utf-8"),
}
