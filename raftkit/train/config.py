"""The schema of `raftkit train` recipes: the sections every stage shares, plus one per stage.

`stage` picks the trainer (one module each in raftkit/train/stages/, which also brings its section);
`method` picks what is trained: full weights, LoRA adapters, or LoRA adapters on a 4-bit NF4 base.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model

from raftkit.config import DEFAULT_GENERATOR, RuntimeConfig, Section
from raftkit.train.stages import registry

METHODS = ("full", "lora", "qlora")


class DataConfig(Section):
    # build-dataset OUT folder, a save_to_disk folder, a .jsonl file or hf://org/name on the Hub
    path: str = ""
    eval_path: str = ""  # .jsonl for evaluation when `path` is a .jsonl file (optional)
    # more training data mixed into the train split, e.g. OUT/dsf_train.jsonl of the same build:
    # closed-book rows that teach the facts without documents, so the model also answers when
    # retrieval is off
    mix: list[str] = Field(default_factory=list)
    train_split: str = "train"
    eval_split: str = "eval"  # skipped when the dataset has no such split
    max_length: int = Field(
        1024, ge=16
    )  # tokens per example (prompt + answer); RAFT prompts hold several documents
    max_samples: int = Field(0, ge=0)  # 0 = all; a cap keeps smoke runs short

    def check(self) -> list[str]:
        return (
            []
            if self.path
            else ["path is required (a build-dataset folder, a .jsonl file or an HF id)"]
        )


class LoraSection(Section):
    r: int = Field(16, ge=1)  # adapter rank: more capacity, more memory
    alpha: int = 32  # scale = alpha / r; 2*r is the usual choice
    # a dropout mask is drawn per adapted activation: 23% of a CPU step; 0 = off
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["all-linear"])  # peft's shorthand

    def check(self) -> list[str]:
        return (
            []
            if self.target_modules
            else ["target_modules must name at least one module (or 'all-linear')"]
        )


class QuantSection(Section):
    load_in_4bit: bool | None = (
        None  # None = follow `method` (qlora -> 4-bit); set only to be explicit
    )
    quant_type: Literal["nf4", "fp4"] = "nf4"  # NF4 is what the QLoRA paper uses
    double_quant: bool = True  # quantizes the quantization constants too: ~0.4 bit/param saved
    compute_dtype: Literal["auto", "bfloat16", "float32"] = "auto"  # auto = runtime.dtype


class OptimSection(Section):
    lr: float = Field(2e-4, gt=0)  # LoRA likes ~1e-4..3e-4; full fine-tuning wants ~1e-5
    epochs: float = 1.0
    max_steps: int = Field(0, ge=0)  # > 0 wins over epochs
    batch_size: int = Field(4, ge=1)  # per device
    grad_accum: int = Field(1, ge=1)
    warmup: float = Field(0.03, ge=0)  # < 1: fraction of steps; >= 1: steps
    scheduler: str = "cosine"  # any transformers scheduler name
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = (
        False  # saves activation memory at ~20% speed; worth it from ~1B params
    )
    logging_steps: int = Field(5, ge=1)
    save_steps: int = Field(100, ge=1)  # checkpoints for --resume
    save_total_limit: int = 2
    eval_steps: int = 0  # 0 = evaluate only at the end (when there is an eval split)
    dataloader_workers: int = 0  # >0 overlaps collation with compute; 0 is best on 2 CPU cores

    def check(self) -> list[str]:
        return (
            ["set epochs > 0 or max_steps > 0"] if self.max_steps == 0 and self.epochs <= 0 else []
        )


class TrainBase(Section):
    """A `raftkit train` recipe: what every stage shares (TrainConfig adds the stage sections)."""

    stage: str = "sft"  # TrainConfig narrows it to the registered stages
    method: Literal["full", "lora", "qlora"] = "lora"
    # alias, HF id, local folder, or a previous run (its adapter is continued)
    model: str = DEFAULT_GENERATOR
    output_dir: str = ""  # the RUN folder
    evidence_verifier: str = Field(
        "",
        description="a verifier run (stage verifier) this run carries: `ask` and `compare` apply"
        " it to this model (retrieval.verifier: auto); a run continued from another carries that"
        " run's",
    )
    seed: int = 0
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    lora: LoraSection = Field(default_factory=LoraSection)
    quant: QuantSection = Field(default_factory=QuantSection)
    optim: OptimSection = Field(default_factory=OptimSection)

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


def _train_config():
    stages = registry()
    sections = {
        s.name: (s.section, Field(default_factory=s.section)) for s in stages.values() if s.section
    }
    return create_model(
        "TrainConfig",
        __base__=TrainBase,
        __module__=__name__,
        stage=(Literal[tuple(stages)], next(iter(stages))),
        **sections,
    )


TrainConfig = _train_config()
