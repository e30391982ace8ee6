"""How raftkit's LoRA layers compute in training: under autocast the adapter's delta is summed in
float32 and each input is cast once; on CPU, where a C++ compiler is on PATH, the sums (and a
SwiGLU MLP's activation) run as compiled, fused kernels, in float32 training too.

Anything else (adapters disabled or merged, DoRA, several adapters at once) is peft's own forward,
with the float32 sum under autocast.
"""

from __future__ import annotations

import functools
import shutil


def prepare(model):
    """`model` (a peft model) with its LoRA layers set up as the module docstring says; returns it.

    - Under autocast the adapter's delta is added to a float32 copy of the frozen layer's bf16
      output, and the sum goes on in float32 (the residual stream with it; the next matmul casts
      to bf16). Added in bf16, a delta far below the frozen output rounds away in the forward pass
      while its gradient does not, and the adapters learn less per step: SFT-LoRA of the 135M
      model at 2048 tokens ended 8 steps at loss 1.178 against 1.070 in float32, 1.076 with the
      float32 sum.
    - Under autocast each layer's input is cast to the autocast dtype once, for the frozen layer
      and the adapter together (and once for the layers that share it, as q, k and v do), instead
      of peft casting it to float32 for the adapter and autocast casting it back.
    - On CPU, `frozen + delta * scaling` is one compiled kernel (`lora_sum`), and a SwiGLU MLP
      with adapters on gate and up (Llama, Mistral, Qwen ...) takes both sums and silu(gate) * up
      in one (`swiglu`). Op by op, the copies, sums, products and their gradients over
      [tokens, 1536] were ~1 s of a 4 s bf16 step of the 135M model at 2048 tokens.
    """
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    state = {"on": False, "x": None, "raw": False, "ours": set()}

    def set_casts(module, args):
        state.update(on=torch.is_autocast_enabled(next(module.parameters()).device.type), x=None)
        for layer in layers:
            layer.cast_input_dtype_enabled = not state["on"]

    def low_input(module, args):
        x = args[0]
        if not state["on"] or x.dtype != torch.float32:
            return None
        return (low(x), *args[1:])

    def low(x):
        if state["x"] is not x:  # q, k and v (gate and up) share one input: one cast
            state.update(x=x, low=x.to(torch.get_autocast_dtype(x.device.type)))
        return state["low"]

    def float32_output(module, args, out):
        return out.float() if state["on"] and not state["raw"] else None

    # on the inner transformers model: the trainer's autocast wraps the outer forward, so a hook
    # there would run before autocast is entered
    model.base_model.model.register_forward_pre_hook(set_casts)
    for layer in layers:
        state["ours"].add(layer.register_forward_pre_hook(low_input).id)
        layer.get_base_layer().register_forward_hook(float32_output)
    if compiles():
        for module in model.modules():
            if _is_lora_swiglu(module):
                _fuse_swiglu(module, state, low)
            elif _is_lora_linear(module):
                _fuse_sum(module, state)
    return model


def _is_lora_linear(module) -> bool:
    from peft.tuners.lora import Linear as LoraLinear

    return isinstance(module, LoraLinear)


def _is_lora_swiglu(module) -> bool:
    """Whether `module` is an MLP computing down(silu(gate(x)) * up(x)) with LoRA on gate and up."""
    act = getattr(module, "act_fn", None)
    return (
        all(hasattr(module, n) for n in ("gate_proj", "up_proj", "down_proj"))
        and _is_lora_linear(module.gate_proj)
        and _is_lora_linear(module.up_proj)
        and type(act).__name__ in ("SiLU", "SiLUActivation")
        and _plain_swiglu_forward(type(module))
    )


_SWIGLU = "self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))"


@functools.cache
def _plain_swiglu_forward(cls) -> bool:
    """Whether `cls.forward` is exactly `return down(act(gate(x)) * up(x))` (Llama, Mistral, Qwen
    ...), read from its source. MLPs with the same three projections that do more (Falcon-H1's
    multipliers, a clamp, a sub-norm) keep their own forward."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.forward)))
    except (OSError, TypeError, SyntaxError):
        return False
    fn = tree.body[0]
    if not isinstance(fn, ast.FunctionDef) or len(fn.args.args) != 2:
        return False
    body = [
        s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    if (  # down_proj = ...; return down_proj
        len(body) == 2
        and isinstance(body[0], ast.Assign)
        and isinstance(body[1], ast.Return)
        and body[1].value is not None
        and [ast.unparse(t) for t in body[0].targets] == [ast.unparse(body[1].value)]
    ):
        body = [ast.Return(body[0].value)]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return False
    x = fn.args.args[1].arg
    return ast.unparse(body[0].value) == _SWIGLU.replace("(x)", f"({x})")


def _fusable(state: dict, x, *layers) -> bool:
    """On CPU, under autocast or in float32 (where peft's sum is float32 too), with plain LoRA."""
    import torch

    return (
        x.device.type == "cpu"
        and (state["on"] or x.dtype == torch.float32)
        and all(_is_lora_linear(m) and _plain(m) for m in layers)
    )


def _unhooked(state: dict, *layers) -> bool:
    """No hooks on `layers` but raftkit's own: the fused MLP calls their parts, not the layers."""
    return all(set(m._forward_pre_hooks) <= state["ours"] and not m._forward_hooks for m in layers)


def _plain(layer) -> bool:
    """A LoRA layer that adds one plain adapter to its frozen output."""
    active = layer.active_adapters
    return (
        not layer.disable_adapters
        and not layer.merged
        and len(active) == 1
        and active[0] in layer.lora_A
        and active[0] not in layer.lora_variant
    )


def _fuse_sum(layer, state: dict) -> None:
    """Route a LoRA layer's forward through `lora_sum` where `_fusable`; otherwise it is peft's.
    Under autocast its input is already in the autocast dtype (`low_input`)."""
    own = layer.forward

    def forward(x, *args, **kwargs):
        if args or kwargs or not _fusable(state, x, layer):
            return own(x, *args, **kwargs)
        delta, scale = _delta(layer, x)
        return fused("lora_sum", _frozen(layer, x, state), delta, scale)

    layer.forward = forward


def _fuse_swiglu(mlp, state: dict, low) -> None:
    """Route `mlp`'s forward through `swiglu` where `_fusable`; otherwise it is the model's."""
    own = mlp.forward

    def forward(x, *args, **kwargs):
        gate, up = mlp.gate_proj, mlp.up_proj
        if args or kwargs or not _fusable(state, x, gate, up) or not _unhooked(state, gate, up):
            return own(x, *args, **kwargs)
        xl = low(x) if state["on"] else x
        g, u = _frozen(gate, xl, state), _frozen(up, xl, state)
        (gd, gs), (ud, us) = _delta(gate, xl), _delta(up, xl)
        return mlp.down_proj(fused("swiglu", g, gd, gs, u, ud, us))

    mlp.forward = forward


def _frozen(layer, x, state: dict):
    """The frozen layer's own output (bf16 under autocast), not the float32 copy of the hook."""
    state["raw"] = True
    try:
        return layer.get_base_layer()(x)
    finally:
        state["raw"] = False


def _delta(layer, x):
    """The adapter's output before its scaling, and the scaling (applied in the fused kernel)."""
    name = layer.active_adapters[0]
    return layer.lora_B[name](layer.lora_A[name](layer.lora_dropout[name](x))), layer.scaling[name]


# ----------------------------------------------------------------------------- the fused kernels
def lora_sum(frozen, delta, scale):
    """frozen + delta * scale, in float32."""
    return frozen.float() + delta.float() * scale


def swiglu(gate, gate_delta, gate_scale, up, up_delta, up_scale):
    """silu(gate + gate_delta * gate_scale) * (up + up_delta * up_scale), the sums in float32,
    returned in the inputs' dtype (the down projection's)."""
    import torch.nn.functional as F

    gate_sum = gate.float() + gate_delta.float() * gate_scale
    up_sum = up.float() + up_delta.float() * up_scale
    return (F.silu(gate_sum) * up_sum).to(gate.dtype)


KERNELS = {"lora_sum": lora_sum, "swiglu": swiglu}
_COMPILED: dict = {}


def fused(name: str, *args):
    """`KERNELS[name](*args)` compiled into one kernel for the forward and one for the backward.

    The first call compiles: a few seconds a kernel, plus ~9 s the first time on a machine while
    torch probes the CPU's vector instructions (kept in torch's inductor cache). Lengths and the
    scaling are symbolic, so rows of any length reuse the kernel. If compiling (or running the
    first forward and backward) fails, the kernel runs eagerly from then on: the same sums, op by
    op. A later recompile (another dtype, grad mode) is not guarded."""
    fn = _COMPILED.get(name)
    if fn is None:
        import torch

        fn = _COMPILED[name] = torch.compile(KERNELS[name], dynamic=True)
        try:  # forward and backward on copies, so a failure in either shows here
            copies = [
                a.detach().clone().requires_grad_(a.requires_grad) if torch.is_tensor(a) else a
                for a in args
            ]
            out = fn(*copies)
            if out.requires_grad:
                out.float().sum().backward()
        except Exception as e:  # no working compiler, an unsupported platform ...
            from raftkit import ui

            ui.say(f"warning: fused {name} kernel did not compile ({type(e).__name__}); eager")
            fn = _COMPILED[name] = KERNELS[name]
    return fn(*args)


def compiles() -> bool:
    """Whether CPU kernels can be compiled here: a C++ compiler on PATH."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))
