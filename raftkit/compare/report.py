"""The comparison report: results.json, per_question.csv, report.md and a self-contained report.html.

Plots are matplotlib (Agg) bar charts with bootstrap error bars, embedded as base64 PNGs so the HTML
file opens anywhere without network access or companion files.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from raftkit import atomic

ACCURACY = ("accuracy", "em", "f1", "substring", "mc_loglik_accuracy", "mc_generated_accuracy")
HALLUCINATION = ("confident_wrong_rate", "unanswerable_answered_rate", "unsupported_quote_rate", "abstention_rate")
FRESHNESS = ("accuracy_unchanged", "accuracy_changed", "accuracy_added", "stale_rate")
RAGAS = ("ragas_string_similarity", "ragas_rouge_l", "ragas_context_precision", "ragas_context_recall",
         "ragas_faithfulness", "ragas_answer_correctness")
LABELS = {
    "accuracy": "Accuracy", "em": "Exact match", "f1": "Token F1", "substring": "Substring match",
    "mc_loglik_accuracy": "MC accuracy (log-likelihood)", "mc_generated_accuracy": "MC accuracy (generated)",
    "confident_wrong_rate": "Confident-wrong", "unanswerable_answered_rate": "Unanswerable answered",
    "unsupported_quote_rate": "Unsupported quotes", "abstention_rate": "Abstention",
    "accuracy_unchanged": "Accuracy: unchanged facts", "accuracy_changed": "Accuracy: changed facts",
    "accuracy_added": "Accuracy: added facts", "stale_rate": "Stale (v1 answer to a changed fact)",
    "ragas_string_similarity": "ragas string similarity", "ragas_rouge_l": "ragas ROUGE-L",
    "ragas_context_precision": "ragas context precision", "ragas_context_recall": "ragas context recall",
    "ragas_faithfulness": "ragas faithfulness", "ragas_answer_correctness": "ragas answer correctness",
}
CSV_FIELDS = ("qid", "system", "status", "question", "reference", "answer", "correct", "abstained", "em", "f1",
              "substring", "mc_loglik_pick", "mc_generated_pick", "stale", "quotes", "quotes_unsupported",
              "retrieved")
CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:28px 32px 60px;background:#fff;box-shadow:0 0 24px #0001}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;border-bottom:2px solid #e3e6ec;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 18px}table{border-collapse:collapse;width:100%;margin:8px 0 14px;font-size:14px}
th,td{padding:6px 9px;border-bottom:1px solid #e8ebf0;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}thead th{background:#f0f2f6;font-weight:600}
td .ci{color:#7a8394;font-size:12px;display:block}.best{font-weight:700;color:#0b6b3a}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:14px}.plots img{width:100%;border:1px solid #e8ebf0;border-radius:6px}
dl{display:grid;grid-template-columns:230px 1fr;gap:6px 14px;font-size:14px}dt{font-weight:600}dd{margin:0;color:#3b4352}
code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f7;border-radius:4px}
pre{padding:10px;overflow-x:auto}code{padding:1px 4px}.note{color:#8a5a00}
"""
LOWER_IS_BETTER = {"confident_wrong_rate", "unanswerable_answered_rate", "unsupported_quote_rate", "stale_rate"}


def _pct(stat: dict | None, ci: bool = True) -> str:
    if not stat or stat.get("value") is None:
        return "–"
    text = f"{100 * stat['value']:.1f}%"
    if ci and stat.get("ci"):
        lo, hi = stat["ci"]
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def _present(results: dict, keys: tuple) -> list[str]:
    return [k for k in keys if any(k in s["metrics"] for s in results["systems"])]


def _figure(results: dict, keys: list[str], title: str) -> str:
    """A grouped bar chart (systems on x, one bar per metric) with CI error bars, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    systems = [s["name"] for s in results["systems"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.9), dpi=110)
    width = 0.8 / max(1, len(keys))
    colors = ["#3866d6", "#e0833a", "#3aa26b", "#c94361", "#8a62c9", "#6d7687"]
    x = np.arange(len(systems))
    for j, key in enumerate(keys):
        stats = [s["metrics"].get(key) for s in results["systems"]]
        vals = [100 * st["value"] if st and st["value"] is not None else 0.0 for st in stats]
        err = [[max(0.0, v - 100 * st["ci"][0]) if st and st.get("ci") else 0.0 for v, st in zip(vals, stats)],
               [max(0.0, 100 * st["ci"][1] - v) if st and st.get("ci") else 0.0 for v, st in zip(vals, stats)]]
        ax.bar(x + (j - (len(keys) - 1) / 2) * width, vals, width, yerr=err, capsize=3, label=LABELS[key],
               color=colors[j % len(colors)], error_kw={"elinewidth": 1, "ecolor": "#333"})
    ax.set_xticks(x, systems, fontsize=9)
    ax.set_ylim(0, 102)
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if len(keys) > 1:  # below the axes: bars reach 100% and would hide a legend inside
        ax.legend(fontsize=7.5, ncol=2, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table_rows(results: dict, keys: list[str]) -> list[tuple[str, list[str], list[bool]]]:
    rows = []
    for key in keys:
        stats = [s["metrics"].get(key) for s in results["systems"]]
        vals = [st["value"] if st and st["value"] is not None else None for st in stats]
        known = [v for v in vals if v is not None]
        # Mark a winner only where systems differ: a column of equal values has none.
        best = (min(known) if key in LOWER_IS_BETTER else max(known)) if len(set(known)) > 1 else None
        rows.append((key, [_pct(st) for st in stats], [v is not None and v == best for v in vals]))
    return rows


def _sections(results: dict) -> list[tuple[str, list[str]]]:
    out = [("Accuracy", _present(results, ACCURACY)), ("Hallucination", _present(results, HALLUCINATION)),
           ("Freshness", _present(results, FRESHNESS)), ("ragas", _present(results, RAGAS))]
    return [(title, keys) for title, keys in out if keys]


def _systems_table(results: dict) -> list[list[str]]:
    head = ["system", "model", "mode", "index", "top_k", "questions", "questions/s"]
    rows = [head]
    for s in results["systems"]:
        qps = s["speed"].get("questions_per_s")
        rows.append([s["name"], s["model"], s["mode"], s["index"] or "–", str(s["top_k"]) if s["mode"] == "rag"
                     else "–", str(s["questions"]), f"{qps:.2f}" if qps else "–"])
    return rows


def render_markdown(results: dict) -> str:
    """report.md: the same tables as the HTML report, without plots."""
    names = [s["name"] for s in results["systems"]]
    q = results["questions"]
    lines = [f"# raftkit comparison: {', '.join(names)}", "",
             f"{q['count']} questions from `{q['source']}` ({', '.join(f'{k}: {v}' for k, v in q['by_status'].items())})."
             f" Values are percentages with bootstrap {int(100 * results['bootstrap']['level'])}% intervals "
             f"({results['bootstrap']['samples']} resamples of the questions, seed {results['bootstrap']['seed']}).", ""]
    lines += ["## Systems", ""] + _md_table(_systems_table(results))
    for title, keys in _sections(results):
        table = [["metric", *names]] + [[LABELS[k], *cells] for k, cells, _ in _table_rows(results, keys)]
        lines += ["", f"## {title}", ""] + _md_table(table)
    lines += ["", "## Definitions", ""]
    lines += [f"- **{LABELS.get(k, k)}** (`{k}`): {v}" for k, v in results["definitions"].items()]
    lines += ["", "## Reproduction", "", "```", results["reproduce"]["command"], "```", "",
              "```json", json.dumps({k: v for k, v in results["reproduce"].items() if k != "command"}, indent=2), "```"]
    for note in results.get("notes", []):
        lines += ["", f"> {note}"]
    return "\n".join(lines) + "\n"


def _md_table(rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return out + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]


def _html_table(rows: list[list[str]], best: list[list[bool]] | None = None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = []
    for i, r in enumerate(rows[1:]):
        cells = []
        for j, c in enumerate(r):
            value, _, ci = c.partition(" [")
            inner = html.escape(value) + (f"<span class=ci>[{html.escape(ci)}</span>" if ci else "")
            cls = " class=best" if best and j > 0 and best[i][j - 1] else ""
            cells.append(f"<td{cls}>{inner}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(results: dict) -> str:
    """report.html: tables, plots (embedded PNGs), definitions and reproduction details in one file."""
    names = [s["name"] for s in results["systems"]]
    q = results["questions"]
    e = html.escape
    plots = [("accuracy", _present(results, ("accuracy",)), "Accuracy"),
             ("hallucination", _present(results, HALLUCINATION), "Hallucination (lower is better, except abstention)"),
             ("freshness", _present(results, FRESHNESS), "Freshness: v1 -> v2")]
    imgs = "".join(f'<img alt="{e(name)} per system" src="data:image/png;base64,{_figure(results, keys, title)}">'
                   for name, keys, title in plots if keys)
    parts = [f"<h1>raftkit comparison</h1><p class=sub>{e(', '.join(names))} &middot; {q['count']} questions from "
             f"<code>{e(q['source'])}</code> ({e(', '.join(f'{k}: {v}' for k, v in q['by_status'].items()))}) "
             f"&middot; {e(results['created'])}</p>",
             "<h2>Systems</h2>" + _html_table(_systems_table(results)),
             f"<h2>Plots</h2><p class=sub>Bars: value; whiskers: bootstrap {int(100 * results['bootstrap']['level'])}% "
             f"interval over questions.</p><div class=plots>{imgs}</div>"]
    for title, keys in _sections(results):
        rows = _table_rows(results, keys)
        table = [["metric", *names]] + [[LABELS[k], *cells] for k, cells, _ in rows]
        parts.append(f"<h2>{e(title)}</h2>" + _html_table(table, [b for _, _, b in rows]))
    parts.append("<h2>Definitions</h2><dl>" + "".join(
        f"<dt>{e(LABELS.get(k, k))}</dt><dd>{e(v)}</dd>" for k, v in results["definitions"].items()) + "</dl>")
    repro = {k: v for k, v in results["reproduce"].items() if k != "command"}
    parts.append(f"<h2>Reproduction</h2><pre>{e(results['reproduce']['command'])}</pre>"
                 f"<pre>{e(json.dumps(repro, indent=2))}</pre>")
    parts += [f"<p class=note>{e(n)}</p>" for n in results.get("notes", [])]
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>raftkit comparison</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n")


def write_csv(path: Path, rows: list[dict]) -> Path:
    """per_question.csv: one line per (question, system); retrieved chunk ids joined with ' '."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "retrieved": " ".join(r["retrieved"])})
    return atomic.write_text(path, buf.getvalue())


def write_report(out: Path, results: dict, rows: list[dict]) -> dict[str, Path]:
    """Write the four report files into `out` (each atomically); returns their paths."""
    return {"results.json": atomic.write_json(out / "results.json", results),
            "per_question.csv": write_csv(out / "per_question.csv", rows),
            "report.md": atomic.write_text(out / "report.md", render_markdown(results)),
            "report.html": atomic.write_text(out / "report.html", render_html(results))}
