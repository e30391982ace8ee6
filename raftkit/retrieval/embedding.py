"""Sentence-transformers embeddings, batched and L2-normalised (inner product = cosine).

With a bf16 runtime every linear layer outside the attention holds its weight in bfloat16
(`lower_precision`): the feed-forward and attention-output products, most of the work, run on the
CPU's bf16 units, while the attention itself (its query/key/value projections, scores, softmax)
stays float32, as do the layer norms and the residual stream the bf16 outputs are added to. Rankings
move most where attention scores are rounded: `benchmarks/retrieval.py` measures the speed and the
top-5 agreement with float32 of this split, of plain autocast and of bf16 weights throughout.
"""

from __future__ import annotations

import numpy as np

from raftkit.models import Runtime, quiet_transformers, resolve_embedder
from raftkit.retrieval.config import EmbeddingConfig

# Linear layers that feed the attention (names in BERT, MPNet, RoBERTa, Llama-style and fused-QKV
# encoders): kept float32, since bf16 rounding in the scores reorders near-tied neighbours.
ATTENTION_INPUTS = (
    *("query", "key", "value", "q", "k", "v", "q_proj", "k_proj", "v_proj"),
    *("qkv", "Wqkv", "query_key_value"),
)


class Embedder:
    """Embeds texts with a sentence-transformers model; rows are unit-length float32."""

    def __init__(self, cfg: EmbeddingConfig, rt: Runtime):
        from sentence_transformers import SentenceTransformer

        quiet_transformers()
        self.cfg, self.runtime = cfg, rt
        load = lambda: SentenceTransformer(resolve_embedder(cfg.model), device=rt.device)  # noqa: E731
        self.model, self.low = load(), False
        # only the transformer is lowered: pooling and any dense head after it keep float32
        transformer = getattr(self.model[0], "auto_model", None)
        if rt.dtype != "float32" and transformer is not None:
            lower_precision(transformer, rt.torch_dtype)
            try:  # a model whose layers do not take the mix of dtypes embeds in float32
                self.model.encode(["probe"])
                self.low = True
            except (RuntimeError, TypeError):
                self.model = load()

    @property
    def dimension(self) -> int:
        get = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get())

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """An (len(texts), dimension) float32 array of normalised embeddings."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.cfg.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.low:  # bf16 products leave norms ~1e-3 off: renormalise, inner products = cosines
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        return vectors


def lower_precision(model, dtype) -> None:
    """Cast every nn.Linear of `model` outside ATTENTION_INPUTS to `dtype`, in place; each casts
    its input down itself, and its low output added to a float32 hidden state is float32 again."""
    import torch

    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is torch.nn.Linear and name not in ATTENTION_INPUTS:
                child.to(dtype).register_forward_pre_hook(_input_to_weight_dtype)


def _input_to_weight_dtype(module, args):
    return (args[0].to(module.weight.dtype), *args[1:])
