"""RLHF: online RL (GRPO or RLOO from TRL) whose reward is the trained reward model plus raftkit's
rule rewards. trl 1.x has no PPOTrainer; both trainers here are critic-free and rank each prompt's
group of `num_generations` sampled answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from raftkit.config import Section
from raftkit.runs import RunFolder
from raftkit.train.stage import Stage

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


class RLHFSection(Section):
    # trl 1.x has no PPOTrainer; both are critic-free
    algorithm: Literal["grpo", "rloo"] = Field(
        "grpo", description="the RL trainer of TRL: grpo (GRPO) or rloo (RLOO)"
    )
    reward_model: str = Field(
        "", description="a `raftkit train` run of stage reward whose score is one reward (required)"
    )
    reward_model_weight: float = Field(
        1.0, description="weight of the reward model's score in the total reward"
    )
    quote_weight: float = Field(
        1.0,
        description="weight of the reward for the share of ##begin_quote## spans found verbatim in"
        " the prompt's documents",
    )
    format_weight: float = Field(
        0.5, description="weight of the reward for an `<ANSWER>:` line being present"
    )
    answer_weight: float = Field(
        1.0,
        description="weight of the reward for the `<ANSWER>:` span matching the reference `answer`",
    )
    num_generations: int = Field(
        4,
        description="completions sampled per prompt, the group a reward is normalised against;"
        " >= 2 and a divisor of optim.batch_size x optim.grad_accum",
    )
    max_completion_length: int = Field(128, ge=1, description="most tokens of a sampled completion")
    temperature: float = Field(1.0, description="sampling temperature of the completions")
    beta: float = Field(
        0.0, description="KL penalty towards the reference model; 0 = none and no reference model"
    )

    def check(self) -> list[str]:
        if self.num_generations < 2:
            return [
                f"num_generations ({self.num_generations}) must be at least 2 (rewards are ranked "
                "in a group)"
            ]
        return []


def problems(cfg: TrainConfig) -> list[str]:
    out = []
    if not cfg.rlhf.reward_model:
        out.append(
            "stage 'rlhf' needs rlhf.reward_model (a run of `raftkit train` with stage 'reward')"
        )
    group, n = cfg.optim.batch_size * cfg.optim.grad_accum, cfg.rlhf.num_generations
    if n >= 2 and group % n:
        out.append(
            f"stage 'rlhf': optim.batch_size x optim.grad_accum ({group}) must be a multiple of "
            f"rlhf.num_generations ({n}): each prompt's answers form one batch"
        )
    return out


def check_reward_model(cfg: TrainConfig) -> None:
    """An RLHF run needs a finished reward run (run.json with stage 'reward' and a model folder)."""
    RunFolder.open(cfg.rlhf.reward_model, "rlhf.reward_model", stage="reward")


def train_rlhf(cfg: TrainConfig, resume: bool = False) -> dict:
    """Optimise `cfg.model` against reward model + quote/format/answer rewards; returns the run.json
    summary."""
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from raftkit.models import load_classifier
    from raftkit.train import rewards, runfolder
    from raftkit.train.model import runtime_of
    from raftkit.train.trainer import build_trainer

    r = cfg.rlhf
    config_cls, trainer_cls = (
        (GRPOConfig, GRPOTrainer) if r.algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
    )

    def rewarded(model, tok):
        tok.padding_side = "left"  # generation needs the prompts aligned on the right
        scorer, scorer_tok = load_classifier(r.reward_model, runtime_of(cfg))
        funcs = [scorer, rewards.quote_reward, rewards.format_reward, rewards.answer_reward]
        return {"reward_funcs": funcs, "reward_processing_classes": [scorer_tok, None, None, None]}

    trainer, tok, base = build_trainer(
        cfg,
        trainer_cls,
        config_cls,
        evaluate=False,
        extra=rewarded,
        args={
            "num_generations": r.num_generations,
            "max_completion_length": r.max_completion_length,
            "temperature": r.temperature,
            "beta": r.beta,
            "reward_weights": [
                r.reward_model_weight,
                r.quote_weight,
                r.format_weight,
                r.answer_weight,
            ],
        },
    )
    return runfolder.run_training(trainer, cfg, tok, base, resume)


STAGE = Stage(
    name="rlhf",
    order=3,
    columns=(("prompt",),),
    train=train_rlhf,
    section=RLHFSection,
    extra_columns=("answer", "target_answer", "context"),
    problems=problems,
    preflight=check_reward_model,
)
