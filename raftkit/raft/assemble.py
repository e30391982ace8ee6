"""Assembly: each grounded answer becomes a RAFT example (question + oracle + k distractors,
shuffled).

Everything is a pure function of the records, the chunks and the seed: randomness comes from a hash
of (seed, example id), never from global RNG state, so a resumed build equals an uninterrupted one.

Every example shows k+1 chunks. When the oracle is kept, that is the oracle plus k distractors; when
it is dropped, one more distractor (the "filler") takes its slot, so the number of chunks never
tells the model whether the answer is there. The oracle is kept in exactly round(P * n) examples of
each split (chosen by hash), not in a Bernoulli(P) draw, so the share is P up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raftkit.errors import RaftkitError
from raftkit.prompts import ABSTAIN, extract_quotes
from raftkit.provenance import rng_for, stable_hash
from raftkit.raft.answers import distractor_cot, refusal_cot, verdict_cot
from raftkit.raft.config import AssemblyConfig
from raftkit.raft.records import RaftExample, Record
from raftkit.retrieval.chunking import Chunk


def too_few_chunks(k: int, doc: str, have: int) -> RaftkitError:
    """The error for a corpus with fewer than k+1 chunks outside document `doc`."""
    return RaftkitError(
        f"{k} distractors (+1 to replace a dropped oracle) need {k + 1} chunks outside '{doc}', "
        f"the corpus has {have}; lower assembly.num_distractors or add documents"
    )


def check_enough_chunks(chunks: list[Chunk], k: int) -> None:
    """Fail before any generation when some document has fewer than k+1 chunks outside it."""
    per_doc: dict[str, int] = {}
    for c in chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    doc, n = max(per_doc.items(), key=lambda kv: (kv[1], kv[0]))
    if len(chunks) - n < k + 1:
        raise too_few_chunks(k, doc, len(chunks) - n)


def split_documents(doc_ids: list[str], eval_fraction: float, seed: int) -> dict[str, str]:
    """doc_id -> 'train' | 'eval'; round(eval_fraction * n) documents (at least 1 of 2+) go to
    eval."""
    order = sorted(doc_ids, key=lambda d: (stable_hash(seed, "split", d), d))
    n_eval = round(eval_fraction * len(order))
    if eval_fraction > 0 and len(order) >= 2:
        n_eval = min(max(n_eval, 1), len(order) - 1)
    return {d: ("eval" if i < n_eval else "train") for i, d in enumerate(order)}


@dataclass
class DistractorPicker:
    """Chooses the k+1 non-oracle chunks of an example: same split, other documents."""

    chunks: list[Chunk]
    vectors: np.ndarray  # L2-normalised, one row per chunk
    splits: dict[str, str]
    cfg: AssemblyConfig

    def __post_init__(self):
        self.by_id = {c.id: i for i, c in enumerate(self.chunks)}
        docs = sorted({c.doc_id for c in self.chunks})
        doc_num = {d: n for n, d in enumerate(docs)}
        # Arrays, so a pool is one vectorised mask instead of a Python loop over every chunk.
        self._doc = np.array([doc_num[c.doc_id] for c in self.chunks])
        self._eval = np.array([self.splits.get(c.doc_id, "train") == "eval" for c in self.chunks])
        self.fallbacks = 0  # examples that had to borrow chunks from the other split

    def pick(self, oracle_id: str, key: str) -> list[int]:
        """Indices of k+1 chunks from documents other than the oracle's, nearest first (hard) or
        sampled (random). Raises RaftkitError when the corpus has too few such chunks."""
        need = self.cfg.num_distractors + 1
        o = self.by_id[oracle_id]
        others = self._doc != self._doc[o]
        pool = np.flatnonzero(others & (self._eval == self._eval[o]))
        if len(pool) < need:
            if int(others.sum()) < need:
                raise too_few_chunks(need - 1, self.chunks[o].doc_id, int(others.sum()))
            self.fallbacks += 1
            # Borrow only what is missing, nearest/sampled the same way, so the split stays as clean
            # as it can.
            rest = np.flatnonzero(others & (self._eval != self._eval[o]))
            return self._choose(pool, len(pool), o, key) + self._choose(
                rest, need - len(pool), o, key
            )
        return self._choose(pool, need, o, key)

    def _choose(self, pool: np.ndarray, n: int, oracle: int, key: str) -> list[int]:
        if n <= 0:
            return []
        if self.cfg.distractors == "random":
            return rng_for(self.cfg.seed, f"distractors:{key}").sample([int(i) for i in pool], n)
        scores = self.vectors[pool] @ self.vectors[oracle]
        # Stable sort on -score, ties by position: deterministic across runs.
        return [int(pool[j]) for j in np.argsort(-scores, kind="stable")[:n]]


def oracle_flags(ids: list[str], p: float, seed: int) -> dict[str, bool]:
    """id -> keep the oracle; exactly round(p * len(ids)) of them are True, chosen by hash."""
    order = sorted(ids, key=lambda i: (stable_hash(seed, "oracle", i), i))
    keep = round(p * len(order))
    return {i: n < keep for n, i in enumerate(order)}


def assemble(
    records: list[Record], picker: DistractorPicker, cfg: AssemblyConfig
) -> dict[str, list[RaftExample]]:
    """RAFT examples per split from grounded records; returns {'train': [...], 'eval': [...]}.

    A record without a generated `rejected` CoT gets one derived from its first distractor.
    """
    out: dict[str, list[RaftExample]] = {"train": [], "eval": []}
    by_split: dict[str, list[Record]] = {"train": [], "eval": []}
    for r in records:
        by_split[picker.splits.get(r.doc_id, "train")].append(r)
    for split, recs in by_split.items():
        if cfg.contrast:
            out[split] = [
                e
                for r in recs
                for e in (
                    _example(r, picker, cfg, True),
                    _example(r, picker, cfg, False, "/absent"),
                )
            ]
            continue
        flags = oracle_flags([r.id for r in recs], cfg.oracle_p, cfg.seed)
        out[split] = [_example(r, picker, cfg, flags[r.id]) for r in recs]
    return out


def _example(
    r: Record, picker: DistractorPicker, cfg: AssemblyConfig, keep_oracle: bool, suffix: str = ""
) -> RaftExample:
    picked = picker.pick(r.oracle_id, r.id)
    distractors, filler = picked[: cfg.num_distractors], picked[cfg.num_distractors]
    shown = [picker.by_id[r.oracle_id] if keep_oracle else filler] + distractors
    rng_for(cfg.seed, f"shuffle:{r.id}").shuffle(shown)
    chunks = [picker.chunks[i] for i in shown]
    first = picker.chunks[distractors[0] if distractors else filler]
    cot, target, rejected = _targets(r, chunks, first, picker, cfg, keep_oracle)
    return RaftExample(
        id=r.id + suffix,
        question=r.question,
        answer=r.answer,
        target_answer=target,
        cot_answer=cot,
        doc_id=r.doc_id,
        oracle_id=r.oracle_id,
        context_ids=[c.id for c in chunks],
        context=[c.text for c in chunks],
        titles=[c.title for c in chunks],
        oracle_present=keep_oracle,
        distractor_ids=[picker.chunks[i].id for i in distractors],
        quote_status=r.status.value,
        rejected_cot=rejected,
        choices=r.choices,
        answer_index=_index_of(r.answer, r.choices),
    )


def _targets(
    r: Record,
    chunks: list[Chunk],
    first: Chunk,
    picker: DistractorPicker,
    cfg: AssemblyConfig,
    keep_oracle: bool,
) -> tuple[str, str, str]:
    """(target CoT, target answer, DPO-rejected CoT) of one example; `first` is its first
    distractor (what a confident wrong answer quotes)."""
    quote_first = cfg.refusal == "quote" and cfg.absent_target == "abstain"
    if keep_oracle or cfg.absent_target == "memorize":
        cot, target = (verdict_cot(r.cot) if quote_first else r.cot), r.answer
    else:
        cot, target = refusal_cot(r.question, [c.text for c in chunks], cfg.refusal), ABSTAIN
    if keep_oracle and cfg.rejected_with_oracle == "refusal":
        # the same quote as the chosen answer, then the wrong verdict
        quote = next(iter(extract_quotes(r.cot)), "")
        oracle = [picker.chunks[picker.by_id[r.oracle_id]].text]
        return cot, target, refusal_cot(r.question, oracle, cfg.refusal, quote)
    rejected = r.rejected or distractor_cot(r.question, r.answer, first.text, r.choices, r.id).cot
    return cot, target, verdict_cot(rejected) if quote_first else rejected


def _index_of(answer: str, choices: list[str]) -> int | None:
    """Where the reference answer sits among a QA line's choices (for multiple-choice scoring)."""
    lowered = [c.strip().lower() for c in choices]
    return lowered.index(answer.strip().lower()) if answer.strip().lower() in lowered else None
