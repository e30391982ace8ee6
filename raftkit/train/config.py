"""The schema of `raftkit train` recipes: the sections every stage shares, plus one per stage.

`stage` picks the trainer (one module each in raftkit/train/stages/, which also brings its section);
`method` picks what is trained: full weights, LoRA adapters, or LoRA adapters on a 4-bit NF4 base.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raftkit.config import DEFAULT_GENERATOR, RuntimeConfig, Section
from raftkit.train.stages import registry
from raftkit.train.stages.dpo import DPOSection
from raftkit.train.stages.reward import RewardSection
from raftkit.train.stages.rlhf import RLHFSection
from raftkit.train.stages.sft import SFTSection
from raftkit.train.stages.verifier import VerifierSection

_STAGE_HELP = "which stage trains (one module of raftkit/train/stages/, each with its own section)"


class DataConfig(Section):
    path: str = Field(
        "",
        description="the training data: a build-dataset OUT folder, a save_to_disk folder, a .jsonl"
        " file or hf://org/name on the Hub (required)",
    )
    eval_path: str = Field(
        "", description="a .jsonl to evaluate on when `path` is a .jsonl file; empty = none"
    )
    # e.g. closed-book rows that teach the facts without documents, so the model also answers when
    # retrieval is off
    mix: list[str] = Field(
        default_factory=list,
        description="more datasets mixed into the train split, e.g. OUT/dsf_train.jsonl of the same"
        " build; empty = none",
    )
    train_split: str = Field(
        "train", description="the split of `path` trained on (a .jsonl file is all train)"
    )
    eval_split: str = Field(
        "eval", description="the split of `path` evaluated on; skipped when the dataset has none"
    )
    max_length: int = Field(
        1024,
        ge=16,
        description="tokens per example (prompt + answer); RAFT prompts hold several documents",
    )
    max_samples: int = Field(
        0, ge=0, description="use only the first N train and eval rows (smoke runs); 0 = all"
    )

    def check(self) -> list[str]:
        return (
            []
            if self.path
            else ["path is required (a build-dataset folder, a .jsonl file or an HF id)"]
        )


class LoraSection(Section):
    r: int = Field(16, ge=1, description="adapter rank: more capacity, more memory")
    alpha: int = Field(32, description="adapter scale = alpha / r; 2*r is the usual choice")
    # 0 by default: a dropout mask is drawn per adapted activation: 23% of a CPU step
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input; 0 = off")
    target_modules: list[str] = Field(
        default_factory=lambda: ["all-linear"],
        description="module names that get adapters; all-linear = peft's shorthand for every linear"
        " layer",
    )

    def check(self) -> list[str]:
        return (
            []
            if self.target_modules
            else ["target_modules must name at least one module (or 'all-linear')"]
        )


class QuantSection(Section):
    load_in_4bit: bool | None = Field(
        None,
        description="load the base in 4 bits; empty (null) = follow `method` (qlora -> 4-bit); set"
        " only to be explicit",
    )
    quant_type: Literal["nf4", "fp4"] = Field(
        "nf4", description="4-bit data type; NF4 is what the QLoRA paper uses"
    )
    double_quant: bool = Field(
        True, description="quantize the quantization constants too: ~0.4 bit per parameter saved"
    )
    compute_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="precision of the 4-bit layers' matmuls; auto = runtime.dtype"
    )


class OptimSection(Section):
    lr: float = Field(
        2e-4,
        gt=0,
        description="learning rate; LoRA likes ~1e-4..3e-4, full fine-tuning wants ~1e-5",
    )
    epochs: float = Field(
        1.0, description="passes over the train split (fractions allowed); max_steps > 0 wins"
    )
    max_steps: int = Field(0, ge=0, description="optimizer steps; > 0 wins over epochs; 0 = epochs")
    batch_size: int = Field(4, ge=1, description="examples per device per step (train and eval)")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    warmup: float = Field(
        0.03, ge=0, description="learning-rate warmup: < 1 = a fraction of the steps; >= 1 = steps"
    )
    scheduler: str = Field(
        "cosine", description="learning-rate schedule: any transformers scheduler name"
    )
    weight_decay: float = Field(0.0, description="AdamW weight decay; 0 = none")
    max_grad_norm: float = Field(1.0, description="gradients are clipped to this global norm")
    gradient_checkpointing: bool = Field(
        False,
        description="recompute activations in backward: saves memory at ~20% speed; worth it from"
        " ~1B params",
    )
    logging_steps: int = Field(5, ge=1, description="steps between logged losses")
    save_steps: int = Field(100, ge=1, description="steps between checkpoints (for --resume)")
    save_total_limit: int = Field(
        2, description="checkpoints kept in the run folder; older ones are deleted"
    )
    eval_steps: int = Field(
        0,
        description="steps between evaluations; 0 = only at each epoch's end (with an eval split)",
    )
    dataloader_workers: int = Field(
        0,
        description="processes that collate batches beside training; 0 = in the training process"
        " (best on 2 CPU cores)",
    )

    def check(self) -> list[str]:
        return (
            ["set epochs > 0 or max_steps > 0"] if self.max_steps == 0 and self.epochs <= 0 else []
        )


class TrainBase(Section):
    """A `raftkit train` recipe: what every stage shares (TrainConfig adds the stage sections)."""

    # TrainConfig narrows it to the registered stages
    stage: str = Field("sft", description=_STAGE_HELP)
    method: Literal["full", "lora", "qlora"] = Field(
        "lora",
        description="full = every weight; lora = LoRA adapters; qlora = LoRA adapters on a 4-bit"
        " NF4 base",
    )
    model: str = Field(
        DEFAULT_GENERATOR,
        description="the starting model: an alias, HF id, local folder, or a previous run (its"
        " adapter is continued)",
    )
    output_dir: str = Field("", description="the RUN folder the run writes (required)")
    evidence_verifier: str = Field(
        "",
        description="a verifier run (stage verifier) this run carries: `ask` and `compare` apply"
        " it to this model (retrieval.verifier: auto); a run continued from another carries that"
        " run's",
    )
    seed: int = Field(0, description="seed of training: initialisation, data order and sampling")
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="device and precision of the model"
    )
    data: DataConfig = Field(
        default_factory=DataConfig, description="the training and evaluation data"
    )
    lora: LoraSection = Field(
        default_factory=LoraSection, description="the LoRA adapters (methods lora and qlora)"
    )
    quant: QuantSection = Field(
        default_factory=QuantSection, description="4-bit loading of the base (method qlora)"
    )
    optim: OptimSection = Field(
        default_factory=OptimSection, description="optimizer, schedule, checkpoints and logging"
    )

    def check(self) -> list[str]:
        problems = [] if self.output_dir else ["output_dir is required (the run folder)"]
        q = self.quant.load_in_4bit
        if self.method == "full" and q:
            problems.append(
                "method 'full' cannot be combined with quant.load_in_4bit: true (4-bit weights "
                "take no gradients); use method 'qlora' for LoRA on a 4-bit base"
            )
        if self.method == "lora" and q:
            problems.append(
                "method 'lora' with quant.load_in_4bit: true is QLoRA; set method 'qlora'"
            )
        if self.method == "qlora" and q is False:
            problems.append(
                "method 'qlora' needs a 4-bit base; remove quant.load_in_4bit: false or use method "
                "'lora'"
            )
        return problems + registry()[self.stage].problems(self)

    @property
    def quantized(self) -> bool:
        return self.method == "qlora"


def _section(name: str) -> str:
    return f"the settings of stage {name} (read when stage is {name})"


class TrainConfig(TrainBase):
    """A `raftkit train` recipe: the shared sections and one section per stage, declared here so
    a reader (and an IDE) sees `cfg.sft`, `cfg.dpo`, ...; tests/test_train_config.py keeps them
    equal to the stages raftkit/train/stages/ registers."""

    stage: Literal["sft", "dpo", "reward", "rlhf", "verifier"] = Field(
        "sft", description=f"{_STAGE_HELP}: sft, dpo, reward, rlhf, verifier"
    )
    sft: SFTSection = Field(default_factory=SFTSection, description=_section("sft"))
    dpo: DPOSection = Field(default_factory=DPOSection, description=_section("dpo"))
    reward: RewardSection = Field(default_factory=RewardSection, description=_section("reward"))
    rlhf: RLHFSection = Field(default_factory=RLHFSection, description=_section("rlhf"))
    verifier: VerifierSection = Field(
        default_factory=VerifierSection, description=_section("verifier")
    )
