"""Index history: what each `index update` changed, kept with the index; `raftkit index diff`."""

import json

import pytest
import yaml

from raftkit import config
from raftkit.cli import main
from raftkit.retrieval import history
from raftkit.retrieval.config import RaftkitConfig
from raftkit.retrieval.index import load_index
from raftkit.retrieval.indexing import build_index, update_index
from raftkit.retrieval.textdiff import edits, sentence_changes


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip()


@pytest.fixture
def updated(tmp_path, docs_copy, hash_embedder):
    """An index of a copy of tests/assets/docs, then one update: a number changed in volcanoes.md,
    bakery.txt deleted, ferry.txt added."""
    cfg = config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={tmp_path}"])
    built = build_index(docs_copy, "live", cfg)
    assert not (built.path / history.HISTORY).exists()  # a build has no history
    volcanoes = docs_copy / "volcanoes.md"
    volcanoes.write_text(volcanoes.read_text().replace("3,412 metres", "3,498 metres"))
    (docs_copy / "bakery.txt").unlink()
    (docs_copy / "ferry.txt").write_text(
        "The Orra ferry sails at dawn every day. It carries 90 cars and 400 passengers."
    )
    update_index(docs_copy, "live", tmp_path)
    return tmp_path, docs_copy, built.manifest


def test_update_records_ids_hashes_and_old_texts(updated):
    root, _, before = updated
    index = load_index("live", root)
    (entry,) = history.read(index.path)
    assert entry["update"] == 1 and entry["source"].endswith("docs") and entry["time"]
    docs = {d["id"]: d for d in entry["documents"]}
    assert {k: d["status"] for k, d in docs.items()} == {
        "volcanoes.md": "changed",
        "ferry.txt": "added",
        "bakery.txt": "deleted",
    }
    v = docs["volcanoes.md"]
    assert v["old_hash"] == before["documents"]["volcanoes.md"]["hash"]
    assert v["new_hash"] == index.manifest["documents"]["volcanoes.md"]["hash"] != v["old_hash"]
    assert "3,412 metres" in v["old_text"] and "3,498" not in v["old_text"]
    assert "sourdough starter she named Gustav" in docs["bakery.txt"]["old_text"]
    assert "old_text" not in docs["ferry.txt"] and docs["ferry.txt"]["new_hash"]


def test_a_rebuilt_text_equals_the_document(built_index, docs_dir):
    from raftkit.retrieval.loaders import load_documents

    texts = history.document_texts(built_index.chunks)
    for doc in load_documents(docs_dir).documents:
        assert texts[doc.id].strip() == doc.text.strip()


def test_history_is_bounded_numbered_and_skips_updates_that_change_nothing(updated):
    root, docs, _ = updated
    update_index(docs, "live", root)  # nothing changed: nothing recorded
    assert [e["update"] for e in history.read(root / "live")] == [1]
    for n in (2, 3, 4):
        (docs / "ferry.txt").write_text(f"The Orra ferry carries {90 + n} cars.")
        update_index(docs, "live", root, [f"retrieval.history.keep={3 if n < 4 else 2}"])
    assert [e["update"] for e in history.read(root / "live")] == [3, 4]
    (docs / "ferry.txt").write_text("The Orra ferry carries 99 cars.")
    update_index(docs, "live", root, ["retrieval.history.keep=0"])
    assert not (root / "live" / history.HISTORY).exists()


def test_history_is_written_with_the_index_and_survives_a_failed_update(updated, monkeypatch):
    import faiss

    root, docs, _ = updated
    (docs / "ferry.txt").write_text("The Orra ferry carries 120 cars.")

    def broken(*args):
        raise OSError("disk full")

    real = faiss.write_index
    monkeypatch.setattr(faiss, "write_index", broken)
    with pytest.raises(OSError):
        update_index(docs, "live", root)
    monkeypatch.setattr(faiss, "write_index", real)
    assert len(history.read(root / "live")) == 1  # the old index, its history whole
    update_index(docs, "live", root)
    assert [e["update"] for e in history.read(root / "live")] == [1, 2]


def test_an_index_from_before_history_updates_and_starts_one(updated):
    root, docs, _ = updated
    (root / "live" / history.HISTORY).unlink()
    cfg_file = root / "live" / "config.yaml"
    data = yaml.safe_load(cfg_file.read_text())
    del data["retrieval"]["history"]  # written before the setting existed
    cfg_file.write_text(yaml.safe_dump(data))
    (docs / "ferry.txt").write_text("The Orra ferry carries 75 cars.")
    update_index(docs, "live", root)
    (entry,) = history.read(root / "live")
    assert entry["update"] == 1 and entry["documents"][0]["id"] == "ferry.txt"


def test_index_diff_prints_changed_sentences_and_spans(updated, capsys):
    root, _, _ = updated
    code, out, _ = run(capsys, "index", "diff", "live", "--indexes-dir", root)
    assert code == 0
    assert "update 1 (" in out and "1 added, 1 changed, 1 deleted" in out
    assert "changed volcanoes.md (Volcanoes of Norland)" in out
    assert "  - The tallest, Mount Skarn, rises 3,412 metres" in out
    assert "  + The tallest, Mount Skarn, rises 3,498 metres" in out
    assert '      "3,412" -> "3,498"' in out
    assert "added ferry.txt" in out and "deleted bakery.txt" in out
    code, out, _ = run(capsys, "index", "diff", "live", "--indexes-dir", root, "--json")
    data = json.loads(out)
    (volcanoes,) = [d for d in data["documents"] if d["id"] == "volcanoes.md"]
    (sentence,) = volcanoes["sentences"]
    assert [(e["old"], e["new"]) for e in sentence["edits"]] == [("3,412", "3,498")]


def test_index_diff_bad_input_is_one_error_line(updated, capsys, built_index):
    root, _, _ = updated
    code, out, err = run(capsys, "index", "diff", "live", "--indexes-dir", root, "--since", "2")
    assert code == 2 and not out
    assert err == (
        "error: --since 2: index 'live' records 1 update(s) (retrieval.history.keep bounds how "
        "many are kept)"
    )
    never = built_index.path.parent
    code, _, err = run(capsys, "index", "diff", "assets", "--indexes-dir", never)
    assert code == 2 and err.startswith("error: index 'assets' has no recorded changes: ")
    code, _, err = run(capsys, "probes", "assets", "--indexes-dir", never, "--out", root / "p")
    assert code == 2 and err.startswith("error: index 'assets' has no recorded changes: ")


def test_edits_join_near_changes_and_sentences_pair_by_similarity():
    old = "It is distributed under the Business Source License 1.1."
    new = "It is distributed under the Apache License 2.0."
    assert [(e.old, e.new) for e in edits(old, new)] == [
        ("Business Source License 1.1", "Apache License 2.0")
    ]
    changes = sentence_changes(
        "Intro stays. The port is 9180 by default. Old feature removed here.",
        "Intro stays. The port is 9280 by default. A brand new sentence about webhooks.",
    )
    assert [(c.old, c.new) for c in changes] == [
        ("The port is 9180 by default.", "The port is 9280 by default."),
        ("Old feature removed here.", None),
        (None, "A brand new sentence about webhooks."),
    ]
    assert [(e.old, e.new) for e in changes[0].edits] == [("9180", "9280")]
