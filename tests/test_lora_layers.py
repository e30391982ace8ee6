"""raftkit's LoRA layers in training (raftkit/train/cpu/lora_layers.py): the fused CPU kernels
compute what peft computes op by op, in bf16 autocast and in float32, and step aside where they
do not apply."""

from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _compiles() -> bool:
    from raftkit.train.cpu.lora_layers import compiles

    return compiles()


needs_compiler = pytest.mark.skipif(
    not _compiles(), reason="the fused kernels are used only where a C++ compiler is on PATH"
)


@pytest.fixture
def fused_calls(monkeypatch) -> list[str]:
    """The names of the fused kernels called while the test runs, in order."""
    from raftkit.train.cpu import lora_layers

    calls, fused = [], lora_layers.fused
    monkeypatch.setattr(
        lora_layers, "fused", lambda name, *a: calls.append(name) or fused(name, *a)
    )
    return calls


def _lora_model(tiny_llama, dtype: str):
    import torch

    from raftkit.train.model import load_model
    from raftkit.train.run import load_config

    cfg = load_config(
        str(RECIPES / "sft_lora_tiny.yaml"),
        [f"model={tiny_llama}", "runtime.device=cpu", f"runtime.dtype={dtype}"],
    )
    model, tok, _ = load_model(cfg)
    torch.manual_seed(1)
    with torch.no_grad():  # adapters that do something (peft starts lora_B at zero)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    return model.eval(), tok  # eval: no LoRA dropout, so both models draw the same numbers


def _logits_and_grads(model, ids, autocast: bool):
    import torch

    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids).logits.float()
    logits.logsumexp(-1).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


@needs_compiler
@pytest.mark.parametrize("dtype,autocast", [("bfloat16", True), ("float32", False)])
def test_fused_layers_compute_what_peft_computes(
    tiny_llama, monkeypatch, fused_calls, dtype, autocast
):
    import torch

    from raftkit.train.cpu import lora_layers

    model, tok = _lora_model(tiny_llama, dtype)
    monkeypatch.setattr(lora_layers, "compiles", lambda: False)  # the same model, op by op
    plain, _ = _lora_model(tiny_llama, dtype)
    plain.load_state_dict(model.state_dict())

    ids = tok(
        ["Mount Skarn is 2,114 metres tall and snow lies on it in May."] * 2, return_tensors="pt"
    )
    ids = ids["input_ids"]
    logits, grads = _logits_and_grads(model, ids, autocast)
    want_logits, want = _logits_and_grads(plain, ids, autocast)

    layers = len(model.base_model.model.model.layers)
    assert fused_calls.count("swiglu") == layers  # gate, up and the activation: one kernel a layer
    assert fused_calls.count("lora_sum") == 5 * layers  # q, k, v, o, down
    assert grads.keys() == want.keys() and any("lora_A" in n for n in grads)
    tol = dict(rtol=0.02, atol=0.02) if autocast else dict(rtol=1e-4, atol=1e-5)
    assert torch.allclose(logits, want_logits, **tol)
    for name in grads:
        scale = float(want[name].abs().max())
        assert torch.allclose(
            grads[name], want[name], rtol=tol["rtol"], atol=tol["atol"] * scale
        ), name


@needs_compiler
def test_fused_layers_step_aside_with_adapters_disabled(tiny_llama, fused_calls):
    """DPO's reference pass runs with the adapters disabled: that is peft's forward, the frozen
    model's logits, and no fused kernel."""
    import torch
    from transformers import AutoModelForCausalLM

    model, tok = _lora_model(tiny_llama, "float32")
    ids = tok("Mount Skarn is tall.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        with model.disable_adapter():
            frozen = model(input_ids=ids).logits
        assert fused_calls == []
        adapted = model(input_ids=ids).logits
    assert fused_calls
    with torch.no_grad():
        alone = AutoModelForCausalLM.from_pretrained(tiny_llama)(input_ids=ids).logits
    assert torch.allclose(alone, frozen, atol=1e-6)  # the tiny model's own float32 weights
    assert not torch.allclose(adapted, frozen, atol=1e-3)


@needs_compiler
def test_fused_kernels_are_compiled_and_match_the_eager_ones(monkeypatch):
    import torch

    from raftkit.train.cpu import lora_layers

    monkeypatch.setattr(lora_layers, "_COMPILED", {})
    torch.manual_seed(0)
    for length in (37, 120):  # two lengths: one kernel (the length is symbolic)
        args = [
            torch.randn(1, length, 48, dtype=torch.bfloat16, requires_grad=True) for _ in range(4)
        ]
        a, b, c, d = args
        got = lora_layers.fused("swiglu", a, b, 2.0, c, d, 0.5)
        got.float().square().sum().backward()
        got_grads = [t.grad.clone() for t in args]
        for t in args:
            t.grad = None
        want = lora_layers.swiglu(a, b, 2.0, c, d, 0.5)
        want.float().square().sum().backward()
        assert got.dtype == torch.bfloat16
        assert torch.allclose(got.float(), want.float(), rtol=0.01, atol=0.01)
        for g, t in zip(got_grads, args):
            assert torch.allclose(g.float(), t.grad.float(), rtol=0.02, atol=0.02)
    assert lora_layers._COMPILED["swiglu"] is not lora_layers.swiglu  # torch.compile's wrapper


def test_a_kernel_that_does_not_compile_runs_eagerly(monkeypatch, capsys):
    import torch

    from raftkit.train.cpu import lora_layers

    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no compiler")

        return run

    monkeypatch.setattr(lora_layers, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", broken)
    frozen, delta = torch.ones(2, 3, dtype=torch.bfloat16), torch.full((2, 3), 1e-3)
    out = lora_layers.fused("lora_sum", frozen, delta, 2.0)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.full((2, 3), 1.002))
    assert "warning: fused lora_sum kernel did not compile" in capsys.readouterr().err
    assert lora_layers._COMPILED["lora_sum"] is lora_layers.lora_sum
    lora_layers.fused("lora_sum", frozen, delta, 2.0)  # no second try, no second warning
    assert capsys.readouterr().err == ""


def test_only_mlps_that_compute_plain_swiglu_are_fused():
    """An MLP with gate, up and down projections and a SiLU is fused only when its forward is
    exactly down(act(gate(x)) * up(x)); Falcon-H1's multiplies by two constants as well."""
    import torch
    from transformers.models.falcon_h1.modeling_falcon_h1 import FalconH1MLP
    from transformers.models.llama.modeling_llama import LlamaMLP
    from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP

    from raftkit.train.cpu.lora_layers import _plain_swiglu_forward

    class Returned(torch.nn.Module):
        def forward(self, hidden):
            """One line."""
            return self.down_proj(self.act_fn(self.gate_proj(hidden)) * self.up_proj(hidden))

    class Clamped(torch.nn.Module):
        def forward(self, x):
            return self.down_proj(self.act_fn(self.gate_proj(x)).clamp(max=7) * self.up_proj(x))

    class Swapped(torch.nn.Module):
        def forward(self, x):
            return self.down_proj(self.gate_proj(x) * self.act_fn(self.up_proj(x)))

    assert _plain_swiglu_forward(LlamaMLP) and _plain_swiglu_forward(Qwen2MLP)
    assert _plain_swiglu_forward(Returned)
    assert not _plain_swiglu_forward(FalconH1MLP)
    assert not _plain_swiglu_forward(Clamped) and not _plain_swiglu_forward(Swapped)


@needs_compiler
def test_an_mlp_whose_gate_or_up_carries_a_hook_is_not_fused(tiny_llama, fused_calls):
    """The fused MLP calls the gate's and up's parts, not the layers, so a hook someone put on
    them would be skipped: such an MLP keeps its own forward (and the hook runs)."""
    import torch

    model, tok = _lora_model(tiny_llama, "float32")
    mlp = model.base_model.model.model.layers[0].mlp
    seen = []
    mlp.up_proj.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with torch.no_grad():
        model(input_ids=tok("Mount Skarn is tall.", return_tensors="pt")["input_ids"])
    layers = len(model.base_model.model.model.layers)
    assert len(seen) == 1
    assert fused_calls.count("swiglu") == layers - 1
