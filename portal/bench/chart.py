"""``bench scale``'s picture: each endpoint's p95 latency against the rows in the database
(VMs, on a log scale), one line an endpoint, the goal as a dashed line. An SVG drawn
here, so the benchmark needs no plotting library."""

import math
from html import escape

__all__ = ["latency_svg"]

WIDTH, HEIGHT = 960, 540
LEFT, RIGHT, TOP, BOTTOM = 60, 370, 40, 50
GROUP_COLOURS = {"tenant API": "#1f77b4", "admin API": "#ff7f0e",
                 "tenant portal": "#2ca02c", "provider portal": "#d62728"}


def latency_svg(curve: list[dict], *, goal_ms: float, title: str) -> str:
    """``curve``: ``[{"vms": rows, "p95_ms": {endpoint: ms}}, ...]`` in growing order."""
    xs = [point["vms"] for point in curve]
    endpoints = list(curve[-1]["p95_ms"])
    top = max([goal_ms * 1.5, *(v for p in curve for v in p["p95_ms"].values())])
    top = math.ceil(top / 50) * 50
    lo, hi = math.log10(min(xs)), math.log10(max(xs))

    def x(rows: float) -> float:
        span = (hi - lo) or 1
        return LEFT + (math.log10(rows) - lo) / span * (WIDTH - LEFT - RIGHT)

    def y(ms: float) -> float:
        return TOP + (1 - ms / top) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{LEFT}" y="22" font-size="14">{escape(title)}</text>']
    for ms in range(0, int(top) + 1, 50):  # the y grid
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(ms):.1f}" '
                     f'y2="{y(ms):.1f}" stroke="#eee"/>'
                     f'<text x="{LEFT - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms}</text>')
    for rows in xs:  # the x ticks: the sizes measured
        parts.append(f'<line x1="{x(rows):.1f}" x2="{x(rows):.1f}" y1="{TOP}" '
                     f'y2="{HEIGHT - BOTTOM}" stroke="#eee"/>'
                     f'<text x="{x(rows):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{rows:,}</text>')
    parts += [f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 12}" '
              'text-anchor="middle">VMs in the database (log scale)</text>',
              f'<text x="16" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle" '
              f'transform="rotate(-90 16 {(TOP + HEIGHT - BOTTOM) / 2})">p95 ms</text>',
              f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(goal_ms):.1f}" '
              f'y2="{y(goal_ms):.1f}" stroke="black" stroke-dasharray="6 4"/>',
              f'<text x="{WIDTH - RIGHT - 4}" y="{y(goal_ms) - 4:.1f}" text-anchor="end">'
              f'goal {goal_ms:.0f} ms</text>']
    labels = []
    for endpoint in endpoints:
        group = next((g for g in GROUP_COLOURS if endpoint.startswith(g)), "")
        points = [(x(p["vms"]), y(p["p95_ms"][endpoint])) for p in curve
                  if endpoint in p["p95_ms"]]
        over = curve[-1]["p95_ms"][endpoint] >= goal_ms
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{path}" fill="none" '
                     f'stroke="{GROUP_COLOURS.get(group, "#888")}" '
                     f'stroke-width="{2 if over else 1}" opacity="{1 if over else 0.45}">'
                     f'<title>{escape(endpoint)}</title></polyline>')
        if over:
            labels.append((points[-1][1], endpoint, curve[-1]["p95_ms"][endpoint]))
    last_y = -1e9
    for label_y, endpoint, ms in sorted(labels):  # the endpoints over the goal, named
        label_y = max(label_y, last_y + 13)
        last_y = label_y
        short = endpoint if len(endpoint) <= 52 else endpoint[:49] + "..."
        parts.append(f'<text x="{WIDTH - RIGHT + 8}" y="{label_y + 4:.1f}">'
                     f'{escape(short)} ({ms:.0f})</text>')
    legend_y = HEIGHT - BOTTOM - 14 * len(GROUP_COLOURS)
    for i, (group, colour) in enumerate(GROUP_COLOURS.items()):  # right, under the labels
        parts.append(f'<rect x="{WIDTH - RIGHT + 8}" y="{legend_y + 14 * i - 8}" width="10" '
                     f'height="3" fill="{colour}"/><text x="{WIDTH - RIGHT + 22}" '
                     f'y="{legend_y + 14 * i - 4}">{group}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT + 8}" y="{HEIGHT - 12}">thick: over the goal at '
                 'the largest size</text>')
    parts.append("</svg>")
    return "\n".join(parts)
