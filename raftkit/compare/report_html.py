"""report.html: the comparison report as one self-contained page (raftkit/compare/report.py builds
the tables it shares with report.md, and writes both).

Plots are matplotlib (Agg) bar charts with bootstrap error bars, embedded as base64 PNGs so the HTML
file opens anywhere without network access or companion files.
"""

from __future__ import annotations

import base64
import html
import io
import json

from raftkit.compare.metrics import GROUPS, REGISTRY, Metric
from raftkit.compare.report import SystemResult, metric_rows, present, systems_table

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330;margin:0;\
background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:28px 32px 60px;background:#fff;\
box-shadow:0 0 24px #0001}
h1{font-size:26px;margin:0 0 4px}\
h2{font-size:19px;margin:34px 0 10px;border-bottom:2px solid #e3e6ec;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 18px}\
table{border-collapse:collapse;width:100%;margin:8px 0 14px;font-size:14px}
th,td{padding:6px 9px;border-bottom:1px solid #e8ebf0;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}thead th{background:#f0f2f6;font-weight:600}
td .ci{color:#7a8394;font-size:12px;display:block}.best{font-weight:700;color:#0b6b3a}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:14px}\
.plots img{width:100%;border:1px solid #e8ebf0;border-radius:6px}
dl{display:grid;grid-template-columns:230px 1fr;gap:6px 14px;font-size:14px}\
dt{font-weight:600}dd{margin:0;color:#3b4352}
code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f7;border-radius:4px}
pre{padding:10px;overflow-x:auto}code{padding:1px 4px}.note{color:#8a5a00}
.verdict{background:#f3f7ff;border-left:4px solid #3866d6;padding:10px 14px;margin:14px 0}\
.verdict li{margin:3px 0}
"""


def _figure(systems: list[SystemResult], metrics: list[Metric], title: str) -> str:
    """A grouped bar chart (systems on x, one bar per metric) with CI error bars, as a base64
    PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 3.9), dpi=110)
    width = 0.8 / max(1, len(metrics))
    colors = ["#3866d6", "#e0833a", "#3aa26b", "#c94361", "#8a62c9", "#6d7687"]
    x = np.arange(len(systems))
    for j, m in enumerate(metrics):
        stats = [s.metrics.get(m.name) for s in systems]
        vals = [100 * st.value if st else 0.0 for st in stats]
        err = [
            [max(0.0, v - 100 * st.ci[0]) if st and st.ci else 0.0 for v, st in zip(vals, stats)],
            [max(0.0, 100 * st.ci[1] - v) if st and st.ci else 0.0 for v, st in zip(vals, stats)],
        ]
        ax.bar(
            x + (j - (len(metrics) - 1) / 2) * width,
            vals,
            width,
            yerr=err,
            capsize=3,
            label=m.label,
            color=colors[j % len(colors)],
            error_kw={"elinewidth": 1, "ecolor": "#333"},
        )
    ax.set_xticks(x, [s.name for s in systems], fontsize=9)
    low = min(
        [0.0]
        + [100 * s.metrics[m.name].value for s in systems for m in metrics if m.name in s.metrics]
    )
    ax.set_ylim(low - 2 if low < 0 else 0, 102)
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if len(metrics) > 1:  # below the axes: bars reach 100% and would hide a legend inside
        ax.legend(
            fontsize=7.5, ncol=2, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1)
        )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _html_table(
    head: list[str], body: list[list[tuple[str, str]]], best: list[list[bool]] | None = None
) -> str:
    e = html.escape
    rows = []
    for i, r in enumerate(body):
        cells = []
        for j, (value, ci) in enumerate(r):
            cls = " class=best" if best and j > 0 and best[i][j - 1] else ""
            cells.append(
                f"<td{cls}>{e(value)}" + (f"<span class=ci>{e(ci)}</span>" if ci else "") + "</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table><thead><tr>{''.join(f'<th>{e(c)}</th>' for c in head)}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _plots_html(systems: list[SystemResult]) -> str:
    e = html.escape
    imgs = ""
    for group in GROUPS:
        shown = present(systems, group.name)
        for plot in group.plots:
            metrics = [m for m in shown if not plot.only or m.name in plot.only]
            if metrics:
                imgs += (
                    f'<img alt="{e(group.name)} per system" '
                    f'src="data:image/png;base64,{_figure(systems, metrics, plot.title)}">'
                )
    return imgs


def _head_html(results: dict, systems: list[SystemResult]) -> list[str]:
    """The title line, the verdict and the systems table."""
    e, q = html.escape, results["questions"]
    parts = [
        f"<h1>raftkit comparison</h1><p class=sub>{e(', '.join(s.name for s in systems))} &middot; "
        f"{q['count']} questions from <code>{e(q['source'])}</code> "
        f"({e(', '.join(f'{k}: {v}' for k, v in q['by_status'].items()))}) &middot; "
        f"{e(results['created'])}</p>"
    ]
    if results.get("verdict"):
        parts.append(
            "<div class=verdict><b>Verdict</b><ul>"
            + "".join(f"<li>{e(v)}</li>" for v in results["verdict"])
            + "</ul></div>"
        )
    table = systems_table(systems)
    return parts + [
        "<h2>Systems</h2>" + _html_table(table[0], [[(c, "") for c in r] for r in table[1:]])
    ]


def render_html(results: dict, systems: list[SystemResult]) -> str:
    """report.html: verdict, tables, plots (embedded PNGs), definitions and reproduction details in
    one file."""
    e = html.escape
    names = [s.name for s in systems]
    parts = _head_html(results, systems) + [
        "<h2>Plots</h2><p class=sub>Bars: value; whiskers: bootstrap "
        f"{int(100 * results['bootstrap']['level'])}% interval over questions.</p>"
        f"<div class=plots>{_plots_html(systems)}</div>",
    ]
    for group in GROUPS:
        rows = metric_rows(systems, group.name)
        if rows:
            body = [[(m.label, ""), *cells] for m, cells, _ in rows]
            parts.append(
                f"<h2>{e(group.title)}</h2>"
                + _html_table(["metric", *names], body, [b for _, _, b in rows])
            )
    parts.append(
        "<h2>Definitions</h2><dl>"
        + "".join(
            f"<dt>{e(REGISTRY[k].label)}</dt><dd>{e(v)}</dd>"
            for k, v in results["definitions"].items()
        )
        + "</dl>"
    )
    repro = {k: v for k, v in results["reproduce"].items() if k != "command"}
    parts.append(
        f"<h2>Reproduction</h2><pre>{e(results['reproduce']['command'])}</pre>"
        f"<pre>{e(json.dumps(repro, indent=2))}</pre>"
    )
    parts += [f"<p class=note>{e(n)}</p>" for n in results.get("notes", [])]
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>raftkit comparison</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<style>{CSS}</style></head>"
        f"<body><main>{''.join(parts)}</main></body></html>\n"
    )
