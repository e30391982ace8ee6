"""QA files whose strings hold Unicode line separators (U+2028, as real PubMedQA text does) load whole:
JSON allows them inside strings, and str.splitlines() would cut the line there."""

import json

from raftkit.raft.build import read_qa


def write_qa(path):
    rows = [{"id": "q1", "question": "Does it work?", "answer": "yes", "doc_ids": ["d1"],
             "long_answer": "First part\u2028second part\u2029third\x85fourth."},
            {"id": "q2", "question": "Second?", "answer": "no", "doc_ids": ["d2"]}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def test_build_dataset_reads_qa_with_unicode_separators(tmp_path):
    rows = write_qa(tmp_path / "qa.jsonl")
    got = read_qa(tmp_path / "qa.jsonl")
    assert [r["id"] for r in got] == ["q1", "q2"] and got[0]["long_answer"] == rows[0]["long_answer"]


def test_compare_reads_qa_with_unicode_separators(tmp_path):
    from raftkit.compare import questions

    write_qa(tmp_path / "qa.jsonl")
    rows, _ = questions._rows(tmp_path / "qa.jsonl")
    assert [r["id"] for r in rows] == ["q1", "q2"]
