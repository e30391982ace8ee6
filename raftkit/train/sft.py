"""SFT on RAFT chat data: TRL's SFTTrainer on prompt-completion conversations, loss on the answer only."""

from __future__ import annotations

from raftkit.train import common
from raftkit.train.config import TrainConfig


def train_sft(cfg: TrainConfig, resume: bool = False) -> dict:
    """Fine-tune `cfg.model` on `cfg.data`; returns the run.json summary."""
    from trl import SFTConfig, SFTTrainer

    train, evals = common.load_data(cfg)
    model, tok, base = common.load_model(cfg)
    prompt_completion = "completion" in train.column_names
    args = common.trainer_args(
        cfg, SFTConfig, evals is not None,
        max_length=cfg.data.max_length,
        # Best-fit packing turns on padding-free batches: no FLOPs are spent on pad tokens, and
        # transformers keeps attention inside each packed example via position_ids.
        packing=cfg.sft.packing, packing_strategy="bfd",
        # prompt-completion data: the loss mask is the completion (the RAFT answer), never the documents;
        # plain `messages` data: the loss mask is the assistant turns.
        completion_only_loss=cfg.sft.completion_only if prompt_completion else None,
        assistant_only_loss=cfg.sft.completion_only and not prompt_completion,
        dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=evals,
                         processing_class=tok, callbacks=[common.recorder()])
    return common.run_training(trainer, cfg, tok, base, resume, examples=len(train))
