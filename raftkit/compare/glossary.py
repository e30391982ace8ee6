"""docs/metrics.md, written from the metric registry so the user's page cannot drift from the code.

`python -m raftkit.compare.glossary` rewrites docs/metrics.md; tests/test_docs.py fails when the
file and `metrics_markdown()` differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from raftkit.compare import metrics

INTRO = """\
# Metrics of `raftkit compare`

<!-- Generated from raftkit/compare/metrics.py by `python -m raftkit.compare.glossary`:
     edit the registry, not this file. -->

Every number `raftkit compare` reports is one entry of the metric registry
(`raftkit/compare/metrics.py`): results.json, the columns of per_question.csv, the tables, plots
and definitions of report.html and report.md, the table printed at the end of the command and its
verdict all read that list. A metric is the mean over the questions it counts, a value between 0
and 1 shown in % (or, for a signed score, in points from -100 to 100).

Every value carries a 95% interval: a percentile bootstrap over questions with a fixed seed
(`bootstrap.samples`, `bootstrap.seed`). With `baseline: SYSTEM` in the compare recipe every other
system also gets paired differences against that system, resampling the questions both answered, so
"+12.5 points [+4.0, +21.0]" reads directly: the interval excludes 0 or it does not. How to read a
report is in [compare.md](compare.md).
"""


def inline(text: str) -> str:
    """`text` with its prompt tags (`<ANSWER>:`, `<choice>`) in code spans, which Markdown would
    otherwise take for HTML and hide."""
    return re.sub(r"(?<!`)(<[A-Za-z_]+>:?)", r"`\1`", text)


def _facts(m: metrics.Metric) -> str:
    """The one line under a definition: direction, where it appears, and when it applies."""
    facts = ["shown in points (x100)" if m.score else "shown in %"]
    facts.append(f"the report marks the {'lowest' if m.lower_is_better else 'highest'} value best")
    if m.combine:
        facts.append("combines " + " and ".join(f"`{p}`" for p in m.parts))
    if m.column:
        facts.append(f"per_question.csv column `{m.column}`")
    if m.headline:
        facts.append(f'printed table column "{m.headline}"')
    if m.verdict:
        facts.append("can decide its group's verdict")
    text = "; ".join(facts) + "."
    if m.applies is not metrics._always and m.applies.__doc__:
        text += " " + m.applies.__doc__.strip()  # when the report shows it at all
    return text


def metrics_markdown() -> str:
    """The text of docs/metrics.md: every metric of the registry, by report group, in registry
    order."""
    parts = [INTRO]
    for group in metrics.GROUPS:
        members = [m for m in metrics.METRICS if m.group == group.name]
        if not members:
            continue
        parts.append(f"## {group.title}\n")
        for m in members:
            parts.append(f"**{m.label}** (`{m.name}`): {inline(m.definition)}\n*{_facts(m)}*\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Write docs/metrics.md (or the path given) from the registry; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
    out.write_text(metrics_markdown(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
