"""The evidence gate: abstain when the best retrieved chunk scores below a threshold.

A 135M generator cannot tell whether the chunks it is shown answer the question (the probability of
its own "This sentence answers the question." separates answerable from evidence-absent questions
no better than AUC 0.6 on RealTimeQA), but the retriever can: with the question's document gone,
the best chunk's cosine score drops. `build-dataset` calibrates the threshold on its own questions
(each scored once over the whole index and once with its document left out) so that a chosen share
of answerable questions is refused; `raftkit train` carries it into run.json, and `ask` and
`compare` apply it to a model that carries one (`min_score: auto`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raftkit import prompts
from raftkit.errors import RaftkitError
from raftkit.runs import RunFolder

SEARCH_DEPTH = 64  # hits searched for the best chunk of another document


def calibrate(index, questions: list[tuple[str, str]], over_refusal: float) -> dict | None:
    """The gate of `index` for (question, its document id) pairs: `min_score` refuses a share
    `over_refusal` of them when their document is there; also how often it lets an evidence-absent
    question through, and how well the score separates the two (AUC). None for fewer than 10
    pairs."""
    hits = index.search([q for q, _ in questions], min(SEARCH_DEPTH, len(index.chunks)))
    present, absent = [], []
    for (_, doc), row in zip(questions, hits):
        other = next((h.score for h in row if h.chunk.doc_id != doc), None)
        if row and other is not None:
            present.append(row[0].score)
            absent.append(other)
    if len(present) < 10:
        return None
    pos, neg = np.array(present), np.array(absent)
    threshold = float(np.quantile(pos, over_refusal))
    return {
        "min_score": round(threshold, 4),
        "over_refusal": over_refusal,
        "questions": len(pos),
        **separation(pos, neg, threshold),
        "embedder": index.manifest["embedder"]["model"],
    }


def separation(pos: np.ndarray, neg: np.ndarray, threshold: float) -> dict:
    """How a score splits answerable (`pos`) from evidence-absent (`neg`) questions: the share of
    answerable ones below `threshold`, of absent ones at or above it, and the AUC."""
    return {
        "answerable_refused": round(float((pos < threshold).mean()), 4),
        "absent_answered": round(float((neg >= threshold).mean()), 4),
        "auc": round(auc(pos, neg), 4),
    }


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random `pos` score > a random `neg` score), ties counting half; from ranks, so memory
    stays linear in the number of questions."""
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def carried(model: str) -> dict | None:
    """The gate a `raftkit train` run folder carries in its run.json (None for any other model)."""
    run = RunFolder.find(model)
    return run.evidence_gate if run else None


def resolve(setting: float | str | None, model: str, index) -> float | None:
    """The threshold a system applies over `index`: a number as it is; `auto` = the gate `model`
    carries (none when it carries none); None/`off` = no gate. A carried gate of an embedder other
    than the index's is an error: its scores are not comparable."""
    if setting is None or setting == "off":
        return None
    if setting != "auto":
        return float(setting)
    gate = carried(model)
    if gate is None:
        return None
    embedder = index.manifest["embedder"]["model"]
    if gate["embedder"] != embedder:
        raise RaftkitError(
            f"{model}: its evidence gate was calibrated with embedder {gate['embedder']}, the "
            f"index uses {embedder}; set min_score to a number or off"
        )
    return float(gate["min_score"])


def closed(scores: list[float], min_score: float | None) -> bool:
    """Whether the gate refuses: a threshold is set and no retrieved chunk reaches it."""
    return min_score is not None and (not scores or max(scores) < min_score)


def refusal(scores: list[float], min_score: float) -> str:
    """The reply of a refused question: why, then the refusal line every scorer recognises."""
    best = f"{max(scores):.3f}" if scores else "nothing"
    return (
        f"(evidence gate: the best retrieved chunk scored {best}, below {min_score:.3f})\n"
        f"{prompts.ANSWER_TAG} {prompts.ABSTAIN}"
    )


# ------------------------------------------------------------------ one gate for ask and compare
@dataclass
class Gate:
    """What decides, per question, whether its retrieved chunks are evidence enough to answer:
    the cosine score (`min_score`), a trained verifier (raftkit/retrieval/verifier.py) or `both`
    (the verifier's logistic head over the two, fitted at calibration). `rerank` orders the
    prompt's chunks by the verifier's score."""

    kind: str = "score"  # score | verifier | both
    min_score: float | None = None
    verifier: object | None = None  # a raftkit.retrieval.verifier.Verifier
    rerank: bool = False
    source: str = ""  # the verifier run, for the report
    candidates: int = 0  # chunks the verifier judges per question; 0 = those the prompt shows

    def depth(self, k: int) -> int:
        """How many chunks to retrieve for a prompt of `k`: the verifier judges `candidates`."""
        return max(k, self.candidates) if self.verifier is not None else k

    def describe(self) -> str:
        """How the gate reads in a report's systems table."""
        if self.kind == "score":
            gate = f"score < {self.min_score:.3f}" if self.min_score is not None else "–"
            return gate + self._shown()
        head = self.verifier.head
        threshold = head["both"]["threshold"] if self.kind == "both" else head["threshold"]
        what = "cosine + verifier" if self.kind == "both" else "verifier"
        opts = head.get("options")
        if opts:
            more = opts["both"]["threshold"] if self.kind == "both" else opts["threshold"]
            threshold = f"{threshold:.3f} ({more:.3f} with answer options)"
        else:
            threshold = f"{threshold:.3f}"
        return f"{what} < {threshold}" + self._shown()

    def _shown(self) -> str:
        judged = f", judging {self.candidates} chunks" if self.depth(0) else ""
        return judged + (", reranked" if self.rerank else "")

    def judge(self, questions, texts, scores, options=None):
        """(closed, evidence) per question: whether the gate refuses it, and each chunk's verifier
        probability (the cosine scores when no verifier is used). `options`: per question its
        answer options (multiple choice) or None; the verifier reads them when it has a head for
        them."""
        if self.verifier is None:
            return [closed(s, self.min_score) for s in scores], scores
        options = options or [None] * len(questions)
        probs = self.verifier.score(questions, texts, scores, options)
        if self.kind == "score":  # the verifier only orders the chunks (rerank)
            return [closed(s, self.min_score) for s in scores], probs
        heads = [self.verifier.head_for(o) for o in options]
        if self.kind == "verifier":
            return [not p or max(p) < h["threshold"] for p, h in zip(probs, heads)], probs
        from raftkit.retrieval.verifier import predict

        shut = []
        for s, p, h in zip(scores, probs, heads):
            x = np.array([[max(s, default=0.0), max(p, default=0.0)]])
            shut.append(bool(predict(h["both"], x)[0] < h["both"]["threshold"]))
        return shut, probs

    def refusal(self, scores: list[float], evidence: list[float]) -> str:
        """The reply of a question this gate refused: why, then the refusal line."""
        if self.kind == "score":
            return refusal(scores, self.min_score)
        best = f"{max(evidence):.3f}" if evidence else "nothing"
        return (
            f"(evidence {self.kind}: the best retrieved chunk scored {best}, below the calibrated "
            f"threshold; {self.describe()})\n{prompts.ANSWER_TAG} {prompts.ABSTAIN}"
        )

    def order(self, evidence: list[float], k: int) -> list[int]:
        """Which of the judged chunks the prompt shows, in order: the `k` the verifier scores best
        when it judged more (retrieval's first `k` without a verifier), by its score with `rerank`,
        else as retrieved."""
        idx = list(range(len(evidence)))
        if self.verifier is None:
            return idx[:k]
        best = sorted(idx, key=lambda i: -evidence[i])
        return best[:k] if self.rerank else sorted(best[:k])


def build(
    min_score: float | str | None,
    verifier: str,
    kind: str,
    model: str,
    index,
    rerank: bool = False,
    candidates: int | str = "auto",
) -> Gate:
    """The Gate a system applies over `index`. `verifier`: a verifier run folder, `auto` (the one
    the generator run `model` carries, if any) or empty; `kind` auto = the verifier when there is
    one, else the score; `candidates` auto = as many chunks as the verifier was calibrated on.
    RaftkitError for a verifier of another embedder, or a run that is not one."""
    from raftkit.retrieval import verifier as V

    run = carried_verifier(model) if verifier == "auto" else (verifier or None)
    if kind == "auto":
        kind = "verifier" if run else "score"
    if kind != "score" and not run:
        raise RaftkitError(f"gate {kind} needs a verifier run: set verifier to a run folder")
    if rerank and not run:
        raise RaftkitError("rerank orders chunks by the verifier's score: set verifier too")
    check = V.load(run, index) if run else None
    if candidates == "auto":
        candidates = check.head.get("top_k", 0) if check else 0
    return Gate(kind, resolve(min_score, model, index), check, rerank, run or "", candidates)


def carried_verifier(model: str) -> str | None:
    """The verifier run a `raftkit train` run folder carries (its run.json `verifier`)."""
    run = RunFolder.find(model)
    return run.verifier if run else None
