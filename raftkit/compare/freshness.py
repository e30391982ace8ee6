"""Freshness: accuracy on facts unchanged, changed and added between corpus v1 and v2, and staleness.

Fine-tuned systems learn v1; RAG systems read an index updated to v2. A *stale* answer to a changed
fact is the v1 answer: for open answers it matches `answer_v1` and not the v2 answer; for multiple
choice the log-likelihood pick is the v1 choice (`answer_index_v1`).
"""

from __future__ import annotations

from raftkit.compare.scoring import matches, mean

STATUSES = ("unchanged", "changed", "added")

DEFINITIONS = {
    "accuracy_unchanged": "Accuracy on questions whose answer is the same in v1 and v2.",
    "accuracy_changed": "Accuracy (against the v2 answer) on questions whose answer changed from v1 to v2.",
    "accuracy_added": "Accuracy on questions whose evidence exists only in v2.",
    "stale_rate": "Share of changed questions answered with the v1 answer: for multiple choice the "
                  "log-likelihood pick is the v1 choice; for open answers the answer span matches answer_v1 "
                  "and not the v2 answer.",
}


def is_stale_open(answer: str, answer_v1: str | None, answer_v2: str | None) -> bool:
    """Whether an open answer gives the v1 answer of a changed fact (and not the v2 one)."""
    return matches(answer, answer_v1) and not matches(answer, answer_v2)


def is_stale_mc(pick: int | None, answer_index_v1: int | None) -> bool:
    """Whether the multiple-choice pick is the v1 choice of a changed fact."""
    return pick is not None and answer_index_v1 is not None and pick == answer_index_v1


def status_from_period(period: str | None) -> str:
    """RealTimeQA-style `period`: v1 facts were known at training time (unchanged), v2 ones are added."""
    return {"v1": "unchanged", "v2": "added"}.get(period or "", "unchanged")


def accuracy_by_status(rows: list[dict]) -> dict[str, tuple[float | None, list[float]]]:
    """{status: (accuracy, per-question correctness)} for unchanged, changed and added rows."""
    out = {}
    for status in STATUSES:
        values = [float(r["correct"]) for r in rows if r["status"] == status and r["answerable"]]
        out[status] = (mean(values), values)
    return out


def stale_rate(rows: list[dict]) -> tuple[float | None, list[float]]:
    """Share of changed rows whose answer is stale (row['stale'])."""
    values = [float(r["stale"]) for r in rows if r["status"] == "changed" and r["answerable"]]
    return mean(values), values
