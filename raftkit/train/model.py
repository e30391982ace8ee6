"""The model a stage trains: full weights, LoRA adapters or LoRA on a 4-bit QLoRA base, from one
code path, on the device and in the precision of the recipe's runtime."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from raftkit import models
from raftkit.train import cpu

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


def runtime_of(cfg: TrainConfig) -> models.Runtime:
    """The device and precision that `cfg.runtime` resolves to on this machine."""
    return models.runtime(cfg.runtime)


def load_model(cfg: TrainConfig, head: str = "causal"):
    """(model, tokenizer, base name): the model ready for the trainer (PEFT-wrapped for lora/qlora).

    A previous LoRA run as `model` is continued (its adapter trained further) for lora/qlora and
    merged first for full. `head` is 'causal' or 'score' (a 1-label sequence-classification head).
    Precision (`weight_dtype`): with a bf16 runtime the frozen base of a LoRA run loads in bf16
    (its float32 adapters stay the master weights); full fine-tuning keeps float32 weights under
    autocast.
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        BitsAndBytesConfig,
    )

    ref = models.resolve(cfg.model)
    tok = models.load_tokenizer(ref.base, padding_side="right")  # generation (GRPO) sets its own
    rt = runtime_of(cfg)
    dtype = getattr(torch, weight_dtype(cfg, head))
    kwargs = {}
    if cfg.quantized:
        compute = (
            rt.torch_dtype
            if cfg.quant.compute_dtype == "auto"
            else getattr(torch, cfg.quant.compute_dtype)
        )
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quant.quant_type,
            bnb_4bit_use_double_quant=cfg.quant.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
        # one whole copy per rank: each accelerate rank sits on its LOCAL_RANK GPU
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0")) if rt.cuda else "cpu"}
    cls = AutoModelForCausalLM if head == "causal" else AutoModelForSequenceClassification
    if head == "score":
        kwargs.update(num_labels=1, pad_token_id=tok.pad_token_id)
    model = models.load_pretrained(ref, cls, dtype, merge=cfg.method == "full", **kwargs)
    model.config.pad_token_id = tok.pad_token_id
    if cfg.method == "full":
        return model, tok, ref.base
    return _with_adapter(cfg, model, ref, head), tok, ref.base


def weight_dtype(cfg: TrainConfig, head: str = "causal") -> str:
    """The dtype the model's weights load in for training (see load_model).

    Weights that train whole (full fine-tuning, a score head) are the optimizer's master copy:
    float32 under autocast on CUDA as on a CPU, since a bf16 weight rounds away updates below 1/256
    of itself.
    A frozen LoRA base loads in the runtime dtype (peft keeps the adapters float32): on a CPU this
    skips autocast's cast of every weight at every micro-batch (frozen weights are not in its
    cache), faster than a float32 base.
    """
    trains_whole = cfg.method == "full" or head != "causal"
    return "float32" if trains_whole else runtime_of(cfg).dtype


def _with_adapter(cfg: TrainConfig, model, ref: models.ModelRef, head: str):
    from peft import (
        LoraConfig,
        PeftModel,
        TaskType,
        get_peft_model,
        prepare_model_for_kbit_training,
    )

    if cfg.quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.optim.gradient_checkpointing
        )
    if ref.adapter:
        adapted = PeftModel.from_pretrained(model, ref.adapter, is_trainable=True)
        return cpu.prepare_lora(adapted, cfg)
    targets = cfg.lora.target_modules
    lcfg = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type=TaskType.CAUSAL_LM if head == "causal" else TaskType.SEQ_CLS,
    )
    return cpu.prepare_lora(get_peft_model(model, lcfg), cfg)
