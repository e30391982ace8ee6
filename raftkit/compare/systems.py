"""Run every system on every question: retrieval once per question and index, each model loaded
once, batched generation with the choice log-likelihoods read off the same prefill, results
checkpointed per system so a rerun resumes.

Checkpoint: OUT/.work/<system>.jsonl, one record per answered question, rewritten atomically after
each block of questions; OUT/.work/<system>.meta.json holds the seconds spent, for questions/s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from raftkit import files, prompts
from raftkit.compare.config import CompareConfig, SystemConfig
from raftkit.compare.questions import Question
from raftkit.compare.scoring import choices_text
from raftkit.config import GenerationConfig
from raftkit.errors import RaftkitError
from raftkit.generate import Answer
from raftkit.retrieval import rag
from raftkit.retrieval.index import Hit
from raftkit.ui import progress, say

GeneratorFactory = Callable[[GenerationConfig], object]
BLOCK_BATCHES = (
    4  # batches per checkpoint write: frequent enough to lose little, rare enough to be cheap
)


def load_indexes(cfg: CompareConfig) -> dict:
    """{index name: FaissIndex} of every index a rag system names (missing ones in `build_indexes`
    are built)."""
    from raftkit import config
    from raftkit.retrieval.config import RaftkitConfig
    from raftkit.retrieval.index import MANIFEST, index_path, load_index
    from raftkit.retrieval.indexing import build_index

    names = sorted({s.index for s in cfg.systems if s.mode == "rag"})
    for name, docs in cfg.build_indexes.items():
        if name in names and not (index_path(name, cfg.indexes_dir) / MANIFEST).is_file():
            if not Path(docs).exists():
                raise RaftkitError(f"build_indexes.{name}: documents not found: {docs}")
            say(f"index '{name}' is missing: building it from {docs}")
            icfg = config.load(
                RaftkitConfig,
                data={
                    "retrieval": {"indexes_dir": cfg.indexes_dir},
                    "runtime": config.to_dict(cfg.runtime),
                },
            )
            build_index(docs, name, icfg)
    runtime = [f"runtime.{k}={v}" for k, v in config.to_dict(cfg.runtime).items()]
    return {name: load_index(name, cfg.indexes_dir, runtime) for name in names}


def retrieve(
    cfg: CompareConfig, questions: list[Question], indexes: dict, gates: dict
) -> dict[str, dict[str, list[Hit]]]:
    """{index name: {question id: top-k chunks}}, searched once per question at the largest depth
    in use (a system's top_k, or the chunks its verifier judges: `gates`, from `gates()`).

    Holdout copies are searched in a copy of the index without their documents: their evidence is
    absent.
    """
    out: dict[str, dict[str, list[Hit]]] = {}
    for name, index in indexes.items():
        k = max(gates[s.name].depth(s.top_k) for s in cfg.systems if s.index == name)
        normal = [q for q in questions if not q.holdout]
        held = [q for q in questions if q.holdout]
        say(f"retrieving top-{k} chunks of index '{name}' for {len(normal)} questions")
        pairs = list(zip(normal, index.search([q.question for q in normal], k)))
        if held:
            gone = {d for q in held for d in q.doc_ids}
            say(
                f"holdout: {len(held)} questions re-asked over '{name}' without their {len(gone)} "
                "documents"
            )
            pairs += zip(held, index.without(gone).search([q.question for q in held], k))
        out[name] = {q.id: hits for q, hits in pairs}
    return out


def gates(cfg: CompareConfig, indexes: dict) -> dict:
    """{rag system: the evidence gate it applies} (raftkit.retrieval.gate.Gate)."""
    from raftkit.retrieval import gate

    out = {}
    for s in cfg.systems:
        if s.mode == "rag":
            try:
                out[s.name] = gate.build(
                    s.min_score,
                    s.verifier,
                    s.gate,
                    s.model,
                    indexes[s.index],
                    s.rerank,
                    s.candidates,
                )
            except RaftkitError as e:
                raise RaftkitError(f"system '{s.name}': {e}") from None
    return out


def question_text(q: Question, show_choices: bool) -> str:
    """The question as every system sees it (choices appended when `show_choices`)."""
    return (
        f"{q.question}\nOptions: {choices_text(q.choices)}"
        if show_choices and q.choices
        else q.question
    )


def conversation(
    q: Question, system: SystemConfig, hits: list[Hit] | None, show_choices: bool
) -> list[dict]:
    """The shared prompt template of the system's mode (raftkit.prompts), so training and test
    prompts agree."""
    text = question_text(q, show_choices)
    if system.mode == "rag":
        return rag.messages(text, hits)
    return prompts.closed_book_messages(text)


def _quote_counts(reply: str, texts: list[str]) -> tuple[int, int]:
    quotes = prompts.extract_quotes(reply)
    return len(quotes), sum(not prompts.quote_in(q, texts) for q in quotes)


def checkpoint_path(work: Path, system: str) -> Path:
    return work / f"{system}.jsonl"


def _answer_block(
    system: SystemConfig,
    generator,
    part: list[Question],
    retrieved,
    cfg: CompareConfig,
    check=None,
) -> list[dict]:
    """The raw records of one block of questions: replies, choice log-likelihoods, retrieved ids,
    quote counts.

    A question the evidence gate closes gets the gate's refusal without generating; its choices are
    still scored (right after the prompt: there is no reply to read them after).
    """
    from raftkit.retrieval import gate

    judged = [None] * len(part)
    if retrieved is not None:
        # the question as asked, its answer options apart (a verifier with an options head reads
        # whether a chunk names one of them)
        check = check or gate.Gate()
        judged = rag.judge(
            check,
            [q.question for q in part],
            [retrieved[q.id][: check.depth(system.top_k)] for q in part],
            system.top_k,
            [q.choices or None for q in part],
        )
    hits = [j.hits if j else None for j in judged]
    closed = [bool(j and j.closed) for j in judged]
    convs = [conversation(q, system, h, cfg.scoring.show_choices) for q, h in zip(part, hits)]
    # Choices of unanswerable questions are never scored: no forward for them.
    scored = cfg.scoring.mc in ("loglik", "both")
    choices = [q.choices if q.answerable and scored else [] for q in part]
    answers = _answers(system, generator, convs, choices, closed, cfg)
    for i, j in enumerate(judged):
        if j and j.closed:
            answers[i] = Answer(j.refusal, answers[i].logliks if answers[i] else None)
    records = []
    for q, h, a, shut in zip(part, hits, answers, closed):
        n_quotes, unsupported = _quote_counts(a.reply, [x.chunk.text for x in h or []])
        records.append(
            {
                "qid": q.id,
                "reply": a.reply,
                "answer": prompts.extract_answer(a.reply),
                "loglik": a.logliks or None,
                "retrieved": [x.chunk.id for x in h or []],
                "retrieved_doc_ids": [x.chunk.doc_id for x in h or []],
                "quotes": n_quotes,
                "quotes_unsupported": unsupported,
                "gated": shut,
            }
        )
    return records


def _answers(system, generator, convs, choices, closed, cfg: CompareConfig) -> list:
    """The generator's answers to the open questions, and (None for the rest) the choice scores of
    the gated ones, read right after the prompt."""
    answers = [None] * len(convs)
    for shut in (False, True):
        idx = [i for i in range(len(convs)) if closed[i] == shut and (not shut or choices[i])]
        if not idx:
            continue
        got = generator.answer(
            [convs[i] for i in idx],
            [choices[i] for i in idx],
            after_reply=cfg.scoring.mc_after == "reply" and not shut,
            desc=f"{system.name} {'gated choices' if shut else 'answers'}",
            **({"max_new_tokens": 1} if shut else {}),
        )
        for i, a in zip(idx, got):
            answers[i] = a
    return answers


def run_system(
    system: SystemConfig,
    generator,
    questions: list[Question],
    retrieved: dict[str, list[Hit]] | None,
    cfg: CompareConfig,
    work: Path,
    check=None,
) -> list[dict]:
    """Answer (and score choices of) every question not yet in the system's checkpoint; returns all
    records."""
    path, meta_path = checkpoint_path(work, system.name), work / f"{system.name}.meta.json"
    records = files.read_jsonl(path) if path.is_file() else []
    meta = (
        json.loads(meta_path.read_text())
        if meta_path.is_file()
        else {"seconds": 0.0, "answered": 0}
    )
    done = {r["qid"] for r in records}
    todo = [q for q in questions if q.id not in done]
    if not todo:
        return records
    if done:
        say(
            f"{system.name}: resuming, {len(done)} of {len(done) + len(todo)} questions already "
            "answered"
        )
    block = cfg.generation.batch_size * BLOCK_BATCHES
    bar = progress(
        range(0, len(todo), block),
        total=(len(todo) + block - 1) // block,
        desc=f"{system.name}",
        unit="block",
    )
    for start in bar:
        part = todo[start : start + block]
        t0 = time.perf_counter()
        records += _answer_block(system, generator, part, retrieved, cfg, check)
        meta["seconds"] += time.perf_counter() - t0
        meta["answered"] += len(part)
        files.write_jsonl(path, records)
        files.write_json(meta_path, meta)
    return records


def system_questions(system: SystemConfig, questions: list[Question]) -> list[Question]:
    """Holdout copies are for rag systems only: a closed-book system never sees an index."""
    return questions if system.mode == "rag" else [q for q in questions if not q.holdout]


def run_all(
    cfg: CompareConfig,
    questions: list[Question],
    retrieved: dict[str, dict[str, list[Hit]]],
    work: Path,
    generator_factory: GeneratorFactory | None = None,
    gates: dict | None = None,
) -> dict[str, list[dict]]:
    """{system name: records}, loading each distinct model once and running all of its systems with
    it."""
    from raftkit.generate import make_generator
    from raftkit.models import runtime

    factory = generator_factory or (lambda gcfg: make_generator(gcfg, runtime(cfg.runtime)))
    # systems of one model (and server) share one loaded generator
    by_model: dict[tuple, list[SystemConfig]] = {}
    for s in cfg.systems:
        g = s.generation_config(cfg.generation)
        by_model.setdefault((g.model, g.backend, g.base_url, g.tokenizer), []).append(s)
    out = {}
    for (model, backend, url, _), systems in by_model.items():
        pending = [
            s
            for s in systems
            if not {q.id for q in system_questions(s, questions)} <= _done_ids(work, s.name)
        ]
        generator = None
        if pending:
            where = f" served at {url}" if backend == "openai" else ""
            say(f"loading {model}{where} for {', '.join(s.name for s in systems)}")
            generator = factory(systems[0].generation_config(cfg.generation))
        for s in systems:
            qs = system_questions(s, questions)
            docs = retrieved.get(s.index) if s.mode == "rag" else None
            recs = run_system(s, generator, qs, docs, cfg, work, (gates or {}).get(s.name))
            wanted = {q.id for q in qs}
            out[s.name] = [r for r in recs if r["qid"] in wanted]
        del generator
    return out


def _done_ids(work: Path, system: str) -> set[str]:
    path = checkpoint_path(work, system)
    return {r["qid"] for r in files.read_jsonl(path)} if path.is_file() else set()


def speed(work: Path, system: str) -> dict:
    """Seconds spent and questions answered by `system` (summed over resumed runs)."""
    path = work / f"{system}.meta.json"
    meta = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "answered": 0}
    qps = meta["answered"] / meta["seconds"] if meta["seconds"] > 0 else None
    return {**meta, "questions_per_s": qps}
