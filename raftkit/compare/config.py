"""The schema of `raftkit compare` recipes (recipes/compare*.yaml)."""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from raftkit.config import GenerationConfig, check_interval, check_min

_SYSTEM_NAME = re.compile(r"^[\w.+-]+$")


@dataclasses.dataclass
class SystemConfig:
    name: str = ""  # a column of the report; letters, digits, '.', '_', '+', '-'
    model: str = ""  # alias, HF id, model folder or a `raftkit train` run folder
    mode: Literal["closed", "rag"] = "closed"  # closed = question only; rag = top-k chunks of `index` too
    index: str = ""  # for rag: an index name under indexes_dir, or a path to an index folder
    top_k: int = 5  # chunks shown to a rag system

    def problems(self, where: str) -> list[str]:
        out = []
        if not _SYSTEM_NAME.match(self.name or ""):
            out.append(f"{where}.name ({self.name!r}) must be non-empty letters, digits, '.', '_', '+' or '-'")
        if not self.model:
            out.append(f"{where}.model is required")
        if self.mode == "rag" and not self.index:
            out.append(f"{where}: mode 'rag' needs an index")
        if self.mode == "closed" and self.index:
            out.append(f"{where}: mode 'closed' takes no index (got {self.index!r})")
        if self.top_k < 1:
            out.append(f"{where}.top_k ({self.top_k}) must be at least 1")
        return out


@dataclasses.dataclass
class QuestionsConfig:
    path: str = ""  # a QA .jsonl (corpora/demo/qa.jsonl format) or a build-dataset OUT folder (its eval split)
    max_questions: int = 0  # 0 = all; else a seeded sample of this many
    seed: int = 0  # which questions the sample keeps

    def validate(self) -> list[str]:
        problems = [] if self.path else ["path is required (a QA .jsonl or a build-dataset output folder)"]
        return problems + check_min(self, max_questions=0)


@dataclasses.dataclass
class JudgeConfig:
    kind: Literal["none", "openai", "hf"] = "none"  # none keeps scoring offline and deterministic
    base_url: str = ""  # openai: any OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
    model: str = ""  # the judge model's name (openai) or HF id / folder (hf)
    api_key_env: str = "OPENAI_API_KEY"

    def validate(self) -> list[str]:
        problems = []
        if self.kind == "openai" and not self.base_url:
            problems.append("kind 'openai' needs base_url")
        if self.kind != "none" and not self.model:
            problems.append(f"kind '{self.kind}' needs model")
        return problems


@dataclasses.dataclass
class ScoringConfig:
    mc: Literal["loglik", "generate", "both"] = "both"  # loglik = Ovadia et al.; generate = the named choice
    # where choices are scored: right after the prompt, or after the system's own reply up to `<ANSWER>:`
    # (a RAFT model reasons and quotes first; scoring its answer line at the first token is off its path)
    mc_after: Literal["prompt", "reply"] = "prompt"
    show_choices: bool = False  # append "A) .. B) .." to questions with choices (same for every system)
    ragas: bool = True  # string similarity, ROUGE-L and non-LLM context precision/recall via ragas.evaluate
    ragas_timeout_s: int = 300  # ragas is an extra: past this it is skipped, never the whole report
    judge: JudgeConfig = dataclasses.field(default_factory=JudgeConfig)  # adds faithfulness, answer correctness

    def validate(self) -> list[str]:
        return check_min(self, ragas_timeout_s=1)


@dataclasses.dataclass
class FreshnessConfig:
    enable: bool = True  # per-status accuracy and stale rate, when questions carry status or period
    status_field: str = "status"  # unchanged | changed | added | unanswerable
    period_field: str = "period"  # RealTimeQA-style: v1 = known at training time, v2 = added later
    answer_v1_field: str = "answer_v1"  # the v1 answer of a changed fact (open answers)
    answer_index_v1_field: str = "answer_index_v1"  # the v1 choice of a changed fact (multiple choice)


@dataclasses.dataclass
class UnanswerableConfig:
    use_status: bool = True  # questions with status 'unanswerable' or empty doc_ids must be abstained on
    holdout_docs: float = 0.0  # fraction of answerable questions re-asked over an index without their documents
    seed: int = 0

    def validate(self) -> list[str]:
        return check_interval(self, holdout_docs="[0, 1]")


@dataclasses.dataclass
class BootstrapConfig:
    samples: int = 1000  # resamples of the questions per interval
    seed: int = 0
    level: float = 0.95

    def validate(self) -> list[str]:
        return check_min(self, samples=10) + check_interval(self, level="(0, 1)")


@dataclasses.dataclass
class CompareConfig:
    systems: list[SystemConfig] = dataclasses.field(default_factory=list)
    questions: QuestionsConfig = dataclasses.field(default_factory=QuestionsConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)  # model is per system
    indexes_dir: str = "indexes"
    # index name -> documents folder, built with default settings when the index is missing (fresh clones)
    build_indexes: dict[str, str] = dataclasses.field(default_factory=dict)
    scoring: ScoringConfig = dataclasses.field(default_factory=ScoringConfig)
    freshness: FreshnessConfig = dataclasses.field(default_factory=FreshnessConfig)
    unanswerable: UnanswerableConfig = dataclasses.field(default_factory=UnanswerableConfig)
    bootstrap: BootstrapConfig = dataclasses.field(default_factory=BootstrapConfig)

    def validate(self) -> list[str]:
        if not self.systems:
            return ["systems: name at least one system ({name, model, mode, index, top_k})"]
        problems = []
        for i, s in enumerate(self.systems):
            problems += s.problems(f"systems[{i}]")
        names = [s.name for s in self.systems]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"systems: names must be unique (repeated: {', '.join(dupes)})")
        return problems
