"""DPO on RAFT preference pairs (grounded chosen vs ungrounded rejected answers) with TRL's
DPOTrainer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from raftkit.config import Section
from raftkit.train.stage import Stage

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig

PAIRS = ("prompt", "chosen", "rejected")
# what dpo and reward train on, and what to say when a dataset lacks it
PREFERENCE_DATA = {"columns": (PAIRS,), "column_hint": "reward and dpo need preference pairs"}


class DPOSection(Section):
    beta: float = Field(
        0.1, gt=0, description="strength of the pull towards the reference model (DPO's beta)"
    )
    loss_type: str = Field("sigmoid", description="TRL's loss_type: sigmoid (DPO), ipo, hinge, ...")


def reference_model(cfg: TrainConfig, model):
    """The frozen policy DPO measures drift against: the starting model, never the bare base of an
    SFT run.

    Fresh LoRA: None (TRL disables the adapter instead). Continued LoRA run or full: an explicit
    copy.
    """
    import copy

    from raftkit import models
    from raftkit.train.model import runtime_of

    if cfg.method == "full":
        return copy.deepcopy(model).eval()
    if models.resolve(
        cfg.model
    ).adapter:  # disabling a continued adapter would fall back past SFT to the raw base
        return models.load_causal_lm(cfg.model, runtime_of(cfg))
    return None


def train_dpo(cfg: TrainConfig, resume: bool = False) -> dict:
    """Preference-tune `cfg.model` on prompt/chosen/rejected pairs; returns the run.json summary."""
    from trl import DPOConfig, DPOTrainer

    from raftkit.train import runfolder
    from raftkit.train.trainer import build_trainer

    trainer, tok, base = build_trainer(
        cfg,
        DPOTrainer,
        DPOConfig,
        args={
            "max_length": cfg.data.max_length,
            "beta": cfg.dpo.beta,
            "loss_type": [cfg.dpo.loss_type],
        },
        extra=lambda model, tok: {"ref_model": reference_model(cfg, model)},
    )
    return runfolder.run_training(trainer, cfg, tok, base, resume)


STAGE = Stage(name="dpo", order=1, train=train_dpo, section=DPOSection, **PREFERENCE_DATA)
