"""Run every system on every question: retrieval once per question and index, each model loaded once,
batched generation and choice log-likelihoods, results checkpointed per system so a rerun resumes.

Checkpoint: OUT/.work/<system>.jsonl, one record per answered question, rewritten atomically after each
block of questions; OUT/.work/<system>.meta.json holds the seconds spent, for questions/s.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from raftkit import atomic, prompts
from raftkit.compare.config import CompareConfig, SystemConfig
from raftkit.compare.questions import Question
from raftkit.compare.scoring import choices_text
from raftkit.config import GenerationConfig
from raftkit.errors import RaftkitError
from raftkit.ui import progress, say

GeneratorFactory = Callable[[GenerationConfig], object]
BLOCK_BATCHES = 4  # batches per checkpoint write: frequent enough to lose little, rare enough to be cheap


@dataclass
class Retrieved:
    ids: list[str]
    doc_ids: list[str]
    texts: list[str]
    titles: list[str]

    def top(self, k: int) -> "Retrieved":
        return Retrieved(self.ids[:k], self.doc_ids[:k], self.texts[:k], self.titles[:k])


def _holdout_copy(index, doc_ids: set[str]):
    """An in-memory copy of `index` without the chunks of `doc_ids` (their evidence is absent)."""
    import numpy as np

    from raftkit.retrieval.index import FaissIndex, make_faiss

    keep = [i for i, c in enumerate(index.chunks) if c.doc_id not in doc_ids]
    if not keep:
        raise RaftkitError(f"index '{index.name}': holding out {len(doc_ids)} documents leaves nothing to search")
    vectors = np.ascontiguousarray(index.vectors[keep])
    faiss_index, _ = make_faiss(vectors, index.cfg.retrieval.index)
    return FaissIndex(index.path, index.manifest, index.cfg, [index.chunks[i] for i in keep], vectors,
                      faiss_index, index._embedder)


def load_indexes(cfg: CompareConfig) -> dict:
    """{index name: FaissIndex} of every index a rag system names; raises RaftkitError if one is missing."""
    from raftkit import config
    from raftkit.config import RaftkitConfig
    from raftkit.retrieval.index import MANIFEST, build_index, index_path, load_index

    names = sorted({s.index for s in cfg.systems if s.mode == "rag"})
    for name, docs in cfg.build_indexes.items():
        if name in names and not (index_path(name, cfg.indexes_dir) / MANIFEST).is_file():
            if not Path(docs).exists():
                raise RaftkitError(f"build_indexes.{name}: documents not found: {docs}")
            say(f"index '{name}' is missing: building it from {docs}")
            build_index(docs, name, config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={cfg.indexes_dir}"]))
    return {name: load_index(name, cfg.indexes_dir) for name in names}


def retrieve(cfg: CompareConfig, questions: list[Question], indexes: dict) -> dict[str, dict[str, Retrieved]]:
    """{index name: {question id: top-k chunks}}, searched once per question at the largest top_k in use."""
    out: dict[str, dict[str, Retrieved]] = {}
    for name, index in indexes.items():
        k = max(s.top_k for s in cfg.systems if s.index == name)
        normal = [q for q in questions if not q.holdout]
        held = [q for q in questions if q.holdout]
        say(f"retrieving top-{k} chunks of index '{name}' for {len(normal)} questions")
        pairs = list(zip(normal, index.search([q.question for q in normal], k)))
        if held:
            gone = {d for q in held for d in q.doc_ids}
            copy = _holdout_copy(index, gone)
            say(f"holdout: {len(held)} questions re-asked over '{name}' without their {len(gone)} documents")
            pairs += zip(held, copy.search([q.question for q in held], k))
        out[name] = {q.id: Retrieved([h.chunk.id for h in hits], [h.chunk.doc_id for h in hits],
                                     [h.chunk.text for h in hits], [h.chunk.title for h in hits])
                     for q, hits in pairs}
    return out


def question_text(q: Question, show_choices: bool) -> str:
    """The question as every system sees it (choices appended when `show_choices`)."""
    return f"{q.question}\nOptions: {choices_text(q.choices)}" if show_choices and q.choices else q.question


def conversation(q: Question, system: SystemConfig, docs: Retrieved | None, show_choices: bool) -> list[dict]:
    """The shared prompt template of the system's mode (raftkit.prompts), so training and test prompts agree."""
    text = question_text(q, show_choices)
    if system.mode == "rag":
        return prompts.rag_messages(text, docs.texts, docs.titles)
    return prompts.closed_book_messages(text)


def choice_continuation(choice: str) -> str:
    """What a choice's log-likelihood is measured on: the final-answer line the prompts ask for."""
    return f"{prompts.ANSWER_TAG} {choice}"


def shared_prompt_loglik(model, tokenizer, conv: list[dict], continuations: list[str]) -> list[float]:
    """Summed log-probabilities of each continuation after chat prompt `conv`.

    The prompt runs once and its KV cache is shared by all continuations (one batched forward of the
    short choices), so scoring 4 choices costs about one prompt pass instead of four.
    """
    import torch

    prompt = tokenizer.apply_chat_template(conv, add_generation_prompt=True)
    prompt = prompt if isinstance(prompt, list) else prompt["input_ids"]
    conts = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n, width, dev = len(conts), max(map(len, conts)), model.device
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt], device=dev), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)
        # Right padding: a causal model never lets a continuation token see the pads after it.
        ids = torch.tensor([c + [pad] * (width - len(c)) for c in conts], device=dev)
        mask = torch.tensor([[1] * (len(prompt) + len(c)) + [0] * (width - len(c)) for c in conts], device=dev)
        positions = torch.arange(len(prompt), len(prompt) + width, device=dev).expand(n, width)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
    scores = []
    for i, c in enumerate(conts):
        rest = logp[i, :len(c) - 1].gather(1, ids[i, 1:len(c), None]).sum() if len(c) > 1 else 0.0
        scores.append(float(first[c[0]] + rest))
    return scores


def choice_logliks(generator, conversations: list[list[dict]], choices: list[list[str]],
                   prefixes: list[str] | None = None) -> list[list[float]] | None:
    """Per question, the log-likelihood of each choice; None when the backend cannot score (OpenAI).

    `prefixes` (one per question) go before every choice's answer line: the system's own reasoning.
    They add the same amount to each choice of a question, so they move which choice wins, not by how much.
    """
    prefixes = prefixes or [""] * len(conversations)
    conts = [[p + choice_continuation(x) for x in ch] for p, ch in zip(prefixes, choices)]
    if hasattr(generator, "model") and hasattr(generator, "tokenizer"):
        return [shared_prompt_loglik(generator.model, generator.tokenizer, conv, cs) if cs else []
                for conv, cs in zip(conversations, conts)]
    if not hasattr(generator, "loglikelihood"):
        return None
    convs = [c for c, cs in zip(conversations, conts) for _ in cs]
    flat = generator.loglikelihood(convs, [x for cs in conts for x in cs]) if convs else []
    out, pos = [], 0
    for ch in choices:
        out.append(flat[pos:pos + len(ch)])
        pos += len(ch)
    return out


def _quote_counts(reply: str, texts: list[str]) -> tuple[int, int]:
    quotes = prompts.extract_quotes(reply)
    return len(quotes), sum(not prompts.quote_in(q, texts) for q in quotes)


def checkpoint_path(work: Path, system: str) -> Path:
    return work / f"{system}.jsonl"


def run_system(system: SystemConfig, generator, questions: list[Question], retrieved: dict[str, Retrieved] | None,
               cfg: CompareConfig, work: Path) -> list[dict]:
    """Answer (and score choices of) every question not yet in the system's checkpoint; returns all records."""
    path, meta_path = checkpoint_path(work, system.name), work / f"{system.name}.meta.json"
    records = atomic.read_jsonl(path) if path.is_file() else []
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"seconds": 0.0, "answered": 0}
    done = {r["qid"] for r in records}
    todo = [q for q in questions if q.id not in done]
    if not todo:
        return records
    if done:
        say(f"{system.name}: resuming, {len(done)} of {len(done) + len(todo)} questions already answered")
    bs = cfg.generation.batch_size
    block = bs * BLOCK_BATCHES
    use_loglik = cfg.scoring.mc in ("loglik", "both")
    bar = progress(range(0, len(todo), block), total=(len(todo) + block - 1) // block,
                   desc=f"{system.name}", unit="block")
    for start in bar:
        part = todo[start:start + block]
        t0 = time.perf_counter()
        docs = [retrieved[q.id].top(system.top_k) if retrieved is not None else None for q in part]
        convs = [conversation(q, system, d, cfg.scoring.show_choices) for q, d in zip(part, docs)]
        replies = generator.chat(convs, desc=f"{system.name} answers")
        t1 = time.perf_counter()
        # Choices of unanswerable questions are never scored: skip their forwards.
        choices = [q.choices if q.answerable else [] for q in part]
        prefixes = [prompts.reasoning(r) for r in replies] if cfg.scoring.mc_after == "reply" else None
        logliks = (choice_logliks(generator, convs, choices, prefixes) if use_loglik
                   else None) or [None] * len(part)
        for q, d, reply, ll in zip(part, docs, replies, logliks):
            n_quotes, unsupported = _quote_counts(reply, d.texts if d else [])
            records.append({"qid": q.id, "reply": reply, "answer": prompts.extract_answer(reply), "loglik": ll,
                            "retrieved": d.ids if d else [], "retrieved_doc_ids": d.doc_ids if d else [],
                            "quotes": n_quotes, "quotes_unsupported": unsupported})
        meta["seconds"] += time.perf_counter() - t0
        meta["generate_seconds"] = meta.get("generate_seconds", 0.0) + t1 - t0
        meta["answered"] += len(part)
        atomic.write_jsonl(path, records)
        atomic.write_json(meta_path, meta)
    return records


def system_questions(system: SystemConfig, questions: list[Question]) -> list[Question]:
    """Holdout copies are for rag systems only: a closed-book system never sees an index."""
    return questions if system.mode == "rag" else [q for q in questions if not q.holdout]


def run_all(cfg: CompareConfig, questions: list[Question], retrieved: dict[str, dict[str, Retrieved]], work: Path,
            generator_factory: GeneratorFactory | None = None) -> dict[str, list[dict]]:
    """{system name: records}, loading each distinct model once and running all of its systems with it."""
    from raftkit.generate import make_generator

    factory = generator_factory or make_generator
    by_model: dict[str, list[SystemConfig]] = {}
    for s in cfg.systems:
        by_model.setdefault(s.model, []).append(s)
    out = {}
    for model, systems in by_model.items():
        pending = [s for s in systems
                   if len(_done_ids(work, s.name) & {q.id for q in system_questions(s, questions)})
                   < len(system_questions(s, questions))]
        generator = None
        if pending:
            say(f"loading {model} for {', '.join(s.name for s in systems)}")
            generator = factory(replace(cfg.generation, model=model))
        for s in systems:
            qs = system_questions(s, questions)
            recs = run_system(s, generator, qs, retrieved.get(s.index) if s.mode == "rag" else None, cfg, work)
            wanted = {q.id for q in qs}
            out[s.name] = [r for r in recs if r["qid"] in wanted]
        del generator
    return out


def _done_ids(work: Path, system: str) -> set[str]:
    path = checkpoint_path(work, system)
    return {r["qid"] for r in atomic.read_jsonl(path)} if path.is_file() else set()


def speed(work: Path, system: str) -> dict:
    """Seconds spent and questions answered by `system` (summed over resumed runs)."""
    path = work / f"{system}.meta.json"
    meta = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "answered": 0}
    qps = meta["answered"] / meta["seconds"] if meta["seconds"] > 0 else None
    return {**meta, "questions_per_s": qps}
