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

import json
from pathlib import Path

import numpy as np

from raftkit import prompts
from raftkit.errors import RaftkitError

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
        "answerable_refused": round(float((pos < threshold).mean()), 4),
        "absent_answered": round(float((neg >= threshold).mean()), 4),
        "auc": round(auc(pos, neg), 4),
        "embedder": index.manifest["embedder"]["model"],
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
    path = Path(model).expanduser() / "run.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("evidence_gate")


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
