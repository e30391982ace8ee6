"""RLHF: online RL (GRPO or RLOO from TRL) whose reward is the trained reward model plus raftkit's rule
rewards. trl 1.x has no PPOTrainer; both trainers here are critic-free and rank each prompt's group of
`num_generations` sampled answers."""

from __future__ import annotations

from raftkit.train import common, rewards
from raftkit.train.config import TrainConfig
from raftkit.train.reward import load_reward_model


def train_rlhf(cfg: TrainConfig, resume: bool = False) -> dict:
    """Optimise `cfg.model` against reward model + quote/format/answer rewards; returns the run.json summary."""
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    r = cfg.rlhf
    train, evals = common.load_data(cfg)
    model, tok, base = common.load_model(cfg)
    tok.padding_side = "left"  # generation needs the prompts aligned on the right
    scorer, scorer_tok = load_reward_model(r.reward_model, cfg.device)
    funcs = [scorer, rewards.quote_reward, rewards.format_reward, rewards.answer_reward]
    weights = [r.reward_model_weight, r.quote_weight, r.format_weight, r.answer_weight]
    config_cls, trainer_cls = (GRPOConfig, GRPOTrainer) if r.algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
    args = common.trainer_args(
        cfg, config_cls, False, num_generations=r.num_generations,
        max_completion_length=r.max_completion_length, temperature=r.temperature, beta=r.beta,
        reward_weights=weights)
    trainer = trainer_cls(model=model, reward_funcs=funcs, args=args, train_dataset=train,
                          processing_class=tok, reward_processing_classes=[scorer_tok, None, None, None],
                          callbacks=[common.recorder()])
    return common.run_training(trainer, cfg, tok, base, resume, examples=len(train))
