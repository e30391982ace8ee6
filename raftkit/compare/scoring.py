"""Deterministic, offline scores of one reply: open-answer matches, multiple choice, abstention, CIs.

Open answers are compared after SQuAD normalisation (lower case, no punctuation, no articles, single
spaces): exact match (EM), token F1 and substring match. An open answer is *correct* when it is an
exact match or the reference occurs in it as whole words (small models pad their answers: "The port is
7421."). Multiple choice is scored twice: the choice with the highest log-likelihood after the prompt
(Ovadia et al. 2023; robust for a 135M model) and the choice the generated answer names.
"""

from __future__ import annotations

import collections
import re
import string

from raftkit import prompts

# Every refusal the prompts ask for, plus the usual paraphrases; an answer span holding one abstains.
ABSTENTIONS = (
    prompts.ABSTAIN,  # the RAG template's refusal
    "I don't know",  # the closed-book template's refusal
    "I do not know",
    "the documents do not contain",
    "the document does not contain",
    "the documents don't contain",
    "the context does not contain",
    "not contained in the documents",
    "cannot answer",
    "can't answer",
    "unable to answer",
    "cannot be answered",
    "not enough information",
    "no information",
    "not mentioned",
    "not explicitly mentioned",
    "does not mention",
    "do not mention",
    "unanswerable",
)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
# A bare option letter: "B", "(b)", "C.", "A) 7421"; not the article of "A record".
_LETTER = re.compile(r"^\(?([A-Za-z])(\)|\.|:|$)")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    text = (text or "").lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


_NORMALIZED_ABSTENTIONS = tuple(normalize_answer(a) for a in ABSTENTIONS)


def is_abstention(answer: str) -> bool:
    """Whether an answer span refuses (contains one of ABSTENTIONS, after normalisation)."""
    norm = f" {normalize_answer(answer)} "
    return any(f" {a} " in norm for a in _NORMALIZED_ABSTENTIONS)


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
    return {"em": em, "f1": token_f1(prediction, reference), "substring": sub, "correct": float(em or sub)}


def matches(prediction: str, reference: str | None) -> bool:
    """The open-answer correctness rule (EM or whole-word substring); False for a missing reference."""
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
    inside = [i for i in inside if not any(j != i and f" {normed[i]} " in f" {normed[j]} " for j in inside)]
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


def mean(values: list[float]) -> float | None:
    """The mean of `values`, None when there are none."""
    return sum(values) / len(values) if values else None


def bootstrap_ci(values: list[float], samples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean, resampling questions with a fixed seed; None if empty."""
    import numpy as np

    if not len(values):
        return None
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(samples, len(x)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)
