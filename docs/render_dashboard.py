#!/usr/bin/env python3
"""Renders a generated Grafana dashboard (deploy/grafana/dashboards/<id>.json) to a PNG, with
the data of a running Prometheus, for machines without Grafana: each panel at its gridPos, stat
panels coloured by their thresholds, time series from `query_range`.

    python3 docs/render_dashboard.py deploy/grafana/dashboards/player.play-events.json \
        --prometheus http://127.0.0.1:9090 --minutes 10 --out docs/dashboard.png

Needs matplotlib (`pip install matplotlib`). See docs/README.md for the whole recipe.
"""

import argparse
import json
import re
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"green": "#37872d", "yellow": "#e0b400", "orange": "#fa6400", "red": "#c4162a"}
ROW_UNIT = 0.42  # inches per grid row
COL_UNIT = 0.75  # inches per grid column


def query_range(base, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr}: {body}")
    return body["data"]["result"]


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or "value"


def color_for(value, steps):
    chosen = steps[0]["color"]
    for step in steps:
        if step["value"] is None or value >= step["value"]:
            chosen = step["color"]
    return COLORS.get(chosen, chosen)


def fmt_value(value, unit):
    if unit == "percentunit":
        return f"{value * 100:.3f}%"
    if unit == "s":
        return f"{value:.3g} s"
    return f"{value:.3g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dashboard")
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--out", default="dashboard.png")
    args = ap.parse_args()

    with open(args.dashboard) as f:
        dash = json.load(f)
    panels = dash["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(24 * COL_UNIT, rows * ROW_UNIT), facecolor="#111217")
    fig.suptitle(dash["title"], color="white", fontsize=16, y=0.998)
    end = time.time()
    start = end - args.minutes * 60
    step = max(1, int(args.minutes * 60 / 240))

    def box(g):
        pad = 0.004
        left = g["x"] / 24 + pad
        width = g["w"] / 24 - 2 * pad
        top = 1 - (g["y"] / rows) - 0.012
        height = g["h"] / rows - 0.02
        return [left, top - height, width, height]

    for p in panels:
        g = p["gridPos"]
        if p["type"] == "row":
            fig.text(g["x"] / 24 + 0.004, 1 - (g["y"] + 0.8) / rows, p["title"],
                     color="#ccccdc", fontsize=12, weight="bold")
            continue
        ax = fig.add_axes(box(g))
        ax.set_facecolor("#181b1f")
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.set_title(p["title"], color="#ccccdc", fontsize=9, loc="left")
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        unit = defaults.get("unit", "")
        if p["type"] == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            result = query_range(args.prometheus, p["targets"][0]["expr"], start, end, step)
            values = [float(v) for s in result for _, v in s["values"] if v not in ("NaN", "+Inf", "-Inf")]
            if values:
                value = values[-1]
                ax.set_facecolor(color_for(value, defaults["thresholds"]["steps"]))
                ax.text(0.5, 0.45, fmt_value(value, unit), color="white", fontsize=20,
                        ha="center", va="center", transform=ax.transAxes)
            else:
                ax.text(0.5, 0.45, "No data", color="#8e8e8e", fontsize=14,
                        ha="center", va="center", transform=ax.transAxes)
            continue
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        drawn = False
        for target in p["targets"]:
            for series in query_range(args.prometheus, target["expr"], start, end, step):
                points = [(float(t), float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not points:
                    continue
                xs = [(t - end) / 60 for t, _ in points]
                ax.plot(xs, [v for _, v in points], linewidth=1.2,
                        label=legend(target.get("legendFormat", ""), series["metric"]))
                drawn = True
        if drawn:
            ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", labelcolor="#ccccdc",
                      edgecolor="#2c3235")
            ax.set_xlabel("minutes", color="#8e8e8e", fontsize=7)
            if unit:
                ax.set_ylabel(unit, color="#8e8e8e", fontsize=7)
        else:
            ax.text(0.5, 0.5, "No data", color="#8e8e8e", fontsize=12, ha="center",
                    va="center", transform=ax.transAxes)
    fig.savefig(args.out, dpi=80, facecolor=fig.get_facecolor())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
