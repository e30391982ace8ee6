"""The schema of `raftkit compare` recipes (recipes/compare*.yaml)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from raftkit.config import EvidenceCheck, GenerationConfig, RuntimeConfig, Section

_SYSTEM_NAME = re.compile(r"^[\w.+-]+$")


class SystemConfig(EvidenceCheck):
    name: str = Field(
        "",
        description="the system's column in the report (required): letters, digits, '.', '_', '+',"
        " '-'",
    )
    model: str = Field(
        "", description="alias, HF id, model folder or a `raftkit train` run folder (required)"
    )
    mode: Literal["closed", "rag"] = Field(
        "closed", description="closed = the question only; rag = the top-k chunks of `index` too"
    )
    index: str = Field(
        "",
        description="mode rag: an index name under indexes_dir, or a path to an index folder",
    )
    top_k: int = Field(5, ge=1, description="mode rag: chunks shown with each question")
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
    path: str = Field(
        "",
        description="a QA .jsonl (corpora/demo/qa.jsonl format) or a build-dataset OUT folder (its"
        " eval split); required",
    )
    max_questions: int = Field(
        0, ge=0, description="ask a seeded sample of this many questions; 0 = all"
    )
    seed: int = Field(0, description="which questions the max_questions sample keeps")

    def check(self) -> list[str]:
        return (
            [] if self.path else ["path is required (a QA .jsonl or a build-dataset output folder)"]
        )


class JudgeConfig(Section):
    kind: Literal["none", "openai", "hf"] = Field(
        "none",
        description="the LLM judge: none = no judge (scoring stays offline and deterministic);"
        " openai = a server; hf = a local model",
    )
    base_url: str = Field(
        "",
        description="kind openai: any OpenAI-compatible endpoint, e.g. http://localhost:8000/v1",
    )
    model: str = Field("", description="the judge model's name (openai) or HF id / folder (hf)")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="kind openai: name of the environment variable that holds the API key",
    )

    def check(self) -> list[str]:
        problems = []
        if self.kind == "openai" and not self.base_url:
            problems.append("kind 'openai' needs base_url")
        if self.kind != "none" and not self.model:
            problems.append(f"kind '{self.kind}' needs model")
        return problems


class ScoringConfig(Section):
    mc: Literal["loglik", "generate", "both"] = Field(
        "both",
        description="multiple choice: loglik = the likeliest choice (Ovadia et al.); generate = the"
        " choice the reply names; both = report both",
    )
    # a RAFT model reasons and quotes first; scoring its answer line at the reply's first token is
    # off its path
    mc_after: Literal["prompt", "reply"] = Field(
        "prompt",
        description="where choices are scored: right after the prompt, or after the system's own"
        " reply up to `<ANSWER>:`",
    )
    show_choices: bool = Field(
        False,
        description='append "A) .. B) .." to questions with choices (the same for every system)',
    )
    ragas: bool = Field(
        True,
        description="also report string similarity, ROUGE-L and non-LLM context precision/recall"
        " via ragas",
    )
    ragas_timeout_s: int = Field(
        300,
        ge=1,
        description="seconds per ragas call (its RunConfig); a failed extra never sinks the report",
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig,
        description="an LLM judge for ragas' faithfulness and answer correctness",
    )


class FreshnessConfig(Section):
    enable: bool = Field(
        True,
        description="per-status accuracy and stale rate, when questions carry status or period;"
        " false = changed and added count as unchanged",
    )
    status_field: str = Field(
        "status",
        description="the QA column of a question's status: unchanged, changed, added or"
        " unanswerable",
    )
    period_field: str = Field(
        "period",
        description="the QA column read when status is missing (RealTimeQA-style): v1 = known at"
        " training time, v2 = added later",
    )
    answer_v1_field: str = Field(
        "answer_v1", description="the QA column of a changed fact's old answer (open answers)"
    )
    answer_index_v1_field: str = Field(
        "answer_index_v1",
        description="the QA column of a changed fact's old choice index (multiple choice)",
    )


class UnanswerableConfig(Section):
    use_status: bool = Field(
        True,
        description="questions with status unanswerable or empty doc_ids must be abstained on;"
        " false = leave them out",
    )
    holdout_docs: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of answerable questions re-asked without their documents (to be"
        " abstained on); 0 = none",
    )
    seed: int = Field(0, description="which answerable questions holdout_docs re-asks")


class BootstrapConfig(Section):
    samples: int = Field(
        1000, ge=10, description="bootstrap resamples of the questions per confidence interval"
    )
    seed: int = Field(0, description="seed of the bootstrap resamples (and of ragas)")
    level: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals")


class CompareConfig(Section):
    systems: list[SystemConfig] = Field(
        default_factory=list,
        description="the systems compared, one report column each (at least one)",
    )
    baseline: str = Field(
        "",
        description="a system name: every other system gets paired differences against it;"
        " empty = none",
    )
    questions: QuestionsConfig = Field(
        default_factory=QuestionsConfig, description="the questions every system is asked"
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig,
        description="generation settings shared by the systems (model and server are per system)",
    )
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="device and precision of every model"
    )
    indexes_dir: str = Field(
        "indexes", description="folder where the named indexes of rag systems live"
    )
    # for fresh clones, where the indexes were never built
    build_indexes: dict[str, str] = Field(
        default_factory=dict,
        description="index name -> documents folder, built with default settings when the index is"
        " missing",
    )
    scoring: ScoringConfig = Field(
        default_factory=ScoringConfig, description="how answers are scored"
    )
    freshness: FreshnessConfig = Field(
        default_factory=FreshnessConfig,
        description="the QA columns of freshness questions (changed, added facts)",
    )
    unanswerable: UnanswerableConfig = Field(
        default_factory=UnanswerableConfig, description="questions a system must abstain on"
    )
    bootstrap: BootstrapConfig = Field(
        default_factory=BootstrapConfig, description="the confidence intervals of the report"
    )

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
