"""Deterministic, offline scores of one reply, gathered into one typed row per (question, system).

Open answers are compared after SQuAD normalisation (lower case, no punctuation, no articles, single
spaces): exact match (EM), token F1 and substring match. An open answer is *correct* when it is an
exact match or the reference occurs in it as whole words (small models pad their answers: "The port
is 7421."). Multiple choice is scored twice: the choice with the highest log-likelihood after the
prompt (Ovadia et al. 2023; robust for a 135M model) and the choice the generated answer names. A
*stale* answer to a changed fact is its v1 answer.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field

from raftkit.compare.questions import Question
from raftkit.prompts import is_abstention, normalize_answer

# A bare option letter: "B", "(b)", "C.", "A) 7421"; not the article of "A record".
_LETTER = re.compile(r"^\(?([A-Za-z])(\)|\.|:|$)")


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal (SQuAD EM), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between the normalised prediction and reference."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def substring_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised reference occurs in the normalised prediction as whole words."""
    ref = normalize_answer(reference)
    return float(bool(ref) and f" {ref} " in f" {normalize_answer(prediction)} ")


def open_scores(prediction: str, reference: str) -> dict[str, float]:
    """EM, F1, substring and correct (EM or substring) of an answer span against one reference."""
    em, sub = exact_match(prediction, reference), substring_match(prediction, reference)
    return {
        "em": em,
        "f1": token_f1(prediction, reference),
        "substring": sub,
        "correct": float(em or sub),
    }


def matches(prediction: str, reference: str | None) -> bool:
    """The open-answer correctness rule (EM or whole-word substring); False for a missing
    reference."""
    return reference is not None and bool(open_scores(prediction, reference)["correct"])


def loglik_pick(scores: list[float]) -> int | None:
    """Index of the most likely choice (first on ties), None without choices."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i)) if scores else None


def generated_choice(answer: str, choices: list[str]) -> int | None:
    """The choice a generated answer names: its text, else a leading letter (A, (b), C.), else None.

    Text wins over letters; an answer naming two choices names none.
    """
    norm = normalize_answer(answer)
    normed = [normalize_answer(c) for c in choices]
    exact = [i for i, c in enumerate(normed) if c and c == norm]
    if len(exact) == 1:
        return exact[0]
    inside = [i for i, c in enumerate(normed) if c and f" {c} " in f" {norm} "]
    # A choice inside a longer choice ("4" in "4 MiB") is not a second mention.
    inside = [
        i
        for i in inside
        if not any(j != i and f" {normed[i]} " in f" {normed[j]} " for j in inside)
    ]
    if len(inside) == 1:
        return inside[0]
    m = _LETTER.match(answer.strip())
    if m and not inside:
        idx = ord(m.group(1).upper()) - ord("A")
        if 0 <= idx < len(choices):
            return idx
    return None


def choices_text(choices: list[str]) -> str:
    """Choices as the question shows them when `scoring.show_choices` is on: 'A) x  B) y'."""
    return "  ".join(f"{chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))


def is_stale_open(answer: str, answer_v1: str | None, answer_v2: str | None) -> bool:
    """Whether an open answer gives the v1 answer of a changed fact (and not the v2 one)."""
    return matches(answer, answer_v1) and not matches(answer, answer_v2)


def is_stale_mc(pick: int | None, answer_index_v1: int | None) -> bool:
    """Whether the multiple-choice pick is the v1 choice of a changed fact."""
    return pick is not None and answer_index_v1 is not None and pick == answer_index_v1


@dataclass
class ScoredRow:
    """One system's answer to one question, scored (a line of per_question.csv)."""

    system: str
    qid: str
    question: str
    status: str  # unchanged | changed | added | unanswerable (holdout copies are unanswerable)
    holdout: bool  # re-asked over the index without its documents
    answerable: bool  # False when the evidence is absent: an answer is then a hallucination
    reference: str | None
    answer: str  # the `<ANSWER>:` span
    reply: str
    abstained: bool
    correct: bool | None  # the primary correctness (None when not answerable)
    primary: str  # what `correct` is: loglik | generate | open
    gen_correct: bool | None  # the generated answer is right
    em: float | None = None
    f1: float | None = None
    substring: float | None = None
    mc_loglik_pick: int | None = None
    mc_loglik_correct: bool | None = None
    mc_generated_pick: int | None = None
    mc_generated_correct: bool | None = None
    stale: bool | None = None
    quotes: int = 0
    quotes_unsupported: int = 0
    retrieved: list[str] = field(default_factory=list)
    retrieved_doc_ids: list[str] = field(default_factory=list)
    ragas: dict[str, float] = field(default_factory=dict)  # ragas_* scores, when ragas ran


def _primary(q: Question, mc: str, ll_ok: bool | None, gen_ok: bool | None, opened: dict | None):
    """(correct, what it is): the log-likelihood pick, the named choice, or the open answer."""
    mcq = bool(q.choices) and q.answer_index is not None
    if mcq and ll_ok is not None and mc in ("loglik", "both"):
        return ll_ok, "loglik"
    if mcq and mc == "generate":
        return gen_ok, "generate"
    return (bool(opened["correct"]) if opened else None), "open"


def score_record(q: Question, rec: dict, system: str, mc: str) -> ScoredRow:
    """One scored row of system `system` on question `q` from its raw record (the checkpoint
    line)."""
    answer = rec["answer"]
    mcq = bool(q.choices) and q.answer_index is not None
    ll_pick = loglik_pick(rec["loglik"]) if rec.get("loglik") else None
    gen_pick = generated_choice(answer, q.choices) if q.choices else None
    opened = open_scores(answer, q.answer) if q.answer is not None and q.answerable else None
    ll_ok = (ll_pick == q.answer_index) if mcq and ll_pick is not None else None
    gen_ok = (gen_pick == q.answer_index) if mcq else None
    correct, primary = _primary(q, mc, ll_ok, gen_ok, opened)
    gen_correct = bool(opened["correct"]) if opened else gen_ok
    stale = None
    if q.status == "changed" and q.answerable:
        stale = (
            is_stale_mc(ll_pick if primary == "loglik" else gen_pick, q.answer_index_v1)
            if primary != "open"
            else is_stale_open(answer, q.answer_v1, q.answer)
        )
    if not q.answerable:
        correct = gen_correct = ll_ok = gen_ok = None
    return ScoredRow(
        system=system,
        qid=q.id,
        question=q.question,
        status="unanswerable" if q.holdout else q.status,
        holdout=q.holdout,
        answerable=q.answerable,
        reference=q.answer,
        answer=answer,
        reply=rec["reply"],
        abstained=is_abstention(answer),
        correct=correct,
        primary=primary,
        gen_correct=gen_correct,
        em=opened["em"] if opened else None,
        f1=opened["f1"] if opened else None,
        substring=opened["substring"] if opened else None,
        mc_loglik_pick=ll_pick,
        mc_loglik_correct=ll_ok,
        mc_generated_pick=gen_pick,
        mc_generated_correct=gen_ok,
        stale=stale,
        quotes=rec["quotes"],
        quotes_unsupported=rec["quotes_unsupported"],
        retrieved=rec["retrieved"],
        retrieved_doc_ids=rec.get("retrieved_doc_ids", []),
    )
