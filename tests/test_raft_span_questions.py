"""`build-dataset --set questions.source=spans`: RAFT questions from every chunk with no model."""

import json

from raftkit import files
from raftkit.cli import main
from raftkit.prompts import extract_quotes, normalize_ws, quote_in
from raftkit.raft.spans import BLANK


def _build(docs_dir, out, sets: list[str]) -> int:
    """`raftkit build-dataset DOCS --out OUT` with `--set` each of `sets`."""
    return main(
        ["build-dataset", str(docs_dir), "--out", str(out)]
        + [a for s in sets for a in ("--set", s)]
    )


def test_span_questions_build_a_raft_dataset_with_no_model(
    built_index, docs_dir, tmp_path, capsys, monkeypatch
):
    import raftkit.generate

    def refuse(*args, **kwargs):
        raise AssertionError("a generator was loaded")

    monkeypatch.setattr(raftkit.generate, "make_generator", refuse)
    out = tmp_path / "ds"
    sets = [
        "questions.source=spans",
        "questions.per_chunk=2",
        "index_name=assets",
        f"retrieval.indexes_dir={built_index.path.parent}",
        "assembly.num_distractors=2",
        "assembly.eval_fraction=0",
        "gate.over_refusal=0",
    ]
    code = _build(docs_dir, out, sets)
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["generator"] is None and manifest["index"]["action"] == "reused"
    summary = manifest["summary"]
    assert summary["span_questions"] == summary["questions"] >= 8
    assert summary["quote_verified_share"] == 1.0
    from datasets import load_from_disk

    chunk_text = {c.id: c.text for c in built_index.chunks}
    examples = load_from_disk(str(out / "dataset"))["train"].to_list()
    assert (
        len(examples)
        == summary["examples"]["train"]
        == len(files.read_jsonl(out / "dsf_train.jsonl"))
    )
    per_chunk: dict[str, int] = {}
    for e in examples:
        assert e["question"].count(BLANK) == 1
        oracle = chunk_text[e["oracle_id"]]
        per_chunk[e["oracle_id"]] = per_chunk.get(e["oracle_id"], 0) + 1
        assert normalize_ws(e["answer"]).lower() in normalize_ws(oracle).lower()
        assert len(e["choices"]) == 4 and e["choices"][e["answer_index"]] == e["answer"]
        if e["oracle_present"]:
            assert all(quote_in(quote, [oracle]) for quote in extract_quotes(e["cot_answer"]))
    assert max(per_chunk.values()) <= 2  # questions.per_chunk


def test_span_questions_do_not_calibrate_the_evidence_gate(built_index, docs_dir, tmp_path, capsys):
    """A cloze copies its sentence's words, so its retrieval score says nothing of a user's
    question's: the abstain build keeps its refusal targets but fits no gate on them."""
    out = tmp_path / "ds"
    sets = [
        "questions.source=spans",
        "index_name=assets",
        f"retrieval.indexes_dir={built_index.path.parent}",
        "assembly.num_distractors=2",
        "assembly.eval_fraction=0",
        "assembly.absent_target=abstain",
        "gate.over_refusal=0.15",
    ]
    code = _build(docs_dir, out, sets)
    printed = capsys.readouterr().out
    assert code == 0
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["span_questions"] >= 10  # enough for a gate: calibrate() fits one from 10
    assert summary["evidence_gate"] is None
    assert "evidence gate: not calibrated: span questions" in printed
