"""The comparison report: results.json, per_question.csv, report.md and a self-contained
report.html.

Every table, plot, definition and CSV column comes from the metric registry
(raftkit/compare/metrics.py). The tables are built here, once for both formats; report.html, with
its plots, is rendered by raftkit/compare/report_html.py.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from raftkit import files
from raftkit.compare.intervals import Stat
from raftkit.compare.metrics import GROUPS, METRICS, REGISTRY, Metric
from raftkit.compare.scoring import ScoredRow

ROW_FIELDS = (
    "qid",
    "system",
    "status",
    "question",
    "reference",
    "answer",
    "mc_loglik_pick",
    "mc_generated_pick",
    "quotes",
    "quotes_unsupported",
    "retrieved",
)


@dataclass
class SystemResult:
    """One system's part of the report: what it is, how fast it ran, and its metrics."""

    name: str
    model: str
    mode: str
    index: str
    top_k: int
    model_info: dict
    questions: int
    speed: dict
    metrics: dict[str, Stat] = field(default_factory=dict)
    paired: dict[str, Stat] = field(
        default_factory=dict
    )  # against the baseline (empty for the baseline itself)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "model": self.model,
            "mode": self.mode,
            "index": self.index,
            "top_k": self.top_k,
            "model_info": self.model_info,
            "questions": self.questions,
            "speed": self.speed,
            "metrics": {k: s.to_json() for k, s in self.metrics.items()},
            "paired": {k: s.to_json() for k, s in self.paired.items()},
        }


def points(value: float, metric: Metric, signed: bool = False) -> str:
    """A value as the report shows it: '77.5%' for a share, '-30.0' for a score (x100), '+12.5' for
    a difference."""
    text = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return text if signed or metric.score else text + "%"


def cell(stat: Stat | None, metric: Metric, signed: bool = False) -> tuple[str, str]:
    """(value, interval) texts of a statistic; ('–', '') when there is none."""
    if stat is None or stat.value is None:
        return "–", ""
    ci = (
        f"[{points(stat.ci[0], metric, signed)}, {points(stat.ci[1], metric, signed)}]"
        if stat.ci
        else ""
    )
    return points(stat.value, metric, signed), ci


def present(systems: list[SystemResult], group: str) -> list[Metric]:
    """The metrics of `group` that some system has a value for, in registry order."""
    return [m for m in METRICS if m.group == group and any(m.name in s.metrics for s in systems)]


def _best(systems: list[SystemResult], m: Metric) -> float | None:
    known = [s.metrics[m.name].value for s in systems if m.name in s.metrics]
    if len(set(known)) < 2:  # a column of equal values has no winner
        return None
    return min(known) if m.lower_is_better else max(known)


# ----------------------------------------------------------------------------- tables
def metric_rows(
    systems: list[SystemResult], group: str
) -> list[tuple[Metric, list[tuple[str, str]], list[bool]]]:
    """Per metric of `group`: the (value, interval) cell of each system and whether it is the
    best."""
    out = []
    for m in present(systems, group):
        best = _best(systems, m)
        stats = [s.metrics.get(m.name) for s in systems]
        out.append(
            (
                m,
                [cell(st, m) for st in stats],
                [st is not None and st.value == best for st in stats],
            )
        )
    return out


def _score_gate(min_score: float | None) -> str:
    return f"score < {min_score:.3f}" if min_score is not None else "–"


def systems_table(systems: list[SystemResult]) -> list[list[str]]:
    rows = [
        ["system", "model", "mode", "index", "top_k", "evidence gate", "questions", "questions/s"]
    ]
    for s in systems:
        qps = s.speed.get("questions_per_s")
        gate = s.model_info.get("gate") or _score_gate(s.model_info.get("min_score"))
        rows.append(
            [
                s.name,
                s.model,
                s.mode,
                s.index or "–",
                str(s.top_k) if s.mode == "rag" else "–",
                gate,
                str(s.questions),
                f"{qps:.2f}" if qps else "–",
            ]
        )
    return rows


def _md_table(rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return out + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]


def _intro(results: dict) -> str:
    q, b = results["questions"], results["bootstrap"]
    return (
        f"{q['count']} questions from `{q['source']}` "
        f"({', '.join(f'{k}: {v}' for k, v in q['by_status'].items())}). Values are percentages "
        f"with bootstrap {int(100 * b['level'])}% intervals ({b['samples']} resamples of the "
        f"questions, seed {b['seed']})."
    )


def render_markdown(results: dict, systems: list[SystemResult]) -> str:
    """report.md: the same tables as the HTML report, without plots."""
    names = [s.name for s in systems]
    lines = [f"# raftkit comparison: {', '.join(names)}", "", _intro(results), ""]
    if results.get("verdict"):
        lines += ["## Verdict", ""] + [f"- {v}" for v in results["verdict"]] + [""]
    lines += ["## Systems", ""] + _md_table(systems_table(systems))
    for group in GROUPS:
        rows = metric_rows(systems, group.name)
        if rows:
            table = [["metric", *names]] + [
                [m.label, *[f"{v} {ci}".strip() for v, ci in cells]] for m, cells, _ in rows
            ]
            lines += ["", f"## {group.title}", ""] + _md_table(table)
    lines += ["", "## Definitions", ""] + [
        f"- **{REGISTRY[k].label}** (`{k}`): {v}" for k, v in results["definitions"].items()
    ]
    lines += [
        "",
        "## Reproduction",
        "",
        "```",
        results["reproduce"]["command"],
        "```",
        "",
        "```json",
        json.dumps({k: v for k, v in results["reproduce"].items() if k != "command"}, indent=2),
        "```",
    ]
    lines += [line for note in results.get("notes", []) for line in ("", f"> {note}")]
    return "\n".join(lines) + "\n"


def csv_fields() -> list[str]:
    """per_question.csv's columns: who and what was asked, then one column per metric that has
    per-question values."""
    return (
        list(ROW_FIELDS)
        + [m.column for m in METRICS if m.column and m.group != "ragas"]
        + [m.column for m in METRICS if m.column and m.group == "ragas"]
    )


def write_csv(path: Path, rows: list[ScoredRow]) -> Path:
    """per_question.csv: one line per (question, system); retrieved chunk ids joined with ' '."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_fields(), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        line = {f: getattr(r, f) for f in ROW_FIELDS}
        line["retrieved"] = " ".join(r.retrieved)
        line.update({m.column: "" if (v := m.value(r)) is None else v for m in METRICS if m.column})
        writer.writerow(line)
    return files.write_text(path, buf.getvalue())


def write_report(
    out: Path, results: dict, systems: list[SystemResult], rows: list[ScoredRow]
) -> dict[str, Path]:
    """Write the four report files into `out` (each atomically); returns their paths."""
    from raftkit.compare.report_html import render_html

    return {
        "results.json": files.write_json(out / "results.json", results),
        "per_question.csv": write_csv(out / "per_question.csv", rows),
        "report.md": files.write_text(out / "report.md", render_markdown(results, systems)),
        "report.html": files.write_text(out / "report.html", render_html(results, systems)),
    }
