"""The schema of `raftkit build-dataset`: shared retrieval/generation/runtime sections plus RAFT's
own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raftkit.config import GenerationConfig, RetrievalConfig, RuntimeConfig, Section


class QuestionsConfig(Section):
    source: Literal["generate", "spans"] = Field(
        "generate",
        description="generate = the generator asks per_chunk questions of each chunk; spans = "
        "fill-in-the-blank questions about the numbers, dates, versions and names of each chunk's "
        "sentences, answered from the sentence (raftkit/raft/spans.py): no model",
    )
    per_chunk: int = Field(
        3, ge=1
    )  # N questions asked of each chunk (RAFT's reference generator asks 5)
    dedup_threshold: float = Field(
        0.9, gt=0, le=1
    )  # cosine above which two questions of one chunk count as one
    max_new_tokens: int = Field(96, ge=8)  # a few short questions; CPU time is the budget
    max_chunks: int = Field(0, ge=0)  # ask only the first N chunks (a quick trial); 0 = every chunk


class AnswersConfig(Section):
    max_new_tokens: int = Field(128, ge=8)  # one quote, one line of reasoning, the answer
    on_bad_quote: Literal["repair", "drop"] = (
        "repair"  # repair = swap in the oracle sentence it meant
    )
    min_overlap: float = Field(
        0.3, ge=0, le=1
    )  # a repair needs this share of the quote's words in one oracle sentence
    max_answer_words: int = Field(
        30, ge=1
    )  # a derived or overlong answer is cut here; the reference answer stays short
    # preference `rejected`: derive = no model call (a distractor sentence + a wrong answer);
    # generate = the model answers from a distractor
    rejected: Literal["derive", "generate"] = "derive"


class QAConfig(Section):
    """How a `--qa` file is read (the ../shared/benchmarks format)."""

    answer_field: str = "answer"  # e.g. answer_v1 for the demo's v1 documents
    answers: Literal["given", "generate"] = (
        "given"  # given = deterministic CoT, no model; generate = ask the model
    )
    require_answer_in_docs: bool = (
        True  # skip lines whose answer is not in their documents (false for yes/no QA)
    )

    def check(self) -> list[str]:
        return [] if self.answer_field.strip() else ["answer_field must not be empty"]


class AssemblyConfig(Section):
    num_distractors: int = Field(4, ge=0)  # k, as in the RAFT paper's recipe
    oracle_p: float = Field(0.8, ge=0, le=1)  # share of examples that keep the oracle chunk (P)
    # hard = nearest chunks of other documents, like retrieval at test time
    distractors: Literal["random", "hard"] = "hard"
    absent_target: Literal["memorize", "abstain"] = (
        "abstain"  # abstain matches the shared system prompt
    )
    # `rejected` of an example that shows its oracle: a confident answer quoting a distractor
    # (teaches grounding) or the refusal (teaches not to refuse when the evidence is there). An
    # example without its oracle and an abstain target rejects a confident answer from a distractor.
    rejected_with_oracle: Literal["distractor", "refusal"] = "distractor"
    # how a refusal target reads: `plain` is the refusal line alone; `quote` first copies the shown
    # sentence closest to the question, then says it does not answer (and an answered target says
    # its quote answers), so the answer-or-refuse decision comes after the evidence was looked at
    # instead of at the reply's first token.
    refusal: Literal["plain", "quote"] = "plain"
    # contrast: each question gives two examples, one with its oracle and one where the filler takes
    # the oracle's place (same distractors, same order): a minimal pair for the answer-or-abstain
    # decision; oracle_p is then 0.5 by construction and ignored
    contrast: bool = False
    eval_fraction: float = Field(0.2, ge=0, lt=1)  # share of documents held out for eval
    seed: int = 0


class GateConfig(Section):
    # the evidence gate calibrated on the build's train-split questions (raftkit.retrieval.gate):
    # the share of answerable ones it may refuse; 0 = no gate; only for absent_target: abstain.
    # 0.15: on two RealTimeQA slices it refused 8-12% of held-out answerable questions and let
    # 33-38% of evidence-absent ones through (0.10: 7-8% and 40-43%)
    over_refusal: float = Field(0.15, ge=0, lt=1)


class RaftBuildConfig(Section):
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    questions: QuestionsConfig = Field(default_factory=QuestionsConfig)
    answers: AnswersConfig = Field(default_factory=AnswersConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    assembly: AssemblyConfig = Field(default_factory=AssemblyConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    index_name: str = ""  # index under retrieval.indexes_dir; empty = the docs folder's name
    checkpoint_every: int = Field(
        8, ge=1
    )  # chunks (or QA lines) per checkpoint; a crash loses at most one batch
