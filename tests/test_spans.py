"""Answer spans and cloze questions (raftkit/raft/spans.py): kinds, the span an edit stands for,
leaks refused, span questions for a whole corpus."""

import pytest

from raftkit.raft import spans
from raftkit.retrieval.loaders import load_documents


def found(sentence):
    return [(s.text, s.kind) for s in spans.find_spans(sentence)]


@pytest.mark.parametrize(
    "sentence, expected",
    [
        (
            "A node needs 4 CPU cores, 4 GiB of RAM and a snapshot every 6 hours.",
            [
                ("4", "number"),
                ("CPU", "name"),
                ("4 GiB", "quantity"),
                ("RAM", "name"),
                ("every 6 hours", "quantity"),
            ],
        ),
        (
            "The 1.x line reaches end of life on 30 June 2025, says Odile Carrack.",
            [("30 June 2025", "date"), ("Odile Carrack", "name")],
        ),
        (
            "- Debian 11, Ubuntu 20.04, 22.04, and 24.04, under the Apache License 2.0",
            [
                ("11", "number"),
                ("Ubuntu 20.04, 22.04, and 24.04", "version"),
                ("Apache License 2.0", "version"),
            ],
        ),
        (
            '| `tls.min_version` | `"1.3"` | Lowest version. | `14d` | 20,000 |',
            [
                ("tls.min_version", "code"),
                ("1.3", "version"),
                ("14d", "quantity"),
                ("20,000", "number"),
            ],
        ),
    ],
)
def test_find_spans_by_kind(sentence, expected):
    assert found(sentence) == expected


def test_the_span_an_edit_stands_for():
    def covering(sentence, region):
        start = sentence.index(region)
        span = spans.span_covering(sentence, start, start + len(region))
        return span and (span.text, span.kind)

    assert covering("This documentation covers Tarnwick 1.9.", "1.9") == ("Tarnwick 1.9", "version")
    assert covering("These limits apply to Tarnwick 1.9 clusters.", "1.9")[0] == "Tarnwick 1.9"
    assert covering("Snapshots run every 6 hours by default.", "6") == ("every 6 hours", "quantity")
    # a rewritten clause: its first value, not the whole clause
    assert covering("Passwords are hashed with bcrypt at cost 12.", "bcrypt at cost 12") == (
        "bcrypt",
        "words",
    )
    assert covering("Clients for Go, Java, and Rust.", "and") is None  # a bare function word


def test_cloze_blanks_once_and_refuses_leaks():
    sentence = "The console listens on port 9280 by default."
    span = spans.find_spans(sentence)[0]
    assert spans.cloze(sentence, span, "Web Console") == (
        'In "Web Console", what fills the blank: The console listens on port ____ by default.'
    )
    twice = "Port 9280 is the default; set 9280 in console.port."
    assert spans.cloze(twice, spans.find_spans(twice)[0], "Console") is None
    assert spans.cloze(sentence, span, "Port 9280 guide") is None  # the title gives it away
    heading = "# Beacon Web Console"
    assert spans.cloze(heading, spans.find_spans(heading)[0], "console.md") is None


def test_choices_are_four_distinct_and_alike():
    import random

    pool = spans.SpanPool(
        ["Limits are 4 MiB, 16 MiB and 64 MiB. Tokens last 8 hours or 12 hours. Port 7421."]
    )
    span = spans.find_spans("Messages may be up to 1 MiB.")[0]
    options = spans.choices(["1 MiB"], span, pool, random.Random(0))
    assert len(options) == 4 and "1 MiB" in options
    assert all(o.endswith("MiB") for o in options)  # same shape first
    # too few of its kind in the corpus: a value gets its number changed, a name gives up
    few = spans.SpanPool(["Only 4 MiB, made by Ilse Marten."])
    assert spans.choices(["1 MiB"], span, few, random.Random(0))[1:] != []
    assert sorted(spans.choices(["1 MiB"], span, few, random.Random(0))) == [
        "1 MiB",
        "2 MiB",
        "3 MiB",
        "4 MiB",
    ]
    name = spans.find_spans("The release manager is Odile Carrack.")[0]
    assert spans.choices(["Odile Carrack"], name, few, random.Random(0)) is None


def test_span_questions_over_a_corpus_are_well_formed_seeded_and_capped(docs_dir):
    docs = load_documents(docs_dir).documents
    rows = spans.span_questions(docs, seed=0)
    assert len(rows) >= 8
    text = {d.id: " ".join(d.text.split()) for d in docs}  # hard-wrapped lines read as one
    for r in rows:
        assert r["question"].count(spans.BLANK) == 1
        assert not spans.occurrences(r["question"], r["answer"])
        assert r["sentence"] in text[r["doc_ids"][0]] and r["answer"] in r["sentence"]
        assert len({c.lower() for c in r["choices"]}) == 4
        assert r["choices"][r["answer_index"]] == r["answer"]
        assert r["chunk_id"] == r["doc_ids"][0] and r["status"] == "unchanged"
    assert len({r["id"] for r in rows}) == len(rows)
    assert spans.span_questions(docs, seed=0) == rows
    assert [r["choices"] for r in spans.span_questions(docs, seed=1)] != [
        r["choices"] for r in rows
    ]
    capped = spans.span_questions(docs, seed=0, max_per_doc=1)
    assert len(capped) == len({r["doc_ids"][0] for r in rows})
