"""The prompt templates every stage shares, so a model is evaluated on the prompt it was trained on.

RAFT (Zhang et al. 2024) trains on: documents (oracle + distractors) + question -> a chain of
thought that quotes the documents between ##begin_quote## and ##end_quote## and ends with
`<ANSWER>: ...`. `raftkit ask`, `raftkit build-dataset` and `raftkit compare` all build their
messages here, and read replies here: the answer span, the quotes, whether the reply refuses, and
the SQuAD normalisation that both the evaluation and the RLHF rewards compare answers after (so the
two cannot drift apart).
"""

from __future__ import annotations

import re
import string

BEGIN_QUOTE, END_QUOTE, ANSWER_TAG = "##begin_quote##", "##end_quote##", "<ANSWER>:"
ABSTAIN = "The documents do not contain the answer."

SYSTEM_RAG = (
    "You answer questions using only the documents given. First reason step by step, quoting the "
    f"relevant sentences of the documents between {BEGIN_QUOTE} and {END_QUOTE}. Then give the "
    f"final answer on its own line as `{ANSWER_TAG} <answer>`. If the documents do not contain the "
    f"answer, reply `{ANSWER_TAG} {ABSTAIN}`"
)
SYSTEM_CLOSED = (
    "Answer the question briefly and factually. End with the final answer on its own line as "
    f"`{ANSWER_TAG} <answer>`. If you do not know, reply `{ANSWER_TAG} I don't know.`"
)


def format_documents(texts: list[str], titles: list[str] | None = None) -> str:
    """Documents as RAFT prompts show them: one <DOCUMENT> block each."""
    titles = titles or [""] * len(texts)
    return "\n".join(
        f"<DOCUMENT>{t + chr(10) if t else ''}{x}</DOCUMENT>" for x, t in zip(texts, titles)
    )


REMINDER = f"Answer with a quote from the documents, then `{ANSWER_TAG} <answer>`."


def rag_messages(question: str, texts: list[str], titles: list[str] | None = None) -> list[dict]:
    """Chat messages for a question answered over the given documents.

    The question comes before the documents and again after them, with a one-line reminder of the
    format: on 48 demo and RealTimeQA questions the base 135M model picked the right choice 38 times
    this way against 35 with the question after the documents only, and named it 16 times against 8.
    """
    docs = format_documents(texts, titles)
    user = f"Question: {question}\n\n{docs}\n\nQuestion: {question}\n{REMINDER}"
    return [{"role": "system", "content": SYSTEM_RAG}, {"role": "user", "content": user}]


def closed_book_messages(question: str) -> list[dict]:
    """Chat messages for a question answered without documents."""
    return [
        {"role": "system", "content": SYSTEM_CLOSED},
        {"role": "user", "content": f"Question: {question}"},
    ]


def extract_answer(reply: str) -> str:
    """The text after the last `<ANSWER>:` tag, else the whole reply, stripped."""
    idx = reply.rfind(ANSWER_TAG)
    return (reply[idx + len(ANSWER_TAG) :] if idx >= 0 else reply).strip()


def reasoning(reply: str) -> str:
    """The reply before its last `<ANSWER>:` tag (all of it without one), ending in a newline unless
    empty."""
    idx = reply.rfind(ANSWER_TAG)
    head = (reply[:idx] if idx >= 0 else reply).rstrip()
    return head + "\n" if head else ""


def extract_quotes(reply: str) -> list[str]:
    """Every span between ##begin_quote## and ##end_quote##, stripped."""
    pattern = re.escape(BEGIN_QUOTE) + r"(.*?)" + re.escape(END_QUOTE)
    return [q.strip() for q in re.findall(pattern, reply, flags=re.DOTALL) if q.strip()]


def normalize_ws(text: str) -> str:
    """Collapse whitespace runs to one space (quotes are checked after this)."""
    return " ".join(text.split())


def quote_in(quote: str, texts: list[str]) -> bool:
    """Whether `quote` occurs in any of `texts` after whitespace normalisation."""
    q = normalize_ws(quote)
    return bool(q) and any(q in normalize_ws(t) for t in texts)


# Every refusal the prompts ask for, plus the usual paraphrases; an answer span holding one
# abstains.
ABSTENTIONS = (
    ABSTAIN,  # the RAG template's refusal
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
    "does not answer the question",  # the verdict of a quote-first refusal (raft/answers.py)
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str | None) -> str:
    """SQuAD normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    text = (text or "").lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


_NORMALIZED_ABSTENTIONS = tuple(normalize_answer(a) for a in ABSTENTIONS)


def is_abstention(answer: str) -> bool:
    """Whether an answer span refuses (contains one of ABSTENTIONS, after normalisation)."""
    norm = f" {normalize_answer(answer)} "
    return any(f" {a} " in norm for a in _NORMALIZED_ABSTENTIONS)
