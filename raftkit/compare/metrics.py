"""The metric registry: every number `raftkit compare` reports, defined once.

A metric is the mean over questions of a per-question value (`value(row)`; None = the question does
not count), or a combination of other metrics (`combine`, e.g. an F1). From this one list come
results.json, the per-question columns of per_question.csv, the report's tables, plots and
definitions, the printed summary table and the verdict. Adding a metric is adding an entry here.
The report's sections (GROUPS: title, verdict line, plots) and the verdict's cautions (CAUTIONS)
are entries here too.

The numbers themselves, each with its bootstrap interval, are computed in
raftkit/compare/intervals.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from raftkit.compare.scoring import ScoredRow


@dataclass(frozen=True)
class Plot:
    """A bar chart of the report: its title and the metrics of its group it draws."""

    title: str
    only: tuple[str, ...] = ()  # metric names to draw; () = every metric of the group present


@dataclass(frozen=True)
class Group:
    """A section of the report: the `group` its metrics name, its heading, and its plots."""

    name: str
    title: str
    verdict: bool = False  # a verdict line about its first `verdict` metric that applies
    plots: tuple[Plot, ...] = ()


# In report order; the verdict's lines and the plots follow it too.
GROUPS: tuple[Group, ...] = (
    Group("accuracy", "Accuracy", verdict=True, plots=(Plot("Accuracy", only=("accuracy",)),)),
    Group(
        "hallucination",
        "Hallucination",
        verdict=True,
        plots=(Plot("Hallucination (lower is better, except abstention)"),),
    ),
    Group("freshness", "Freshness", verdict=True, plots=(Plot("Freshness: v1 -> v2"),)),
    Group("ragas", "ragas"),
)


@dataclass(frozen=True)
class Caution:
    """A verdict line for every system whose metric `metric` is at least `at`."""

    metric: str
    at: float
    message: str  # formatted with system= (its name) and value= (the metric as the report shows it)


CAUTIONS: tuple[Caution, ...] = (
    # A system that refuses (nearly) everything wins on hallucination, and on truthfulness over a
    # system that answers, by refusing, not by telling when the evidence is absent.
    Caution(
        "over_refusal_rate",
        0.9,
        "caution: {system} refused {value} of the answerable questions; its hallucination figures "
        "come from refusing nearly everything, not from telling when the evidence is absent",
    ),
)


def _always(rows: list[ScoredRow]) -> bool:
    return True


def _fresh(rows: list[ScoredRow]) -> bool:
    """Freshness metrics apply when some questions carry changed or added facts."""
    return any(r.status in ("changed", "added") for r in rows)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    group: str  # the name of one of GROUPS: the report section it is shown in
    definition: str
    value: Callable[[ScoredRow], float | bool | None] | None = (
        None  # per question; None = does not count
    )
    lower_is_better: bool = False
    column: str = ""  # its per-question column in per_question.csv ('' = none)
    headline: str = ""  # its column in the printed summary table ('' = not there)
    headline_at: int = (
        0  # where that column sits (the table mixes groups: accuracy, freshness, hallucination)
    )
    verdict: bool = False  # the verdict of its group is about the first such metric that applies
    applies: Callable[[list[ScoredRow]], bool] = _always
    combine: Callable[..., float] | None = None  # a function of the metrics named in `parts`
    parts: tuple[str, ...] = ()
    score: bool = False  # a signed score in [-1, 1] rather than a share; shown in points, not %


def _answerable(get: Callable[[ScoredRow], object]) -> Callable[[ScoredRow], float | bool | None]:
    """`get(row)` on answerable questions (None where it has no value); None on the others."""

    def value(r: ScoredRow):
        if not r.answerable:
            return None
        v = get(r)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    return value


def _status(status: str):
    return lambda r: r.correct if r.answerable and r.status == status else None


def _ragas(name: str, label: str, definition: str) -> Metric:
    return Metric(
        name, label, "ragas", definition, _answerable(lambda r: r.ragas.get(name)), column=name
    )


METRICS: list[Metric] = [
    Metric(
        "accuracy",
        "Accuracy",
        "accuracy",
        "Primary correctness over answerable questions: the highest log-likelihood choice when the "
        "question has choices (Ovadia et al. 2023), else the open answer is correct (exact match, "
        "or the normalised reference occurs as whole words in the normalised answer span).",
        _answerable(lambda r: r.correct),
        column="correct",
        headline="accuracy",
        headline_at=1,
        verdict=True,
    ),
    Metric(
        "em",
        "Exact match",
        "accuracy",
        "SQuAD exact match of the <ANSWER>: span (lower case, no punctuation or articles).",
        _answerable(lambda r: r.em),
        column="em",
    ),
    Metric(
        "f1",
        "Token F1",
        "accuracy",
        "SQuAD token F1 of the <ANSWER>: span against the reference.",
        _answerable(lambda r: r.f1),
        column="f1",
    ),
    Metric(
        "substring",
        "Substring match",
        "accuracy",
        "The normalised reference occurs as whole words in the normalised <ANSWER>: span.",
        _answerable(lambda r: r.substring),
        column="substring",
    ),
    Metric(
        "selective_accuracy",
        "Accuracy when answering",
        "accuracy",
        "Selective accuracy: correctness over the answerable questions the system answered "
        "(did not abstain on).",
        lambda r: r.correct if r.answerable and not r.abstained else None,
    ),
    Metric(
        "mc_loglik_accuracy",
        "MC accuracy (log-likelihood)",
        "accuracy",
        "Multiple choice: the choice with the highest summed log-probability of '<ANSWER>: "
        "<choice>' after the system's prompt is the right one.",
        _answerable(lambda r: r.mc_loglik_correct),
    ),
    Metric(
        "mc_generated_accuracy",
        "MC accuracy (generated)",
        "accuracy",
        "Multiple choice: the choice the generated answer names (its text, or a bare letter) is "
        "the right one.",
        _answerable(lambda r: r.mc_generated_correct),
    ),
    Metric(
        "confident_wrong_rate",
        "Confident-wrong",
        "hallucination",
        "Share of answerable questions the system answered (did not abstain) with a wrong "
        "generated answer.",
        lambda r: (not r.abstained and not r.gen_correct) if r.answerable else None,
        lower_is_better=True,
        column="confident_wrong",
        headline="confident wrong",
        headline_at=6,
    ),
    Metric(
        "truthfulness",
        "Truthfulness score",
        "hallucination",
        "CRAG's score (Meta, 2024) over all questions: +1 for a correct answer, 0 for an "
        "abstention, -1 for a wrong answer or any answer to a question whose evidence is absent "
        "(a hallucination). It rewards knowing when not to answer; shown x100, in [-100, 100].",
        lambda r: 0.0 if r.abstained else (1.0 if r.answerable and r.correct else -1.0),
        column="truthfulness",
        headline="truthfulness",
        headline_at=8,
        verdict=True,
        score=True,
    ),
    Metric(
        "unanswerable_answered_rate",
        "Unanswerable answered",
        "hallucination",
        "Share of unanswerable questions (evidence in no document, or its documents removed from "
        "the index) that the system answered instead of abstaining: each such answer is a "
        "hallucination.",
        lambda r: None if r.answerable else not r.abstained,
        lower_is_better=True,
        column="hallucinated",
        headline="unanswerable answered",
        headline_at=5,
        verdict=True,
    ),
    Metric(
        "refusal_precision",
        "Refusal precision",
        "hallucination",
        "Trust-Score's (Song et al. 2025): of the questions the system refused, the share whose "
        "evidence was indeed absent.",
        lambda r: (not r.answerable) if r.abstained else None,
    ),
    Metric(
        "refusal_recall",
        "Refusal recall",
        "hallucination",
        "Trust-Score's: of the questions whose evidence was absent, the share the system refused "
        "(1 - unanswerable answered).",
        lambda r: None if r.answerable else r.abstained,
    ),
    Metric(
        "refusal_f1",
        "Refusal F1",
        "hallucination",
        "Harmonic mean of refusal precision and recall; its interval resamples the questions "
        "jointly for both.",
        combine=lambda p, r: 2 * p * r / (p + r),
        parts=("refusal_precision", "refusal_recall"),
    ),
    Metric(
        "unsupported_quote_rate",
        "Unsupported quotes",
        "hallucination",
        "Mean, over replies holding at least one ##begin_quote## quote, of the share of their "
        "quotes not found (whitespace-normalised) in the documents given to that system for that "
        "question. A closed-book system is given no documents, so all of its quotes are "
        "unsupported.",
        lambda r: r.quotes_unsupported / r.quotes if r.quotes else None,
        lower_is_better=True,
        column="unsupported_quote_share",
    ),
    Metric(
        "over_refusal_rate",
        "Abstained when answerable",
        "hallucination",
        "Share of answerable questions (their evidence in the index) the system refused: the "
        "price of abstaining.",
        lambda r: r.abstained if r.answerable else None,
        lower_is_better=True,
        headline="abstained answerable",
        headline_at=7,
    ),
    Metric(
        "abstention_rate",
        "Abstention",
        "hallucination",
        'Share of all questions whose answer span is a refusal ("I don\'t know", "The documents do '
        'not contain the answer.", ...).',
        lambda r: r.abstained,
        column="abstained",
    ),
    Metric(
        "accuracy_unchanged",
        "Accuracy: unchanged facts",
        "freshness",
        "Accuracy on questions whose answer is the same in v1 and v2.",
        _status("unchanged"),
        applies=_fresh,
    ),
    Metric(
        "accuracy_changed",
        "Accuracy: changed facts",
        "freshness",
        "Accuracy (against the v2 answer) on questions whose answer changed from v1 to v2.",
        _status("changed"),
        applies=_fresh,
        headline="changed facts",
        headline_at=2,
        verdict=True,
    ),
    Metric(
        "accuracy_added",
        "Accuracy: added facts",
        "freshness",
        "Accuracy on questions whose evidence exists only in v2.",
        _status("added"),
        applies=_fresh,
        headline="added facts",
        headline_at=4,
        verdict=True,
    ),
    Metric(
        "stale_rate",
        "Stale (v1 answer to a changed fact)",
        "freshness",
        "Share of changed questions answered with the v1 answer: for multiple choice the "
        "log-likelihood pick is the v1 choice; for open answers the answer span matches answer_v1 "
        "and not the v2 answer.",
        lambda r: r.stale if r.answerable and r.status == "changed" else None,
        lower_is_better=True,
        column="stale",
        headline="stale",
        headline_at=3,
        applies=_fresh,
    ),
    _ragas(
        "ragas_string_similarity",
        "ragas string similarity",
        "ragas NonLLMStringSimilarity (1 - normalised Levenshtein distance) of answer span and "
        "reference.",
    ),
    _ragas(
        "ragas_rouge_l",
        "ragas ROUGE-L",
        "ragas RougeScore (ROUGE-L F-measure) of answer span and reference.",
    ),
    _ragas(
        "ragas_context_precision",
        "ragas context precision",
        "ragas NonLLMContextPrecisionWithReference: average precision of retrieved chunks that "
        "resemble (Levenshtein similarity >= 0.5) a chunk of the evidence documents.",
    ),
    _ragas(
        "ragas_context_recall",
        "ragas context recall",
        "ragas NonLLMContextRecall: share of evidence chunks resembled by a retrieved chunk.",
    ),
    _ragas(
        "ragas_faithfulness",
        "ragas faithfulness",
        "ragas Faithfulness (judge LLM): share of the answer's claims supported by the context.",
    ),
    _ragas(
        "ragas_answer_correctness",
        "ragas answer correctness",
        "ragas AnswerCorrectness (judge LLM, factual part only).",
    ),
]
REGISTRY: dict[str, Metric] = {m.name: m for m in METRICS}
