"""The evidence verifier: a classifier of (question, chunk) -> "this chunk holds the answer",
trained from a `raftkit build-dataset` folder with no new labels (raftkit/retrieval/verifier.py
scores pairs; this stage fits and calibrates it).

Positives are the oracle chunks; negatives are what an evidence-absent question sees: the chunks
the index returns for the question with its document left out, plus the build's hard distractors.
Threshold and AUC are fitted on out-of-fold scores (folds of documents), so every calibration
question was scored by a head that never trained on its pairs; the cosine gate's figures on the
same questions sit beside them in verifier.json and run.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from raftkit import files
from raftkit.config import Section
from raftkit.errors import RaftkitError
from raftkit.retrieval import verifier as V
from raftkit.retrieval.gate import auc, separation
from raftkit.train import cross_encoder as cross
from raftkit.train.stage import Stage
from raftkit.ui import progress, say

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig

# the feature sets `features: auto` chooses among, by out-of-fold AUC on the training questions
CANDIDATES = {
    "cosine": ("cosine",),
    "lexical": ("cosine", "coverage", "rare", "bigrams"),
    "late": ("cosine", "maxsim", "maxsim_min"),
    "all": ("cosine", "coverage", "rare", "bigrams", "maxsim", "maxsim_min"),
}
Feature = Literal["cosine", "coverage", "rare", "bigrams", "maxsim", "maxsim_min", "cross"]


class VerifierSection(Section):
    features: list[Feature] | Literal["auto"] = Field(
        "auto",
        description="pair features of the logistic head (raftkit/retrieval/verifier.py); auto ="
        " the set of " + ", ".join(CANDIDATES) + " with the best out-of-fold AUC",
    )
    top_k: int = Field(
        8,
        ge=1,
        description="chunks judged per question, at calibration and (candidates: auto) wherever"
        " the verifier is used; a system showing fewer shows the ones it scores best",
    )
    negatives: int = Field(
        8, ge=1, description="retrieved chunks per question with its document left out (negatives)"
    )
    folds: int = Field(5, ge=2, description="folds of documents for out-of-fold calibration")
    over_refusal: float = Field(
        0.10, gt=0, lt=1, description="share of answerable calibration questions it may refuse"
    )
    l2: float = Field(1.0, ge=0, description="L2 penalty of the logistic head's weights")
    options: bool = Field(
        True,
        description="also fit a head for questions asked with answer options (multiple choice),"
        " with the feature `option`: whether a chunk names one of them",
    )
    cross_encoder: str | None = Field(
        None,
        description="a cross-encoder (HF id, hf://org/name, local folder) whose score of each"
        " pair is the feature `cross` (auto then also tries each set with it); with"
        " cross_encoder_epochs it may be an encoder without a head, e.g. all-minilm-l6-v2",
    )
    cross_encoder_epochs: int = Field(
        0,
        ge=0,
        description="fine-tune the cross-encoder on the stage's pairs first, once per fold (its"
        " scores stay out of fold) and once on all; 0 = use it as it is",
    )

    def check(self) -> list[str]:
        if self.cross_encoder:
            return []
        problems = ["features: `cross` needs cross_encoder"] if "cross" in self.features else []
        if self.cross_encoder_epochs:
            problems.append("cross_encoder_epochs: fine-tunes cross_encoder, which is not set")
        return problems


def train_verifier(cfg: TrainConfig, resume: bool = False) -> dict:
    """Fit the verifier on the build at data.path and write RUN/verifier.json and run.json; returns
    the run.json summary. Raises RaftkitError for a build without oracle chunks or index."""
    t0, vc = time.perf_counter(), cfg.verifier
    rows, index = _build_questions(cfg)
    say(f"verifier: {len(rows)} questions of {len({r['doc_id'] for r in rows})} documents")
    pairs = _situations(index, rows, vc)
    folds = _folds(rows, vc.folds, cfg.seed)
    # the head for questions asked with answer options reads them: the build's own options, else
    # the answer and three spans of its kind from the corpus (raftkit/raft/spans.py)
    options = _options(rows, index, cfg.seed) if vc.options else None
    names, table, scorer = _table(cfg, index, rows, pairs, folds, options)
    crossed = "cross" in names
    head = _fit(rows, pairs, table, names, folds, vc, _sets(vc, False, crossed))
    if options:
        head["options"] = _fit(rows, pairs, table, names, folds, vc, _sets(vc, True, crossed))
    head.update(embedder=index.manifest["embedder"]["model"], index=str(index.path), top_k=vc.top_k)
    if scorer:
        cross.keep(scorer, cfg, head)
    out = Path(cfg.output_dir)
    files.write_json(out / V.HEAD_FILE, head)
    calibration = head["calibration"]
    summary = {
        "stage": "verifier",
        "dataset": cfg.data.path,
        "index": str(index.path),
        "embedder": head["embedder"],
        "questions": len(rows),
        "pairs": head["pairs"],
        "positives": head["positives"],
        "features": head["features"],
        "calibration": calibration,
        "options": _brief(head.get("options")),
        "wall_s": round(time.perf_counter() - t0, 2),
        "evidence_gate": None,
    }
    c, s = calibration["verifier"], calibration["cosine"]
    summary["headline"] = (
        f"trained verifier in {summary['wall_s']:.1f}s on {len(rows)} questions: features "
        f"{', '.join(head['features'])}; out of fold AUC {c['auc']:.3f} (cosine score "
        f"{s['auc']:.3f}); refusing {c['answerable_refused']:.0%} of answerable questions it lets "
        f"{c['absent_answered']:.0%} of evidence-absent ones through (cosine "
        f"{s['absent_answered']:.0%})"
    )
    if head.get("options"):
        o = head["options"]["calibration"]["verifier"]
        summary["headline"] += (
            f"; with answer options AUC {o['auc']:.3f}, {o['absent_answered']:.0%} through"
        )
    files.write_json(out / "run.json", summary)
    return summary


def _table(cfg, index, rows, pairs, folds, options) -> tuple[list[str], dict, object]:
    """(feature names, {(question, chunk id): feature row}, the cross-encoder that scored the
    column `cross`, or None): every feature a candidate set needs is computed once; a fixed set
    computes only its own. With `options` (per question) the options head's features too."""
    vc = cfg.verifier
    auto = vc.features == "auto"
    names = sorted({f for c in CANDIDATES.values() for f in c} if auto else vc.features)
    names = [n for n in names if n != "cross"]
    names += (["option", *V.SOFT] if auto else ["option"]) if options else []
    table = _features(index, pairs, names, options)
    scorer = cross.add_column(cfg, index, rows, pairs, table, folds) if cross.wanted(vc) else None
    if scorer:
        names.append("cross")
    return names, table, scorer


def _sets(vc: VerifierSection, options: bool, crossed: bool) -> dict[str, tuple[str, ...]]:
    """The feature sets to choose among: the candidates (or the one asked for), each with
    `option` (auto: and with SOFT as well) for the options head and without them for the open
    head (and with `cross` and without it when a cross-encoder scored the pairs: `crossed`)."""
    auto = vc.features == "auto"
    sets = CANDIDATES if auto else {"chosen": tuple(vc.features)}
    if crossed and auto:
        sets = {**sets, **{k + "+cross": (*v, "cross") for k, v in sets.items()}}
    if not options:
        return dict(sets)
    out = {k + "+option": (*v, "option") for k, v in sets.items()}
    if auto:  # and each with the options read by late interaction as well
        out.update({k + "+option+soft": (*v, "option", *V.SOFT) for k, v in sets.items()})
    return out


def _fit(rows, pairs, table, names, folds, vc: VerifierSection, sets) -> dict:
    """One head: its feature set chosen by out-of-fold AUC among `sets`, threshold and `both`
    head calibrated out of fold, weights fitted on every question."""
    chosen, oof = _choose(rows, pairs, table, names, folds, sets, vc)
    calibration, both = _calibrate(rows, pairs, oof, vc)
    x, y = _training_matrix(rows, pairs, table, names, chosen, range(len(rows)))
    head = V.fit_head(x, y, chosen, l2=vc.l2)
    head.update(
        threshold=calibration["verifier"]["threshold"],
        both=both,
        calibration=calibration,
        pairs=int(len(y)),
        positives=int(y.sum()),
    )
    return head


def _brief(head: dict | None) -> dict | None:
    """What run.json says of the options head."""
    if not head:
        return None
    return {"features": head["features"], "calibration": head["calibration"]}


def _options(rows, index, seed: int) -> list[list[str]]:
    """Per question its answer options: its own `choices`, else its answer and three spans of
    the same kind from the index's chunks, seeded (none without an answer)."""
    import random

    from raftkit.raft import spans

    pool, rng, out = None, random.Random(seed), []
    for r in rows:
        answer = (r.get("answer") or "").strip()
        if r.get("choices"):
            out.append(list(r["choices"]))
            continue
        if not answer:
            out.append([])
            continue
        if pool is None:
            pool = spans.SpanPool(c.text for c in index.chunks)
        found = [x for x in spans.find_spans(answer) if x.text == answer]
        kind = "name" if answer[:1].isupper() else "words"
        span = found[0] if found else spans.Span(0, len(answer), answer, kind)
        out.append([answer, *pool.distractors(span, 3, [answer], rng)])
    return out


def _build_questions(cfg: TrainConfig):
    """(one row per distinct train-split question with an oracle, the build's index)."""
    from raftkit.retrieval.index import load_index
    from raftkit.train.data import load_data

    manifest = Path(cfg.data.path).expanduser() / "manifest.json"
    if not manifest.is_file():
        raise RaftkitError(
            f"data.path {cfg.data.path}: the verifier trains from a build-dataset folder (it "
            "needs the build's index and oracle chunks); no manifest.json there"
        )
    built = json.loads(manifest.read_text(encoding="utf-8"))
    if built.get("summary", {}).get("span_questions"):
        # the build's gate is not fitted on span questions for the same reason (raft/build.py)
        say(
            f"warning: {cfg.data.path} asks span questions (clozes that copy their sentence's "
            "words): the threshold is calibrated on them and will refuse more of a user's "
            "questions than verifier.over_refusal says; train from a --qa build to calibrate"
        )
    path = Path(built["index"]["path"])
    if not path.is_dir():
        raise RaftkitError(f"data.path {cfg.data.path}: its index {path} is gone; rebuild it")
    index = load_index(path.name, path.parent, [f"runtime.dtype={cfg.runtime.dtype}"])
    train, _ = load_data(cfg)
    seen, rows = set(), []
    chunks = {c.id for c in index.chunks}
    for r in train:
        if r["oracle_id"] in chunks and r["question"] not in seen:
            seen.add(r["question"])
            rows.append(r)
    if len(rows) < 2 * cfg.verifier.folds:
        raise RaftkitError(
            f"data.path {cfg.data.path}: {len(rows)} questions with an oracle chunk in the index; "
            f"the verifier needs at least {2 * cfg.verifier.folds} (2 per fold)"
        )
    return rows, index


def _situations(index, rows, vc: VerifierSection) -> list[dict]:
    """Per question: its text and vector, and the chunk ids it trains on and is calibrated with:
    `present` (top-k over the whole index), `absent` (top-k without its document), `positive` (its
    oracle), `negative` (nearest chunks of other documents and the build's distractors); `cos` is
    the best cosine score of `present` and of `absent`, the cosine gate's view of the question."""
    depth = min(len(index.chunks), vc.top_k + vc.negatives + 32)
    known = {c.id for c in index.chunks}
    vectors = index.embedder.encode([r["question"] for r in rows])
    out = []
    for r, v, row in zip(rows, vectors, index.search_vectors(vectors, depth)):
        others = [h for h in row if h.chunk.doc_id != r["doc_id"]]
        distractors = [d for d in (r.get("distractor_ids") or []) if d in known]
        out.append(
            {
                "question": r["question"],
                "vector": v,
                "present": [h.chunk.id for h in row[: vc.top_k]],
                "absent": [h.chunk.id for h in others[: vc.top_k]],
                "positive": [r["oracle_id"]],
                "negative": list(
                    dict.fromkeys([h.chunk.id for h in others[: vc.negatives]] + distractors)
                ),
                "cos": {
                    "present": row[0].score if row else 0.0,
                    "absent": others[0].score if others else 0.0,
                },
            }
        )
    return out


GROUPS = ("present", "absent", "positive", "negative")


def _features(index, pairs: list[dict], names: list[str], options=None) -> dict:
    """{(question number, chunk id): feature row} for every pair any situation uses; `options`,
    per question its answer options, for the options head's features."""
    keys = sorted({(i, c) for i, p in enumerate(pairs) for g in GROUPS for c in p[g]})
    chunk = {c.id: (c, n) for n, c in enumerate(index.chunks)}
    idf, tokens = V.idf_of([c.text for c in index.chunks]), V.TokenVectors(index.embedder)
    out, step = {}, 256
    for start in progress(range(0, len(keys), step), desc="verifier features", unit="block"):
        part = keys[start : start + step]
        triples = []
        for i, c in part:
            text, n = chunk[c][0].text, chunk[c][1]
            triples.append(
                (pairs[i]["question"], text, float(pairs[i]["vector"] @ index.vectors[n]))
            )
        given = [options[i] for i, _ in part] if options else None
        out.update(zip(part, V.featurize(triples, names, idf, tokens, given)))
    return out


def _folds(rows, k: int, seed: int) -> list[int]:
    """A fold number per question; the questions of one document share a fold."""
    docs = sorted({r["doc_id"] for r in rows})
    order = np.random.default_rng(seed).permutation(len(docs))
    fold_of = {docs[j]: n % k for n, j in enumerate(order)}
    return [fold_of[r["doc_id"]] for r in rows]


def _training_matrix(rows, pairs, table, names, chosen, which) -> tuple[np.ndarray, np.ndarray]:
    cols = [names.index(f) for f in chosen]
    x, y = [], []
    for i in which:
        for label, group in ((1.0, "positive"), (0.0, "negative")):
            for c in pairs[i][group]:
                x.append(table[(i, c)][cols])
                y.append(label)
    return np.array(x), np.array(y)


def _best(head, table, names, i, ids) -> float:
    if not ids:
        return 0.0
    cols = [names.index(f) for f in head["features"]]
    return float(V.predict(head, np.array([table[(i, c)][cols] for c in ids])).max())


def _out_of_fold(rows, pairs, table, names, folds, chosen, vc) -> np.ndarray:
    """(question, [present best, absent best]) scores, each from a head fitted without its fold."""
    oof = np.zeros((len(rows), 2))
    for f in sorted(set(folds)):
        train = [i for i, g in enumerate(folds) if g != f]
        x, y = _training_matrix(rows, pairs, table, names, chosen, train)
        head = V.fit_head(x, y, chosen, l2=vc.l2)
        for i in (i for i, g in enumerate(folds) if g == f):
            oof[i] = [_best(head, table, names, i, pairs[i][s]) for s in ("present", "absent")]
    return oof


def _choose(rows, pairs, table, names, folds, sets: dict, vc: VerifierSection):
    """(the feature set, its out-of-fold scores): the best of `sets` by out-of-fold AUC."""
    best = None
    for label, chosen in sets.items():
        oof = _out_of_fold(rows, pairs, table, names, folds, chosen, vc)
        score = auc(oof[:, 0], oof[:, 1])
        say(f"verifier: features '{label}' out-of-fold AUC {score:.3f}")
        if best is None or score > best[0] + 1e-9:
            best = (score, tuple(chosen), oof)
    return best[1], best[2]


def _calibrate(rows, pairs, oof, vc: VerifierSection) -> tuple[dict, dict]:
    """(threshold and separation of the verifier, the cosine score and both combined, on the
    out-of-fold questions (answerable = its document present; evidence-absent = left out); the
    `both` head with its threshold)."""
    cos = np.array([[p["cos"]["present"], p["cos"]["absent"]] for p in pairs])
    both_x = np.vstack([np.stack([cos[:, 0], oof[:, 0]], 1), np.stack([cos[:, 1], oof[:, 1]], 1)])
    both_y = np.r_[np.ones(len(rows)), np.zeros(len(rows))]
    both = V.fit_head(both_x, both_y, ("cosine", "verifier"), l2=vc.l2)
    combined = V.predict(both, both_x).reshape(2, -1).T
    figures = {
        name: _operating(scores, vc.over_refusal)
        for name, scores in (("verifier", oof), ("cosine", cos), ("both", combined))
    }
    both["threshold"] = figures["both"]["threshold"]
    return {"questions": len(rows), "over_refusal": vc.over_refusal, **figures}, both


def _operating(scores: np.ndarray, over_refusal: float) -> dict:
    """The threshold refusing `over_refusal` of the answerable column, and what it does."""
    threshold = float(np.quantile(scores[:, 0], over_refusal))
    return {"threshold": round(threshold, 6), **separation(scores[:, 0], scores[:, 1], threshold)}


STAGE = Stage(
    name="verifier",
    order=4,
    train=train_verifier,
    section=VerifierSection,
    columns=(("question", "oracle_id", "doc_id"),),
    extra_columns=("distractor_ids", "answer", "choices"),
    column_hint="the verifier trains from a build-dataset folder",
    preflight=cross.preflight,
)
