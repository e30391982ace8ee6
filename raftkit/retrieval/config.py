"""The config of the retrieval commands (`index`, `ask`): `RaftkitConfig` and its retrieval sections
(chunking, embedding, FAISS index, limits, history), built on the shared sections of
raftkit/config.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raftkit.config import (
    DEFAULT_EMBEDDER,
    DEFAULT_GENERATOR,
    EvidenceCheck,
    GenerationConfig,
    RuntimeConfig,
    Section,
)


class ChunkingConfig(Section):
    size: int = Field(
        256,
        ge=16,
        description="tokens per chunk, counted with `tokenizer`; RAFT prompts hold 5 chunks, so"
        " keep it small",
    )
    overlap: int = Field(
        32,
        ge=0,
        description="tokens shared by neighbouring chunks, so a fact cut in two survives whole;"
        " below size",
    )
    tokenizer: str = Field(
        DEFAULT_GENERATOR,
        description="the model whose tokenizer measures a chunk's size and overlap",
    )

    def check(self) -> list[str]:
        return (
            [f"overlap ({self.overlap}) must be smaller than size ({self.size})"]
            if self.overlap >= self.size
            else []
        )


class EmbeddingConfig(Section):
    model: str = Field(
        DEFAULT_EMBEDDER,
        description="the embedder of the chunks and questions: an alias, HF id or local folder;"
        " changing it needs a rebuilt index",
    )
    batch_size: int = Field(64, ge=1, description="chunks embedded per forward pass")


class IndexConfig(Section):
    kind: Literal["flat", "hnsw", "ivfpq"] = Field(
        "flat",
        description="the FAISS index: flat = exact search; hnsw or ivfpq = approximate, for 100k+"
        " chunks",
    )
    hnsw_m: int = Field(
        32, ge=1, description="hnsw: graph degree; higher = better recall, more memory"
    )
    hnsw_ef_search: int = Field(
        64, ge=1, description="hnsw: candidates examined per query; higher = better recall, slower"
    )
    ivf_nlist: int = Field(0, ge=0, description="ivfpq: IVF cells; 0 = about 4*sqrt(chunks)")
    ivf_nprobe: int = Field(16, ge=1, description="ivfpq: cells searched per query")
    pq_m: int = Field(
        16, ge=1, description="ivfpq: PQ sub-quantizers; must divide the embedding dimension"
    )


class LimitsConfig(Section):
    """Guards against inputs that would run for hours (a log file or a book dumped into the docs
    folder)."""

    # a stray log or a book would spend minutes in chunking and embedding (a 2 MB single-line text
    # made 1,786 chunks)
    max_document_mb: float = Field(
        1.0,
        gt=0,
        description="documents larger than this many MB are skipped, with a message naming this"
        " key",
    )


class HistoryConfig(Section):
    """What an index remembers of its updates (raftkit/retrieval/history.py)."""

    keep: int = Field(
        10,
        ge=0,
        description="updates whose changes the index keeps, with the old text of changed and "
        "deleted documents, for `raftkit index diff` and `raftkit probes`; 0 = none",
    )


class RetrievalConfig(EvidenceCheck):
    chunking: ChunkingConfig = Field(
        default_factory=ChunkingConfig, description="how documents are cut into chunks"
    )
    embedding: EmbeddingConfig = Field(
        default_factory=EmbeddingConfig, description="the model that embeds chunks and questions"
    )
    index: IndexConfig = Field(
        default_factory=IndexConfig, description="the FAISS index over the chunk embeddings"
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig, description="guards against documents too large to index"
    )
    history: HistoryConfig = Field(
        default_factory=HistoryConfig, description="what an index remembers of its updates"
    )
    indexes_dir: str = Field(
        "indexes", description="folder where named indexes live (one subfolder per index)"
    )
    top_k: int = Field(
        5, ge=1, description="chunks retrieved per question by `raftkit ask` (its -k wins)"
    )


class RaftkitConfig(Section):
    """The config of the retrieval commands (`index`, `ask`)."""

    retrieval: RetrievalConfig = Field(
        default_factory=RetrievalConfig,
        description="chunking, embedding, index and the evidence check of retrieval",
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="the model that answers, and how it runs"
    )
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="device and precision of every model"
    )
