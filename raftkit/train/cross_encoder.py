"""The verifier stage's cross-encoder feature `cross` (raftkit/retrieval/cross.py): every pair the
stage uses is scored by a model that never trained on its question's fold of documents, so the
head's weights, threshold and AUC stay out of fold as for the other features. The head is fitted on
those fold models' scores and applied to the scores of the model trained on every question, which
the run keeps in RUN/cross-encoder when a chosen head reads `cross`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raftkit.errors import RaftkitError
from raftkit.retrieval import cross as X
from raftkit.ui import progress, say

LR = 3e-5  # a small encoder on a few thousand pairs


def _used(vc) -> bool:
    """Whether the cross-encoder scores pairs: named, and `cross` a feature or `auto` may try it."""
    return bool(vc.cross_encoder) and (vc.features == "auto" or "cross" in vc.features)


def wanted(vc) -> bool:
    """_used(vc), saying so when a named cross-encoder is left out by a fixed feature list."""
    if vc.cross_encoder and not _used(vc):
        say("warning: verifier.cross_encoder is not used: verifier.features lists no `cross`")
    return _used(vc)


def preflight(cfg) -> None:
    """Before any feature is computed: the named model exists and, used as it is, has a head."""
    vc = cfg.verifier
    if not _used(vc):
        return
    try:
        path = X.source(vc.cross_encoder)
    except RaftkitError as e:
        raise RaftkitError(f"verifier.cross_encoder: {e}") from None
    if not vc.cross_encoder_epochs and not X.has_head(path):
        raise RaftkitError(
            f"verifier.cross_encoder '{vc.cross_encoder}' has no trained classification head: "
            "set verifier.cross_encoder_epochs to fine-tune it, or name a cross-encoder"
        )


def add_column(cfg, index, rows, pairs, table: dict, folds: list[int]) -> X.CrossScorer:
    """Append the cross-encoder's score to every row of `table` ({(question, chunk id): row});
    returns the model the run would score with: the named one as it is, or (cross_encoder_epochs)
    the one fine-tuned on every question after one per fold gave the out-of-fold scores."""
    from raftkit.train.model import runtime_of

    vc, rt = cfg.verifier, runtime_of(cfg)
    start = X.source(vc.cross_encoder)
    chunk = {c.id: c.text for c in index.chunks}
    keys = list(table)
    text = {k: (pairs[k[0]]["question"], chunk[k[1]]) for k in keys}
    scores: dict = {}
    if not vc.cross_encoder_epochs:
        scorer = X.CrossScorer(start, rt)
        scores.update(zip(keys, scorer([text[k] for k in keys], "cross-encoder scores")))
    else:
        for f in sorted(set(folds)):
            train = [i for i, g in enumerate(folds) if g != f]
            scorer = _tuned(start, pairs, chunk, train, vc, rt, cfg.seed + 1 + f, f"fold {f + 1}")
            mine = [k for k in keys if folds[k[0]] == f]
            scores.update(zip(mine, scorer([text[k] for k in mine], f"fold {f + 1} scores")))
        scorer = _tuned(start, pairs, chunk, range(len(rows)), vc, rt, cfg.seed, "all folds")
    for k in keys:
        table[k] = np.r_[table[k], scores[k]]
    return scorer


def keep(scorer: X.CrossScorer, cfg, head: dict) -> None:
    """Save the scoring model in the run and name it in `head`, when a chosen head reads it."""
    if X.read_by(head):
        scorer.save(Path(cfg.output_dir) / X.FOLDER)
        vc = cfg.verifier
        head["cross_encoder"] = {"name": vc.cross_encoder, "epochs": vc.cross_encoder_epochs}


def _tuned(start, pairs, chunk, which, vc, rt, seed: int, label: str) -> X.CrossScorer:
    texts, labels = [], []
    for i in which:
        for y, group in ((1.0, "positive"), (0.0, "negative")):
            for c in pairs[i][group]:
                texts.append((pairs[i]["question"], chunk[c]))
                labels.append(y)
    say(f"verifier: fine-tuning the cross-encoder ({label}) on {len(texts)} pairs")
    epochs = vc.cross_encoder_epochs
    return fine_tune(start, texts, labels, epochs, seed, rt, f"cross-encoder {label}")


def fine_tune(start: str, pairs, labels, epochs: int, seed: int, rt, desc: str) -> X.CrossScorer:
    """A CrossScorer fine-tuned from model folder `start` on (question, chunk) `pairs` with 0/1
    `labels` (binary cross-entropy, positives weighted to balance, AdamW, linear decay), seeded.
    Float32 weights; bf16 autocast where the runtime is bf16 (float16 trains in float32)."""
    import torch

    torch.manual_seed(seed)
    scorer = X.CrossScorer(start, rt, new_head=not X.has_head(start))
    model, y = scorer.model, torch.tensor(labels, dtype=torch.float32, device=rt.device)
    pos = max(float(y.sum()), 1.0)
    rng = np.random.default_rng(seed)
    batches = [
        order[i : i + X.BATCH]
        for order in (rng.permutation(len(pairs)) for _ in range(epochs))
        for i in range(0, len(pairs), X.BATCH)
    ]
    optim = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: 1 - s / len(batches))
    weight = torch.tensor((len(y) - pos) / pos, device=rt.device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    model.train()
    for batch in progress(batches, desc=desc, unit="step"):
        with scorer.autocast(training=True):
            out = scorer.logits([pairs[i] for i in batch])
        loss_fn(out, y[torch.from_numpy(batch).to(rt.device)]).backward()
        optim.step()
        sched.step()
        optim.zero_grad()
    model.eval()
    return scorer
