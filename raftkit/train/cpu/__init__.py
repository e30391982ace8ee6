"""Training's CPU speed-ups, behind one switch: `runtime.cpu_kernels` (`auto`: on where they
apply; `off`: plain peft and TRL, the same losses within bf16 noise, slower).

What it switches (each module says why; benchmarks/RESULTS.md, Training, what it gains):
- `lora_layers`: LoRA layers whose delta is summed in float32 under autocast, each input cast once,
  and on CPU the sums (and a SwiGLU MLP's activation) as compiled, fused kernels;
- `packed_attention`: attention over packed rows one example at a time (CPU, SDPA models);
- `loss`: the answer-only loss, the LM head run only before answer tokens (CPU SFT);
- one packed row per micro-batch, accumulated to the same effective batch (CPU SFT with packing);
- denormal floats flushed to zero (raftkit/models.py, on CPU).

The stages ask this module and never branch on the device themselves:

    trainer_cls = cpu.trainer_class(SFTTrainer, cfg)
    args = dict(..., **cpu.sft_batch(cfg))
    trainer = cpu.speed_up(build_trainer(cfg, trainer_cls, ...), cfg)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


def enabled(cfg: TrainConfig) -> bool:
    """Whether the speed-ups that hold on any device (the LoRA layers) are on."""
    return cfg.runtime.cpu_kernels == "auto"


def on_cpu(cfg: TrainConfig) -> bool:
    """Whether the CPU-only speed-ups are on: enabled, and training runs on the CPU."""
    from raftkit.train.model import runtime_of

    return enabled(cfg) and not runtime_of(cfg).cuda


def prepare_lora(model, cfg: TrainConfig):
    """A freshly made peft model, with raftkit's LoRA layers when enabled (else peft's own)."""
    if not enabled(cfg):
        return model
    from raftkit.train.cpu import lora_layers

    return lora_layers.prepare(model)


def sft_batch(cfg: TrainConfig) -> dict:
    """SFTConfig arguments of the batch shape: on CPU with packing, one packed row per
    micro-batch. Padding-free packing flattens a batch into one row, and on CPU attention then
    runs over all batch x max_length tokens with a block mask (4x the work at batch 4); one row
    per micro-batch, accumulated to the same effective batch, is faster at half the memory."""
    if not (cfg.sft.packing and on_cpu(cfg)):
        return {}
    return dict(
        per_device_train_batch_size=1,
        gradient_accumulation_steps=cfg.optim.batch_size * cfg.optim.grad_accum,
    )


def trainer_class(base, cfg: TrainConfig):
    """The SFT trainer class: on CPU, `base` with the answer-only loss."""
    if not on_cpu(cfg):
        return base
    from raftkit.train.cpu.loss import answer_only_trainer

    return answer_only_trainer(base)


def speed_up(trainer, cfg: TrainConfig):
    """`trainer` (an SFT trainer) with packed attention on CPU where the model uses SDPA."""
    if cfg.sft.packing and on_cpu(cfg) and trainer.model.config._attn_implementation == "sdpa":
        from raftkit.train.cpu import packed_attention

        packed_attention.use(trainer.model)
    return trainer
