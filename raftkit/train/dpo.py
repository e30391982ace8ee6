"""DPO on RAFT preference pairs (grounded chosen vs ungrounded rejected answers) with TRL's DPOTrainer."""

from __future__ import annotations

from raftkit.train import common
from raftkit.train.config import TrainConfig


def reference_model(cfg: TrainConfig, model):
    """The frozen policy DPO measures drift against: the starting model, never the bare base of an SFT run.

    Fresh LoRA: None (TRL disables the adapter instead). Continued LoRA run or full: an explicit copy.
    """
    import copy

    from raftkit import models

    _, adapter = common.base_and_adapter(cfg.model)
    if cfg.method == "full":
        return copy.deepcopy(model).eval()
    if adapter:  # disabling a continued adapter would fall back past SFT to the raw base
        return models.load_causal_lm(cfg.model, cfg.device)
    return None


def train_dpo(cfg: TrainConfig, resume: bool = False) -> dict:
    """Preference-tune `cfg.model` on prompt/chosen/rejected pairs; returns the run.json summary."""
    from trl import DPOConfig, DPOTrainer

    train, evals = common.load_data(cfg)
    model, tok, base = common.load_model(cfg)
    args = common.trainer_args(cfg, DPOConfig, evals is not None, max_length=cfg.data.max_length,
                               beta=cfg.dpo.beta, loss_type=[cfg.dpo.loss_type])
    trainer = DPOTrainer(model=model, ref_model=reference_model(cfg, model), args=args, train_dataset=train,
                         eval_dataset=evals, processing_class=tok, callbacks=[common.recorder()])
    return common.run_training(trainer, cfg, tok, base, resume, examples=len(train))
