"""`raftkit probes NAME --out FILE.jsonl`: freshness questions written from what an index update
changed, with no labels and no model.

From the index's history (raftkit/retrieval/history.py), per document:
- *changed*: each edited sentence whose differing span is short (a number, a date, a version, a
  name, a few words) gives a cloze of the new sentence with that span blanked: answer = the new
  span, answer_v1 = the old one, choices = both plus two spans of the same shape from the corpus;
- *added*: sentences of added documents, and sentences added to changed ones, with such a span
  that the old text lacks;
- *unanswerable*: sentences of deleted documents (the evidence is gone: a system that still
  answers answers from memory or invents).

Each line is a QA row that `raftkit compare` and `build-dataset --qa` read as they are. Probes are
seeded, deduplicated and capped per document (`probes.max_per_doc`). `probes.phrasing: model` asks
a generator to rephrase each cloze as a question, and keeps the rephrasing only when the generator,
shown the sentence, answers it with the same span.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from raftkit import files
from raftkit.config import GenerationConfig, RuntimeConfig, Section
from raftkit.errors import RaftkitError
from raftkit.raft import spans
from raftkit.retrieval import history
from raftkit.retrieval.textdiff import sentences


class ProbesConfig(Section):
    max_per_doc: int = Field(
        5, ge=1, description="probes kept per document (changed ones first, a seeded sample)"
    )
    seed: int = Field(0, description="decides the distractors, their order and the sample")
    phrasing: Literal["cloze", "model"] = Field(
        "cloze",
        description="cloze = the sentence with its span blanked (no model); model = the generator"
        " rephrases it as a question, kept only if it answers that question with the same span",
    )
    max_pool_docs: int = Field(
        2000, ge=1, description="documents (a seeded sample) whose spans supply the distractors"
    )


class ProbesRunConfig(Section):
    """The config of `raftkit probes`: its own section, plus the generator for phrasing: model."""

    probes: ProbesConfig = Field(
        default_factory=ProbesConfig, description="which probes are written and how"
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig,
        description="the generator that rephrases probes (phrasing: model)",
    )
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="device and precision of the generator"
    )


@dataclass
class ProbeSet:
    """The probes of an index's last `since` updates, how many of each status, and the time."""

    rows: list[dict]
    counts: dict[str, int]
    skipped: dict[str, int]  # why candidate spans gave no probe
    seconds: float


def _pool(index, changes: history.Changes, cfg: ProbesConfig) -> spans.SpanPool:
    """Distractor spans: the changed documents' old and new texts and a sample of the others."""
    ids = sorted({c.doc_id for c in index.chunks})
    if len(ids) > cfg.max_pool_docs:
        ids = random.Random(cfg.seed).sample(ids, cfg.max_pool_docs)
    chosen = set(ids)
    texts = history.document_texts([c for c in index.chunks if c.doc_id in chosen])
    own = [t for d in changes.documents for t in (d.old_text, d.new_text) if t]
    return spans.SpanPool(own + list(texts.values()))


def _changed_row(doc, old_sent, new_sent, edit, pool, rng, skipped) -> dict | None:
    """The probe of one differing span of an edited sentence, or None (reason counted)."""
    new = spans.span_covering(new_sent, edit.new_start, edit.new_end)
    old = spans.span_covering(old_sent, edit.old_start, edit.old_end)
    why = ""
    if new is None or old is None:
        why = "no short span on both sides"
    elif new.text.lower() == old.text.lower():
        why = "same span"
    elif spans.occurrences(old_sent, new.text) or spans.occurrences(new_sent, old.text):
        why = "not a changed value"  # "Go, Java and Rust" -> "Go, Java, Rust and Node.js"
    else:
        question = spans.cloze(new_sent, new, doc.title) or spans.cloze(new_sent, new, doc.id)
        options = question and spans.choices([new.text, old.text], new, pool, rng, question)
        if question is None:
            why = "the answer shows in the question (twice in the sentence, or its title)"
        elif options is None:
            why = "too few distractors of its kind"
    if why:
        skipped[why] = skipped.get(why, 0) + 1
        return None
    return {
        "question": question,
        "answer": new.text,
        "choices": options,
        "answer_index": options.index(new.text),
        "answer_v1": old.text,
        "answer_index_v1": options.index(old.text),
        "doc_ids": [doc.id],
        "status": "changed",
        "sentence": new_sent,
        "sentence_v1": old_sent,
        "kind": new.kind,
    }


def _span_row(sentence, title, doc_id, absent_from, pool, rng) -> dict | None:
    """A probe about the first span of `sentence` that `absent_from` lacks (see spans)."""
    for span in spans.find_spans(sentence, preferred_first=True):
        if absent_from and spans.occurrences(absent_from, span.text):
            continue
        row = spans.question_row(sentence, span, title, doc_id, pool, rng)
        if row:
            return row
    return None


def _document_probes(doc, pool, seed: int, skipped: dict) -> list[dict]:
    rng = random.Random(f"{seed}:{doc.id}")
    rows = []
    if doc.status == "changed":
        for sc in doc.sentences():
            if sc.old is not None and sc.new is not None:
                for e in sc.edits:
                    rows.append(_changed_row(doc, sc.old, sc.new, e, pool, rng, skipped))
            elif sc.new is not None:
                row = _span_row(sc.new, doc.title, doc.id, doc.old_text, pool, rng)
                rows.append(row and {**row, "status": "added"})
    else:
        text = doc.new_text if doc.status == "added" else doc.old_text
        for sent in sentences(text):
            row = _span_row(sent, doc.title, doc.id, "", pool, rng)
            rows.append(row and {**row, "status": doc.status})
    return [r for r in rows if r]


def _as_qa(row: dict) -> dict:
    """A probe in the QA schema: v1 fields for every status, none of the evidence for deleted."""
    if row["status"] == "changed":
        return row
    if row["status"] == "added":
        return {**row, "answer_v1": None, "answer_index_v1": None}
    return {  # deleted: v1 knew the answer; nothing in the index answers it now
        **row,
        "answer": None,
        "answer_index": None,
        "answer_v1": row["answer"],
        "answer_index_v1": row["answer_index"],
        "doc_ids": [],
        "doc_ids_v1": row["doc_ids"],
        "status": "unanswerable",
    }


def _kept(rows: list[dict], limit: int, seed: int) -> list[dict]:
    """Deduplicated (one probe per question and per old -> new pair), changed ones first, at most
    `limit`, kept in document order."""
    seen, out = set(), []
    for r in rows:
        keys = {("q", r["question"].lower()), ("a", r["answer"].lower(), r.get("answer_v1"))}
        if not keys & seen:
            seen |= keys
            out.append(r)
    changed = spans.cap([r for r in out if r["status"] == "changed"], limit, seed)
    room = limit - len(changed)
    rest = spans.cap([r for r in out if r["status"] != "changed"], room, seed) if room > 0 else []
    order = {id(r): i for i, r in enumerate(out)}
    return sorted(changed + rest, key=lambda r: order[id(r)])


def make_probes(index, cfg: ProbesConfig, since: int = 1, generator=None) -> ProbeSet:
    """Freshness probes of the last `since` recorded updates of `index` (a FaissIndex).

    `generator` (anything with `.chat`) is used only for `phrasing: model`. Raises RaftkitError
    when the index has no recorded change or the changes give no probe.
    """
    t0 = time.perf_counter()
    changes = history.changes(index, since)
    pool = _pool(index, changes, cfg)
    rows, skipped = [], {}
    for doc in changes.documents:
        found = _document_probes(doc, pool, cfg.seed, skipped)
        rows += [_as_qa(r) for r in _kept(found, cfg.max_per_doc, cfg.seed)]
    if not rows:
        raise RaftkitError(
            f"index '{index.name}': the recorded changes give no probe (no edited sentence differs "
            "by a short span, and no added or deleted sentence holds one)"
        )
    if cfg.phrasing == "model":
        rephrase(rows, generator)
    rows = [{"id": f"probe-{n:04d}", **r} for n, r in enumerate(rows, 1)]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("changed", "added", "unanswerable")}
    return ProbeSet(rows, counts, skipped, time.perf_counter() - t0)


def write_probes(
    name: str,
    out: str | Path,
    cfg: ProbesRunConfig,
    since: int = 1,
    indexes_dir="indexes",
    overwrite: bool = False,
) -> ProbeSet:
    """`raftkit probes`: the probes of index `name` written to `out` (JSON lines); see
    make_probes. The generator is loaded only for `phrasing: model`. An existing `out` is
    replaced only with `overwrite`."""
    from raftkit.retrieval.index import load_index

    out = Path(out)
    if out.is_dir():
        raise RaftkitError(f"--out {out} is a folder; give a .jsonl file path")
    if out.exists() and not overwrite:
        raise RaftkitError(f"--out {out} exists; pass --overwrite to replace it")
    index = load_index(name, indexes_dir)
    generator = None
    if cfg.probes.phrasing == "model":
        from raftkit.generate import make_generator
        from raftkit.models import runtime

        generator = make_generator(cfg.generation, runtime(cfg.runtime))
    result = make_probes(index, cfg.probes, since, generator)
    files.write_jsonl(out, result.rows)
    return result


# ----------------------------------------------------------------------------- phrasing: model
_REPHRASE = (
    "Rewrite the fill-in-the-blank sentence as one short question whose answer is exactly what "
    "fills the blank. Keep the names it mentions. Do not give the answer. Reply with the question "
    "only."
)
_ANSWER = "Answer the question from the text with the shortest exact phrase of the text."


def rephrase(rows: list[dict], generator) -> None:
    """Replace each cloze by the generator's question where the generator, shown the sentence,
    answers that question with the probe's answer; other rows keep their cloze. In place."""
    from raftkit.prompts import extract_answer, normalize_answer
    from raftkit.raft.questions import parse_questions

    if generator is None:
        raise RaftkitError("probes.phrasing: model needs a generator (generation.model)")
    asks = [
        [
            {"role": "system", "content": _REPHRASE},
            {"role": "user", "content": r["question"]},
        ]
        for r in rows
    ]
    replies = generator.chat(asks, max_new_tokens=64, desc="rephrasing probes")
    questions = [(parse_questions(reply, limit=1) or [""])[0] for reply in replies]
    checks = [
        [
            {"role": "system", "content": _ANSWER},
            {"role": "user", "content": f"Text: {r['sentence']}\nQuestion: {q}"},
        ]
        for r, q in zip(rows, questions)
    ]
    answers = generator.chat(checks, max_new_tokens=32, desc="checking rephrased probes")
    for r, q, a in zip(rows, questions, answers):
        key = r["answer"] if r["answer"] is not None else r["answer_v1"]
        leaks = spans.occurrences(q, key) or (
            r.get("answer_v1") and spans.occurrences(q, r["answer_v1"])
        )
        said = normalize_answer(extract_answer(a) or a)
        if q and not leaks and said == normalize_answer(key):
            r["cloze"], r["question"] = r["question"], q
