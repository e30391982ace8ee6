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

import functools

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
    device = query.device.type
    if torch.is_autocast_enabled(device):  # one cast of the row, not one per example
        low = torch.get_autocast_dtype(device)
        query, key, value = (t.to(low) for t in (query, key, value))
    bf16_cpu = device == "cpu" and query.dtype == torch.bfloat16 and not dropout
    # split, not slices: each slice's gradient is a zero-filled tensor of the whole row
    outs = []
    for q, k, v in zip(*(t.split(lengths, dim=2) for t in (query, key, value))):
        if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
        if bf16_cpu:
            outs.append(_bf16_attention().apply(q, k, v, scaling))
        else:
            outs.append(
                F.scaled_dot_product_attention(
                    q, k, v, dropout_p=dropout, is_causal=True, scale=scaling
                )
            )
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


@functools.cache
def _bf16_attention():
    """Causal attention of one example on CPU: the bf16 flash kernel forward, the float32 flash
    kernel backward (on the bf16 forward's output and log-sum-exp): on CPU the float32 backward is
    the faster of the two, and its gradients are the closer to float64's (benchmarks/RESULTS.md,
    Training)."""
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward

    class Bf16Attention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, scale):
            out, lse = flash(q, k, v, 0.0, True, scale=scale)[:2]
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.scale = scale
            return out

        @staticmethod
        def backward(ctx, grad_out):
            q, k, v, out, lse = ctx.saved_tensors
            wide = [t.float() for t in (grad_out, q, k, v, out)]
            grads = flash_backward(*wide, lse, 0.0, True, scale=ctx.scale)
            return (*(g.to(q.dtype) for g in grads), None)

    return Bf16Attention


def use(model) -> None:
    """Register the function with transformers (once) and switch `model` to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
