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

Here: the folder's layout, `load_index`, and `FaissIndex` (search, save, and `without`: a copy
lacking some documents, whose evidence is then absent). Building and updating an index from a folder
of documents (`build_index`, `update_index`, `ensure_index`) live in raftkit/retrieval/indexing.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raftkit import config, files, outputs
from raftkit.errors import RaftkitError
from raftkit.retrieval import history
from raftkit.retrieval.chunking import Chunk
from raftkit.retrieval.config import IndexConfig, RaftkitConfig
from raftkit.retrieval.embedding import Embedder

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
    def runtime(self):
        """The device and dtype this index's models run at (its config's runtime section)."""
        from raftkit.models import runtime

        return runtime(self.cfg.runtime)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.cfg.retrieval.embedding, self.runtime)
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
        return read_index(path, name, indexes_dir, overrides)


def read_index(path: Path, name: str, indexes_dir, overrides) -> FaissIndex:
    """Open the index folder at `path` (`name` for messages) without taking its lock: the caller
    holds it, or reads under try_lock. Raises RaftkitError as load_index does."""
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
        cfg = config.load(RaftkitConfig, data=config.read_yaml(path / CONFIG), overrides=overrides)
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
