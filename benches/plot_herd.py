#!/usr/bin/env python3
"""Plots the herd benchmark: connect attempts per 100 ms window after 10 000
viewers drop at once, one line per schedule, one panel per outage length.

    cargo bench --bench herd && python3 benches/plot_herd.py

Reads target/herd/attempts.csv, writes docs/herd.svg. Standard library only.
"""

import csv
import collections
import html
import math
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "target" / "herd" / "attempts.csv"
OUT = ROOT / "docs" / "herd.svg"
SECONDS = 12  # the interesting part: the first seconds after the drop
COLORS = ["#d62728", "#7f7f7f", "#ff7f0e", "#9467bd", "#2ca02c", "#1f77b4", "#8c564b"]
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 900, 300, 70, 260, 30, 40


def load():
    series = collections.OrderedDict()
    with SOURCE.open() as f:
        for row in csv.DictReader(f):
            key = (int(row["back_s"]), row["schedule"])
            series.setdefault(key, {})[int(row["window_start_ms"])] = int(row["attempts"])
    return series


def panel(series, back, top):
    names = [name for (b, name) in series if b == back]
    peak = max(max(series[(back, n)].values()) for n in names)
    ymax = 10 ** math.ceil(math.log10(max(peak, 10)))
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(ms):
        return PAD_L + plot_w * ms / (SECONDS * 1000)

    def y(n):
        # log scale: 1 .. ymax
        return top + PAD_T + plot_h * (1 - math.log10(max(n, 1)) / math.log10(ymax))

    out = [f'<text x="{PAD_L}" y="{top + 18}" font-size="14" font-weight="bold">'
           f"Publisher back after {back} s: connect attempts per 100 ms (log scale)</text>"]
    for decade in range(int(math.log10(ymax)) + 1):
        n = 10 ** decade
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(n):.1f}" y2="{y(n):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y(n) + 4:.1f}" font-size="11" text-anchor="end">{n}</text>')
    for s in range(0, SECONDS + 1, 2):
        out.append(f'<text x="{x(s * 1000):.1f}" y="{top + H - 18}" font-size="11" text-anchor="middle">{s} s</text>')
    for i, name in enumerate(names):
        data = series[(back, name)]
        points = " ".join(
            f"{x(ms):.1f},{y(data.get(ms, 0)):.1f}" for ms in range(0, SECONDS * 1000, 100)
        )
        color = COLORS[i % len(COLORS)]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>')
        label = html.escape(name.replace("**", ""))
        ly = top + PAD_T + 14 + 18 * i
        out.append(f'<rect x="{W - PAD_R + 12}" y="{ly - 9}" width="12" height="3" fill="{color}"/>')
        out.append(f'<text x="{W - PAD_R + 30}" y="{ly - 4}" font-size="11">{label}</text>')
    return out


def main():
    series = load()
    backs = sorted({b for (b, _) in series})
    body = []
    for i, back in enumerate(backs):
        body += panel(series, back, i * H)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H * len(backs)}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
           + "".join(body) + "</svg>\n")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(svg)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
