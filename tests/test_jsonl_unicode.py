"""The one JSON-lines reader: strings holding Unicode line separators (U+2028, as real PubMedQA text
does) load whole (JSON allows them inside strings; str.splitlines() would cut the line there), and a
bad line is named by its number. Every reader of QA files and corpora goes through it."""

import json

import pytest

from raftkit import files
from raftkit.errors import RaftkitError
from raftkit.raft.build import read_qa

SEPARATORS = "First part\u2028second part\u2029third\x85fourth."


def write_qa(path):
    rows = [
        {
            "id": "q1",
            "question": "Does it work?",
            "answer": "yes",
            "doc_ids": ["d1"],
            "long_answer": SEPARATORS,
        },
        {"id": "q2", "question": "Second?", "answer": "no", "doc_ids": ["d2"]},
    ]
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return rows


def test_reader_keeps_unicode_separators_inside_strings(tmp_path):
    rows = write_qa(tmp_path / "qa.jsonl")
    assert files.read_jsonl(tmp_path / "qa.jsonl") == rows
    assert [n for n, _ in files.scan_jsonl(tmp_path / "qa.jsonl").rows] == [1, 2]


def test_reader_names_bad_lines_by_number(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n{broken\n{"b": 2}\n', encoding="utf-8")
    scanned = files.scan_jsonl(path)
    assert [n for n, _ in scanned.rows] == [1, 5]
    assert scanned.bad == [(3, "not a JSON object"), (4, "not valid JSON")]
    with pytest.raises(RaftkitError, match=r"x.jsonl: line 3 is not a JSON object$"):
        files.read_jsonl(path)
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(RaftkitError, match=r"x.jsonl: not UTF-8 text$"):
        files.read_jsonl(path)


def test_build_dataset_reads_qa_with_unicode_separators(tmp_path):
    rows = write_qa(tmp_path / "qa.jsonl")
    got = read_qa(tmp_path / "qa.jsonl")
    assert [r["id"] for r in got] == ["q1", "q2"] and got[0]["long_answer"] == rows[0][
        "long_answer"
    ]


def test_compare_reads_qa_with_unicode_separators(tmp_path):
    from raftkit import config
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.questions import load_questions

    write_qa(tmp_path / "qa.jsonl")
    cfg = config.load(
        CompareConfig,
        data={
            "systems": [{"name": "a", "model": "m"}],
            "questions": {"path": str(tmp_path / "qa.jsonl")},
        },
    )
    assert [q.id for q in load_questions(cfg)] == ["q1", "q2"]


def test_corpus_lines_keep_unicode_separators(tmp_path):
    from raftkit.retrieval.loaders import load_documents

    (tmp_path / "c.jsonl").write_text(
        json.dumps({"id": "d1", "text": SEPARATORS}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    assert load_documents(tmp_path).documents[0].text == SEPARATORS
