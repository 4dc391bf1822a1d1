"""Small SVG charts for the monthly report: grouped bars, lines and a heatmap, as self-contained
markup (no script, no font or stylesheet to fetch), so the report opens offline in any browser."""

from __future__ import annotations

from html import escape

PALETTE = ("#1f5f99", "#e08a1e", "#3f9c5a", "#b8403a", "#7a5ba6", "#6b6b6b")
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 32, 28, 56


def _frame(title: str, body: str, legend: list[str]) -> str:
    keys = "".join(
        f'<rect x="{LEFT + i * 130}" y="6" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
        f'<text x="{LEFT + i * 130 + 14}" y="15" class="legend">{escape(name)}</text>'
        for i, name in enumerate(legend)
    )
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{keys}{body}</svg>"
    )


def _scale(values: list[float | None], zero: bool = True) -> tuple[float, float]:
    present = [v for v in values if v is not None] or [0.0]
    low, high = min(present), max(present)
    if zero:
        low, high = min(low, 0.0), max(high, 0.0)
    return (low, high) if high > low else (low, low + 1.0)


def _axis(low: float, high: float, fmt: str) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    ticks = []
    for i in range(5):
        value = low + (high - low) * i / 4
        y = TOP + plot_h - plot_h * i / 4
        ticks.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{format(value, fmt)}</text>'
        )
    return "".join(ticks)


def _y(value: float, low: float, high: float) -> float:
    plot_h = HEIGHT - TOP - BOTTOM
    return TOP + plot_h - plot_h * (value - low) / (high - low)


def bar_chart(
    title: str, categories: list[str], series: dict[str, list[float | None]], fmt: str = ",.0f",
    references: dict[str, float] | None = None,
) -> str:  # fmt: skip
    """Grouped bars: one group per category, one bar per series; reference lines by label."""
    values = [v for vs in series.values() for v in vs] + list((references or {}).values())
    low, high = _scale(values)
    plot_w = WIDTH - LEFT - RIGHT
    group_w = plot_w / max(len(categories), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    body = [_axis(low, high, fmt)]
    for i, category in enumerate(categories):
        x0 = LEFT + i * group_w + group_w * 0.1
        for j, (name, vs) in enumerate(series.items()):
            v = vs[i]
            if v is None:
                continue
            y, base = _y(v, low, high), _y(max(low, 0), low, high)
            body.append(
                f'<rect class="mark" x="{x0 + j * bar_w:.1f}" y="{min(y, base):.1f}" width="{bar_w * 0.9:.1f}" '
                f'height="{max(abs(base - y), 0.5):.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(category)} {escape(name)}: {format(v, fmt)}</title></rect>"
            )
        label_x = LEFT + i * group_w + group_w / 2
        body.append(
            f'<text x="{label_x:.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick" text-anchor="middle">'
            f"{escape(category)}</text>"
        )
    for label, value in (references or {}).items():
        y = _y(value, low, high)
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="reference"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" class="tick" text-anchor="end">{escape(label)}</text>'
        )
    return _frame(title, "".join(body), list(series))


def ranked_bars(
    title: str, labels: list[str], values: list[float], fmt: str = ".2f", references: dict[str, float] | None = None
) -> str:
    """Horizontal bars, one row per label, the label written in full to the left of its bar (long
    names, such as indicators, stay legible where a column's label would run into its neighbours);
    reference lines by label."""
    label_w = 8 + 7 * max((len(label) for label in labels), default=0)  # about 7 px a character at 12 px
    left, row_h = 12 + label_w, 22
    height = TOP + 22 + row_h * len(labels)
    low, high = _scale(list(values) + list((references or {}).values()))
    plot_w = WIDTH - left - RIGHT

    def x(value: float) -> float:
        return left + plot_w * (value - low) / (high - low)

    body = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + 18 + i * row_h
        body.append(
            f'<text x="{left - 6}" y="{y + row_h * 0.55:.1f}" class="tick label" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="mark" x="{x(0):.1f}" y="{y + 3:.1f}" width="{max(x(value) - x(0), 0.5):.1f}" '
            f'height="{row_h - 8}" fill="{PALETTE[0]}"><title>{escape(label)}: {format(value, fmt)}</title></rect>'
            f'<text x="{x(value) + 4:.1f}" y="{y + row_h * 0.55:.1f}" class="tick">{format(value, fmt)}</text>'
        )
    for i, (label, value) in enumerate((references or {}).items()):
        body.append(
            f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{TOP + 14}" y2="{height - 4}" class="reference"/>'
            f'<text x="{x(value) - 3:.1f}" y="{TOP + 10 + 10 * i}" class="tick" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f'<title>{escape(title)}</title><text x="{LEFT}" y="15" class="legend">{escape(title)}</text>'
        f"{''.join(body)}</svg>"
    )


def line_chart(title: str, labels: list[str], series: dict[str, list[float | None]], fmt: str = ".2f") -> str:
    """One line per series over the labels (months); a missing value breaks the line."""
    low, high = _scale([v for vs in series.values() for v in vs], zero=False)
    pad = (high - low) * 0.1
    low, high = low - pad, high + pad
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(len(labels) - 1, 1)
    body = [_axis(low, high, fmt)]
    for j, (name, vs) in enumerate(series.items()):
        colour = PALETTE[j % len(PALETTE)]
        points = [(LEFT + i * step, _y(v, low, high), v) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y, _) in enumerate(points))
            body.append(f'<path class="mark" d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [
            f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
            f"<title>{escape(name)}: {format(v, fmt)}</title></circle>"
            for x, y, v in points
        ]
    every = max(1, len(labels) // 8)
    body += [
        f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    return _frame(title, "".join(body), list(series))


def heatmap(title: str, rows: list[str], columns: list[str], values: dict[tuple[str, str], float]) -> str:
    """A matrix of shares (0-1), darker for more, each cell labelled."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    cell_w, cell_h = plot_w / max(len(columns), 1), plot_h / max(len(rows), 1)
    body = []
    for i, row in enumerate(rows):
        body.append(
            f'<text x="{LEFT - 6}" y="{TOP + (i + 0.5) * cell_h + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(row)}</text>"
        )
        for j, column in enumerate(columns):
            v = values.get((row, column))
            shade = 0.08 + 0.92 * (v or 0.0)
            x, y = LEFT + j * cell_w, TOP + i * cell_h
            body.append(
                f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{cell_w - 2:.1f}" height="{cell_h - 2:.1f}" '
                f'fill="{PALETTE[0]}" fill-opacity="{shade:.2f}"><title>{escape(row)} to {escape(column)}: '
                f"{'' if v is None else format(v, '.1%')}</title></rect>"
                f'<text x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" class="cell" text-anchor="middle">'
                f"{'' if v is None else format(v, '.0%')}</text>"
            )
    body += [
        f'<text x="{LEFT + (j + 0.5) * cell_w:.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick" text-anchor="middle">'
        f"{escape(column)}</text>"
        for j, column in enumerate(columns)
    ]
    return _frame(title, "".join(body), [])
