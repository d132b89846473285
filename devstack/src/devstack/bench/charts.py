"""Charts of a run, drawn from its JSON alone (matplotlib, Agg backend: no display needed).

* ``ratio.png``: ours ÷ peer req/s per side-by-side scenario, with each scenario's target;
* ``latency.png``: p50/p90/p99 per side-by-side scenario, both systems (log scale);
* ``growth.png``: the growth runs, latency (one connection) and req/s against the item count.

A chart whose data the run lacks (no peer, no growth sizes) is not drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from devstack.bench.sidebyside import SCENARIOS, TITLES, ratios
from devstack.bench.targets import RATIO_TARGETS

RATIO = "ratio.png"
LATENCY = "latency.png"
GROWTH = "growth.png"
COLORS = {"ours": "#1f77b4", "peer": "#ff7f0e"}
_DPI = 110


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def ratio_chart(results: Mapping[str, Any], path: Path) -> Path | None:
    rows = ratios(results.get("side_by_side") or {})
    rows = [r for r in rows if r["rps_ratio"] is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(8, 4.2))
    xs = list(range(len(rows)))
    values = [float(r["rps_ratio"]) for r in rows]
    bars = axes.bar(xs, values, color=COLORS["ours"], width=0.6, label="ours ÷ peer, req/s")
    for x, row in zip(xs, rows, strict=True):
        goal = RATIO_TARGETS.get(row["scenario"])
        if goal is not None:
            axes.hlines(goal, x - 0.4, x + 0.4, colors="#d62728", linestyles="--", linewidth=2)
    axes.plot([], [], color="#d62728", linestyle="--", label="target")
    axes.axhline(1.0, color="grey", linewidth=0.8)
    axes.bar_label(bars, labels=[f"{v:.1f}x" for v in values], padding=2)
    axes.set_xticks(xs, [r["title"] for r in rows])
    axes.set_ylabel("ours ÷ peer (req/s)")
    axes.set_title("Throughput against the peer, same run, same machine")
    axes.legend(loc="upper right")
    return _save(figure, path)


def latency_chart(results: Mapping[str, Any], path: Path) -> Path | None:
    summary = (results.get("side_by_side") or {}).get("summary") or {}
    scenarios = [s for s in SCENARIOS if s in summary]
    if not scenarios:
        return None
    systems = [name for name in ("peer", "ours") if any(name in summary[s] for s in scenarios)]
    percentiles = ("p50_ms", "p90_ms", "p99_ms")
    figure, axes = plt.subplots(figsize=(10, 4.6))
    width = 0.8 / (len(systems) * len(percentiles))
    shades = {"p50_ms": 0.45, "p90_ms": 0.7, "p99_ms": 1.0}
    offset = 0
    for system in systems:
        for key in percentiles:
            xs, ys = [], []
            for i, scenario in enumerate(scenarios):
                data = summary[scenario].get(system)
                if data is not None:
                    xs.append(i - 0.4 + (offset + 0.5) * width)
                    ys.append(max(float(data[key]), 0.01))
            axes.bar(
                xs,
                ys,
                width=width,
                color=COLORS[system],
                alpha=shades[key],
                label=f"{system} {key.removesuffix('_ms')}",
            )
            offset += 1
    axes.set_yscale("log")
    axes.set_xticks(list(range(len(scenarios))), [TITLES[s] for s in scenarios])
    axes.set_ylabel("latency, ms (log)")
    axes.set_title("Latency percentiles per scenario")
    axes.legend(ncol=len(systems), fontsize="small")
    return _save(figure, path)


def growth_chart(results: Mapping[str, Any], path: Path) -> Path | None:
    growth = results.get("growth") or []
    if not growth:
        return None
    conns = results["config"]["connections"]
    sizes = [int(g["size"]) for g in growth]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    for key in growth[0]["paths"]:
        p50 = [float(g["paths"][key]["c1"]["p50_ms"]) for g in growth]
        rps = [float(g["paths"][key][f"c{conns}"]["rps"]) for g in growth]
        left.plot(sizes, p50, marker="o", label=key)
        right.plot(sizes, rps, marker="o", label=key)
    for axes in (left, right):
        axes.set_xscale("log")
        axes.set_xlabel("items in the table (log)")
        axes.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("p50 latency, 1 connection, ms (log)")
    left.set_title("Latency as the data grows")
    right.set_ylabel(f"req/s at {conns} connections")
    right.set_title("Throughput as the data grows")
    right.legend(fontsize="small")
    return _save(figure, path)


def render_charts(results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Every chart the results have data for, written into ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = [
        ratio_chart(results, out_dir / RATIO),
        latency_chart(results, out_dir / LATENCY),
        growth_chart(results, out_dir / GROWTH),
    ]
    return [path for path in drawn if path is not None]
