"""A load test's report as one self-contained HTML page: the figures and the latency histogram as
an SVG bar chart (logarithmic buckets). Pure: a result in, text out.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from policyengine.loadtest.result import PERCENTILES, Bucket, LoadTestResult, render_markdown
from policyengine.loadtest.slo import SloCheck

_W, _H, _PAD_L, _PAD_B, _PAD_T = 860, 300, 56, 48, 16


def histogram_svg(histogram: Sequence[Bucket], marks: dict[str, float] | None = None) -> str:
    """Bars of request counts per latency bucket; dashed lines at the given percentiles (ms)."""
    if not histogram:
        return "<p>No successful request: no latency histogram.</p>"
    top = max(b.count for b in histogram) or 1
    width = (_W - _PAD_L - 8) / len(histogram)
    plot_h = _H - _PAD_B - _PAD_T
    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        'aria-label="Latency histogram" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{_PAD_L}" y1="{_H - _PAD_B}" x2="{_W - 8}" y2="{_H - _PAD_B}" stroke="#555"/>',
        f'<text x="4" y="{_PAD_T + 10}">{top}</text>',
        f'<text x="4" y="{_H - _PAD_B}">0</text>',
    ]
    lower = 0.0
    for i, bucket in enumerate(histogram):
        x = _PAD_L + i * width
        h = plot_h * bucket.count / top
        label = f"{lower:g}–{bucket.upper_ms:g} ms: {bucket.count} requests"
        parts.append(
            f'<rect x="{x:.1f}" y="{_H - _PAD_B - h:.1f}" width="{max(width - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#3b7dd8"><title>{html.escape(label)}</title></rect>'
        )
        if i % max(1, len(histogram) // 10) == 0:
            parts.append(f'<text x="{x:.1f}" y="{_H - _PAD_B + 16}">≤{bucket.upper_ms:g}</text>')
        lower = bucket.upper_ms
    for name, value in (marks or {}).items():
        index = next((i for i, b in enumerate(histogram) if value <= b.upper_ms), len(histogram))
        x = _PAD_L + (index + 0.5) * width
        parts.append(
            f'<line x1="{x:.1f}" y1="{_PAD_T}" x2="{x:.1f}" y2="{_H - _PAD_B}" '
            'stroke="#c0392b" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{_PAD_T + 10}" fill="#c0392b">{html.escape(name)}</text>'
        )
    parts.append(f'<text x="{_W / 2:.0f}" y="{_H - 8}">latency bucket upper bound (ms)</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(result: LoadTestResult, checks: Sequence[SloCheck] = ()) -> str:
    marks = (
        {name: result.latency.percentiles[name] for name, _ in PERCENTILES if name != "p90"}
        if result.latency
        else None
    )
    slo_rows = "".join(
        f"<tr><td><code>{html.escape(c.slo.text)}</code></td>"
        f"<td>{'–' if c.value is None else f'{c.value:.4g}'}</td>"
        f"<td>{'met' if c.passed else '<strong>missed</strong>'}</td></tr>"
        for c in checks
    )
    slos = (
        f"<h2>SLOs</h2><table><tr><th>SLO</th><th>measured</th><th>verdict</th></tr>{slo_rows}</table>"
        if checks
        else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>policyengine load test</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:960px}"
        "svg text{font-size:11px;fill:#333}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px}</style></head><body>"
        f"<h1>Load test of {html.escape(result.target)}</h1>"
        f"<h2>Latency histogram (from the intended send time)</h2>{histogram_svg(result.histogram, marks)}"
        f"{slos}<h2>Figures</h2><pre>{html.escape(render_markdown(result))}</pre>"
        "</body></html>\n"
    )
