"""Plots as inline SVG, built by pure functions: no JavaScript, no CDN, nothing fetched.

Each builder takes plain numbers and returns one ``<svg>`` string; every label
is escaped. Sizes are fixed so a page of plots lays out the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 520, 200
PAD_L, PAD_R, PAD_T, PAD_B = 44, 12, 14, 38
COLOR = "#f37626"


def _frame(title: str, body: str, kind: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lf-plot lf-{kind}" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-label="{escape(title, quote=True)}"><title>{escape(title)}</title>'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff" stroke="#ddd"/>{body}</svg>'
    )


def _y_axis(top: float) -> str:
    inner_h = HEIGHT - PAD_T - PAD_B
    parts = []
    for i in range(3):
        value = top * i / 2
        y = PAD_T + inner_h * (1 - i / 2)
        label = f"{value:.3g}"
        parts.append(
            f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{label}</text>'
        )
    return "".join(parts)


def empty(title: str, note: str = "no data yet") -> str:
    body = (
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" font-size="12" text-anchor="middle" '
        f'fill="#888">{escape(note)}</text>'
    )
    return _frame(title, body, "empty")


def line_chart(title: str, points: Sequence[tuple[float, float]], x_labels: tuple[str, str]) -> str:
    """``points``: (x, y) in any units, x increasing; ``x_labels``: (left, right) captions."""
    if not points:
        return empty(title)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    top = max(max(ys), 1.0)
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    span = (x1 - x0) or 1.0
    coords = [
        (PAD_L + inner_w * (x - x0) / span, PAD_T + inner_h * (1 - y / top)) for x, y in points
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{COLOR}"/>' for x, y in coords)
    captions = (
        f'<text x="{PAD_L}" y="{HEIGHT - 8}" font-size="10">{escape(x_labels[0])}</text>'
        f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">'
        f"{escape(x_labels[1])}</text>"
    )
    body = (
        _y_axis(top)
        + f'<polyline fill="none" stroke="{COLOR}" stroke-width="2" points="{path}"/>'
        + dots
        + captions
    )
    return _frame(title, body, "line")


def bar_chart(
    title: str, bars: Sequence[tuple[str, float]], unit: str = "", none: str = "no data yet"
) -> str:
    """Vertical bars with a label under each (histograms, counts by category).

    ``none``: what the plot says when there is nothing to draw.
    """
    if not bars or not any(v for _, v in bars):
        return empty(title, none)
    top = max(v for _, v in bars) or 1.0
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    slot = inner_w / len(bars)
    parts = [_y_axis(top)]
    for i, (label, value) in enumerate(bars):
        h = inner_h * value / top
        x = PAD_L + i * slot + slot * 0.15
        y = PAD_T + inner_h - h
        parts.append(
            f'<rect class="lf-bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{COLOR}"><title>{escape(label)}: {value:g}{escape(unit)}'
            "</title></rect>"
            f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD_B + 14}" font-size="10" '
            f'text-anchor="middle">{escape(label[:14])}</text>'
        )
    return _frame(title, "".join(parts), "bars")
