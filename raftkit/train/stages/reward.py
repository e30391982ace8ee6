"""A reward model (sequence classifier, one score) on RAFT preference pairs with TRL's
RewardTrainer.

RLHF (raftkit/train/stages/rlhf.py) uses the finished run as one of its rewards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from raftkit.config import Section
from raftkit.errors import RaftkitError
from raftkit.train.stage import Stage
from raftkit.train.stages.dpo import PREFERENCE_DATA

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


class RewardSection(Section):
    center_rewards: float = Field(
        0.0,
        description="TRL's center_rewards_coefficient: pulls the scores towards 0; 0 = off",
    )


def train_reward(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train a scorer that ranks grounded answers over ungrounded ones; returns the run.json
    summary."""
    from trl import RewardConfig, RewardTrainer

    from raftkit.train import runfolder
    from raftkit.train.trainer import build_trainer

    trainer, tok, base = build_trainer(
        cfg,
        RewardTrainer,
        RewardConfig,
        head="score",
        args={
            "max_length": cfg.data.max_length,
            "center_rewards_coefficient": cfg.reward.center_rewards or None,
        },
    )
    return runfolder.run_training(trainer, cfg, tok, base, resume)


def starts_from_a_base(cfg: TrainConfig) -> None:
    """A reward model starts from a base model, not from a LoRA run (a causal LM adapter has no
    score head)."""
    from raftkit.models import resolve

    if resolve(cfg.model).adapter:
        raise RaftkitError(
            f"model {cfg.model}: a reward model starts from a base model, not a LoRA run; "
            f"`raftkit export {cfg.model} --merge --out DIR` and use DIR"
        )


STAGE = Stage(
    name="reward",
    order=2,
    train=train_reward,
    section=RewardSection,
    preflight=starts_from_a_base,
    **PREFERENCE_DATA,
)
