"""Questions about a chunk: a short few-shot prompt, a forgiving parser, embedding de-duplication.

Small models number their questions, add preambles ("Sure! Here are..."), repeat themselves and
sometimes answer too; the parser keeps only lines that read as questions.
"""

from __future__ import annotations

import re

import numpy as np

from raftkit.raft.answers import SHOT_TEXT

SYSTEM = (
    "You write questions about a text. Each question must be answerable from the text alone. "
    "Write one question per line and nothing else."
)
_EXAMPLE_QUESTIONS = [
    "When does the Larkspur Bakery open on weekdays?",
    "Who bakes the rye loaf?",
    "How much does the rye loaf cost?",
]

_PREFIX = re.compile(
    r"^\s*(?:[-*•#>]+|\(?\d+[.):]|\(?[a-z][.)]\s|q(?:uestion)?\s*\d*\s*[:.)-])\s*", re.I
)
_MIN_WORDS, _MAX_WORDS = 3, 40


def question_messages(text: str, n: int) -> list[dict]:
    """A few-shot chat asking for `n` questions about `text`."""
    shots = _EXAMPLE_QUESTIONS[: min(n, len(_EXAMPLE_QUESTIONS))]
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Text: {SHOT_TEXT}\nWrite {len(shots)} questions."},
        {"role": "assistant", "content": "\n".join(shots)},
        {"role": "user", "content": f"Text: {text}\nWrite {n} questions."},
    ]


def parse_questions(reply: str, limit: int | None = None) -> list[str]:
    """The questions in a model reply, in order: numbering and bullets stripped, blank, non-question
    and exactly repeated lines dropped; at most `limit`."""
    out: list[str] = []
    seen: set[str] = set()
    for line in reply.splitlines():
        line = line.strip()
        while True:  # "1. Q: ..." carries two prefixes
            stripped = _PREFIX.sub("", line, count=1).strip()
            if stripped == line:
                break
            line = stripped
        if "?" not in line:
            continue
        line = line[: line.index("?") + 1].strip(
            " *_\"'`"
        )  # drop an answer written after the question
        if not line.endswith("?"):
            line = line.rstrip("*_\"'`") + "?"
        words = line.split()
        key = " ".join(re.findall(r"\w+", line.lower()))
        if not (_MIN_WORDS <= len(words) <= _MAX_WORDS) or key in seen:
            continue
        seen.add(key)
        out.append(line[0].upper() + line[1:])
    return out[:limit] if limit else out


def dedup(questions: list[str], vectors: np.ndarray, threshold: float) -> list[int]:
    """Indices of the questions to keep: greedy, in order; a question whose cosine with a kept one
    reaches `threshold` is a near-duplicate. `vectors` must be L2-normalised rows."""
    kept: list[int] = []
    for i in range(len(questions)):
        if not kept or float(np.max(vectors[kept] @ vectors[i])) < threshold:
            kept.append(i)
    return kept
