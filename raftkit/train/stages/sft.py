"""SFT on RAFT chat data: TRL's SFTTrainer on prompt-completion conversations, loss on the answer
only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from raftkit.config import Section
from raftkit.train import packed_attention
from raftkit.train.stage import Stage

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


class SFTSection(Section):
    packing: bool = Field(
        True,
        description="best-fit packing of whole examples into data.max_length rows: no padding"
        " computed",
    )
    completion_only: bool = Field(
        True,
        description="loss on the assistant answer only, never on the documents of the prompt",
    )


def train_sft(cfg: TrainConfig, resume: bool = False) -> dict:
    """Fine-tune `cfg.model` on `cfg.data`; returns the run.json summary."""
    from raftkit.train import common

    trainer, tok, base = sft_trainer(cfg)
    return common.run_training(trainer, cfg, tok, base, resume)


def sft_trainer(cfg: TrainConfig):
    """(the configured TRL trainer, tokenizer, base model name) of an SFT recipe, ready to train."""
    from trl import SFTConfig, SFTTrainer

    from raftkit.train import common

    prompt_completion = "completion" in common.load_data(cfg)[0].column_names
    cuda = common.runtime_of(cfg).cuda
    batch = {}
    if cfg.sft.packing and not cuda:
        # Padding-free packing flattens a batch into one row; on CPU, attention then runs over all
        # batch x max_length tokens with a block mask (4x the work at batch 4). One packed row per
        # micro-batch, accumulated to the same effective batch, measured 1.35x faster at half the
        # memory.
        batch = dict(
            per_device_train_batch_size=1,
            gradient_accumulation_steps=cfg.optim.batch_size * cfg.optim.grad_accum,
        )
    args = dict(
        max_length=cfg.data.max_length,
        # Best-fit packing turns on padding-free batches: no FLOPs are spent on pad tokens, and
        # transformers keeps attention inside each packed example via position_ids.
        packing=cfg.sft.packing,
        packing_strategy="bfd",
        # prompt-completion data: the loss mask is the completion (the RAFT answer), never the
        # documents; plain `messages` data: the loss mask is the assistant turns.
        completion_only_loss=cfg.sft.completion_only if prompt_completion else None,
        assistant_only_loss=cfg.sft.completion_only and not prompt_completion,
        dataset_num_proc=None,
        **batch,
    )
    trainer_cls = SFTTrainer if cuda else cpu_trainer(SFTTrainer)
    trainer, tok, base = common.build_trainer(cfg, trainer_cls, SFTConfig, args=args)
    if cfg.sft.packing and not cuda and trainer.model.config._attn_implementation == "sdpa":
        packed_attention.use(trainer.model)
    return trainer, tok, base


def cpu_trainer(base):
    """`base` (a TRL trainer class) whose loss is the cross-entropy at the answer tokens only.

    TRL's fused LM head scores every position on CPU (its compact path is Triton-only) and adds
    entropy and top-1 metrics. Here the LM head runs only where a label follows (`logits_to_keep`):
    in RAFT rows most tokens are documents, so this skips most of the 49k-way head and its float32
    logits, for the same loss (tests/test_train_sft.py checks it against TRL's).
    """

    class CpuSFTTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            if labels.shape[0] != 1:  # unpacked batches: the model's own loss
                out = model(**inputs, use_cache=False, num_items_in_batch=num_items_in_batch)
                loss = out.loss
            else:
                loss, out = answer_only_loss(model, inputs, num_items_in_batch, True)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # num_items_in_batch counts the tokens of every rank and DDP averages gradients over
                # the ranks: scaled back as Trainer.compute_loss does, or a 2-process run would take
                # half-size steps (measured: loss and grad norm exactly half the 1-process run's)
                loss = loss * self.accelerator.num_processes
            return (loss, out) if return_outputs else loss

    return CpuSFTTrainer


def answer_only_loss(model, inputs, num_items_in_batch=None, return_outputs=False):
    """The causal LM loss of one packed row, with the LM head applied only before label tokens."""
    import torch
    import torch.nn.functional as F

    inputs = dict(inputs)
    targets = inputs.pop("labels")[0, 1:]
    where = (targets != -100).nonzero().squeeze(-1)
    keep = where if len(where) else torch.tensor([0], device=targets.device)
    out = model(**inputs, use_cache=False, logits_to_keep=keep)
    logits = out.logits[0].float()
    if not len(where):
        loss = (
            logits.sum() * 0.0
        )  # a row without answer tokens: no loss, but a graph to backpropagate
    else:
        total = F.cross_entropy(logits, targets[where], reduction="sum")
        loss = total / (num_items_in_batch if num_items_in_batch is not None else len(where))
    return (loss, out) if return_outputs else loss


STAGE = Stage(
    name="sft",
    order=0,
    columns=(("prompt", "completion"), ("messages",)),
    train=train_sft,
    section=SFTSection,
)
