"""Attention over packed training rows one example at a time
(raftkit/train/cpu/packed_attention.py)."""

from __future__ import annotations


def _model(path, packed: bool):
    import torch
    from transformers import AutoModelForCausalLM

    from raftkit.train.cpu import packed_attention

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    if packed:
        packed_attention.use(model)
    return model


def test_packed_row_equals_each_example_alone(tiny_llama, tokenizer):
    """Logits and gradients of a packed row with its examples' bounds are those of each example
    run on its own."""
    import torch

    texts = ["Mount Skarn is tall.", "The port is 7421 and the host is local.", "Yes."]
    rows = [tokenizer(t, return_tensors="pt")["input_ids"] for t in texts]
    model = _model(tiny_llama, packed=True)
    alone = [model(input_ids=r).logits for r in rows]
    sum(a.sum() for a in alone).backward()
    grad_alone = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    model.zero_grad()

    ids = torch.cat(rows, dim=1)
    pos = torch.cat([torch.arange(r.shape[1]) for r in rows])[None]
    ends = torch.tensor([r.shape[1] for r in rows]).cumsum(0)
    bounds = torch.cat([torch.zeros(1, dtype=ends.dtype), ends]).to(torch.int32)
    packed = model(input_ids=ids, position_ids=pos, cu_seq_lens_q=bounds).logits
    packed.sum().backward()
    assert torch.allclose(packed, torch.cat(alone, dim=1), atol=1e-5)
    assert torch.allclose(model.model.layers[0].self_attn.q_proj.weight.grad, grad_alone, atol=1e-5)


def test_without_bounds_it_is_sdpa(tiny_llama, tokenizer):
    """A padded batch (no bounds given) takes transformers' sdpa path with its mask."""
    import torch

    tokenizer.padding_side = "left"
    batch = tokenizer(["Mount Skarn is tall.", "Yes."], return_tensors="pt", padding=True)
    with torch.no_grad():
        ours = _model(tiny_llama, packed=True)(**batch).logits
        sdpa = _model(tiny_llama, packed=False)(**batch).logits
    mask = batch["attention_mask"].bool()
    assert torch.equal(ours[mask], sdpa[mask])


def test_the_function_keeps_examples_apart_by_their_bounds_alone():
    """Without any mask, the bounds alone keep each example's attention causal and inside itself;
    without bounds it is causal attention over the whole row."""
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F

    from raftkit.train.cpu.packed_attention import packed_sdpa

    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 9, 8), torch.randn(1, 2, 9, 8), torch.randn(1, 2, 9, 8)
    bounds = torch.tensor([0, 3, 4, 9], dtype=torch.int32)
    module = SimpleNamespace(is_causal=True, num_key_value_groups=2)
    out, _ = packed_sdpa(module, q, k, v, None, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds)
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    each = [
        F.scaled_dot_product_attention(q[:, :, a:b], kk[:, :, a:b], vv[:, :, a:b], is_causal=True)
        for a, b in ((0, 3), (3, 4), (4, 9))
    ]
    assert torch.allclose(out, torch.cat(each, dim=2).transpose(1, 2), atol=1e-6)
    whole, _ = packed_sdpa(module, q, k, v, None)
    assert not torch.allclose(whole, out, atol=1e-3)


def test_bf16_rows_take_the_float32_backward_and_keep_the_gradients_of_each_example():
    """Under bf16 autocast on CPU each example runs the bf16 flash kernel forward and the float32
    kernel's backward: outputs as bf16 attention gives them, gradients as close to a float64
    reference as bf16 attention's own or closer (here float32 backward: q 3.8e-3, k 4.5e-3, v
    3.3e-3 relative error; bf16: 4.2e-3, 4.6e-3, 3.7e-3)."""
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F

    from raftkit.train.cpu.packed_attention import packed_sdpa

    torch.manual_seed(0)
    bounds = torch.tensor([0, 40, 41, 130], dtype=torch.int32)
    spans = ((0, 40), (40, 41), (41, 130))
    module = SimpleNamespace(is_causal=True, num_key_value_groups=2)
    leaves = [torch.randn(1, h, 130, 16, requires_grad=True) for h in (4, 2, 2)]  # float32
    grad_out = torch.randn(1, 130, 4, 16)

    def grads_of(fn):
        for t in leaves:
            t.grad = None
        out = fn(*leaves)
        out.float().backward(grad_out)
        return out.detach().float(), [t.grad.clone() for t in leaves]

    def each(q, k, v, dtype):  # each example alone, in `dtype`, through torch's own sdpa
        k, v = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
        q, k, v = (t.to(dtype) for t in (q, k, v))
        outs = [
            F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], is_causal=True)
            for a, b in spans
        ]
        return torch.cat(outs, dim=2).transpose(1, 2)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grads = grads_of(
            lambda q, k, v: packed_sdpa(module, q, k, v, None, cu_seq_lens_q=bounds)[0]
        )
    bf16_out, bf16_grads = grads_of(lambda q, k, v: each(q, k, v, torch.bfloat16))
    _, exact = grads_of(lambda q, k, v: each(q, k, v, torch.float64))

    assert torch.allclose(out, bf16_out, atol=1e-2)
    for got, bf16, want in zip(grads, bf16_grads, exact):
        err = (got.double() - want).norm() / want.norm()
        assert err < 1.1 * (bf16.double() - want).norm() / want.norm()  # ISAs round differently
        assert err < 1e-2

    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = packed_sdpa(module, *leaves, None, cu_seq_lens_q=bounds)[0]
    assert _backward_names(out.grad_fn).count("Bf16AttentionBackward") == 3  # one per example


def _backward_names(fn, seen=None) -> list[str]:
    """The names of the autograd nodes reachable from `fn`."""
    seen = set() if seen is None else seen
    if fn is None or fn in seen:
        return []
    seen.add(fn)
    names = [fn.name()]
    for nxt, _ in fn.next_functions:
        names += _backward_names(nxt, seen)
    return names
