"""The plain-RAG baseline: retrieve top-k chunks, prompt the generator with them, answer."""

from __future__ import annotations

from dataclasses import dataclass

from raftkit import prompts
from raftkit.generate import Generator
from raftkit.retrieval import gate
from raftkit.retrieval.index import FaissIndex, Hit


@dataclass
class RagAnswer:
    question: str
    reply: str  # the generator's whole reply (reasoning and quotes included)
    answer: str  # the `<ANSWER>:` span
    sources: list[
        str
    ]  # ids of the retrieved chunks the reply quotes (all retrieved when it quotes none)
    hits: list[Hit]

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "sources": self.sources,
            "reply": self.reply,
            "retrieved": [
                {
                    "rank": h.rank,
                    "score": round(h.score, 4),
                    "id": h.chunk.id,
                    "doc_id": h.chunk.doc_id,
                    "title": h.chunk.title,
                }
                for h in self.hits
            ],
        }


def used_sources(reply: str, hits: list[Hit]) -> list[str]:
    """Ids of the chunks whose text holds a quote of `reply`; every retrieved id when none does."""
    quotes = prompts.extract_quotes(reply)
    used = [h.chunk.id for h in hits if any(prompts.quote_in(q, [h.chunk.text]) for q in quotes)]
    return used or [h.chunk.id for h in hits]


@dataclass
class Judged:
    """A question's retrieved chunks after the evidence gate: in the order the prompt shows them,
    and whether the gate refused (then `refusal` is the reply and nothing is generated)."""

    hits: list[Hit]
    closed: bool
    refusal: str  # '' when the gate is open


def judge(
    check: gate.Gate,
    questions: list[str],
    hits: list[list[Hit]],
    k: int,
    options: list[list[str] | None] | None = None,
) -> list[Judged]:
    """Apply the evidence gate `check` to each question's hits (`check.depth(k)` of them): the one
    place `ask` and every RAG system of `compare` decide to answer or refuse; the prompt shows `k`
    of them, in the gate's order. `options`: per question its answer options (multiple choice) or
    None, for a verifier with an options head."""
    scores = [[h.score for h in hs] for hs in hits]
    texts = [[h.chunk.text for h in hs] for hs in hits]
    closed, evidence = check.judge(questions, texts, scores, options)
    return [
        Judged([hs[i] for i in check.order(e, k)], shut, check.refusal(sc, e) if shut else "")
        for hs, sc, e, shut in zip(hits, scores, evidence, closed)
    ]


def messages(question: str, hits: list[Hit]) -> list[dict]:
    """The RAG prompt of `question` over `hits` (raftkit.prompts: training and test agree)."""
    return prompts.rag_messages(
        question, [h.chunk.text for h in hits], [h.chunk.title for h in hits]
    )


def answer_questions(
    index: FaissIndex,
    generator: Generator,
    questions: list[str],
    k: int,
    check: gate.Gate | None = None,
) -> list[RagAnswer]:
    """Answer each question over its top-k chunks; retrieval and generation run batched. A question
    the evidence gate `check` closes is refused without generating."""
    check = check or gate.Gate()
    judged = judge(check, questions, index.search(questions, check.depth(k)), k)
    asked = [i for i, j in enumerate(judged) if not j.closed]
    replies = [j.refusal for j in judged]
    conversations = [messages(questions[i], judged[i].hits) for i in asked]
    if conversations:
        for i, r in zip(asked, generator.chat(conversations, desc="answering")):
            replies[i] = r
    return [  # a gated refusal used no source
        RagAnswer(
            q, r, prompts.extract_answer(r), [] if j.closed else used_sources(r, j.hits), j.hits
        )
        for q, r, j in zip(questions, replies, judged)
    ]
