"""Indexing a folder of documents: `build_index`, `update_index` (in place) and `ensure_index`
(reuse, update or build the index of a folder).

An update re-embeds only the documents whose content hash changed and records what changed in the
index's history (raftkit/retrieval/history.py). The index itself, its folder layout and loading are
in raftkit/retrieval/index.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raftkit import __version__, config, outputs
from raftkit.errors import RaftkitError
from raftkit.provenance import now
from raftkit.retrieval import history
from raftkit.retrieval.chunking import Chunk, chunk_documents
from raftkit.retrieval.config import RaftkitConfig
from raftkit.retrieval.index import MANIFEST, FaissIndex, make_faiss, read_index
from raftkit.retrieval.loaders import Document, load_documents
from raftkit.ui import say


@dataclass
class UpdateStats:
    added: int
    changed: int
    deleted: int
    unchanged: int
    chunks_embedded: int
    chunks_total: int
    embed_seconds: float


def _manifest(
    name: str,
    cfg: RaftkitConfig,
    docs: list[Document],
    chunks: list[Chunk],
    dim: int,
    kind: str,
    source: str,
    created: str | None = None,
) -> dict:
    per_doc: dict[str, int] = {}
    for c in chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    r = cfg.retrieval
    return {
        "name": name,
        "raftkit_version": __version__,
        "created": created or now(),
        "updated": now(),
        "source": source,
        "embedder": {"model": r.embedding.model, "dimension": dim},
        "chunking": config.to_dict(r.chunking),
        "index": {**config.to_dict(r.index), "effective_kind": kind},
        "counts": {"documents": len(docs), "chunks": len(chunks)},
        "documents": {
            d.id: {"hash": d.hash, "title": d.title, "date": d.date, "chunks": per_doc.get(d.id, 0)}
            for d in docs
        },
    }


def _load_docs(docs_path: str | Path, cfg: RaftkitConfig) -> list[Document]:
    result = load_documents(docs_path, cfg.retrieval.limits)
    for path, reason in result.skipped:
        say(f"skipped {path}: {reason}")
    return result.documents


def build_index(
    docs_path: str | Path, name: str, cfg: RaftkitConfig, overwrite: bool = False
) -> FaissIndex:
    """Load, chunk and embed every document under `docs_path` into index `name` (under
    retrieval.indexes_dir).

    Raises RaftkitError if the index exists (without `overwrite`), if the folder there is not an
    index, if another process holds it, or if the documents are unusable. The old index stays until
    the new one is whole.
    """
    path = Path(cfg.retrieval.indexes_dir) / outputs.plain_name(name, "index name")
    with outputs.lock(path, f"index '{name}'"):
        if path.exists() and not overwrite:
            raise RaftkitError(
                f"index '{name}' already exists at {path}; use --overwrite to rebuild it "
                f"or `raftkit index update` to refresh it"
            )
        outputs.check_replaceable(path, "index", "index folder")
        return _build_locked(docs_path, path, cfg)


def _build_locked(docs_path: str | Path, path: Path, cfg: RaftkitConfig) -> FaissIndex:
    docs = _load_docs(docs_path, cfg)
    chunks = chunk_documents(docs, cfg.retrieval.chunking)
    say(
        f"embedding {len(chunks)} chunks of {len(docs)} documents with "
        f"{cfg.retrieval.embedding.model}"
    )
    built = FaissIndex(path, {}, cfg, chunks, np.zeros((0, 0), np.float32), None, history=[])
    built.vectors = built.embedder.encode([c.embedding_text for c in chunks], progress=True)
    built.index, kind = make_faiss(built.vectors, cfg.retrieval.index)
    built.manifest = _manifest(
        path.name, cfg, docs, chunks, built.embedder.dimension, kind, str(docs_path)
    )
    built.save()
    return built


def update_index(
    docs_path: str | Path,
    name: str,
    indexes_dir: str | Path = "indexes",
    overrides: list[str] | None = None,
) -> tuple[FaissIndex, UpdateStats]:
    """Bring index `name` in line with `docs_path`, re-embedding only added or changed documents.

    Documents are compared by content hash; deleted documents lose their chunks. The FAISS structure
    is rebuilt from the stored vectors, which costs far less than embedding. Holds the index's lock.
    """
    path = Path(indexes_dir) / outputs.plain_name(name, "index name")
    with outputs.lock(path, f"index '{name}'"):
        old = read_index(path, name, indexes_dir, overrides)
        return _updated(old, _load_docs(docs_path, old.cfg), str(docs_path))


def _updated(old: FaissIndex, docs: list[Document], source: str) -> tuple[FaissIndex, UpdateStats]:
    known = old.manifest["documents"]
    fresh = [d for d in docs if known.get(d.id, {}).get("hash") != d.hash]
    keep_ids = {d.id for d in docs} - {d.id for d in fresh}
    new_chunks = chunk_documents(fresh, old.cfg.retrieval.chunking) if fresh else []
    t0 = time.perf_counter()
    new_vectors = old.embedder.encode(
        [c.embedding_text for c in new_chunks], progress=bool(new_chunks)
    )
    embed_seconds = time.perf_counter() - t0
    # Chunks follow the documents' order in the folder, so an updated index matches a fresh build.
    by_doc: dict[str, list[tuple[Chunk, np.ndarray]]] = {}
    for c, v in zip(old.chunks, old.vectors):
        if c.doc_id in keep_ids:
            by_doc.setdefault(c.doc_id, []).append((c, v))
    for c, v in zip(new_chunks, new_vectors):
        by_doc.setdefault(c.doc_id, []).append((c, v))
    pairs = [p for d in docs for p in by_doc.get(d.id, [])]
    chunks, dim = [c for c, _ in pairs], old.vectors.shape[1]
    vectors = (
        np.stack([v for _, v in pairs]).astype(np.float32)
        if pairs
        else np.zeros((0, dim), np.float32)
    )
    index, kind = make_faiss(vectors, old.cfg.retrieval.index)
    manifest = _manifest(
        old.name, old.cfg, docs, chunks, dim, kind, source, old.manifest["created"]
    )
    record = history.entry(old.manifest, old.chunks, docs, source)
    past = history.updated(old.path, record, old.cfg.retrieval.history.keep)
    updated = FaissIndex(old.path, manifest, old.cfg, chunks, vectors, index, old.embedder, past)
    updated.save()
    stats = UpdateStats(
        added=sum(d.id not in known for d in fresh),
        changed=sum(d.id in known for d in fresh),
        deleted=len(set(known) - {d.id for d in docs}),
        unchanged=len(keep_ids),
        chunks_embedded=len(new_chunks),
        chunks_total=len(chunks),
        embed_seconds=embed_seconds,
    )
    return updated, stats


def ensure_index(
    docs: str | Path, name: str, cfg: RaftkitConfig, documents: list[Document] | None = None
) -> tuple[FaissIndex, str]:
    """The index `name` of folder `docs`: reused when it holds exactly its documents, updated when
    that folder changed, built when missing. Returns (index, 'reused' | 'updated' | 'built').

    An index of another folder, or with another embedder or chunking, is never touched:
    RaftkitError.
    """
    path = Path(cfg.retrieval.indexes_dir) / outputs.plain_name(name, "index name")
    with outputs.lock(path, f"index '{name}'"):
        if not (path / MANIFEST).is_file():
            say(f"building index '{name}' of {docs}")
            return _build_locked(docs, path, cfg), "built"
        index = read_index(path, name, cfg.retrieval.indexes_dir, None)
        r, ir = cfg.retrieval, index.cfg.retrieval
        if (r.embedding.model, config.to_dict(r.chunking)) != (
            ir.embedding.model,
            config.to_dict(ir.chunking),
        ):
            raise RaftkitError(
                f"index '{name}' at {index.path} was built with another embedder or chunking than "
                f"this config; set index_name to build a separate one"
            )
        documents = documents if documents is not None else _load_docs(docs, cfg)
        if {k: v["hash"] for k, v in index.manifest["documents"].items()} == {
            d.id: d.hash for d in documents
        }:
            return index, "reused"
        if Path(index.manifest.get("source", "")).resolve() != Path(docs).resolve():
            raise RaftkitError(
                f"index '{name}' at {index.path} holds other documents "
                f"({index.manifest.get('source')}); set index_name to build one for {docs}"
            )
        say(f"updating index '{name}': the documents changed")
        return _updated(index, documents, str(docs))[0], "updated"
