"""The schema of `raftkit compare` recipes (recipes/compare*.yaml)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from raftkit.config import EvidenceCheck, GenerationConfig, RuntimeConfig, Section

_SYSTEM_NAME = re.compile(r"^[\w.+-]+$")


class SystemConfig(EvidenceCheck):
    name: str = ""  # a column of the report; letters, digits, '.', '_', '+', '-'
    model: str = ""  # alias, HF id, model folder or a `raftkit train` run folder
    mode: Literal["closed", "rag"] = (
        "closed"  # closed = question only; rag = top-k chunks of `index` too
    )
    index: str = ""  # for rag: an index name under indexes_dir, or a path to an index folder
    top_k: int = Field(5, ge=1)  # chunks shown to a rag system
    backend: Literal["hf", "openai"] | None = Field(
        None,
        description="hf = load the model here; openai = a server answers and scores its choices"
        " (vLLM); empty = generation.backend",
    )
    base_url: str = Field(
        "", description="backend openai: e.g. http://localhost:8000/v1; empty = generation.base_url"
    )
    tokenizer: str = Field(
        "",
        description="backend openai: the model whose chat template builds the scored prompts;"
        " empty = model",
    )

    def generation_config(self, shared: GenerationConfig) -> GenerationConfig:
        """The generation settings this system runs with: `shared`, with its model and server."""
        mine = {"model": self.model, "backend": self.backend, "base_url": self.base_url}
        mine["tokenizer"] = self.tokenizer
        return shared.model_copy(update={k: v for k, v in mine.items() if v})

    def check(self) -> list[str]:
        out = []
        if not _SYSTEM_NAME.match(self.name or ""):
            out.append(
                f"name ({self.name!r}) must be non-empty letters, digits, '.', '_', '+' or '-'"
            )
        if not self.model:
            out.append("model is required")
        if self.mode == "rag" and not self.index:
            out.append("mode 'rag' needs an index")
        if self.mode == "closed" and self.index:
            out.append(f"mode 'closed' takes no index (got {self.index!r})")
        return out


class QuestionsConfig(Section):
    # a QA .jsonl (corpora/demo/qa.jsonl format) or a build-dataset OUT folder (its eval split)
    path: str = ""
    max_questions: int = Field(0, ge=0)  # 0 = all; else a seeded sample of this many
    seed: int = 0  # which questions the sample keeps

    def check(self) -> list[str]:
        return (
            [] if self.path else ["path is required (a QA .jsonl or a build-dataset output folder)"]
        )


class JudgeConfig(Section):
    kind: Literal["none", "openai", "hf"] = "none"  # none keeps scoring offline and deterministic
    base_url: str = ""  # openai: any OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
    model: str = ""  # the judge model's name (openai) or HF id / folder (hf)
    api_key_env: str = "OPENAI_API_KEY"

    def check(self) -> list[str]:
        problems = []
        if self.kind == "openai" and not self.base_url:
            problems.append("kind 'openai' needs base_url")
        if self.kind != "none" and not self.model:
            problems.append(f"kind '{self.kind}' needs model")
        return problems


class ScoringConfig(Section):
    mc: Literal["loglik", "generate", "both"] = (
        "both"  # loglik = Ovadia et al.; generate = the named choice
    )
    # where choices are scored: right after the prompt, or after the system's own reply up to
    # `<ANSWER>:` (a RAFT model reasons and quotes first; scoring its answer line at the first token
    # is off its path)
    mc_after: Literal["prompt", "reply"] = "prompt"
    show_choices: bool = (
        False  # append "A) .. B) .." to questions with choices (same for every system)
    )
    ragas: bool = (
        True  # string similarity, ROUGE-L and non-LLM context precision/recall via ragas.evaluate
    )
    ragas_timeout_s: int = Field(
        300, ge=1
    )  # per ragas call (its RunConfig); a failed extra never sinks the report
    judge: JudgeConfig = Field(default_factory=JudgeConfig)  # adds faithfulness, answer correctness


class FreshnessConfig(Section):
    enable: bool = True  # per-status accuracy and stale rate, when questions carry status or period
    status_field: str = "status"  # unchanged | changed | added | unanswerable
    period_field: str = "period"  # RealTimeQA-style: v1 = known at training time, v2 = added later
    answer_v1_field: str = "answer_v1"  # the v1 answer of a changed fact (open answers)
    answer_index_v1_field: str = (
        "answer_index_v1"  # the v1 choice of a changed fact (multiple choice)
    )


class UnanswerableConfig(Section):
    use_status: bool = (
        True  # questions with status 'unanswerable' or empty doc_ids must be abstained on
    )
    holdout_docs: float = Field(
        0.0, ge=0, le=1
    )  # share of answerable questions re-asked without their documents
    seed: int = 0


class BootstrapConfig(Section):
    samples: int = Field(1000, ge=10)  # resamples of the questions per interval
    seed: int = 0
    level: float = Field(0.95, gt=0, lt=1)


class CompareConfig(Section):
    systems: list[SystemConfig] = Field(default_factory=list)
    baseline: str = (
        ""  # a system name: every other system gets paired differences against it (empty = none)
    )
    questions: QuestionsConfig = Field(default_factory=QuestionsConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)  # model is per system
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    indexes_dir: str = "indexes"
    # index name -> documents folder, built with default settings when the index is missing (fresh
    # clones)
    build_indexes: dict[str, str] = Field(default_factory=dict)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    freshness: FreshnessConfig = Field(default_factory=FreshnessConfig)
    unanswerable: UnanswerableConfig = Field(default_factory=UnanswerableConfig)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)

    def check(self) -> list[str]:
        if not self.systems:
            return ["systems: name at least one system ({name, model, mode, index, top_k})"]
        names = [s.name for s in self.systems]
        dupes = sorted({n for n in names if names.count(n) > 1})
        problems = (
            [f"systems: names must be unique (repeated: {', '.join(dupes)})"] if dupes else []
        )
        if self.baseline and self.baseline not in names:
            problems.append(
                f"baseline '{self.baseline}' is not one of the systems ({', '.join(names)})"
            )
        for i, s in enumerate(self.systems):
            g = s.generation_config(self.generation)
            if s.backend == "openai" and not g.base_url:  # generation.base_url has its own check
                problems.append(
                    f"systems[{i}] ('{s.name}'): backend 'openai' needs base_url "
                    "(e.g. http://localhost:8000/v1)"
                )
        return problems
