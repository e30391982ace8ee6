"""SFT on RAFT chat data: TRL's SFTTrainer on prompt-completion conversations, loss on the answer
only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from raftkit.config import Section
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
    from raftkit.train import runfolder

    trainer, tok, base = sft_trainer(cfg)
    return runfolder.run_training(trainer, cfg, tok, base, resume)


def sft_trainer(cfg: TrainConfig):
    """(the configured TRL trainer, tokenizer, base model name) of an SFT recipe, ready to train."""
    from trl import SFTConfig, SFTTrainer

    from raftkit.train import cpu
    from raftkit.train.data import load_data
    from raftkit.train.trainer import build_trainer

    prompt_completion = "completion" in load_data(cfg)[0].column_names
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
        **cpu.sft_batch(cfg),
    )
    trainer_cls = cpu.trainer_class(SFTTrainer, cfg)
    trainer, tok, base = build_trainer(cfg, trainer_cls, SFTConfig, args=args)
    return cpu.speed_up(trainer, cfg), tok, base


STAGE = Stage(
    name="sft",
    order=0,
    columns=(("prompt", "completion"), ("messages",)),
    train=train_sft,
    section=SFTSection,
)
