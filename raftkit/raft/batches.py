"""The expensive part of `raftkit build-dataset`: one checkpoint batch of chunks (questions, then
grounded answers) or of QA lines (oracle choice, then a deterministic or generated answer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raftkit.prompts import normalize_ws
from raftkit.raft import answers as ans
from raftkit.raft import questions as qs
from raftkit.raft.config import RaftBuildConfig
from raftkit.raft.records import Record, Status
from raftkit.ui import say


@dataclass
class Batch:
    """What a checkpoint file holds: the batch's records and counts for the summary."""

    records: list[Record]
    stats: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"records": [r.to_json() for r in self.records], "stats": self.stats}

    @classmethod
    def from_json(cls, data: dict) -> Batch:
        return cls([Record.from_json(r) for r in data["records"]], data["stats"])


class LazyGenerator:
    """The generator, loaded the first time a batch needs it (a --qa build with given answers needs
    none)."""

    def __init__(self, cfg: RaftBuildConfig, generator=None):
        self.cfg, self.gen = cfg, generator

    def __call__(self):
        if self.gen is None:
            from raftkit.generate import make_generator
            from raftkit.models import runtime

            say(f"loading generator {self.cfg.generation.model} ({self.cfg.generation.backend})")
            self.gen = make_generator(self.cfg.generation, runtime(self.cfg.runtime))
        return self.gen


def ground(
    cfg: RaftBuildConfig, gen: LazyGenerator, records: list[Record], picker, chunks_by_id
) -> None:
    """Generate and verify the CoT answer of each pending record (question + oracle) in place."""
    a = cfg.answers
    todo = [r for r in records if r.status is Status.PENDING]
    if not todo:
        return
    convs = [ans.answer_messages(r.question, chunks_by_id[r.oracle_id].text) for r in todo]
    distractors = []
    if a.rejected == "generate":
        distractors = [picker.chunks[picker.pick(r.oracle_id, r.id)[0]] for r in todo]
        convs += [ans.answer_messages(r.question, d.text) for r, d in zip(todo, distractors)]
    replies = gen().chat(convs, max_new_tokens=a.max_new_tokens, desc="answers")
    for n, r in enumerate(todo):
        g = ans.verify(
            replies[n],
            r.question,
            chunks_by_id[r.oracle_id].text,
            a.on_bad_quote,
            a.min_overlap,
            a.max_answer_words,
        )
        r.cot, r.answer, r.status, r.reason = g.cot, g.answer, Status(g.status), g.reason
        if distractors:
            bad = ans.verify(
                replies[len(todo) + n],
                r.question,
                distractors[n].text,
                "repair",
                a.min_overlap,
                a.max_answer_words,
            )
            r.rejected = bad.cot if bad.status != "dropped" else None


def question_batch(
    cfg: RaftBuildConfig, gen: LazyGenerator, index, chunks: list, picker, chunks_by_id
) -> Batch:
    """Questions about each chunk (parsed, de-duplicated), each answered from that chunk."""
    q = cfg.questions
    replies = gen().chat(
        [qs.question_messages(c.text, q.per_chunk) for c in chunks],
        max_new_tokens=q.max_new_tokens,
        desc="questions",
    )
    parsed = [qs.parse_questions(r, limit=2 * q.per_chunk) for r in replies]
    flat = [x for p in parsed for x in p]
    vectors = index.embedder.encode(flat) if flat else None
    records, start, dups = [], 0, 0
    for c, found in zip(chunks, parsed):
        keep = (
            qs.dedup(found, vectors[start : start + len(found)], q.dedup_threshold) if found else []
        )
        start += len(found)
        dups += len(found) - len(keep)
        records += [
            Record(f"{c.id}/q{j}", found[i], "generated", oracle_id=c.id, doc_id=c.doc_id)
            for j, i in enumerate(keep[: q.per_chunk])
        ]
    ground(cfg, gen, records, picker, chunks_by_id)
    return Batch(
        records,
        {
            "chunks_asked": len(chunks),
            "questions_parsed": len(flat),
            "questions_duplicate": dups,
            "chunks_without_questions": sum(not p for p in parsed),
        },
    )


def span_batch(
    cfg: RaftBuildConfig, gen, index, chunks: list, picker, chunks_by_id, pool=None
) -> Batch:
    """Span questions about each chunk (raftkit/raft/spans.py), each answered by a deterministic
    CoT quoting its sentence: no model. `pool` gives the distractors (build it over every chunk)."""
    from raftkit.raft import spans

    rows = spans.span_questions(
        chunks, seed=cfg.assembly.seed, pool=pool, max_per_unit=cfg.questions.per_chunk
    )
    records = []
    for r in rows:
        c = chunks_by_id[r["chunk_id"]]
        rec = Record(
            f"{c.id}/s{len(records)}",
            r["question"],
            "spans",
            oracle_id=c.id,
            doc_id=c.doc_id,
            choices=r["choices"],
        )
        g = ans.deterministic_cot(rec.question, r["answer"], c.text, rec.id)
        rec.cot, rec.answer, rec.status = g.cot, g.answer, Status(g.status)
        records.append(rec)
    asked = {r["chunk_id"] for r in rows}
    return Batch(
        records,
        {
            "chunks_asked": len(chunks),
            "span_questions": len(rows),
            "chunks_without_questions": sum(c.id not in asked for c in chunks),
        },
    )


@dataclass
class _Candidate:
    """A QA line that can become an example, before its oracle chunk is chosen."""

    record: Record
    chunks: list[int]  # indices of the chunks that may hold its answer
    given: str | None  # the answer to build a deterministic CoT from (None: the model answers)
    long_answer: str


def _qa_line(
    row: dict, cfg: RaftBuildConfig, index, by_doc: dict[str, list[int]]
) -> Record | _Candidate:
    """A skipped Record (with its reason) or a _Candidate for one QA line."""
    qa = cfg.qa
    rec = Record(
        str(row["id"]),
        row["question"].strip(),
        "qa",
        choices=[str(c) for c in row.get("choices") or []],
    )
    answer = row.get(qa.answer_field)
    docs = [d for d in row.get("doc_ids") or [] if d in by_doc]
    why = ""
    if not row.get("doc_ids") or (qa.answer_field in row and answer is None):
        why = "unanswerable (no doc_ids or null answer)"
    elif not docs:
        why = "its documents are not in DOCS"
    chunks = [i for d in docs for i in by_doc.get(d, [])]
    given = str(answer) if qa.answers == "given" and answer is not None else None
    if not why and given is not None:
        needle = normalize_ws(given).lower()
        having = [i for i in chunks if needle in normalize_ws(index.chunks[i].text).lower()]
        if having:
            chunks = having
        elif qa.require_answer_in_docs:
            why = "answer not in its documents"
    if why:
        rec.status, rec.reason = Status.SKIPPED, why
        return rec
    return _Candidate(rec, chunks, given, str(row.get("long_answer") or ""))


def qa_batch(
    cfg: RaftBuildConfig, gen: LazyGenerator, index, rows: list[dict], picker, chunks_by_id
) -> Batch:
    """QA lines: the oracle is the chunk of the line's documents nearest (embedding) to question +
    answer."""
    by_doc: dict[str, list[int]] = {}
    for i, c in enumerate(index.chunks):
        by_doc.setdefault(c.doc_id, []).append(i)
    lines = [_qa_line(row, cfg, index, by_doc) for row in rows]
    todo = [x for x in lines if isinstance(x, _Candidate)]
    if todo:
        vectors = index.embedder.encode(
            [f"{c.record.question} {c.given or ''}".strip() for c in todo]
        )
        for c, v in zip(todo, vectors):
            oracle = index.chunks[c.chunks[int(np.argmax(index.vectors[c.chunks] @ v))]]
            c.record.oracle_id, c.record.doc_id = oracle.id, oracle.doc_id
            if c.given is not None:
                g = ans.deterministic_cot(
                    c.record.question, c.given, oracle.text, c.record.id, reason=c.long_answer
                )
                c.record.cot, c.record.answer, c.record.status = g.cot, g.answer, Status(g.status)
        ground(cfg, gen, [c.record for c in todo], picker, chunks_by_id)
    records = [x.record if isinstance(x, _Candidate) else x for x in lines]
    return Batch(records, {"qa_lines": len(rows)})
