"""The FAISS index: right document first, incremental updates, index kinds, corruption handling."""

import json
import shutil

import numpy as np
import pytest

from raftkit import config
from raftkit.errors import RaftkitError
from raftkit.retrieval.config import IndexConfig, RaftkitConfig
from raftkit.retrieval.index import load_index, make_faiss
from raftkit.retrieval.indexing import build_index, update_index


def cfg_for(root, *overrides):
    return config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={root}", *overrides])


@pytest.mark.parametrize(
    "question, doc",
    [
        ("How tall is Mount Skarn?", "volcanoes.md"),
        ("What is the name of the sourdough starter?", "bakery.txt"),
        ("How often do trains leave for Orra?", "guides/trains.html"),
        ("How many books can I borrow with one card?", "lib-1"),
        ("Who founded the library?", "lib-2"),
    ],
)
def test_right_document_first(built_index, question, doc):
    assert built_index.search([question], 3)[0][0].chunk.doc_id == doc


def test_index_folder_and_manifest(built_index):
    from raftkit import outputs

    files = sorted(p.name for p in built_index.path.iterdir())
    assert files == [
        outputs.MARKER,
        "chunks.jsonl",
        "config.yaml",
        "index.faiss",
        "manifest.json",
        "vectors.npy",
    ]
    assert outputs.kind_of(built_index.path) == "index"
    m = json.loads((built_index.path / "manifest.json").read_text())
    assert m["embedder"] == {"model": "all-minilm-l6-v2", "dimension": 384}
    assert m["chunking"] == {"size": 256, "overlap": 32, "tokenizer": "smollm2-135m-instruct"}
    assert m["counts"]["documents"] == 5 and m["counts"]["chunks"] == len(built_index.chunks)
    assert set(m["documents"]) == {
        "bakery.txt",
        "guides/trains.html",
        "lib-1",
        "lib-2",
        "volcanoes.md",
    }
    assert all(len(d["hash"]) == 64 for d in m["documents"].values())
    assert m["created"] and m["index"]["effective_kind"] == "flat"
    np.testing.assert_allclose(np.linalg.norm(built_index.vectors, axis=1), 1.0, rtol=1e-5)


def test_update_reembeds_only_changes_and_returns_new_text(tmp_path, docs_copy):
    # float32: the equality with a fresh build below is exact there (bf16 batches differ in the 4th
    # decimal)
    cfg = cfg_for(tmp_path, "runtime.dtype=float32")
    build_index(docs_copy, "live", cfg)
    (docs_copy / "volcanoes.md").write_text(
        (docs_copy / "volcanoes.md")
        .read_text()
        .replace("rises 3,412 metres", "rises 3,498 metres after the 2021 survey")
    )
    (docs_copy / "bakery.txt").unlink()
    (docs_copy / "ferry.txt").write_text("The Orra ferry sails at dawn and carries 90 cars.")
    index, stats = update_index(docs_copy, "live", tmp_path)
    assert (stats.added, stats.changed, stats.deleted, stats.unchanged) == (1, 1, 1, 3)
    assert stats.chunks_embedded == 2
    top = load_index("live", tmp_path).search(["How tall is Mount Skarn?"], 1)[0][0].chunk
    assert "3,498" in top.text and "3,412" not in top.text
    assert all(c.doc_id != "bakery.txt" for c in index.chunks)
    # An updated index equals a fresh build of the same documents (same chunks, same vectors).
    fresh = build_index(docs_copy, "fresh", cfg)
    assert [c.id for c in index.chunks] == [c.id for c in fresh.chunks]
    np.testing.assert_allclose(index.vectors, fresh.vectors, atol=1e-5)
    # Nothing changed: nothing re-embedded.
    _, stats = update_index(docs_copy, "live", tmp_path)
    assert (stats.chunks_embedded, stats.unchanged) == (0, 5)


def test_existing_index_not_overwritten_and_failed_rebuild_keeps_it(tmp_path, docs_copy):
    cfg = cfg_for(tmp_path)
    build_index(docs_copy, "keep", cfg)
    before = (tmp_path / "keep" / "manifest.json").read_text()
    with pytest.raises(RaftkitError, match=r"^index 'keep' already exists at .*; use --overwrite"):
        build_index(docs_copy, "keep", cfg)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(RaftkitError, match="no documents"):
        build_index(tmp_path / "nothing", "keep", cfg, overwrite=True)
    assert (tmp_path / "keep" / "manifest.json").read_text() == before
    assert load_index("keep", tmp_path).search(["bakery"], 1)[0][0].chunk.doc_id == "bakery.txt"
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert left == [
        ".keep.lock"
    ]  # no temp folders left; the lock file stays (deleting it would race)


def test_missing_and_corrupt_indexes(tmp_path, built_index):
    with pytest.raises(RaftkitError, match=r"^index 'nope' not found at .*nope; build it with"):
        load_index("nope", tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(built_index.path, bad)
    (bad / "index.faiss").unlink()
    with pytest.raises(
        RaftkitError, match=r"^index 'bad' at .* is corrupt: index.faiss is missing; rebuild it"
    ):
        load_index("bad", tmp_path)
    shutil.copy(built_index.path / "index.faiss", bad / "index.faiss")
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(
        RaftkitError, match=r"^index 'bad' at .* is corrupt: JSONDecodeError while reading it"
    ):
        load_index("bad", tmp_path)
    shutil.copy(built_index.path / "manifest.json", bad / "manifest.json")
    (bad / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(RaftkitError, match=r"is corrupt: RuntimeError while reading it"):
        load_index("bad", tmp_path)
    shutil.copy(built_index.path / "index.faiss", bad / "index.faiss")
    (bad / "chunks.jsonl").write_text("")
    with pytest.raises(RaftkitError, match="chunk, vector and index counts disagree"):
        load_index("bad", tmp_path)


def test_other_embedder_or_chunking_is_refused(built_index, docs_dir):
    root = built_index.path.parent
    with pytest.raises(
        RaftkitError,
        match=r"^index 'assets' was built with embedder 'all-minilm-l6-v2', "
        r"not 'org/other-model'; rebuild it with --overwrite to switch$",
    ):
        load_index("assets", root, ["retrieval.embedding.model=org/other-model"])
    with pytest.raises(RaftkitError, match=r"^index 'assets' was built with chunking"):
        update_index(docs_dir, "assets", root, ["retrieval.chunking.size=64"])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_index_kinds_find_exact_neighbours(kind):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, built = make_faiss(vectors, IndexConfig(kind=kind, pq_m=16, ivf_nprobe=64))
    assert built == kind
    _, ids = index.search(vectors[:50], 1)
    hit_rate = float(np.mean(ids[:, 0] == np.arange(50)))
    assert hit_rate >= (1.0 if kind != "ivfpq" else 0.6)


def test_ivfpq_on_a_tiny_corpus_falls_back_to_exact():
    vectors = np.eye(8, 32, dtype=np.float32)
    _, built = make_faiss(vectors, IndexConfig(kind="ivfpq"))
    assert built == "flat"


def test_hnsw_index_persists_and_searches(tmp_path, docs_dir):
    index = build_index(docs_dir, "h", cfg_for(tmp_path, "retrieval.index.kind=hnsw"))
    assert index.manifest["index"]["effective_kind"] == "hnsw"
    again = load_index("h", tmp_path)
    assert again.search(["Who founded the library?"], 1)[0][0].chunk.doc_id == "lib-2"


def test_bf16_embedder_keeps_the_attention_scores_in_float32():
    """A bf16 embedder holds bf16 weights everywhere but the attention's query/key/value
    projections, and its vectors stay unit-length and close to float32's."""
    import torch

    from raftkit.models import Runtime
    from raftkit.retrieval.config import EmbeddingConfig
    from raftkit.retrieval.embedding import ATTENTION_INPUTS, Embedder

    texts = ["Mount Skarn is 2,340 metres tall.", "The library lends five books per card."]
    full = Embedder(EmbeddingConfig(), Runtime("cpu", "float32"))
    low = Embedder(EmbeddingConfig(), Runtime("cpu", "bfloat16"))
    dtypes = {name: p.dtype for name, p in low.model.named_parameters() if name.endswith(".weight")}
    linear = {n for n in dtypes if any(f".{k}." in n for k in ("query", "key", "value", "dense"))}
    scores = {n for n in linear if n.split(".")[-2] in ATTENTION_INPUTS}
    assert scores and linear - scores  # MiniLM has both kinds
    assert {dtypes[n] for n in scores} == {torch.float32}
    assert {dtypes[n] for n in linear - scores} == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in full.model.parameters())

    a, b = full.encode(texts), low.encode(texts)
    assert b.dtype == np.float32
    assert np.linalg.norm(b, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert (a * b).sum(axis=1) == pytest.approx([1.0, 1.0], abs=0.01)
    assert not np.array_equal(a, b)  # the bf16 products did run
