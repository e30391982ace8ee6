"""Grounded chain-of-thought answers: prompt, quote verification and repair, deterministic CoTs.

Every quote between ##begin_quote## and ##end_quote## must occur in the chunk the answer is grounded
on (after whitespace normalisation). A small model misquotes often, so a bad quote is repaired by
the chunk sentence that shares most of its words, and a reply without `<ANSWER>:` gets one derived
from its last line. What cannot be repaired is dropped; the build reports all three rates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from raftkit.prompts import (
    ABSTAIN,
    ANSWER_TAG,
    BEGIN_QUOTE,
    END_QUOTE,
    extract_answer,
    extract_quotes,
    quote_in,
)
from raftkit.provenance import stable_hash

SYSTEM = (
    f"Answer the question using the text. First copy the sentence of the text that contains the "
    f"answer between {BEGIN_QUOTE} and {END_QUOTE}. Then explain in one sentence and finish with "
    f"a line `{ANSWER_TAG} <short answer>`."
)
# The one few-shot text of build-dataset's prompts (questions.py asks about it too).
SHOT_TEXT = (
    "The Larkspur Bakery opens at 6:30 every weekday and closes at 14:00. Its rye loaf is baked "
    "by Mira Olsen and costs 4 euros."
)
_SHOT_Q = "Who bakes the rye loaf?"
_SHOT_A = (
    f"The text says: {BEGIN_QUOTE}Its rye loaf is baked by Mira Olsen and costs 4 "
    f"euros.{END_QUOTE} So the rye loaf is baked by Mira Olsen.\n{ANSWER_TAG} Mira Olsen"
)

_STOP = set(
    "a an the of to in on at for by with and or is are was were be been it its this that these "
    "those what which who whom whose when where why how do does did can could should would will "
    "may from as into than then there their they he she his her you your we our i not no".split()
)

# Templates of deterministic CoTs (chosen by a hash of the example id, so the set is seeded but
# varied). Every one opens with its quote: the first token of a reply is then the decision between
# answering (a quote) and abstaining (`<ANSWER>: ...`). Openers that varied ("The document says",
# "To answer, ...") split the answering probability three ways and greedy decoding abstained on all.
# The two verdicts of quote-first targets (assembly.refusal: quote): after the quote, one token
# ("answers" / "does") decides. Both are fixed strings: a varied answered side would split its
# probability across openers and greedy decoding would always pick the one fixed refusal (measured:
# 100% refusals after 24 steps on RealTimeQA --quick).
ANSWERED = "This sentence answers the question."
NOT_ANSWERED = "This sentence does not answer the question."

_TEMPLATES = [
    "{quote} {reason}So the answer is {answer}.",
    "{quote} {reason}This sentence answers the question: {answer}.",
    "{quote} {reason}Therefore the answer is {answer}.",
]


@dataclass
class Grounded:
    """One answer after verification: status is verified, repaired or dropped (with a reason)."""

    cot: str
    answer: str
    status: str
    reason: str = ""


def answer_messages(question: str, text: str) -> list[dict]:
    """A one-shot chat asking for a quoted, reasoned answer to `question` from `text` alone."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Text: {SHOT_TEXT}\nQuestion: {_SHOT_Q}"},
        {"role": "assistant", "content": _SHOT_A},
        {"role": "user", "content": f"Text: {text}\nQuestion: {question}"},
    ]


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return re.findall(r"\w+", text.lower())


def content_words(text: str) -> set[str]:
    """Word tokens minus stop words: what overlap is measured on."""
    return {w for w in words(text) if w not in _STOP}


def sentences(text: str) -> list[str]:
    """Sentences and lines of `text`, each a substring of it (so each is a valid quote)."""
    out = []
    for line in text.splitlines():
        for piece in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(\[])", line.strip()):
            piece = piece.strip()
            if len(words(piece)) >= 2:
                out.append(piece)
    return out


def overlap(query: str, sentence: str) -> float:
    """The share of `query`'s content words that `sentence` contains (0 when query has none)."""
    q = content_words(query)
    return len(q & content_words(sentence)) / len(q) if q else 0.0


def best_sentence(text: str, query: str, containing: str = "") -> tuple[str, float]:
    """The sentence of `text` with most of `query`'s words, preferring those containing
    `containing`."""
    sents = sentences(text) or [text.strip()]
    if containing:
        having = [s for s in sents if containing.lower() in " ".join(s.split()).lower()]
        sents = having or sents
    # Ties go to the earlier sentence, so the choice is deterministic.
    scored = [(overlap(query, s), -i, s) for i, s in enumerate(sents)]
    score, _, sent = max(scored)
    return sent, score


def _clip(text: str, max_words: int) -> str:
    parts = text.split()
    return " ".join(parts[:max_words])


def _derive_answer(reply: str) -> str:
    """An answer for a reply without `<ANSWER>:`: its last line outside the quotes."""
    outside = re.sub(
        re.escape(BEGIN_QUOTE) + r".*?" + re.escape(END_QUOTE), " ", reply, flags=re.DOTALL
    )
    lines = [ln.strip() for ln in outside.splitlines() if ln.strip()]
    if not lines:
        return ""
    last = re.sub(r"^(so|therefore|thus|answer)\b[\s,:]*", "", lines[-1], flags=re.I).strip()
    return last.rstrip(".").strip()


def verify(
    reply: str,
    question: str,
    oracle: str,
    on_bad_quote: str = "repair",
    min_overlap: float = 0.3,
    max_answer_words: int = 30,
) -> Grounded:
    """Check a model reply against its oracle text; repair or drop it per `on_bad_quote`.

    Returns a Grounded whose cot ends with `<ANSWER>: answer` and whose quotes all occur in
    `oracle`.
    """
    reply = reply.strip()
    if not reply:
        return Grounded("", "", "dropped", "empty reply")
    has_tag = ANSWER_TAG in reply
    reasoning = reply[: reply.rfind(ANSWER_TAG)] if has_tag else reply
    answer = extract_answer(reply) if has_tag else ""
    if (
        not answer
    ):  # no tag, or a tag the token limit cut off: the reasoning's last line is the answer
        answer, has_tag = _derive_answer(reasoning), False
    answer = _clip(answer.splitlines()[0].strip() if answer else "", max_answer_words)
    if not answer:
        return Grounded("", "", "dropped", "no answer")
    quotes = extract_quotes(reasoning)
    bad = [q for q in quotes if not quote_in(q, [oracle])]
    repaired = not has_tag
    if bad or not quotes:
        if on_bad_quote == "drop":
            return Grounded("", answer, "dropped", "quote not in oracle" if bad else "no quote")
        for q in bad:
            sent, score = best_sentence(oracle, q)
            if score < min_overlap:
                return Grounded("", answer, "dropped", "quote matches no oracle sentence")
            reasoning = reasoning.replace(q, sent, 1)
        if not quotes:
            sent, score = best_sentence(oracle, f"{question} {answer}")
            if score == 0:
                return Grounded("", answer, "dropped", "no quote and no related oracle sentence")
            reasoning = f"{BEGIN_QUOTE}{sent}{END_QUOTE} {reasoning.strip()}"
        repaired = True
    reasoning, cut = _drop_stray_tags(reasoning)
    cot = f"{reasoning.strip()}\n{ANSWER_TAG} {answer}"
    if not all(quote_in(q, [oracle]) for q in extract_quotes(cot)):
        return Grounded("", answer, "dropped", "quote not in oracle")
    return Grounded(cot, answer, "repaired" if repaired or cut else "verified")


def _drop_stray_tags(text: str) -> tuple[str, bool]:
    """`text` without unpaired quote tags (a reply cut off mid-quote); returns (text, whether
    cut)."""
    parts = re.split(
        "(" + re.escape(BEGIN_QUOTE) + ".*?" + re.escape(END_QUOTE) + ")", text, flags=re.DOTALL
    )
    out, cut = [], False
    for i, part in enumerate(parts):
        if i % 2 == 0 and (BEGIN_QUOTE in part or END_QUOTE in part):
            # An unclosed quote runs to the end of the reply: drop it; a lone end tag is just
            # removed.
            part = part.split(BEGIN_QUOTE)[0].replace(END_QUOTE, "")
            cut = True
        out.append(part)
    return "".join(out), cut


def _pick(key: str, n: int) -> int:
    return stable_hash(key, bits=32) % n


def deterministic_cot(
    question: str, answer: str, text: str, key: str, reason: str = ""
) -> Grounded:
    """A CoT built without a model: quote the sentence of `text` holding (or nearest to) the answer.

    `key` (the example id) picks the template; `reason` (e.g. a QA line's long answer) is inserted
    as the explanation.
    """
    sent, score = best_sentence(text, question, containing=answer)
    if score == 0 and answer.lower() not in " ".join(sent.split()).lower():
        sent, _ = best_sentence(text, f"{question} {answer} {reason}")
    template = _TEMPLATES[_pick(key, len(_TEMPLATES))]
    reason = f"{reason.strip().rstrip('.')}. " if reason.strip() else ""
    body = template.format(
        quote=f"{BEGIN_QUOTE}{sent}{END_QUOTE}", reason=reason, answer=answer.rstrip(".")
    )
    return Grounded(f"{body}\n{ANSWER_TAG} {answer}", answer, "verified")


def wrong_answer(
    question: str, answer: str, sentence: str, choices: list[str] | None, key: str
) -> str:
    """A plausible wrong answer: another of `choices`, else a span of `sentence` as long as
    `answer`."""
    others = [
        c
        for c in (choices or [])
        if str(c).strip() and str(c).strip().lower() != answer.strip().lower()
    ]
    if others:
        return str(others[_pick(key, len(others))])
    q = set(words(question))
    toks = sentence.split()
    n = max(1, min(len(answer.split()), 6))
    # Start at a word the question does not use (where a sentence's new information sits), of the
    # answer's kind when there is one: a number for a number, a name for a name.
    fresh = [
        i
        for i, t in enumerate(toks)
        if words(t) and words(t)[0] not in q and words(t)[0] not in _STOP
    ]
    kind = (
        (lambda t: any(ch.isdigit() for ch in t))
        if any(ch.isdigit() for ch in answer)
        else (lambda t: t[:1].isupper())
        if answer[:1].isupper()
        else (lambda t: True)
    )
    start = next((i for i in fresh if kind(toks[i])), fresh[0] if fresh else 0)
    span = " ".join(toks[start : start + n]).strip(" .,;:")
    return span or sentence.strip()


def distractor_cot(
    question: str, answer: str, distractor: str, choices: list[str] | None, key: str
) -> Grounded:
    """An ungrounded (rejected) CoT: it quotes a distractor chunk and gives a wrong answer."""
    sent, _ = best_sentence(distractor, question)
    wrong = wrong_answer(question, answer, sent, choices, key)
    template = _TEMPLATES[_pick(key, len(_TEMPLATES))]
    body = template.format(
        quote=f"{BEGIN_QUOTE}{sent}{END_QUOTE}", reason="", answer=wrong.rstrip(".")
    )
    return Grounded(f"{body}\n{ANSWER_TAG} {wrong}", wrong, "derived")


def refusal_cot(question: str, texts: list[str], style: str = "plain", quote: str = "") -> str:
    """The refusal target: `<ANSWER>: ABSTAIN` alone (`plain`), or (`quote`) first the sentence of
    `texts` closest to the question (or the given `quote`), then the verdict that it does not
    answer."""
    refusal = f"{ANSWER_TAG} {ABSTAIN}"
    if style == "plain":
        return refusal
    if not quote:
        scored = [best_sentence(t, question) for t in texts if t.strip()]
        quote = max(scored, key=lambda s: s[1])[0] if scored else ""
    return f"{BEGIN_QUOTE}{quote}{END_QUOTE} {NOT_ANSWERED}\n{refusal}" if quote else refusal


def verdict_cot(cot: str) -> str:
    """An answered target in the quote-first form: its first quote, the answered verdict and its
    `<ANSWER>` line (a target without a quote is kept as it is)."""
    quotes = extract_quotes(cot)
    if not quotes:
        return cot
    return f"{BEGIN_QUOTE}{quotes[0]}{END_QUOTE} {ANSWERED}\n{ANSWER_TAG} {extract_answer(cot)}"
