"""A FAISS index of chunk embeddings, persisted under indexes/NAME/ and updated in place.

Folder layout (written whole through a staged folder and a crash-safe swap, see raftkit/outputs.py):
  manifest.json   embedder, dimension, chunker and index settings, per-document hashes, counts,
                  times
  config.yaml     the resolved config the index was built with
  chunks.jsonl    one chunk per line, in vector order
  vectors.npy     the normalised embeddings, so an update re-embeds only changed documents
  index.faiss     the search structure (Flat, HNSW or IVF-PQ), rebuilt from vectors.npy on update
  history.jsonl   what each update changed, with the old text of changed and deleted documents
                  (the last retrieval.history.keep updates; see raftkit/retrieval/history.py)

The whole lifecycle lives here: build, update, load, `ensure_index` (reuse, update or build the
index of a folder) and `FaissIndex.without` (a copy lacking some documents: their evidence is
absent).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raftkit import __version__, config, files, outputs
from raftkit.config import IndexConfig, RaftkitConfig
from raftkit.errors import RaftkitError
from raftkit.provenance import now
from raftkit.retrieval import history
from raftkit.retrieval.chunking import Chunk, chunk_documents
from raftkit.retrieval.embedding import Embedder
from raftkit.retrieval.loaders import Document, load_documents
from raftkit.ui import say

MANIFEST, CONFIG, CHUNKS, VECTORS, FAISS = (
    "manifest.json",
    "config.yaml",
    "chunks.jsonl",
    "vectors.npy",
    "index.faiss",
)


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
    """Where index `name` lives: a plain name under `indexes_dir`, or (to read) the path of an index
    folder."""
    path = Path(name)
    if (path / MANIFEST).is_file() and ("/" in name or not Path(indexes_dir, name).exists()):
        return path
    return Path(indexes_dir) / outputs.plain_name(name, "index name")


def available(indexes_dir: str | Path = "indexes") -> list[str]:
    """Names of the indexes under `indexes_dir`."""
    root = Path(indexes_dir)
    return (
        sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []
    )


def make_faiss(vectors: np.ndarray, cfg: IndexConfig):
    """A FAISS inner-product index over `vectors`; returns (index, the kind actually built).

    IVF-PQ needs enough vectors to train its quantizers (256 codes per sub-quantizer); on fewer than
    1,000 it falls back to exact search, which is both faster and exact at that size.
    """
    import faiss

    n, d = vectors.shape
    kind = "flat" if cfg.kind == "ivfpq" and n < 1000 else cfg.kind
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(40, cfg.hnsw_m * 2)
        index.hnsw.efSearch = cfg.hnsw_ef_search
    elif kind == "ivfpq":
        if d % cfg.pq_m:
            raise RaftkitError(
                f"retrieval.index.pq_m ({cfg.pq_m}) must divide the embedding dimension ({d})"
            )
        nlist = cfg.ivf_nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(d), d, nlist, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT
        )
        index.train(vectors)
        index.nprobe = min(cfg.ivf_nprobe, nlist)
    else:
        index = faiss.IndexFlatIP(d)
    index.add(vectors)
    return index, kind


class FaissIndex:
    """A loaded index: chunks, their vectors and the FAISS structure, searchable by text."""

    def __init__(
        self,
        path: Path,
        manifest: dict,
        cfg: RaftkitConfig,
        chunks: list[Chunk],
        vectors: np.ndarray,
        index,
        embedder: Embedder | None = None,
        history: list[dict] | None = None,
    ):
        self.path, self.manifest, self.cfg = path, manifest, cfg
        self.chunks, self.vectors, self.index = chunks, vectors, index
        self._embedder = embedder
        self.history = history  # None: keep what the folder holds when saving

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from raftkit.models import runtime

            self._embedder = Embedder(self.cfg.retrieval.embedding, runtime(self.cfg.runtime))
        return self._embedder

    def search(self, queries: list[str], k: int = 5) -> list[list[Hit]]:
        """The top-k chunks for each query, best first, with inner-product (cosine) scores."""
        if k < 1:
            raise RaftkitError(f"-k (chunks to return) must be at least 1, got {k}")
        return self.search_vectors(self.embedder.encode(queries), k)

    def search_vectors(self, q: np.ndarray, k: int = 5) -> list[list[Hit]]:
        if not len(q):
            return []
        scores, ids = self.index.search(
            np.ascontiguousarray(q, dtype=np.float32), min(k, len(self.chunks))
        )
        return [
            [
                Hit(r + 1, float(s), self.chunks[i])
                for r, (s, i) in enumerate(zip(row_s, row_i))
                if i >= 0
            ]
            for row_s, row_i in zip(scores, ids)
        ]

    def without(self, doc_ids: set[str]) -> FaissIndex:
        """An in-memory copy lacking the chunks of `doc_ids` (their evidence is absent); never
        saved."""
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id not in doc_ids]
        if not keep:
            raise RaftkitError(
                f"index '{self.name}': holding out {len(doc_ids)} documents leaves nothing to "
                "search"
            )
        vectors = np.ascontiguousarray(self.vectors[keep])
        index, _ = make_faiss(vectors, self.cfg.retrieval.index)
        return FaissIndex(
            self.path,
            self.manifest,
            self.cfg,
            [self.chunks[i] for i in keep],
            vectors,
            index,
            self.embedder,
        )

    def save(self) -> Path:
        """Write the whole index folder through a staged folder and a crash-safe swap (hold its
        lock)."""
        import faiss

        past = history.read(self.path) if self.history is None else self.history
        with outputs.staged(self.path, "index") as tmp:
            if past:
                files.write_jsonl(tmp / history.HISTORY, past)
            faiss.write_index(self.index, str(tmp / FAISS))
            np.save(tmp / VECTORS, self.vectors)
            files.write_jsonl(tmp / CHUNKS, [c.to_dict() for c in self.chunks])
            config.save_resolved(self.cfg, tmp, CONFIG)
            files.write_json(tmp / MANIFEST, self.manifest)
        return self.path


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


def _legacy(data: dict) -> dict:
    """An index config written before `runtime` existed: its per-section devices are dropped."""
    data = json.loads(json.dumps(data))
    data.get("retrieval", {}).get("embedding", {}).pop("device", None)
    data.get("generation", {}).pop("device", None)
    return data


def load_index(
    name: str, indexes_dir: str | Path = "indexes", overrides: list[str] | None = None
) -> FaissIndex:
    """Open index `name`; its own config is the default, `overrides` may change search and runtime
    settings.

    Raises RaftkitError when it is missing or corrupt, or when an override asks for another embedder
    or chunker than the index was built with. A swap a crash interrupted is finished first.
    """
    path = index_path(name, indexes_dir)
    with outputs.try_lock(path):
        return _read_index(path, name, indexes_dir, overrides)


def _read_index(path: Path, name: str, indexes_dir, overrides) -> FaissIndex:
    import faiss

    if not path.is_dir():
        names = available(indexes_dir)
        hint = (
            f" (available: {', '.join(names)})"
            if names
            else "; build it with `raftkit index build DOCS --name NAME`"
        )
        raise RaftkitError(f"index '{name}' not found at {path}{hint}")
    corrupt, fix = (
        f"index '{name}' at {path} is corrupt",
        "rebuild it with `raftkit index build DOCS --name NAME --overwrite`",
    )
    for fname in (MANIFEST, CONFIG, CHUNKS, VECTORS, FAISS):
        if not (path / fname).is_file():
            raise RaftkitError(f"{corrupt}: {fname} is missing; {fix}")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        cfg = config.load(
            RaftkitConfig, data=_legacy(config.read_yaml(path / CONFIG)), overrides=overrides
        )
        _check_same_settings(manifest, cfg, name)
        chunks = [Chunk(**row) for row in files.read_jsonl(path / CHUNKS)]
        vectors = np.load(path / VECTORS)
        index = faiss.read_index(str(path / FAISS))
    except RaftkitError:
        raise
    except Exception as e:
        raise RaftkitError(f"{corrupt}: {type(e).__name__} while reading it; {fix}") from None
    if not (
        len(chunks) == len(vectors) == index.ntotal == manifest.get("counts", {}).get("chunks")
    ):
        raise RaftkitError(f"{corrupt}: chunk, vector and index counts disagree; {fix}")
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = cfg.retrieval.index.hnsw_ef_search
    elif hasattr(index, "nprobe"):
        index.nprobe = min(cfg.retrieval.index.ivf_nprobe, index.nlist)
    return FaissIndex(path, manifest, cfg, chunks, vectors, index)


def _check_same_settings(manifest: dict, cfg: RaftkitConfig, name: str) -> None:
    built_with = manifest["embedder"]["model"]
    if cfg.retrieval.embedding.model != built_with:
        raise RaftkitError(
            f"index '{name}' was built with embedder '{built_with}', not "
            f"'{cfg.retrieval.embedding.model}'; rebuild it with --overwrite to switch"
        )
    if manifest["chunking"] != config.to_dict(cfg.retrieval.chunking):
        raise RaftkitError(
            f"index '{name}' was built with chunking {manifest['chunking']}; "
            f"rebuild it with --overwrite to change chunking"
        )


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
        old = _read_index(path, name, indexes_dir, overrides)
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
        index = _read_index(path, name, cfg.retrieval.indexes_dir, None)
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
