"""The schema of `raftkit train` recipes: one dataclass, two discriminators (stage, method).

`stage` picks the TRL trainer (sft, dpo, reward, rlhf); `method` picks what is trained (full weights,
LoRA adapters, LoRA adapters on a 4-bit NF4 base). Everything else is a section with defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from raftkit.config import DEFAULT_GENERATOR, check_interval, check_min

STAGES = ("sft", "dpo", "reward", "rlhf")
METHODS = ("full", "lora", "qlora")


@dataclasses.dataclass
class DataConfig:
    path: str = ""  # build-dataset OUT folder, a save_to_disk folder, a .jsonl file or an HF dataset id
    eval_path: str = ""  # .jsonl for evaluation when `path` is a .jsonl file (optional)
    # more training data mixed into the train split, e.g. OUT/dsf_train.jsonl of the same build: closed-book
    # rows that teach the facts without documents, so the model also answers when retrieval is off
    mix: list[str] = dataclasses.field(default_factory=list)
    train_split: str = "train"
    eval_split: str = "eval"  # skipped when the dataset has no such split
    max_length: int = 1024  # tokens per example (prompt + answer); RAFT prompts hold several documents
    max_samples: int = 0  # 0 = all; a cap keeps smoke runs short

    def validate(self) -> list[str]:
        problems = [] if self.path else ["path is required (a build-dataset folder, a .jsonl file or an HF id)"]
        return problems + check_min(self, max_length=16, max_samples=0)


@dataclasses.dataclass
class LoraSection:
    r: int = 16  # adapter rank: more capacity, more memory
    alpha: int = 32  # scale = alpha / r; 2*r is the usual choice
    dropout: float = 0.05
    target_modules: list[str] = dataclasses.field(default_factory=lambda: ["all-linear"])  # peft's shorthand

    def validate(self) -> list[str]:
        problems = check_min(self, r=1) + check_interval(self, dropout="[0, 1)")
        if not self.target_modules:
            problems.append("target_modules must name at least one module (or 'all-linear')")
        return problems


@dataclasses.dataclass
class QuantSection:
    load_in_4bit: bool | None = None  # None = follow `method` (qlora -> 4-bit); set only to be explicit
    quant_type: Literal["nf4", "fp4"] = "nf4"  # NF4 is what the QLoRA paper uses
    double_quant: bool = True  # quantizes the quantization constants too: ~0.4 bit/param saved
    compute_dtype: Literal["auto", "bfloat16", "float32"] = "auto"  # auto = bf16 on CUDA, fp32 on CPU


@dataclasses.dataclass
class OptimSection:
    lr: float = 2e-4  # LoRA likes ~1e-4..3e-4; full fine-tuning wants ~1e-5
    epochs: float = 1.0
    max_steps: int = 0  # > 0 wins over epochs
    batch_size: int = 4  # per device
    grad_accum: int = 1
    warmup: float = 0.03  # < 1: fraction of steps; >= 1: steps
    scheduler: str = "cosine"  # any transformers scheduler name
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False  # saves activation memory at ~20% speed; worth it from ~1B params
    logging_steps: int = 5
    save_steps: int = 100  # checkpoints for --resume
    save_total_limit: int = 2
    eval_steps: int = 0  # 0 = evaluate only at the end (when there is an eval split)
    dataloader_workers: int = 0  # >0 overlaps collation with compute; 0 is best on 2 CPU cores

    def validate(self) -> list[str]:
        problems = [] if self.lr > 0 else [f"lr ({self.lr}) must be positive"]
        problems += check_min(self, max_steps=0, batch_size=1, grad_accum=1, logging_steps=1, save_steps=1, warmup=0)
        if self.max_steps == 0 and self.epochs <= 0:
            problems.append("set epochs > 0 or max_steps > 0")
        return problems


@dataclasses.dataclass
class SFTSection:
    packing: bool = True  # best-fit packing of whole examples into max_length rows: no padding computed
    completion_only: bool = True  # loss on the assistant answer only, never on the documents of the prompt


@dataclasses.dataclass
class DPOSection:
    beta: float = 0.1  # strength of the pull towards the reference model
    loss_type: str = "sigmoid"  # TRL's loss_type: sigmoid (DPO), ipo, hinge, ...

    def validate(self) -> list[str]:
        return [] if self.beta > 0 else [f"beta ({self.beta}) must be positive"]


@dataclasses.dataclass
class RewardSection:
    center_rewards: float = 0.0  # TRL center_rewards_coefficient: keeps scores near 0 (0 = off)


@dataclasses.dataclass
class RLHFSection:
    algorithm: Literal["grpo", "rloo"] = "grpo"  # trl 1.x has no PPOTrainer; both are critic-free
    reward_model: str = ""  # a `raftkit train` run of stage reward (required)
    reward_model_weight: float = 1.0
    quote_weight: float = 1.0  # share of ##begin_quote## spans found verbatim in the prompt's documents
    format_weight: float = 0.5  # `<ANSWER>:` present
    answer_weight: float = 1.0  # `<ANSWER>:` span matches the reference `answer` column
    num_generations: int = 4  # completions per prompt: the group a reward is normalised against
    max_completion_length: int = 128
    temperature: float = 1.0
    beta: float = 0.0  # KL penalty; 0 skips the reference model (TRL's default)

    def validate(self) -> list[str]:
        problems = check_min(self, max_completion_length=1)
        if self.num_generations < 2:
            problems.append(f"num_generations ({self.num_generations}) must be at least 2 (rewards are ranked in a group)")
        return problems


@dataclasses.dataclass
class TrainConfig:
    """A `raftkit train` recipe."""

    stage: Literal["sft", "dpo", "reward", "rlhf"] = "sft"
    method: Literal["full", "lora", "qlora"] = "lora"
    model: str = DEFAULT_GENERATOR  # alias, HF id, local folder, or a previous run (its adapter is continued)
    output_dir: str = ""  # the RUN folder
    seed: int = 0
    device: str = "auto"  # auto = cuda when available, else cpu
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    lora: LoraSection = dataclasses.field(default_factory=LoraSection)
    quant: QuantSection = dataclasses.field(default_factory=QuantSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    sft: SFTSection = dataclasses.field(default_factory=SFTSection)
    dpo: DPOSection = dataclasses.field(default_factory=DPOSection)
    reward: RewardSection = dataclasses.field(default_factory=RewardSection)
    rlhf: RLHFSection = dataclasses.field(default_factory=RLHFSection)

    def validate(self) -> list[str]:
        problems = [] if self.output_dir else ["output_dir is required (the run folder)"]
        q = self.quant.load_in_4bit
        if self.method == "full" and q:
            problems.append("method 'full' cannot be combined with quant.load_in_4bit: true (4-bit weights "
                            "take no gradients); use method 'qlora' for LoRA on a 4-bit base")
        if self.method == "lora" and q:
            problems.append("method 'lora' with quant.load_in_4bit: true is QLoRA; set method 'qlora'")
        if self.method == "qlora" and q is False:
            problems.append("method 'qlora' needs a 4-bit base; remove quant.load_in_4bit: false or use method 'lora'")
        if self.stage == "rlhf" and not self.rlhf.reward_model:
            problems.append("stage 'rlhf' needs rlhf.reward_model (a run of `raftkit train` with stage 'reward')")
        group = self.optim.batch_size * self.optim.grad_accum
        if self.stage == "rlhf" and self.rlhf.num_generations >= 2 and group % self.rlhf.num_generations:
            problems.append(f"stage 'rlhf': optim.batch_size x optim.grad_accum ({group}) must be a multiple of "
                            f"rlhf.num_generations ({self.rlhf.num_generations}): each prompt's answers form one batch")
        return problems

    @property
    def quantized(self) -> bool:
        return self.method == "qlora"
