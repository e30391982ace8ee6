"""Split documents into token-measured chunks that remember where they came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from raftkit.retrieval.config import ChunkingConfig
from raftkit.retrieval.loaders import Document
from raftkit.ui import progress


@dataclass
class Chunk:
    id: str  # "<doc_id>#<n>"
    doc_id: str
    title: str
    text: str
    start: int  # character offsets into the document text
    end: int
    date: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def embedding_text(self) -> str:
        # The title carries context the chunk text often lacks ("Limits" for a bare table of
        # numbers).
        return f"{self.title}\n{self.text}" if self.title else self.text


def make_splitter(cfg: ChunkingConfig, tokenizer=None):
    """A RecursiveCharacterTextSplitter measuring length in tokens of `cfg.tokenizer`."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if tokenizer is None:
        from raftkit.models import load_tokenizer

        tokenizer = load_tokenizer(cfg.tokenizer)
    return RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer, chunk_size=cfg.size, chunk_overlap=cfg.overlap, add_start_index=True
    )


def chunk_documents(docs: list[Document], cfg: ChunkingConfig, splitter=None) -> list[Chunk]:
    """Chunks of every document, in document order, with ids, titles, dates and offsets."""
    splitter = splitter or make_splitter(cfg)
    chunks = []
    for doc in progress(docs, total=len(docs), desc="chunking", unit="doc"):
        pieces = splitter.create_documents([doc.text])
        for n, piece in enumerate(pieces):
            start = piece.metadata.get("start_index", -1)
            if (
                start < 0
            ):  # langchain could not locate the piece (whitespace stripped); search ourselves
                start = doc.text.find(piece.page_content)
            chunks.append(
                Chunk(
                    id=f"{doc.id}#{n}",
                    doc_id=doc.id,
                    title=doc.title,
                    text=piece.page_content,
                    start=start,
                    end=start + len(piece.page_content) if start >= 0 else -1,
                    date=doc.date,
                )
            )
    return chunks
