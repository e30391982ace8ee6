"""A FAISS index of chunk embeddings, persisted under indexes/NAME/ and updated in place.

Folder layout (written whole through a staged folder, so a failed run leaves the old index intact):
  manifest.json   embedder, dimension, chunker and index settings, per-document hashes, counts, times
  config.yaml     the resolved config the index was built with
  chunks.jsonl    one chunk per line, in vector order
  vectors.npy     the normalised embeddings, so an update re-embeds only changed documents
  index.faiss     the search structure (Flat, HNSW or IVF-PQ), rebuilt from vectors.npy on update
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from raftkit import __version__, atomic, config
from raftkit.config import IndexConfig, RaftkitConfig
from raftkit.errors import RaftkitError
from raftkit.retrieval.chunking import Chunk, chunk_documents
from raftkit.retrieval.embedding import Embedder
from raftkit.retrieval.loaders import Document, load_documents
from raftkit.ui import say

MANIFEST, CONFIG, CHUNKS, VECTORS, FAISS = "manifest.json", "config.yaml", "chunks.jsonl", "vectors.npy", "index.faiss"
_NAME = re.compile(r"^[\w.-]+$")


@dataclass
class Hit:
    rank: int
    score: float
    chunk: Chunk


@dataclass
class UpdateStats:
    added: int
    changed: int
    deleted: int
    unchanged: int
    chunks_embedded: int
    chunks_total: int
    embed_seconds: float


def index_path(name: str, indexes_dir: str | Path = "indexes") -> Path:
    """The folder of index `name`: a path to an index folder, or a name under `indexes_dir`."""
    path = Path(name)
    if (path / MANIFEST).is_file() or "/" in name:
        return path
    if not _NAME.match(name):
        raise RaftkitError(f"index name '{name}' may hold only letters, digits, '.', '_' and '-'")
    return Path(indexes_dir) / name


def available(indexes_dir: str | Path = "indexes") -> list[str]:
    """Names of the indexes under `indexes_dir`."""
    root = Path(indexes_dir)
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []


def make_faiss(vectors: np.ndarray, cfg: IndexConfig):
    """A FAISS inner-product index over `vectors`; returns (index, the kind actually built).

    IVF-PQ needs enough vectors to train its quantizers (256 codes per sub-quantizer); on fewer than
    1,000 it falls back to exact search, which is both faster and exact at that size.
    """
    import faiss

    n, d = vectors.shape
    kind = cfg.kind
    if kind == "ivfpq" and n < 1000:
        kind = "flat"
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(40, cfg.hnsw_m * 2)
        index.hnsw.efSearch = cfg.hnsw_ef_search
    elif kind == "ivfpq":
        if d % cfg.pq_m:
            raise RaftkitError(f"retrieval.index.pq_m ({cfg.pq_m}) must divide the embedding dimension ({d})")
        nlist = cfg.ivf_nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFPQ(quantizer, d, nlist, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(cfg.ivf_nprobe, nlist)
    else:
        index = faiss.IndexFlatIP(d)
    index.add(vectors)
    return index, kind


class FaissIndex:
    """A loaded index: chunks, their vectors and the FAISS structure, searchable by text."""

    def __init__(self, path: Path, manifest: dict, cfg: RaftkitConfig, chunks: list[Chunk],
                 vectors: np.ndarray, index, embedder: Embedder | None = None):
        self.path, self.manifest, self.cfg = path, manifest, cfg
        self.chunks, self.vectors, self.index = chunks, vectors, index
        self._embedder = embedder

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.cfg.retrieval.embedding)
        return self._embedder

    def search(self, queries: list[str], k: int = 5) -> list[list[Hit]]:
        """The top-k chunks for each query, best first, with inner-product (cosine) scores."""
        return self.search_vectors(self.embedder.encode(queries), k)

    def search_vectors(self, q: np.ndarray, k: int = 5) -> list[list[Hit]]:
        if not len(q):
            return []
        scores, ids = self.index.search(np.ascontiguousarray(q, dtype=np.float32), min(k, len(self.chunks)))
        return [[Hit(r + 1, float(s), self.chunks[i]) for r, (s, i) in enumerate(zip(row_s, row_i)) if i >= 0]
                for row_s, row_i in zip(scores, ids)]

    def save(self, path: Path | None = None) -> Path:
        """Write the whole index folder atomically (staged folder, then rename)."""
        import faiss

        path = path or self.path
        with atomic.staged_dir(path) as tmp:
            faiss.write_index(self.index, str(tmp / FAISS))
            np.save(tmp / VECTORS, self.vectors)
            atomic.write_jsonl(tmp / CHUNKS, [c.to_dict() for c in self.chunks])
            config.save_resolved(self.cfg, tmp, CONFIG)
            atomic.write_json(tmp / MANIFEST, self.manifest)
        self.path = path
        return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _manifest(name: str, cfg: RaftkitConfig, docs: list[Document], chunks: list[Chunk], dim: int,
              kind: str, source: str, created: str | None = None) -> dict:
    per_doc: dict[str, int] = {}
    for c in chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    r = cfg.retrieval
    return {
        "name": name,
        "raftkit_version": __version__,
        "created": created or _now(),
        "updated": _now(),
        "source": source,
        "embedder": {"model": r.embedding.model, "dimension": dim},
        "chunking": config.to_dict(r.chunking),
        "index": {**config.to_dict(r.index), "effective_kind": kind},
        "counts": {"documents": len(docs), "chunks": len(chunks)},
        "documents": {d.id: {"hash": d.hash, "title": d.title, "date": d.date, "chunks": per_doc.get(d.id, 0)}
                      for d in docs},
    }


def _load_docs(docs_path: str | Path) -> list[Document]:
    result = load_documents(docs_path)
    for path, reason in result.skipped:
        say(f"skipped {path}: {reason}")
    return result.documents


def build_index(docs_path: str | Path, name: str, cfg: RaftkitConfig, overwrite: bool = False) -> FaissIndex:
    """Load, chunk and embed every document under `docs_path` into index `name`.

    Raises RaftkitError if the index exists (without `overwrite`) or the documents are unusable.
    """
    path = index_path(name, cfg.retrieval.indexes_dir)
    if path.exists() and not overwrite:
        raise RaftkitError(f"index '{name}' already exists at {path}; use --overwrite to rebuild it "
                           f"or `raftkit index update` to refresh it")
    docs = _load_docs(docs_path)
    chunks = chunk_documents(docs, cfg.retrieval.chunking)
    say(f"embedding {len(chunks)} chunks of {len(docs)} documents with {cfg.retrieval.embedding.model}")
    embedder = Embedder(cfg.retrieval.embedding)
    vectors = embedder.encode([c.embedding_text for c in chunks], progress=True)
    index, kind = make_faiss(vectors, cfg.retrieval.index)
    manifest = _manifest(path.name, cfg, docs, chunks, embedder.dimension, kind, str(docs_path))
    built = FaissIndex(path, manifest, cfg, chunks, vectors, index, embedder)
    built.save()
    return built


def load_index(name: str, indexes_dir: str | Path = "indexes", overrides: list[str] | None = None) -> FaissIndex:
    """Open index `name`; its own config is the default, `overrides` may change search settings only.

    Raises RaftkitError when it is missing or corrupt, or when an override asks for another embedder
    or chunker than the index was built with.
    """
    import faiss

    path = index_path(name, indexes_dir)
    if not path.is_dir():
        names = available(indexes_dir)
        hint = f" (available: {', '.join(names)})" if names else "; build it with `raftkit index build DOCS --name NAME`"
        raise RaftkitError(f"index '{name}' not found at {path}{hint}")
    corrupt = f"index '{name}' at {path} is corrupt"
    fix = "rebuild it with `raftkit index build DOCS --name NAME --overwrite`"
    for fname in (MANIFEST, CONFIG, CHUNKS, VECTORS, FAISS):
        if not (path / fname).is_file():
            raise RaftkitError(f"{corrupt}: {fname} is missing; {fix}")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        cfg = config.load(RaftkitConfig, data=config.read_yaml(path / CONFIG), overrides=overrides)
        _check_same_settings(manifest, cfg, name)
        chunks = [Chunk(**row) for row in atomic.read_jsonl(path / CHUNKS)]
        vectors = np.load(path / VECTORS)
        index = faiss.read_index(str(path / FAISS))
    except RaftkitError:
        raise
    except Exception as e:
        raise RaftkitError(f"{corrupt}: {type(e).__name__} while reading it; {fix}") from None
    if not (len(chunks) == len(vectors) == index.ntotal == manifest.get("counts", {}).get("chunks")):
        raise RaftkitError(f"{corrupt}: chunk, vector and index counts disagree; {fix}")
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = cfg.retrieval.index.hnsw_ef_search
    elif hasattr(index, "nprobe"):
        index.nprobe = min(cfg.retrieval.index.ivf_nprobe, index.nlist)
    return FaissIndex(path, manifest, cfg, chunks, vectors, index)


def _check_same_settings(manifest: dict, cfg: RaftkitConfig, name: str) -> None:
    built_with = manifest["embedder"]["model"]
    if cfg.retrieval.embedding.model != built_with:
        raise RaftkitError(f"index '{name}' was built with embedder '{built_with}', not "
                           f"'{cfg.retrieval.embedding.model}'; rebuild it with --overwrite to switch")
    if manifest["chunking"] != config.to_dict(cfg.retrieval.chunking):
        raise RaftkitError(f"index '{name}' was built with chunking {manifest['chunking']}; "
                           f"rebuild it with --overwrite to change chunking")


def update_index(docs_path: str | Path, name: str, indexes_dir: str | Path = "indexes",
                 overrides: list[str] | None = None) -> tuple[FaissIndex, UpdateStats]:
    """Bring index `name` in line with `docs_path`, re-embedding only added or changed documents.

    Documents are compared by content hash; deleted documents lose their chunks. The FAISS structure
    is rebuilt from the stored vectors, which costs far less than embedding.
    """
    old = load_index(name, indexes_dir, overrides)
    docs = _load_docs(docs_path)
    known = old.manifest["documents"]
    fresh = [d for d in docs if known.get(d.id, {}).get("hash") != d.hash]
    keep_ids = {d.id for d in docs} - {d.id for d in fresh}
    new_chunks = chunk_documents(fresh, old.cfg.retrieval.chunking) if fresh else []
    t0 = time.perf_counter()
    new_vectors = old.embedder.encode([c.embedding_text for c in new_chunks], progress=bool(new_chunks))
    embed_seconds = time.perf_counter() - t0
    kept = [i for i, c in enumerate(old.chunks) if c.doc_id in keep_ids]
    # Chunks follow the documents' order in the folder, so an updated index matches a fresh build.
    by_doc: dict[str, list[tuple[Chunk, np.ndarray]]] = {}
    for i in kept:
        by_doc.setdefault(old.chunks[i].doc_id, []).append((old.chunks[i], old.vectors[i]))
    for c, v in zip(new_chunks, new_vectors):
        by_doc.setdefault(c.doc_id, []).append((c, v))
    pairs = [p for d in docs for p in by_doc.get(d.id, [])]
    chunks = [c for c, _ in pairs]
    dim = old.vectors.shape[1]
    vectors = np.stack([v for _, v in pairs]).astype(np.float32) if pairs else np.zeros((0, dim), np.float32)
    index, kind = make_faiss(vectors, old.cfg.retrieval.index)
    manifest = _manifest(old.name, old.cfg, docs, chunks, dim, kind, str(docs_path), old.manifest["created"])
    updated = FaissIndex(old.path, manifest, old.cfg, chunks, vectors, index, old._embedder)
    updated.save()
    stats = UpdateStats(
        added=sum(d.id not in known for d in fresh), changed=sum(d.id in known for d in fresh),
        deleted=len(set(known) - {d.id for d in docs}), unchanged=len(keep_ids),
        chunks_embedded=len(new_chunks), chunks_total=len(chunks), embed_seconds=embed_seconds)
    return updated, stats
