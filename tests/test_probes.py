"""`raftkit probes`: freshness questions written from the demo's v1 -> v2 update, checked against
the hand labels of corpora/demo/qa.jsonl; bad input; phrasing with a generator."""

import re
import time
from pathlib import Path

import pytest
from conftest import HashEmbedder

from raftkit import config, files
from raftkit.cli import main
from raftkit.compare.probes import ProbesConfig, make_probes
from raftkit.raft.spans import BLANK, occurrences
from raftkit.retrieval.config import RaftkitConfig
from raftkit.retrieval.index import load_index
from raftkit.retrieval.indexing import build_index, update_index
from raftkit.retrieval.loaders import load_documents

DEMO = Path(__file__).resolve().parents[1] / "corpora" / "demo"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo index at v1 (the demo's chunking), updated to v2; vectors from HashEmbedder."""
    import raftkit.retrieval.index as index_module

    root = tmp_path_factory.mktemp("indexes")
    sizes = ["retrieval.chunking.size=128", "retrieval.chunking.overlap=16"]
    cfg = config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={root}", *sizes])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_module, "Embedder", HashEmbedder)
        build_index(DEMO / "v1", "demo", cfg)
        update_index(DEMO / "v2", "demo", root)
    return root


@pytest.fixture(scope="module")
def probes(demo):
    return make_probes(load_index("demo", demo), ProbesConfig()).rows


def texts(version: str) -> dict[str, str]:
    return {d.id: " ".join(d.text.split()) for d in load_documents(DEMO / version).documents}


def test_probes_cover_the_hand_labelled_changed_facts(probes):
    changed = [q for q in files.read_jsonl(DEMO / "qa.jsonl") if q["status"] == "changed"]
    covered = [
        q["id"]
        for q in changed
        if any(p["answer"] == q["answer"] and p["answer_v1"] == q["answer_v1"] for p in probes)
    ]
    assert len(changed) == 25
    # demo-060 (a release date whose sentence was rewritten whole) is the one no span diff finds
    assert len(covered) >= 0.8 * len(changed), sorted({q["id"] for q in changed} - set(covered))


def test_every_demo_probe_is_well_formed(probes):
    old, new = texts("v1"), texts("v2")
    statuses = {p["status"] for p in probes}
    assert statuses == {"changed", "added"}  # the demo deletes no page
    assert len({p["id"] for p in probes}) == len(probes)
    assert len({p["question"] for p in probes}) == len(probes)
    for p in probes:
        (doc,) = p["doc_ids"]
        assert p["question"].count(BLANK) == 1 and not occurrences(p["question"], p["answer"])
        assert p["sentence"] in new[doc] and p["answer"] in p["sentence"]
        assert p["answer"] in new[doc]
        assert len(p["choices"]) == 4 and len({c.lower() for c in p["choices"]}) == 4
        assert p["choices"][p["answer_index"]] == p["answer"]
        if p["status"] == "changed":
            assert p["answer_v1"] in old[doc] and p["sentence_v1"] in old[doc]
            assert p["choices"][p["answer_index_v1"]] == p["answer_v1"] != p["answer"]
            assert not occurrences(p["question"], p["answer_v1"])
        else:
            assert p["answer_v1"] is None and p["answer_index_v1"] is None
            assert doc not in old or not occurrences(old[doc], p["answer"])
    per_doc = {}
    for p in probes:
        per_doc[p["doc_ids"][0]] = per_doc.get(p["doc_ids"][0], 0) + 1
    assert max(per_doc.values()) <= ProbesConfig().max_per_doc


def test_raftkit_probes_writes_qa_that_compare_and_build_dataset_read(demo, tmp_path, capsys):
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.questions import load_questions
    from raftkit.raft.build import read_qa

    out = tmp_path / "probes.jsonl"
    t0 = time.perf_counter()
    code, printed, _ = run(capsys, "probes", "demo", "--indexes-dir", demo, "--out", out)
    seconds = time.perf_counter() - t0
    assert code == 0 and seconds < 10
    rows = files.read_jsonl(out)
    n = {s: sum(r["status"] == s for r in rows) for s in ("changed", "added")}
    first, why = printed.splitlines()
    assert re.fullmatch(
        rf"wrote {len(rows)} probes to {re.escape(str(out))} in \d+\.\ds: "
        rf"{n['changed']} changed, {n['added']} added, 0 unanswerable",
        first,
    )
    assert why.startswith("  changed spans not probed: ")
    system = {"name": "base", "model": "stub"}
    cfg = config.load(CompareConfig, data={"questions": {"path": str(out)}, "systems": [system]})
    asked = load_questions(cfg)
    assert {q.status for q in asked} == {"changed", "added"} and len(asked) == len(rows)
    assert all(q.answer_v1 for q in asked if q.status == "changed")
    assert [r["id"] for r in read_qa(out)] == [r["id"] for r in rows]
    again = tmp_path / "again.jsonl"
    run(capsys, "probes", "demo", "--indexes-dir", demo, "--out", again)
    assert again.read_text() == out.read_text()  # seeded: the same probes every time
    other = tmp_path / "other.jsonl"
    sets = ["--set", "probes.seed=1", "--set", "probes.max_per_doc=2"]
    run(capsys, "probes", "demo", "--indexes-dir", demo, "--out", other, *sets)
    capped = files.read_jsonl(other)
    assert len(capped) < len(rows)
    assert all(sum(r["doc_ids"] == c["doc_ids"] for r in capped) <= 2 for c in capped)
    # an existing file is replaced only when asked: nothing is lost by a mistyped --out
    code, _, err = run(capsys, "probes", "demo", "--indexes-dir", demo, "--out", other)
    assert (
        code == 2 and err.strip() == f"error: --out {other} exists; pass --overwrite to replace it"
    )
    assert files.read_jsonl(other) == capped
    run(capsys, "probes", "demo", "--indexes-dir", demo, "--out", other, "--overwrite")
    assert other.read_text() == out.read_text()


def test_probes_load_no_model(demo, monkeypatch):
    import raftkit.generate

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(raftkit.generate, "make_generator", refuse)
    monkeypatch.setattr(HashEmbedder, "encode", refuse)
    assert make_probes(load_index("demo", demo), ProbesConfig()).rows


def test_deleted_documents_give_unanswerable_probes(tmp_path, docs_copy, hash_embedder):
    cfg = config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={tmp_path}"])
    build_index(docs_copy, "live", cfg)
    bakery = (docs_copy / "bakery.txt").read_text()
    (docs_copy / "bakery.txt").unlink()
    update_index(docs_copy, "live", tmp_path)
    rows = make_probes(load_index("live", tmp_path), ProbesConfig()).rows
    assert rows and {r["status"] for r in rows} == {"unanswerable"}
    for r in rows:
        assert r["answer"] is None and r["answer_index"] is None and r["doc_ids"] == []
        assert r["doc_ids_v1"] == ["bakery.txt"] and r["answer_v1"] in " ".join(bakery.split())
        assert r["choices"][r["answer_index_v1"]] == r["answer_v1"]


def test_changes_without_a_short_span_are_one_error_line(
    tmp_path, docs_copy, hash_embedder, capsys
):
    build_index(
        docs_copy,
        "live",
        config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={tmp_path}"]),
    )
    volcanoes = docs_copy / "volcanoes.md"
    # the same words, rewrapped: a changed hash and no changed sentence
    volcanoes.write_text(volcanoes.read_text().replace(" and\nlast", "\nand last"))
    update_index(docs_copy, "live", tmp_path)
    capsys.readouterr()
    code, out, err = run(
        capsys, "probes", "live", "--indexes-dir", tmp_path, "--out", tmp_path / "p"
    )
    assert code == 2 and not out and not (tmp_path / "p").exists()
    assert err == (
        "error: index 'live': the recorded changes give no probe (no edited sentence differs by a "
        "short span, and no added or deleted sentence holds one)"
    )


class EchoGenerator:
    """Rephrases a cloze as 'What fills: ...?' and answers with the span the probe blanked; the
    probe whose id is in `wrong` gets a wrong answer, so its rephrasing must be dropped."""

    def __init__(self, rows, wrong):
        self.answers = {r["sentence"]: r["answer"] for r in rows}
        self.wrong = {r["sentence"] for r in rows if r["id"] in wrong}

    def chat(self, conversations, max_new_tokens=None, desc=""):
        out = []
        for conv in conversations:
            user = conv[-1]["content"]
            if user.startswith("Text: "):
                sentence = user[len("Text: ") :].split("\nQuestion: ")[0]
                out.append("nonsense" if sentence in self.wrong else self.answers[sentence])
            else:
                out.append(f"Which value is meant in: {user.replace(BLANK, 'what')}?")
        return out


def test_phrasing_model_keeps_a_rephrasing_only_when_it_asks_for_the_same_span(demo):
    index = load_index("demo", demo)
    cloze = make_probes(index, ProbesConfig()).rows
    wrong = {cloze[0]["id"]}
    gen = EchoGenerator(cloze, wrong)
    rows = make_probes(index, ProbesConfig(phrasing="model"), generator=gen).rows
    assert rows[0]["question"] == cloze[0]["question"] and "cloze" not in rows[0]
    assert rows[1]["question"].startswith("Which value is meant in:")
    assert rows[1]["cloze"] == cloze[1]["question"]
    assert all(not occurrences(r["question"], r["answer"]) for r in rows)


def test_a_changed_value_that_occurs_twice_in_its_sentence_gives_no_probe(
    tmp_path, docs_copy, hash_embedder
):
    cfg = config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={tmp_path}"])
    build_index(docs_copy, "live", cfg)
    volcanoes = docs_copy / "volcanoes.md"
    text = volcanoes.read_text().replace("3,412 metres", "3,498 metres")
    volcanoes.write_text(
        text.replace("with 14 seismometers", "with 16 seismometers and 16 cameras")
    )
    update_index(docs_copy, "live", tmp_path)
    made = make_probes(load_index("live", tmp_path), ProbesConfig())
    assert [(r["answer"], r["answer_v1"]) for r in made.rows] == [("3,498 metres", "3,412 metres")]
    assert made.skipped == {
        "the answer shows in the question (twice in the sentence, or its title)": 1
    }


def test_max_pool_docs_caps_the_documents_the_distractors_come_from(demo, monkeypatch):
    """probes.max_pool_docs: the distractor pool reads a seeded sample of that many of the index's
    documents (and the changed ones' own texts), so a large index is not read whole."""
    from raftkit.retrieval import history

    index = load_index("demo", demo)
    read, real = [], history.document_texts

    def spy(chunks):
        read.append({c.doc_id for c in chunks})
        return real(chunks)

    monkeypatch.setattr(history, "document_texts", spy)

    def pooled(cfg):  # (the documents the pool read: the last texts read, the probes)
        read.clear()
        rows = make_probes(index, cfg).rows
        return read[-1], rows

    every, rows = pooled(ProbesConfig())
    sample, capped = pooled(ProbesConfig(max_pool_docs=3))
    assert every == {c.doc_id for c in index.chunks} and len(every) > 3
    assert len(sample) == 3 and sample < every
    # fewer spans to draw from: other distractors
    assert [r["choices"] for r in capped] != [r["choices"] for r in rows]


def test_phrasing_model_through_the_command_asks_a_real_generator(
    demo, tiny_llama, tmp_path, capsys, monkeypatch
):
    """`raftkit probes --set probes.phrasing=model` loads the HF generator named by
    generation.model and asks it to rephrase, then to answer back, every probe. An untrained model
    cannot answer its own rephrasing with the blanked span, so each probe keeps its cloze: a
    rephrasing is only ever kept when it still asks for the same span."""
    from raftkit.generate import HFGenerator

    asked, real_chat = [], HFGenerator.chat

    def chat(self, conversations, *a, **k):
        asked.append(len(conversations))
        return real_chat(self, conversations, *a, **k)

    monkeypatch.setattr(HFGenerator, "chat", chat)
    out = tmp_path / "probes.jsonl"
    code, _, err = run(
        capsys,
        *("probes", "demo", "--indexes-dir", demo, "--out", out),
        *("--set", "probes.phrasing=model", "--set", f"generation.model={tiny_llama}"),
        *("--set", "probes.max_per_doc=1", "--set", "runtime.dtype=float32"),
    )
    assert code == 0, err
    cloze = make_probes(load_index("demo", demo), ProbesConfig(max_per_doc=1)).rows
    rows = files.read_jsonl(out)
    assert asked == [len(cloze), len(cloze)]  # one rephrasing and one answer-back per probe
    assert [r["id"] for r in rows] == [r["id"] for r in cloze]
    for r, c in zip(rows, cloze):
        assert r.get("cloze", r["question"]) == c["question"]
        assert not occurrences(r["question"], r["answer"])
