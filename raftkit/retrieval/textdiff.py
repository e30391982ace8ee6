"""What changed between two versions of a document, sentence by sentence: the sentences are aligned
with difflib, a removed and an added sentence that share most of their tokens are one edited
sentence, and inside each such pair the differing spans are found (a few tokens, not the whole
sentence).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher

# "20,000", "1.9.4", "auth.oidc" and "beacon_session" are one token each; punctuation is its own
_TOKEN = r"\w+(?:[.,:/@'’+-]\w+)*|[^\w\s]"
# a removed and an added sentence sharing this share of tokens are one sentence, edited
PAIR_RATIO = 0.5
# edits at most this many equal tokens apart are one edit: "Business Source License 1.1" ->
# "Apache License 2.0" is one change of licence, not two
JOIN_GAP = 2


@dataclass
class Edit:
    """One differing span of an edited sentence: the old and new text and their offsets."""

    old: str
    new: str
    old_start: int
    old_end: int
    new_start: int
    new_end: int


@dataclass
class SentenceChange:
    """An edited sentence (old and new), an added one (old None) or a removed one (new None)."""

    old: str | None
    new: str | None
    edits: list[Edit] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def tokens(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end) for each word-like token and punctuation mark of `text`."""
    return [(m.group(), m.start(), m.end()) for m in re.finditer(_TOKEN, text)]


def _offsets(toks: list[tuple[str, int, int]], i1: int, i2: int) -> tuple[int, int]:
    if i1 < i2:
        return toks[i1][1], toks[i2 - 1][2]
    at = toks[i1 - 1][2] if i1 else 0  # an insertion point: after the previous token
    return at, at


def edits(old: str, new: str) -> list[Edit]:
    """The differing spans of two versions of one sentence, in order; nearby edits joined."""
    a, b = tokens(old), tokens(new)
    matcher = SequenceMatcher(None, [t for t, _, _ in a], [t for t, _, _ in b], autojunk=False)
    groups: list[list[int]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if groups and i1 - groups[-1][1] <= JOIN_GAP and j1 - groups[-1][3] <= JOIN_GAP:
            groups[-1][1], groups[-1][3] = i2, j2
        else:
            groups.append([i1, i2, j1, j2])
    out = []
    for i1, i2, j1, j2 in groups:
        (os_, oe), (ns, ne) = _offsets(a, i1, i2), _offsets(b, j1, j2)
        out.append(Edit(old[os_:oe], new[ns:ne], os_, oe, ns, ne))
    return out


_ITEM = re.compile(r"^(?:[-*+>]|\d+[.)])\s")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(\[])")


def _units(text: str) -> list[str]:
    """Paragraphs (hard-wrapped lines joined), list items (with their continuation lines), and
    table rows, headings and code lines on their own."""
    units, current, fenced = [], [], False

    def flush():
        if current:
            units.append(" ".join(current))
            current.clear()

    for line in text.splitlines():
        s = line.strip()
        if s.startswith("```"):
            flush()
            fenced = not fenced
        elif not s:
            flush()
        elif fenced or s.startswith(("|", "#")):
            flush()
            units.append(s)
        else:
            # a new item, or a line after a short unpunctuated one (a title, a label) starts anew
            if _ITEM.match(s) or (current and len(current[-1]) < 40 and current[-1][-1].isalnum()):
                flush()
            current.append(s)
    flush()
    return units


def sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace collapsed, in order: paragraphs split at sentence ends;
    list items, table rows, headings and code lines are sentences of their own. Pieces of fewer
    than two words are left out."""
    out = []
    for unit in _units(text):
        for piece in _SPLIT.split(" ".join(unit.split())):
            if len(re.findall(r"\w+", piece)) >= 2:
                out.append(piece.strip())
    return out


def _key(sentence: str) -> str:
    return " ".join(sentence.split())


def similarity(old: str, new: str) -> float:
    """The share of tokens two sentences have in common (difflib's ratio)."""
    a, b = [t for t, _, _ in tokens(old)], [t for t, _, _ in tokens(new)]
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def _pair(olds: list[str], news: list[str]) -> list[SentenceChange]:
    """Changes of a block where `olds` were replaced by `news`: each old sentence is paired, in
    order, with the most similar later new one when they are alike enough."""
    out, j0 = [], 0
    for o in olds:
        scored = [(similarity(o, news[j]), -j) for j in range(j0, len(news))]
        best, neg_j = max(scored) if scored else (0.0, 0)
        if best < PAIR_RATIO:
            out.append(SentenceChange(o, None))
            continue
        j = -neg_j
        out += [SentenceChange(None, n) for n in news[j0:j]]
        out.append(SentenceChange(o, news[j], edits(o, news[j])))
        j0 = j + 1
    return out + [SentenceChange(None, n) for n in news[j0:]]


def sentence_changes(old_text: str, new_text: str) -> list[SentenceChange]:
    """The edited, added and removed sentences (and table rows, list items) from `old_text` to
    `new_text`, in document order; unchanged sentences are left out."""
    olds, news = sentences(old_text), sentences(new_text)
    matcher = SequenceMatcher(
        None, [_key(s) for s in olds], [_key(s) for s in news], autojunk=False
    )
    out: list[SentenceChange] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            out += _pair(olds[i1:i2], news[j1:j2])
    return [c for c in out if c.old is None or c.new is None or c.edits]
