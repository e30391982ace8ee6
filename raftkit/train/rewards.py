"""Rule rewards for RLHF, in TRL's reward-function form
`f(prompts, completions, **columns) -> list[float]`.

They score what RAFT teaches: quote the given documents verbatim, end with `<ANSWER>:`, and give the
reference answer when the dataset has one (`answer` column; None = no opinion, which TRL skips).
"""

from __future__ import annotations

from raftkit.prompts import (
    ABSTAIN,
    ANSWER_TAG,
    extract_answer,
    extract_quotes,
    normalize_answer,
    quote_in,
)


def _text(message) -> str:
    """The text of a completion or prompt: a plain string or a list of chat messages."""
    if isinstance(message, str):
        return message
    return "\n".join(m.get("content", "") for m in message if isinstance(m, dict))


def _documents(prompt, context) -> list[str]:
    """The documents the model was shown: the `context` column, else the user turn of the prompt."""
    if context:
        return list(context)
    if isinstance(prompt, str):
        return [prompt]
    return [m["content"] for m in prompt if m.get("role") == "user"]


def quote_reward(prompts, completions, context=None, **_) -> list[float]:
    """Share of ##begin_quote## spans found verbatim in the shown documents; 0 for no quotes."""
    context = context or [None] * len(completions)
    out = []
    for prompt, completion, ctx in zip(prompts, completions, context):
        quotes = extract_quotes(_text(completion))
        docs = _documents(prompt, ctx)
        out.append(sum(quote_in(q, docs) for q in quotes) / len(quotes) if quotes else 0.0)
    return out


def format_reward(completions, **_) -> list[float]:
    """1.0 when the reply carries an `<ANSWER>:` line, else 0.0."""
    return [1.0 if ANSWER_TAG in _text(c) else 0.0 for c in completions]


def answer_reward(completions, answer=None, target_answer=None, **_) -> list[float | None]:
    """1.0 for a normalised exact match with the reference, 0.5 when it contains it, else 0; None
    without one.

    The reference is `target_answer` when the dataset has it (build-dataset's training target: the
    refusal where the oracle was dropped and the target is abstain), else `answer`.
    """
    answer = answer or [None] * len(completions)
    if target_answer is not None:
        answer = [t if t is not None else a for t, a in zip(target_answer, answer)]
    out: list[float | None] = []
    for completion, ref in zip(completions, answer):
        if ref is None:
            out.append(None)
            continue
        ref = normalize_answer(ref or ABSTAIN)
        got = (
            normalize_answer(extract_answer(_text(completion)))
            if ANSWER_TAG in _text(completion)
            else ""
        )
        out.append(1.0 if got == ref and ref else 0.5 if ref and ref in got else 0.0)
    return out
