"""Short answer spans in sentences, and cloze questions about them: no model, seeded.

A span is what a fact's value looks like in text: a date ("21 May 2024"), a quantity ("4 GiB",
"every 4 hours", "50 million per month"), a version ("TLS 1.3", "Ubuntu 20.04, 22.04, and 24.04"),
a number ("25000"), a code literal (`beacon_session`) or a capitalised name ("Joaquin Thorsby"). A
cloze question is the sentence with its span blanked, carrying the document's title; its four
choices are the answer and spans of the same shape from the corpus (hours with hours, names of two
words with names of two words), shuffled with a seed.

One module serves both uses: `span_questions` asks about every chunk of a corpus (build-dataset's
`questions.source: spans`, the verifier's training pairs), and `raftkit probes`
(raftkit/compare/probes.py) asks about the spans an index update changed.

    >>> rows = span_questions(index.chunks, seed=0, max_per_doc=20)
    >>> rows[0]["question"], rows[0]["answer"], rows[0]["choices"]
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from raftkit.retrieval.textdiff import sentences

BLANK = "____"
MAX_SPAN_WORDS = 6  # a longer differing or found span is a rewrite, not a fact's value
_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNITS = (
    r"[KMGTP]i?B|bytes?|bits?|[kMG]bps|ms|milliseconds?|seconds?|secs?|minutes?|mins?|hours?|"
    r"days?|weeks?|months?|years?|percent|cores?|nodes?|partitions?|replicas?|messages?|"
    r"topics?|connections?|requests?|characters?|versions?|times|clusters?|namespaces?|"
    r"metres?|meters?|kilometres?|kilometers?|km|miles?|kg|kilograms?|tonnes?"
)
# Capitalised words that open a sentence or a clause, never a name or a product
_STOP = (
    "The|A|An|This|That|These|Those|It|Its|In|On|At|By|For|From|To|Of|With|Without|If|When|After|"
    "Before|Since|Until|See|Use|Set|Each|Every|All|No|Not|Only|And|Or|But|As|Then|Also|Both|New|"
    "Note|Default|Version|Release"
)
_WORD = r"[A-Z][\w'’+-]*(?:\.[a-z]+)?"
_PATTERNS = {  # kind -> regex; on overlap the earlier-starting, then the longer match is the span
    "date": (
        rf"\b\d{{1,2}}\s+(?:{_MONTHS})\s+\d{{4}}\b|\b(?:{_MONTHS})\s+\d{{1,2}},?\s+\d{{4}}\b|"
        rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b(?:{_MONTHS})\s+\d{{4}}\b|"
        r"\b(?:first|second|third|fourth|last)\s+quarter\s+of\s+\d{4}\b|\bQ[1-4]\s+\d{4}\b"
    ),
    "quantity": (
        rf"(?:\b(?:every|each)\s+)?[$€£]?(?<![\w.])(?:{_NUM})"
        rf"(?:(?:\s?(?:thousand|million|billion))?(?:\s?(?:{_UNITS})\b|%)|\s?(?:thousand|million|"
        rf"billion)\b|(?:ms|s|h|d|m)\b)(?:\s+per\s+[a-z]+)?|[$€£](?:{_NUM})\b(?:\s+per\s+[a-z]+)?"
    ),
    "version": (
        rf"(?:(?!(?:{_STOP})\b){_WORD}\s+){{0,3}}(?<![\w.])v?\d+(?:\.\d+)+(?:\.x)?\b"
        r"(?:(?:,\s*|,?\s+(?:and|or)\s+)\d+(?:\.\d+)+\b)*"
    ),
    "time": r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?(?![\w:])",
    "number": rf"(?<![\w.,:])(?:{_NUM})(?![\w]|[.,:]\w)",
    "name": rf"(?<![\w.`/-])(?!(?:{_STOP})\b){_WORD}(?:\s+{_WORD}){{0,3}}",
}
_COMPILED = {kind: re.compile(p) for kind, p in _PATTERNS.items()}
_CODE = re.compile(r"`([^`\n]{1,60})`")
_CLAUSE_START = re.compile(r"(?:^|[|.!?:]\s*|^\s*(?:[-*+>]|#{1,6}|\d+[.)]))\s*(?:\*\*)?$")
_MARKUP = re.compile(r"^\s*(?:[-*+>]|#{1,6}|\d+[.)])\s+")
_SHAPE_CHARS = (
    (re.compile(r"\d+"), "0"),
    (re.compile(r"[A-Z]+"), "A"),
    (re.compile(r"[a-z]+"), "a"),
)
# what a sentence is asked for first
_PREFER = ("date", "time", "quantity", "version", "code", "number", "name")
_COVER_ORDER = ("date", "time", "version", "quantity", "code", "number", "name", "words")
_FUNCTION_WORDS = {"a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "by", "for", "with"}


@dataclass(frozen=True)
class Span:
    """A short answer span: its character offsets in the sentence, its text, kind and shape."""

    start: int
    end: int
    text: str
    kind: str  # date | time | quantity | version | number | code | name | words

    @property
    def shape(self) -> str:
        """Kind plus what tells alike spans apart: a quantity's unit, a version's product, a
        name's word count, a code literal's character pattern. Distractors share it if they can."""
        t = self.text.lower()
        if self.kind == "quantity":
            unit = [u for u in re.findall(r"[a-z]+|[$€£%]", t) if u not in ("every", "each")]
            unit = [u[:-1] if len(u) > 3 and u.endswith("s") else u for u in unit]
            return f"quantity:{' '.join(unit)}"
        if self.kind == "version":
            lead = re.match(r"[^\d\s]+(?=\s)", self.text)
            return f"version:{lead.group().lower() if lead else ''}"
        if self.kind == "name":
            return f"name:{len(t.split())}"
        if self.kind == "number":  # ports with ports, counts of thousands with their like
            return f"number:{re.sub(r'[0-9]', '0', self.text)}"
        if self.kind == "code":
            shape = self.text
            for pattern, mark in _SHAPE_CHARS:
                shape = pattern.sub(mark, shape)
            return f"{self.kind}:{shape}"
        return self.kind


def _candidates(sentence: str) -> list[Span]:
    """Every match of every kind, overlapping ones included (code literals by their content)."""
    out = []
    for kind, pattern in _COMPILED.items():
        for m in pattern.finditer(sentence):
            span = Span(m.start(), m.end(), m.group(), kind)
            if kind == "name":
                span = _name(sentence, span)
            if span:
                out.append(span)
    for m in _CODE.finditer(sentence):
        start, end = m.span(1)
        text = m.group(1)
        if len(text) > 2 and text[0] == text[-1] and text[0] in "\"'":  # `"1.3"`: the value
            start, end, text = start + 1, end - 1, text[1:-1]
        same = [c for c in out if (c.start, c.end) == (start, end) and c.kind != "name"]
        out.append(Span(start, end, text, same[0].kind if same else "code"))
    return out


def _name(sentence: str, span: Span) -> Span | None:
    """A capitalised run as a name: not a lone word opening a sentence or a table cell (capitalised
    whatever it is); an opening verb ("Added OIDC") is dropped."""
    if not _CLAUSE_START.search(sentence[: span.start]):
        return span
    first, *rest = span.text.split(maxsplit=1)
    if not rest:
        return None
    if first.endswith(("ed", "ing")):
        return Span(span.end - len(rest[0]), span.end, rest[0], "name")
    return span


def find_spans(sentence: str, preferred_first: bool = False) -> list[Span]:
    """The answer spans of `sentence`, non-overlapping, in order: on overlap the span starting
    first (then the longer, then the kind listed first) wins. `preferred_first` orders them by
    what a question best asks for: dates, times, quantities, versions, code, numbers, names."""
    kinds = list(_PATTERNS) + ["code"]
    ranked = sorted(
        _candidates(sentence), key=lambda s: (s.start, s.start - s.end, kinds.index(s.kind))
    )
    out: list[Span] = []
    for s in ranked:
        if (not out or s.start >= out[-1].end) and len(s.text.split()) <= MAX_SPAN_WORDS:
            out.append(s)
    return sorted(out, key=lambda s: _PREFER.index(s.kind)) if preferred_first else out


def span_covering(sentence: str, start: int, end: int) -> Span | None:
    """The answer span that a changed region [start, end) of `sentence` stands for.

    The region grown to the spans it overlaps ("1.9" -> "Tarnwick 1.9"), when those make one
    stretch; else the region's first span or word ("bcrypt at cost 12" -> "bcrypt"), since an edit
    that rewrites a clause usually starts at the value it replaces. None when nothing is left or
    the span is too long.
    """
    words = [m for m in re.finditer(r"\w[\w.,:/@'’+-]*\w|\w", sentence) if start <= m.start() < end]
    if not words:
        return None
    start, end = words[0].start(), words[-1].end()
    hits = sorted(
        (c for c in _candidates(sentence) if c.start < end and c.end > start),
        key=lambda c: (c.start, -c.end),
    )
    whole = [c for c in hits if c.start <= start and end <= c.end]
    if whole:  # "1.9" lies in "Tarnwick 1.9" and in "1.9 clusters": the longer, then by kind
        return _fit(max(whole, key=lambda c: (c.end - c.start, -_COVER_ORDER.index(c.kind))))
    if hits:
        lo, hi = min(c.start for c in hits), max(c.end for c in hits)
        covered = all(any(c.start <= w.start() and w.end() <= c.end for c in hits) for w in words)
        if covered and _one_stretch(hits):
            main = max(hits, key=lambda c: (c.end - c.start, -_COVER_ORDER.index(c.kind)))
            return _fit(Span(lo, hi, sentence[lo:hi], main.kind))
        if hits[0].start <= start:
            return _fit(hits[0])
    if len(words) <= 3 and not hits:
        return _fit(Span(start, end, sentence[start:end], "words"))
    return _fit(Span(words[0].start(), words[0].end(), words[0].group(), "words"))


def _one_stretch(spans: list[Span]) -> bool:
    reach = spans[0].end
    for s in spans[1:]:
        if s.start > reach + 1:
            return False
        reach = max(reach, s.end)
    return True


def _fit(span: Span) -> Span | None:
    """`span` when it can be an answer: a few words, not a list of words or a bare function word."""
    words = span.text.split()
    if not words or len(words) > MAX_SPAN_WORDS or not re.search(r"\w", span.text):
        return None
    if span.kind == "words" and ("," in span.text or {words[0], words[-1]} & _FUNCTION_WORDS):
        return None
    return span


def occurrences(text: str, span: str) -> int:
    """How often `span` occurs in `text` as a whole token run (case-insensitive)."""
    return len(re.findall(rf"(?<!\w){re.escape(span)}(?!\w)", text, re.I))


def readable(sentence: str) -> str:
    """A sentence without Markdown list markers, heading hashes, bold marks or outer table pipes."""
    text = _MARKUP.sub("", sentence.strip()).replace("**", "")
    if text.startswith("|") and text.endswith("|"):
        text = text.strip("|").strip()
    return " ".join(text.split())


def cloze(sentence: str, span: Span, title: str) -> str | None:
    """The question 'In "TITLE", what fills the blank: SENTENCE WITH ____?'; None when the answer
    could be read off it (it occurs twice in the sentence, or in the title)."""
    if occurrences(sentence, span.text) != 1 or occurrences(title, span.text):
        return None
    if sentence.lstrip().startswith("#"):  # a heading: the title, or a name for what follows
        return None
    blanked = readable(sentence[: span.start] + BLANK + sentence[span.end :])
    context = [w for w in blanked.replace(BLANK, " ").split() if re.search(r"\w", w)]
    if BLANK not in blanked or len(context) < 2:  # a bare heading asks nothing
        return None
    return f'In "{title}", what fills the blank: {blanked}'


class SpanPool:
    """Spans of a corpus grouped by shape and kind: where a question's distractors come from."""

    def __init__(self, texts: Iterable[str]):
        self.by_shape: dict[str, dict[str, str]] = {}
        self.by_kind: dict[str, dict[str, str]] = {}
        for text in texts:
            for sent in sentences(text):
                for s in find_spans(sent):
                    key = s.text.lower()
                    self.by_shape.setdefault(s.shape, {}).setdefault(key, s.text)
                    self.by_kind.setdefault(s.kind, {}).setdefault(key, s.text)

    def distractors(
        self, span: Span, n: int, avoid: Iterable[str], rng: random.Random
    ) -> list[str]:
        """`n` spans like `span`, none equal to `avoid` (case-insensitive): the corpus's spans of
        the same shape, then of the same kind; then, for a value, the value with its number
        changed ("every 80 minutes" for "every 40 minutes"), for a name or literal, other names
        and literals. Fewer when there are not enough."""
        taken = {a.lower() for a in avoid}
        out: list[str] = []
        tiers = [self.by_shape.get(span.shape, {}), self.by_kind.get(span.kind, {})]
        if span.kind in ("name", "code", "words"):
            tiers += [self.by_kind.get(k, {}) for k in ("name", "code")]
        else:
            tiers.append({v.lower(): v for v in variants(span)})
        for tier in tiers:
            pool = [v for k, v in tier.items() if k not in taken]
            for v in rng.sample(pool, min(n - len(out), len(pool))):
                out.append(v)
                taken.add(v.lower())
            if len(out) == n:
                break
        return out


def variants(span: Span) -> list[str]:
    """`span` with its number changed, in the number's own format: a date's year or a version's
    last part moved by one to three, any other number doubled, halved, tripled ..."""
    text = span.text
    if span.kind == "date":
        m = re.search(r"\b\d{4}\b", text)
        moved = [str(int(m.group()) + d) for d in (1, -1, 2, -2)] if m else []
    elif span.kind == "time":  # the hour moved, the minutes kept
        m = re.match(r"\d+", text)
        moved = [str((int(m.group()) + d) % 24) for d in (1, -1, 2, 3)]
    elif span.kind == "version":
        m = re.search(r"\d+(?=\D*$)", text)  # the last part of the last version
        width = len(m.group()) if m else 0  # "24.04" -> "24.05", not "24.5"
        moved = [str(int(m.group()) + d).zfill(width) for d in (1, -1, 2, 3)] if m else []
        moved = [v for v in moved if not v.startswith("-")]
    else:
        m = re.search(r"\d[\d,]*(?:\.\d+)?", text)
        moved = []
        if m:
            raw = m.group().replace(",", "")
            places = len(raw.partition(".")[2])
            value = float(raw)
            for f in (2, 0.5, 3, 4, 10):
                v = round(value * f, places)
                shown = f"{v:,.{places}f}" if "," in m.group() else f"{v:.{places}f}"
                if v > 0 and shown not in moved and not ("%" in text and v > 100):
                    moved.append(shown)
    if not m:
        return []
    return [text[: m.start()] + v + text[m.end() :] for v in moved if v != m.group()]


def choices(
    answers: list[str], span: Span, pool: SpanPool, rng: random.Random, avoid: str = ""
) -> list[str] | None:
    """`answers` plus distractors from `pool` up to four, shuffled; None when four distinct ones
    cannot be found. Spans occurring in `avoid` (the question) are not used as distractors."""
    seen = {a.lower() for a in answers}
    if len(seen) != len(answers):
        return None
    extra = pool.distractors(span, 4 - len(answers), [*answers], rng)
    extra = [e for e in extra if not occurrences(avoid, e)]
    if len(answers) + len(extra) < 4:
        more = pool.distractors(span, 8, [*answers, *extra], rng)
        extra += [e for e in more if not occurrences(avoid, e)][: 4 - len(answers) - len(extra)]
    if len(answers) + len(extra) != 4:
        return None
    out = [*answers, *extra]
    rng.shuffle(out)
    return out


def _field(unit, name: str, default=None):
    return unit.get(name, default) if isinstance(unit, dict) else getattr(unit, name, default)


def question_row(
    sentence: str, span: Span, title: str, doc_id: str, pool: SpanPool, rng: random.Random
) -> dict | None:
    """One cloze QA row about `span` of `sentence` (see span_questions), or None when the answer
    would leak or four distinct choices cannot be found."""
    question = cloze(sentence, span, title) or cloze(sentence, span, doc_id)
    if question is None:
        return None
    options = choices([span.text], span, pool, rng, avoid=question)
    if options is None:
        return None
    return {
        "question": question,
        "answer": span.text,
        "choices": options,
        "answer_index": options.index(span.text),
        "doc_ids": [doc_id],
        "sentence": sentence,
        "kind": span.kind,
    }


def span_questions(
    units: Iterable,
    seed: int = 0,
    max_per_doc: int = 0,
    pool: SpanPool | None = None,
    max_per_unit: int = 0,
) -> list[dict]:
    """Cloze questions about the spans of `units` (Chunks, Documents, or dicts with id, text and
    optionally doc_id and title), no model: at most one per sentence, at most `max_per_unit` per
    unit and `max_per_doc` per document (0 = no cap; a seeded sample otherwise), deduplicated.

    Each row is a QA line that `raftkit compare` and `build-dataset --qa` read: id, question,
    answer, choices (four, shuffled), answer_index, doc_ids, status ("unchanged"), plus sentence,
    kind and chunk_id (the unit the sentence came from). `pool` gives distractors (default: the
    spans of `units` themselves). The same inputs and seed give the same rows.
    """
    units = list(units)
    pool = pool or SpanPool(str(_field(u, "text", "")) for u in units)
    by_doc: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for unit in units:
        uid = str(_field(unit, "id"))
        doc_id = str(_field(unit, "doc_id") or uid)
        title = str(_field(unit, "title") or doc_id)
        mine = []
        for n, sent in enumerate(sentences(str(_field(unit, "text", "")))):
            rng = random.Random(f"{seed}:{uid}:{n}")
            for span in find_spans(sent, preferred_first=True):
                row = question_row(sent, span, title, doc_id, pool, rng)
                if row and row["question"].lower() not in seen:
                    seen.add(row["question"].lower())
                    mine.append({**row, "chunk_id": uid})
                    break
        by_doc.setdefault(doc_id, []).extend(cap(mine, max_per_unit, seed))
    rows = [r for doc_rows in by_doc.values() for r in cap(doc_rows, max_per_doc, seed)]
    return [{"id": f"span-{i:05d}", **r, "status": "unchanged"} for i, r in enumerate(rows)]


def cap(rows: list[dict], limit: int, seed: int) -> list[dict]:
    """At most `limit` of `rows` (0 = all): a seeded sample kept in order."""
    if not limit or len(rows) <= limit:
        return rows
    key = rows[0].get("chunk_id") or rows[0]["doc_ids"][0]
    keep = sorted(random.Random(f"{seed}:{key}").sample(range(len(rows)), limit))
    return [rows[i] for i in keep]
