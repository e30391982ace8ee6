"""The evidence verifier: does this chunk hold the answer to this question?

The cosine gate (raftkit/retrieval/gate.py) asks whether the best chunk is *about* the question; a
chunk on the same topic passes it. The verifier reads for the answer instead: it scores each
(question, chunk) pair from what a missing piece of evidence leaves behind, all measured with the
index's own embedder and text:

- `cosine`: the retriever's score of the chunk;
- `coverage`: the IDF-weighted share of the question's content words that the chunk contains, and
  `rare`: the share of its rarest content words (names, numbers: the words an evidence-absent
  question's nearest chunks miss);
- `bigrams`: the share of the question's adjacent content-word pairs found in the chunk;
- `maxsim` / `maxsim_min`: late interaction with the shipped encoder (ColBERT's MaxSim): each
  question token's best cosine with any chunk token, averaged, and the weakest of them;
- `option`, for a question asked with answer options (multiple choice): the share of the best
  option's words that the chunk contains. The verifier then reads for the answer itself, not only
  for the question's words; such questions get their own head (`options` in verifier.json).
  `option_soft` / `option_soft_min`: the options read by late interaction, each option token's best
  cosine with any chunk token, averaged and the weakest, for the best option: a chunk that inflects
  or paraphrases the answer still names it.
- `cross`, when the run names a cross-encoder (raftkit/retrieval/cross.py): its score of the pair,
  read by a model that sees the question and the chunk together.

A logistic head over those features (fitted by `raftkit train` stage `verifier`, see
raftkit/train/stages/verifier.py) gives the probability that the chunk holds the answer; a question
is answered when one of its top-k chunks reaches the threshold calibrated on questions the head did
not train on.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import cached_property
from pathlib import Path

import numpy as np

from raftkit.errors import RaftkitError

LATE = ("maxsim", "maxsim_min")
SOFT = ("option_soft", "option_soft_min")  # read by the options head only, as `option` is
HEAD_FILE = "verifier.json"  # in the run folder: features, weights, calibration

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'.%$-]*[A-Za-z0-9%]|[A-Za-z0-9]")
# function words carry no evidence; a short list keeps this language-agnostic enough for English
_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    me more most my no nor not now of off on once only or other our out over own same she should
    so some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
    according according's said says say new week year years one two first last latest recently
    announced reported report reports news""".split()
)


def words(text: str) -> list[str]:
    """Lower-cased content words of `text` (function words dropped, plural -s folded)."""
    out = []
    for w in _WORD.findall(text):
        w = w.lower().strip(".'")
        if w and w not in _STOP:
            out.append(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


class Verifier:
    """A trained verifier (a `raftkit train` run of stage `verifier`) applied over `index`."""

    def __init__(self, head: dict, index, run: Path):
        self.head, self.index, self.run = head, index, Path(run)
        self.features = tuple(head["features"])

    def head_for(self, options: list[str] | None) -> dict:
        """The head that judges a question: the options head when it comes with answer options
        and the run has one, else the open head (the question alone)."""
        return self.head["options"] if options and self.head.get("options") else self.head

    def score(self, questions, texts, scores, options=None) -> list[list[float]]:
        """Per question, the probability that each of its chunks holds the answer; `options`, per
        question its answer options or None."""
        options = options or [None] * len(questions)
        out: list[list[float]] = [[] for _ in questions]
        groups: dict[int, list[int]] = {}
        for i, opts in enumerate(options):
            groups.setdefault(id(self.head_for(opts)), []).append(i)
        for members in groups.values():
            head = self.head_for(options[members[0]])
            pairs, owners = [], []
            for i in members:
                for t, c in zip(texts[i], scores[i]):
                    pairs.append((questions[i], t, c))
                    owners.append(options[i])
            probs = predict(head, self.featurize(pairs, head["features"], owners))
            at = 0
            for i in members:
                out[i] = [float(p) for p in probs[at : at + len(texts[i])]]
                at += len(texts[i])
        return out

    def probabilities(self, pairs: list[tuple[str, str, float]]) -> np.ndarray:
        """P(chunk holds the answer) of each (question, chunk text, cosine score), by the open
        head."""
        return predict(self.head, self.featurize(pairs, self.features))

    def featurize(self, pairs, names, options=None) -> np.ndarray:
        """The (len(pairs), len(names)) feature matrix; `options` per pair for `option` and SOFT."""
        cross = self.cross if "cross" in names else None
        return featurize(pairs, names, self.idf, self.tokens, options, cross)

    @cached_property
    def cross(self):
        from raftkit.retrieval.cross import FOLDER, CrossScorer

        return CrossScorer(str(self.run / FOLDER), self.index.runtime)

    @cached_property
    def tokens(self) -> TokenVectors:
        return TokenVectors(self.index.embedder)

    @cached_property
    def idf(self) -> dict[str, float]:
        return idf_of([c.text for c in self.index.chunks])


def featurize(
    pairs, names, idf: dict[str, float], tokens=None, options=None, cross=None
) -> np.ndarray:
    """Feature matrix of (question, chunk text, cosine) pairs for the feature `names`; `options`,
    per pair the question's answer options, is read by `option` and SOFT only, the cross-encoder
    scorer `cross` by `cross` only."""
    cols: dict[str, np.ndarray] = {"cosine": np.array([s for _, _, s in pairs], dtype=np.float64)}
    given = options or [None] * len(pairs)
    if "cross" in names:
        cols["cross"] = cross([(q, t) for q, t, _ in pairs])
    if "option" in names:
        cols["option"] = np.array([option_score(o or [], t) for (_, t, _), o in zip(pairs, given)])
    if set(SOFT) & set(names):
        soft = soft_matches([t for _, t, _ in pairs], given, tokens)
        cols.update(option_soft=soft[:, 0], option_soft_min=soft[:, 1])
    if {"coverage", "rare", "bigrams"} & set(names):
        lex = np.array([lexical(q, t, idf) for q, t, _ in pairs]).reshape(-1, 3)
        cols.update(coverage=lex[:, 0], rare=lex[:, 1], bigrams=lex[:, 2])
    if set(LATE) & set(names):
        late = maxsim([q for q, _, _ in pairs], [t for _, t, _ in pairs], tokens)
        cols.update(maxsim=late[:, 0], maxsim_min=late[:, 1])
    return np.stack([cols[n] for n in names], axis=1) if pairs else np.zeros((0, len(names)))


def option_score(options: list[str], text: str) -> float:
    """The best answer option's share of content words found in `text`: a chunk that holds the
    answer names one of the options, a chunk that is only on the topic rarely does."""
    have = set(words(text))
    shares = [sum(w in have for w in ws) / len(ws) for ws in map(words, options) if ws]
    return max(shares, default=0.0)


def soft_matches(texts: list[str], options: list, tokens: TokenVectors) -> np.ndarray:
    """(len(texts), 2): `soft_option` of each text with its options (None: no options), every
    token vector encoded in one batch first."""
    tokens(list(texts) + [o for opts in options for o in opts or [] if o.strip()])
    out = [soft_option(o or [], t, tokens) for t, o in zip(texts, options)]
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def soft_option(options: list[str], text: str, tokens: TokenVectors) -> tuple[float, float]:
    """(mean, min) over an option's tokens of the best cosine with any token of `text`, each the
    best over the options: `option` by late interaction, so "Tarnwick's" still names "Tarnwick"."""
    named = [o for o in options if o.strip()]
    if not named:
        return 0.0, 0.0
    [t] = tokens([text])
    best = [(o @ t.T).max(axis=1) for o in tokens(named)]
    return max(float(b.mean()) for b in best), max(float(b.min()) for b in best)


def idf_of(texts: list[str]) -> dict[str, float]:
    """Smoothed inverse document frequency of every content word of `texts`."""
    df = Counter(w for t in texts for w in set(words(t)))
    n = len(texts)
    return {w: math.log((n + 1) / (c + 1)) + 1.0 for w, c in df.items()}


def lexical(question: str, text: str, idf: dict[str, float]) -> tuple[float, float, float]:
    """(IDF-weighted coverage, coverage of the rarest third, bigram coverage) of the question's
    content words in `text`; a word unseen in the corpus counts as the rarest."""
    q = words(question)
    if not q:
        return 1.0, 1.0, 1.0
    have = set(words(text))
    top = max(idf.values(), default=1.0) + 1.0
    weight = {w: idf.get(w, top) for w in dict.fromkeys(q)}
    total = sum(weight.values())
    coverage = sum(v for w, v in weight.items() if w in have) / total
    # ties broken by the word: a set's order changes with each process's string hashing
    ranked = sorted(weight, key=lambda w: (-weight[w], w))
    rare = ranked[: max(1, math.ceil(len(ranked) / 3))]
    rare_cov = sum(w in have for w in rare) / len(rare)
    pairs = {(a, b) for a, b in zip(q, q[1:])}
    text_words = words(text)
    chunk_pairs = set(zip(text_words, text_words[1:]))
    bigrams = sum(p in chunk_pairs for p in pairs) / len(pairs) if pairs else coverage
    return coverage, rare_cov, bigrams


class TokenVectors:
    """Unit-length token embeddings of texts under an embedder, special tokens dropped; each text
    is encoded once however often it is asked for."""

    def __init__(self, embedder):
        self.embedder, self.cache = embedder, {}

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        todo = sorted({t for t in texts if t not in self.cache})
        if todo:
            model = self.embedder.model
            special = list(model.tokenizer.all_special_ids)
            outs = model.encode(
                todo,
                output_value=None,
                batch_size=self.embedder.cfg.batch_size,
                show_progress_bar=False,
            )
            for text, e in zip(todo, outs):
                ids = e["input_ids"].cpu().numpy()
                real = e["attention_mask"].cpu().numpy().astype(bool)
                words = real & ~np.isin(ids, special)
                # a text of special tokens only (an empty string) keeps them rather than nothing
                v = e["token_embeddings"].float().cpu().numpy()[words if words.any() else real]
                self.cache[text] = v / np.linalg.norm(v, axis=1, keepdims=True).clip(min=1e-12)
        return [self.cache[t] for t in texts]


def maxsim(questions: list[str], texts: list[str], tokens: TokenVectors) -> np.ndarray:
    """(mean, min) over each question's tokens of the best cosine with any token of its text."""
    out = np.zeros((len(questions), 2))
    for i, (q, t) in enumerate(zip(tokens(questions), tokens(texts))):
        best = (q @ t.T).max(axis=1)
        out[i] = best.mean(), best.min()
    return out


# ------------------------------------------------------------------ the logistic head
def fit_head(x: np.ndarray, y: np.ndarray, names, l2: float = 1.0, iters: int = 50) -> dict:
    """A logistic regression of y on standardised x (Newton steps, L2 penalty `l2` on the weights,
    classes weighted to balance); returns the head as JSON-ready data."""
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    pos = max(float(y.sum()), 1.0)
    neg = max(float(len(y) - y.sum()), 1.0)
    sample = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg))
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (sample * (p - y)) + penalty * w
        hess = (z * (sample * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {
        "features": list(names),
        "mean": mu.tolist(),
        "std": sd.tolist(),
        "weights": w[:-1].tolist(),
        "bias": float(w[-1]),
        "l2": l2,
    }


def predict(head: dict, x: np.ndarray) -> np.ndarray:
    """P(positive) of each row of x under a head from `fit_head`."""
    if not len(x):
        return np.zeros(0)
    z = (x - np.array(head["mean"])) / np.array(head["std"])
    return 1.0 / (1.0 + np.exp(-(z @ np.array(head["weights"]) + head["bias"])))


# ------------------------------------------------------------------ loading a run
def read_head(run: str | Path) -> dict:
    """The verifier.json of a verifier run; RaftkitError when `run` is not one."""
    path = Path(run).expanduser() / HEAD_FILE
    if not path.is_file():
        raise RaftkitError(
            f"{run} is not a verifier run (no {HEAD_FILE}): train one with "
            "`raftkit train --config recipes/verifier.yaml`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load(run: str | Path, index) -> Verifier:
    """The verifier of run folder `run` over `index`; RaftkitError when `run` is not a verifier or
    was trained over another embedder's index."""
    head = read_head(run)
    embedder = index.manifest["embedder"]["model"]
    if head.get("embedder") and head["embedder"] != embedder:
        raise RaftkitError(
            f"verifier {run} was trained with embedder {head['embedder']}, the index "
            f"'{index.name}' uses {embedder}: its scores do not carry over; train one on this index"
        )
    from raftkit.retrieval.cross import FOLDER, read_by

    folder = Path(run).expanduser()
    if read_by(head) and not (folder / FOLDER / "config.json").is_file():
        raise RaftkitError(
            f"verifier {run} reads a cross-encoder but {folder / FOLDER} is missing: copy the "
            "whole run folder, or train it again"
        )
    return Verifier(head, index, folder)
