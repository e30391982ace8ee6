"""Loading every supported format, skipping unreadable files, and token-measured chunking."""

import pytest

from raftkit.errors import RaftkitError
from raftkit.retrieval.chunking import chunk_documents, make_splitter
from raftkit.retrieval.config import ChunkingConfig
from raftkit.retrieval.loaders import load_documents


def test_loads_every_format_and_skips_the_broken_pdf(docs_dir):
    result = load_documents(docs_dir)
    by_id = {d.id: d for d in result.documents}
    assert sorted(by_id) == ["bakery.txt", "guides/trains.html", "lib-1", "lib-2", "volcanoes.md"]
    assert by_id["volcanoes.md"].title == "Volcanoes of Norland"
    assert by_id["guides/trains.html"].title == "Coastal Railway Guide"
    assert (
        "var x" not in by_id["guides/trains.html"].text
        and "color:red" not in by_id["guides/trains.html"].text
    )
    assert by_id["lib-1"].date == "2024-03-01" and by_id["lib-1"].title == "City Library hours"
    assert [p.endswith("broken.pdf") for p, _ in result.skipped] == [True]


def test_reads_a_real_pdf(tmp_path):
    from pypdf import PdfWriter
    from pypdf.generic import NameObject

    # A one-page PDF with no text layer: loaded, then skipped as empty, never fatal.
    w = PdfWriter()
    w.add_blank_page(width=200, height=200)
    w.add_metadata({NameObject("/Title"): "Blank"})
    with open(tmp_path / "blank.pdf", "wb") as f:
        w.write(f)
    (tmp_path / "note.txt").write_text("A note.")
    result = load_documents(tmp_path)
    assert [d.id for d in result.documents] == ["note.txt"]
    assert result.skipped[0][1] == "no text"


def test_missing_and_empty_folders_are_errors(tmp_path):
    with pytest.raises(RaftkitError, match=r"^documents folder not found: .*missing$"):
        load_documents(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(
        RaftkitError, match=r"^no documents \(\.txt \.md \.html \.htm \.pdf \.jsonl\) found in "
    ):
        load_documents(tmp_path / "empty")


def test_bad_jsonl_line_skips_that_line_only(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"id": "x", "text": "fine"}\n{not json}\n{"id": "y"}\n{"id": "z", "text": "ok"}\n'
    )
    (tmp_path / "b.md").write_text("# B\nbody")
    result = load_documents(tmp_path)
    assert [d.id for d in result.documents] == ["x", "z", "b.md"]
    assert result.skipped == [
        (f"{tmp_path / 'a.jsonl'}:2", "not valid JSON"),
        (f"{tmp_path / 'a.jsonl'}:3", "no text field"),
    ]


def test_when_every_document_is_dropped_the_error_says_why(tmp_path):
    (tmp_path / "a.jsonl").write_text("{not json}\n")
    (tmp_path / "b.txt").write_text("   ")
    with pytest.raises(RaftkitError) as e:
        load_documents(tmp_path)
    assert str(e.value) == (
        f"no readable documents found in {tmp_path}: {tmp_path / 'a.jsonl'}:1: not valid JSON; "
        f"{tmp_path / 'b.txt'}: no text"
    )


def test_documents_over_the_size_limit_are_skipped_with_the_setting_to_raise(tmp_path):
    from raftkit.retrieval.config import LimitsConfig

    (tmp_path / "big.md").write_text("word " * 300_000)  # 1.5 MB
    (tmp_path / "small.md").write_text("# S\nsmall")
    result = load_documents(tmp_path, LimitsConfig(max_document_mb=1.0))
    assert [d.id for d in result.documents] == ["small.md"]
    assert result.skipped == [
        (
            str(tmp_path / "big.md"),
            "1.5 MB is over retrieval.limits.max_document_mb (1); raise it to index this document",
        )
    ]
    assert [
        d.id for d in load_documents(tmp_path, LimitsConfig(max_document_mb=2.0)).documents
    ] == ["big.md", "small.md"]


def test_content_hash_changes_with_text_only(docs_dir):
    doc = load_documents(docs_dir / "bakery.txt").documents[0]
    same = load_documents(docs_dir / "bakery.txt").documents[0]
    assert doc.hash == same.hash
    same.text += " More."
    assert doc.hash != same.hash


def test_chunks_are_token_measured_with_offsets(docs_dir, tokenizer):
    cfg = ChunkingConfig(size=24, overlap=4)
    docs = load_documents(docs_dir).documents
    chunks = chunk_documents(docs, cfg, make_splitter(cfg, tokenizer))
    texts = {d.id: d.text for d in docs}
    assert len(chunks) > len(docs)  # small size forces splits
    for c in chunks:
        assert len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 24
        assert texts[c.doc_id][c.start : c.end] == c.text
    vol = [c for c in chunks if c.doc_id == "volcanoes.md"]
    assert [c.id for c in vol] == [f"volcanoes.md#{i}" for i in range(len(vol))]
    assert all(c.title == "Volcanoes of Norland" for c in vol)
    assert {c.date for c in chunks if c.doc_id == "lib-2"} == {"2024-03-01"}
