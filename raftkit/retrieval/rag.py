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
    all_hits = index.search(questions, k)
    scores = [[h.score for h in hits] for hits in all_hits]
    texts = [[h.chunk.text for h in hits] for hits in all_hits]
    closed, evidence = check.judge(questions, texts, scores)
    all_hits = [[hits[i] for i in check.order(e)] for hits, e in zip(all_hits, evidence)]
    asked = [i for i, shut in enumerate(closed) if not shut]
    replies = [check.refusal(s, e) if shut else "" for s, e, shut in zip(scores, evidence, closed)]
    conversations = [
        prompts.rag_messages(
            questions[i],
            [h.chunk.text for h in all_hits[i]],
            [h.chunk.title for h in all_hits[i]],
        )
        for i in asked
    ]
    if conversations:
        for i, r in zip(asked, generator.chat(conversations, desc="answering")):
            replies[i] = r
    return [  # a gated refusal used no source
        RagAnswer(q, r, prompts.extract_answer(r), [] if shut else used_sources(r, hits), hits)
        for q, r, hits, shut in zip(questions, replies, all_hits, closed)
    ]
