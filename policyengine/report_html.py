"""A self-contained HTML report of releases: weights and per-version metrics as inline SVG charts,
and every decision with its evidence. No script, font, image or link leaves the file.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from policyengine.values import TrafficSplit

Point = tuple[datetime, float | None]  # None breaks the line (no traffic in that interval)


@dataclass(frozen=True)
class WeightPoint:
    """The split in Git from `at` until the next point."""

    at: datetime
    split: TrafficSplit


@dataclass(frozen=True)
class MetricSeries:
    """One chart: a metric over time, one line per version, with an optional objective bound."""

    title: str  # "error rate"
    unit: str  # "%", "ms", "req/min"
    lines: tuple[tuple[str, tuple[Point, ...]], ...]  # (version, points in time order)
    bound: float | None = None  # drawn as a dashed horizontal line, e.g. the objective's max


@dataclass(frozen=True)
class DecisionRecord:
    at: datetime
    decision: str  # hold, advance, promote, rollback, done
    split: TrafficSplit
    reason: str
    evidence_md: str = ""


@dataclass(frozen=True)
class ReleaseTimeline:
    policy: str  # namespace/name
    weights: tuple[WeightPoint, ...]
    metrics: tuple[MetricSeries, ...] = ()
    decisions: tuple[DecisionRecord, ...] = ()
    outcome: str = ""  # one line for the summary, e.g. "promoted v2 after 5 steps"
    notes: tuple[str, ...] = field(default_factory=tuple)


# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_DECISION_COLOURS = {
    "advance": "#0072B2",
    "promote": "#009E73",
    "rollback": "#D55E00",
    "done": "#555555",
    "hold": "#999999",
}
_WIDTH, _HEIGHT = 760, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 130, 42, 34

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.evidence table { font-size: 0.85em; margin: 0; }
td.evidence ul { margin: 0.3em 0; padding-left: 1.2em; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-weight: 600; font-size: 0.85em; }
.muted { color: #666; } td.nowrap { white-space: nowrap; }
.charts svg { display: block; margin: 0.4em 0 1em; width: 100%; max-width: 1000px; height: auto; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.5em; white-space: pre-wrap; }
svg text { font-family: system-ui, sans-serif; font-size: 11px; fill: #333; }
"""


def text(value: str) -> str:
    """Escape text for HTML; slashes too, so a URL in a reason stays text and never a reference."""
    return html.escape(value, quote=True).replace("/", "&#47;")


def render_report(
    timelines: Sequence[ReleaseTimeline],
    title: str = "policyengine release report",
    generated_at: datetime | None = None,
    preamble: Iterable[str] = (),
) -> str:
    """The whole report as one HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{text(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{text(title)}</h1>",
    ]
    if generated_at is not None:
        parts.append(f'<p class="muted">Generated at {text(_timestamp(generated_at))}.</p>')
    parts.extend(f"<p>{_inline(line)}</p>" for line in preamble)
    if timelines:
        parts.append("<table><tr><th>release</th><th>decisions</th><th>outcome</th></tr>")
        for timeline in timelines:
            parts.append(
                f'<tr><td><a href="#{_anchor(timeline.policy)}">{text(timeline.policy)}</a></td>'
                f"<td>{len(timeline.decisions)}</td><td>{text(timeline.outcome)}</td></tr>"
            )
        parts.append("</table>")
    parts.extend(render_release(timeline) for timeline in timelines)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_release(timeline: ReleaseTimeline) -> str:
    """One release: its charts on a shared time axis, then its decisions."""
    start, end = _time_range(timeline)
    colours = _colours(timeline)
    parts = [f'<h2 id="{_anchor(timeline.policy)}">{text(timeline.policy)}</h2>']
    if timeline.outcome:
        parts.append(f"<p><strong>{text(timeline.outcome)}</strong></p>")
    parts.extend(f'<p class="muted">{_inline(note)}</p>' for note in timeline.notes)
    parts.append('<div class="charts">')
    parts.append("<h3>Traffic weights in Git</h3>")
    parts.append(weights_chart(timeline, start, end, colours))
    for series in timeline.metrics:
        parts.append(f"<h3>{text(series.title)} ({text(series.unit)})</h3>")
        parts.append(metric_chart(series, start, end, colours))
    parts.append("</div>")
    parts.append("<h3>Decisions</h3>")
    parts.append(decisions_table(timeline.decisions))
    return "\n".join(parts)


def decisions_table(decisions: Sequence[DecisionRecord]) -> str:
    if not decisions:
        return '<p class="muted">No decisions recorded.</p>'
    rows = [
        "<table><tr><th>time</th><th>decision</th><th>weights</th><th>reason</th>"
        "<th>evidence</th></tr>"
    ]
    for record in decisions:
        colour = _DECISION_COLOURS.get(record.decision, "#555555")
        rows.append(
            f'<tr><td class="nowrap">{text(_timestamp(record.at))}</td>'
            f'<td><span class="badge" style="background:{colour}">{text(record.decision)}</span></td>'
            f'<td class="nowrap"><code>{text(record.split.trailer())}</code></td>'
            f"<td>{_inline(record.reason)}</td>"
            f'<td class="evidence">{evidence_html(record.evidence_md)}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def evidence_html(markdown: str) -> str:
    """The evidence Markdown (pipe tables, bullets, paragraphs) as HTML; anything else as <pre>."""
    blocks: list[str] = []
    lines = markdown.strip().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if not line:
            index += 1
        elif line.startswith("|"):
            table_lines = []
            while index < len(lines) and lines[index].strip().startswith("|"):
                table_lines.append(lines[index].strip())
                index += 1
            blocks.append(_table_html(table_lines))
        elif line.startswith(("- ", "* ")):
            items = []
            while index < len(lines) and lines[index].strip().startswith(("- ", "* ")):
                items.append(f"<li>{_inline(lines[index].strip()[2:])}</li>")
                index += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
        else:
            blocks.append(f"<p>{_inline(line)}</p>")
            index += 1
    return "\n".join(blocks)


_SEPARATOR_ROW = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _cells(row: str) -> list[str]:
    body = row.strip()
    body = body.removeprefix("|")
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _table_html(rows: list[str]) -> str:
    if len(rows) < 2 or not _SEPARATOR_ROW.match(rows[1]):
        return "<pre>" + text("\n".join(rows)) + "</pre>"
    header = _cells(rows[0])
    out = ["<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>"]
    for row in rows[2:]:
        cells = _cells(row)
        out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _inline(markdown: str) -> str:
    """`code` and **bold**, everything else escaped."""
    escaped = text(markdown)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


# ---- charts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """Maps time and value to pixels inside the plot area of one chart."""

    start: datetime
    end: datetime
    low: float
    high: float

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        share = (at - self.start).total_seconds() / span
        return _LEFT + share * (_WIDTH - _LEFT - _RIGHT)

    def y(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        share = (value - self.low) / span
        return _HEIGHT - _BOTTOM - share * (_HEIGHT - _TOP - _BOTTOM)


def weights_chart(
    timeline: ReleaseTimeline, start: datetime, end: datetime, colours: dict[str, str]
) -> str:
    """Step lines of each version's weight; the mirror share dashed; decisions as markers."""
    frame = _Frame(start, end, 0.0, 100.0)
    body: list[str] = [_axes(frame, "%", (0, 25, 50, 75, 100))]
    changes = [r for r in timeline.decisions if r.decision != "hold"]
    for index, record in enumerate(changes):
        x = frame.x(record.at)
        colour = _DECISION_COLOURS.get(record.decision, "#555555")
        # Alternate two label rows so that decisions close in time do not print over each other.
        label_y = _TOP - 8 - (index % 2) * 12
        body.append(
            f'<line x1="{x:.1f}" y1="{label_y + 4}" x2="{x:.1f}" y2="{_HEIGHT - _BOTTOM}" '
            f'stroke="{colour}" stroke-width="1" stroke-dasharray="2 3"/>'
            f'<text x="{x + 3:.1f}" y="{label_y}" style="fill:{colour}">{text(record.decision)}'
            f"</text>"
        )
    versions = list(colours)
    for version in versions:
        steps = [(p.at, float(p.split.weight(version))) for p in timeline.weights]
        if any(weight for _, weight in steps):
            body.append(_step_path(frame, steps, end, colours[version], dashed=False))
        mirror = [
            (p.at, p.split.mirror_percent if p.split.mirror_to == version else 0.0)
            for p in timeline.weights
        ]
        if any(share for _, share in mirror):
            body.append(_step_path(frame, mirror, end, colours[version], dashed=True))
    legend = [(v, colours[v]) for v in versions]
    if any(p.split.mirror_to for p in timeline.weights):
        legend.append(("mirror (dashed)", "#777777"))
    body.append(_legend(legend))
    return _svg(f"Traffic weights of {timeline.policy}", body)


def metric_chart(
    series: MetricSeries, start: datetime, end: datetime, colours: dict[str, str]
) -> str:
    values = [v for _, points in series.lines for _, v in points if v is not None]
    if series.bound is not None:
        values.append(series.bound)
    top = max(values, default=1.0)
    ticks = _nice_ticks(top if top > 0 else 1.0)
    frame = _Frame(start, end, 0.0, ticks[-1])
    body = [_axes(frame, series.unit, ticks)]
    if series.bound is not None:
        y = frame.y(series.bound)
        body.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _RIGHT}" y2="{y:.1f}" '
            f'stroke="#D55E00" stroke-width="1" stroke-dasharray="6 4"/>'
            f'<text x="{_WIDTH - _RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" '
            f'style="fill:#D55E00">bound {text(_number(series.bound))}</text>'
        )
    for version, points in series.lines:
        colour = colours.get(version) or _PALETTE[len(colours) % len(_PALETTE)]
        body.append(_polyline(frame, points, colour))
    body.append(_legend([(v, colours.get(v, "#000000")) for v, _ in series.lines]))
    return _svg(f"{series.title} per version", body)


# Hand-made on purpose: a charting library (matplotlib, plotly, altair) would either pull a large
# dependency into the engine for two line charts, or embed a script or a base64 image; a few
# polylines and axis labels as inline SVG keep the report one small file that opens offline, with
# no script, and that diff tools and screen readers (role="img", aria-label) can still read.
def _svg(label: str, body: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" role="img" '
        f'aria-label="{text(label)}"><title>{text(label)}</title>'
        f'<rect x="0" y="0" width="{_WIDTH}" height="{_HEIGHT}" fill="#ffffff"/>'
        + "".join(body)
        + "</svg>"
    )


def _axes(frame: _Frame, unit: str, ticks: Sequence[float]) -> str:
    right = _WIDTH - _RIGHT
    bottom = _HEIGHT - _BOTTOM
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e6e6e6"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text(_number(tick))}</text>'
        )
    for at in _time_ticks(frame.start, frame.end):
        x = frame.x(at)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#888"/>'
            f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">{at:%H:%M}</text>'
        )
    parts.append(
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="#888"/>'
        f'<text x="{_LEFT - 6}" y="{_TOP - 12}" text-anchor="end">{text(unit)}</text>'
        f'<text x="{right}" y="{bottom + 30}" text-anchor="end" class="muted">UTC</text>'
    )
    return "".join(parts)


def _step_path(
    frame: _Frame, steps: list[tuple[datetime, float]], end: datetime, colour: str, dashed: bool
) -> str:
    # Horizontal to the next change, then vertical: the weight holds until Git changes it.
    commands = []
    for index, (at, value) in enumerate(steps):
        x, y = frame.x(at), frame.y(value)
        commands.append(f"M{x:.1f},{y:.1f}" if index == 0 else f"H{x:.1f}V{y:.1f}")
    commands.append(f"H{frame.x(end):.1f}")
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return f'<path d="{"".join(commands)}" fill="none" stroke="{colour}" stroke-width="2.2"{dash}/>'


def _polyline(frame: _Frame, points: Sequence[Point], colour: str) -> str:
    commands: list[str] = []
    pen_down = False
    for at, value in points:
        if value is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{frame.x(at):.1f},{frame.y(value):.1f}")
        pen_down = True
    if not commands:
        return ""
    return (
        f'<path d="{"".join(commands)}" fill="none" stroke="{colour}" stroke-width="1.6" '
        f'stroke-linejoin="round"/>'
    )


def _legend(entries: Sequence[tuple[str, str]]) -> str:
    x = _WIDTH - _RIGHT + 14
    parts = []
    for index, (name, colour) in enumerate(entries):
        y = _TOP + 6 + index * 18
        parts.append(
            f'<rect x="{x}" y="{y - 8}" width="14" height="4" fill="{colour}"/>'
            f'<text x="{x + 20}" y="{y - 2}">{text(name)}</text>'
        )
    return "".join(parts)


def _colours(timeline: ReleaseTimeline) -> dict[str, str]:
    """One colour per version, stable across every chart of a release (first seen, first colour)."""
    order: list[str] = []
    for point in timeline.weights:
        for version, _ in point.split.weights:
            if version not in order:
                order.append(version)
        if point.split.mirror_to and point.split.mirror_to not in order:
            order.append(point.split.mirror_to)
    for series in timeline.metrics:
        for version, _ in series.lines:
            if version not in order:
                order.append(version)
    return {version: _PALETTE[i % len(_PALETTE)] for i, version in enumerate(order)}


def _time_range(timeline: ReleaseTimeline) -> tuple[datetime, datetime]:
    instants = [p.at for p in timeline.weights]
    instants += [d.at for d in timeline.decisions]
    instants += [at for s in timeline.metrics for _, points in s.lines for at, _ in points]
    if not instants:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return epoch, epoch + timedelta(hours=1)
    start, end = min(instants), max(instants)
    if end <= start:
        end = start + timedelta(minutes=1)
    return start, end


_TIME_STEPS_MINUTES = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 360, 720, 1440)


def _time_ticks(start: datetime, end: datetime, wanted: int = 8) -> list[datetime]:
    span_minutes = (end - start).total_seconds() / 60
    step = next((s for s in _TIME_STEPS_MINUTES if span_minutes / s <= wanted), 1440)
    utc = start.astimezone(UTC)
    midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes_since = (utc - midnight).total_seconds() / 60
    first = midnight + timedelta(minutes=math.ceil(minutes_since / step) * step)
    ticks = []
    at = first
    while at <= end:
        ticks.append(at)
        at += timedelta(minutes=step)
    return ticks


def _nice_ticks(top: float, wanted: int = 5) -> list[float]:
    raw = top / wanted
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(count + 1)]


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _anchor(policy: str) -> str:
    return "release-" + re.sub(r"[^a-z0-9]+", "-", policy.lower()).strip("-")
