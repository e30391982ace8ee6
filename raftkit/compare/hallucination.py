"""Hallucination rates of one system, from its scored rows (one dict per question).

A row holds `answerable` (False for questions whose evidence is absent), `abstained` (the answer span
is a refusal, see scoring.ABSTENTIONS), `gen_correct` (the generated answer is right), `quotes` and
`quotes_unsupported` (counts). Each function returns (rate, per-question values) so the report can
bootstrap a confidence interval over the same values; rate is None when no question qualifies.
"""

from __future__ import annotations

from raftkit.compare.scoring import mean

DEFINITIONS = {
    "abstention_rate": "Share of all questions whose answer span is a refusal (\"I don't know\", "
                       "\"The documents do not contain the answer.\", ...).",
    "confident_wrong_rate": "Share of answerable questions the system answered (did not abstain) with a "
                            "wrong generated answer.",
    "unanswerable_answered_rate": "Share of unanswerable questions (evidence in no document, or its documents "
                                  "removed from the index) that the system answered instead of abstaining.",
    "unsupported_quote_rate": "Mean, over replies holding at least one ##begin_quote## quote, of the share of "
                              "their quotes not found (whitespace-normalised) in the documents given to that "
                              "system for that question. A closed-book system is given no documents, so all "
                              "of its quotes are unsupported.",
}


def abstention_rate(rows: list[dict]) -> tuple[float | None, list[float]]:
    """Share of rows that abstained."""
    values = [float(r["abstained"]) for r in rows]
    return mean(values), values


def confident_wrong_rate(rows: list[dict]) -> tuple[float | None, list[float]]:
    """Share of answerable rows answered (no abstention) and wrong."""
    values = [float(not r["abstained"] and not r["gen_correct"]) for r in rows if r["answerable"]]
    return mean(values), values


def unanswerable_answered_rate(rows: list[dict]) -> tuple[float | None, list[float]]:
    """Share of unanswerable rows that did not abstain."""
    values = [float(not r["abstained"]) for r in rows if not r["answerable"]]
    return mean(values), values


def unsupported_quote_rate(rows: list[dict]) -> tuple[float | None, list[float]]:
    """Mean share of unsupported quotes over the rows that quote at all."""
    values = [r["quotes_unsupported"] / r["quotes"] for r in rows if r["quotes"]]
    return mean(values), values


METRICS = {
    "abstention_rate": abstention_rate,
    "confident_wrong_rate": confident_wrong_rate,
    "unanswerable_answered_rate": unanswerable_answered_rate,
    "unsupported_quote_rate": unsupported_quote_rate,
}
