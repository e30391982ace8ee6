"""Sentence-transformers embeddings, batched and L2-normalised (inner product = cosine)."""

from __future__ import annotations

import numpy as np

from raftkit.config import EmbeddingConfig
from raftkit.models import device, resolve_embedder


class Embedder:
    """Embeds texts with a sentence-transformers model; rows are unit-length float32."""

    def __init__(self, cfg: EmbeddingConfig):
        from sentence_transformers import SentenceTransformer

        from raftkit.models import quiet_transformers

        quiet_transformers()
        self.cfg = cfg
        self.model = SentenceTransformer(resolve_embedder(cfg.model), device=device(cfg.device))

    @property
    def dimension(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """An (len(texts), dimension) float32 array of normalised embeddings."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.cfg.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vectors, dtype=np.float32)
