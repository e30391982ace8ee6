"""Attention over a packed training row, one example at a time.

A padding-free packed row holds several whole examples. transformers' sdpa path keeps attention
inside each of them with a block-diagonal mask, which makes the CPU kernel score every pair of the
row's tokens: at 2048 tokens that was over half of an SFT-LoRA step of the 135M model. Here each
example gets its own causal attention call (the kernel then skips the masked half and the other
examples), given the examples' bounds as flash-attention's varlen kwargs (`cu_seq_lens_q`, which
TRL's padding-free collator puts in every packed batch). Calls
without them (padded batches, generation with a cache) and sliding-window or non-causal attention
are transformers' sdpa.
"""

from __future__ import annotations

NAME = "raftkit_packed_sdpa"


def packed_sdpa(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q=None,
    **kwargs,
):
    """An AttentionInterface function: (attention output [batch, length, heads, dim], None)."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    whole_rows = (
        cu_seq_lens_q is None
        or query.shape[0] != 1
        or key.shape[2] != query.shape[2]
        or getattr(module, "sliding_window", None)
        or kwargs.get("sliding_window")  # Mistral, Phi-3 ... pass it per call
        or kwargs.get("softcap") is not None
        or kwargs.get("position_bias") is not None
        or not getattr(module, "is_causal", True)
        or kwargs.get("is_causal") is False
    )
    if whole_rows:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = query.shape[1] // key.shape[1]
    bounds = cu_seq_lens_q.tolist()
    lengths = [end - start for start, end in zip(bounds, bounds[1:])]
    # split, not slices: each slice's gradient is a zero-filled tensor of the whole row
    outs = []
    for q, k, v in zip(*(t.split(lengths, dim=2) for t in (query, key, value))):
        if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
        outs.append(
            F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout, is_causal=True, scale=scaling
            )
        )
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def use(model) -> None:
    """Register the function with transformers (once) and switch `model` to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
