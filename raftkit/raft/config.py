"""The schema of `raftkit build-dataset`: shared retrieval/generation sections plus RAFT's own."""

from __future__ import annotations

import dataclasses
from typing import Literal

from raftkit.config import GenerationConfig, RetrievalConfig, check_interval, check_min


@dataclasses.dataclass
class QuestionsConfig:
    per_chunk: int = 3  # N questions asked of each chunk (RAFT's reference generator asks 5)
    dedup_threshold: float = 0.9  # cosine above which two questions of one chunk count as one
    max_new_tokens: int = 96  # a few short questions; CPU time is the budget
    max_chunks: int = 0  # ask only the first N chunks (a quick trial); 0 = every chunk

    def validate(self) -> list[str]:
        return (check_min(self, max_chunks=0, per_chunk=1, max_new_tokens=8)
                + check_interval(self, dedup_threshold="(0, 1]"))


@dataclasses.dataclass
class AnswersConfig:
    max_new_tokens: int = 128  # one quote, one line of reasoning, the answer
    on_bad_quote: Literal["repair", "drop"] = "repair"  # repair = swap in the oracle sentence it meant
    min_overlap: float = 0.3  # a repair needs this share of the quote's words in one oracle sentence
    max_answer_words: int = 30  # a derived or overlong answer is cut here; the reference answer stays short
    rejected: Literal["derive", "generate"] = "derive"  # derive = no model call: a distractor sentence + wrong answer

    def validate(self) -> list[str]:
        return check_min(self, max_new_tokens=8, max_answer_words=1) + check_interval(self, min_overlap="[0, 1]")


@dataclasses.dataclass
class QAConfig:
    """How a `--qa` file is read (the ../shared/benchmarks format)."""

    answer_field: str = "answer"  # e.g. answer_v1 for the demo's v1 documents
    answers: Literal["given", "generate"] = "given"  # given = deterministic CoT, no model; generate = ask the model
    require_answer_in_docs: bool = True  # skip lines whose answer is not in their documents (false for yes/no QA)

    def validate(self) -> list[str]:
        return [] if self.answer_field.strip() else ["answer_field must not be empty"]


@dataclasses.dataclass
class AssemblyConfig:
    num_distractors: int = 4  # k, as in the RAFT paper's recipe
    oracle_p: float = 0.8  # share of examples that keep the oracle chunk (P)
    distractors: Literal["random", "hard"] = "hard"  # hard = nearest chunks of other documents, like retrieval at test time
    absent_target: Literal["memorize", "abstain"] = "abstain"  # abstain matches the shared system prompt
    eval_fraction: float = 0.2  # share of documents held out for eval
    seed: int = 0

    def validate(self) -> list[str]:
        return check_min(self, num_distractors=0) + check_interval(self, oracle_p="[0, 1]", eval_fraction="[0, 1)")


@dataclasses.dataclass
class RaftBuildConfig:
    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
    questions: QuestionsConfig = dataclasses.field(default_factory=QuestionsConfig)
    answers: AnswersConfig = dataclasses.field(default_factory=AnswersConfig)
    qa: QAConfig = dataclasses.field(default_factory=QAConfig)
    assembly: AssemblyConfig = dataclasses.field(default_factory=AssemblyConfig)
    index_name: str = ""  # index under retrieval.indexes_dir; empty = the docs folder's name
    checkpoint_every: int = 8  # chunks (or QA lines) per checkpoint; a crash loses at most one batch

    def validate(self) -> list[str]:
        return check_min(self, checkpoint_every=1)
