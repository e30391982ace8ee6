"""A reward model (sequence classifier, one score) on RAFT preference pairs with TRL's RewardTrainer.

RLHF (raftkit/train/rlhf.py) uses the finished run as one of its rewards.
"""

from __future__ import annotations

from raftkit.train import common
from raftkit.train.config import TrainConfig


def train_reward(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train a scorer that ranks grounded answers over ungrounded ones; returns the run.json summary."""
    from trl import RewardConfig, RewardTrainer

    train, evals = common.load_data(cfg)
    model, tok, base = common.load_model(cfg, head="score")
    args = common.trainer_args(cfg, RewardConfig, evals is not None, max_length=cfg.data.max_length,
                               center_rewards_coefficient=cfg.reward.center_rewards or None)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, eval_dataset=evals,
                            processing_class=tok, callbacks=[common.recorder()])
    return common.run_training(trainer, cfg, tok, base, resume, examples=len(train))


def load_reward_model(run: str, device_pref: str = "auto"):
    """(sequence-classification model, tokenizer) of a finished reward run; a LoRA adapter is merged in."""
    import json
    from pathlib import Path

    import torch
    from transformers import AutoModelForSequenceClassification

    from raftkit import models

    path = Path(run) / "model"
    dev = models.device(device_pref)
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    adapter = path / "adapter_config.json"
    base = json.loads(adapter.read_text())["base_model_name_or_path"] if adapter.is_file() else str(path)
    tok = models.load_tokenizer(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        models.resolve_generator(base), num_labels=1, pad_token_id=tok.pad_token_id, dtype=dtype)
    if adapter.is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    tok.padding_side = "right"
    return model.to(dev).eval(), tok
